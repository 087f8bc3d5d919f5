"""What the twin needs to know about each eligible pool, derived once from the API objects."""

from __future__ import annotations

from dataclasses import dataclass

from costscaler.api import CapacityPool, InferenceDeployment
from costscaler.api.money import to_float
from costscaler.core import hazard
from costscaler.core.cost import fixed_hourly
from costscaler.core.pools import missing_pools, pool_views
from costscaler.errors import UserError


@dataclass(frozen=True)
class PoolModel:
    """One eligible pool as the twin sees it (units in the field names).

    `replica_cost_per_hour` = node $/h / replicas_per_node (a full node's share; the run bills
    whole nodes), allocated (owned capacity at TCO); `marginal_cost_per_hour` the same at the
    margin (owned and reserved: energy and per-use operations), None when they are equal;
    `capacity_rps` and `service_s` come from the deployment's profile for the accelerator.
    `max_replicas` folds the deployment's per-pool max and the pool's node quota.
    `burst_share`: the share of the spot hazard that comes as pool-wide bursts when the run
    does not set one (`SpotBursts`): the pool's `interruption.burstShare`, as the engine's prior.
    `accelerator`: the pool's accelerator type (per-request serving looks its hardware up).
    """

    name: str
    spot: bool
    replica_cost_per_hour: float
    capacity_rps: float
    service_s: float
    accelerators_per_replica: int
    replicas_per_node: int
    node_cold_s: float
    load_s: float
    interruption_rate_per_hour: float
    notice_s: float
    max_replicas: int | None
    marginal_cost_per_hour: float | None = None
    burst_share: float = hazard.DEFAULT_BURST_SHARE
    accelerator: str = ""

    @property
    def cost_per_capacity(self) -> float:
        """$ per hour per request/s of capacity: the merit order across pools."""
        return self.replica_cost_per_hour / self.capacity_rps


def pool_models(deployment: InferenceDeployment, pools: list[CapacityPool]) -> list[PoolModel]:
    """The deployment's eligible pools, in its order, priced by the engine's own cost model.

    Eligibility and $/replica-hour come from `core.pool_views`, so the twin charges exactly
    what the engine believes; an error names a pool missing from `pools`.
    """
    spec = deployment.spec
    missing = missing_pools(spec, pools)
    if missing:
        raise UserError(
            f"spec.pools: {', '.join(missing)} not among the CapacityPools given with -p "
            f"(have: {', '.join(sorted(p.metadata.name for p in pools)) or 'none'})"
        )
    by_name = {p.metadata.name: p for p in pools}
    out: list[PoolModel] = []
    for view in pool_views(spec, pools):
        pool = by_name[view.name].spec
        profile = spec.workload.profile_for(pool.accelerator.type)
        assert profile is not None  # pool_views keeps only pools with a profile
        out.append(
            PoolModel(
                name=view.name,
                spot=view.spot,
                replica_cost_per_hour=view.replica_cost_per_hour,
                capacity_rps=view.capacity_rps,
                service_s=profile.base_latency_seconds or 0.0,
                accelerators_per_replica=view.accelerators_per_replica,
                replicas_per_node=pool.accelerator.count_per_node // view.accelerators_per_replica,
                node_cold_s=float(pool.cold_start.node_seconds),
                load_s=float(spec.workload.model_load_seconds),
                interruption_rate_per_hour=view.interruption_rate_per_hour,
                notice_s=float(pool.interruption.notice_seconds),
                max_replicas=view.max_replicas,
                marginal_cost_per_hour=view.marginal_cost_per_hour,
                burst_share=hazard.DEFAULT_BURST_SHARE
                if view.burst_share is None
                else view.burst_share,
                accelerator=pool.accelerator.type,
            )
        )
    if not out:
        raise UserError(
            "spec.workload.capacity: no eligible pool has an accelerator the deployment has a "
            "capacity profile for; add a profile or a pool"
        )
    return out


def cheapest_on_demand(models: list[PoolModel]) -> PoolModel:
    """The on-demand (or owned) pool with the lowest $/h per request/s: single-pool baselines."""
    firm = [m for m in models if not m.spot]
    if not firm:
        raise UserError("spec.pools: single-pool policies need one non-spot pool; add one")
    return min(firm, key=lambda m: m.cost_per_capacity)


def fixed_cost_per_hour(deployment: InferenceDeployment) -> float:
    """Fixed monthly items and storage, per hour ($/h); the same for every policy."""
    cm = deployment.spec.cost_model
    fixed = sum(to_float(item.amount) for item in cm.fixed_monthly)
    return fixed_hourly(fixed, to_float(cm.storage_monthly))


def egress_cost_per_request(deployment: InferenceDeployment) -> float:
    """Egress $ per request served."""
    egress = deployment.spec.cost_model.egress
    return to_float(egress.price_per_gb) * egress.gb_per_thousand_requests / 1000.0
