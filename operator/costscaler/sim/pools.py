"""What the twin needs to know about each eligible pool, derived once from the API objects."""

from __future__ import annotations

from dataclasses import dataclass

from costscaler.api import CapacityPool, CapacityType, InferenceDeployment
from costscaler.api.money import to_float
from costscaler.errors import UserError

HOURS_PER_MONTH = 730.0


@dataclass(frozen=True)
class PoolModel:
    """One eligible pool as the twin sees it (units in the field names).

    `replica_cost_per_hour` = node $/h x accelerators_per_replica / count_per_node;
    `capacity_rps` and `service_s` come from the deployment's profile for the accelerator.
    `max_replicas` folds the deployment's per-pool max and the pool's node quota.
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

    @property
    def cost_per_capacity(self) -> float:
        """$ per hour per request/s of capacity: the merit order across pools."""
        return self.replica_cost_per_hour / self.capacity_rps


def node_hourly_cost(pool: CapacityPool) -> float:
    """Effective $/h of one node: the cloud price, or the owned TCO per hour.

    Owned: purchase / (months x 730 h) + kW x PUE x $/kWh + operations / 730 h.
    """
    spec = pool.spec
    if spec.price is not None:
        return to_float(spec.price.hourly)
    own = spec.ownership
    if own is None:  # the API's validation forbids this; keep mypy and readers honest
        raise UserError(f"pool {pool.metadata.name}: spec.price or spec.ownership is required")
    capex = to_float(own.purchase_price) / (own.amortization_months * HOURS_PER_MONTH)
    energy = own.power_watts / 1000.0 * own.pue * to_float(own.electricity_per_kwh)
    return capex + energy + to_float(own.operations_per_month) / HOURS_PER_MONTH


def pool_models(deployment: InferenceDeployment, pools: list[CapacityPool]) -> list[PoolModel]:
    """The deployment's eligible pools, in its order; an error names a missing pool or profile."""
    by_name = {p.metadata.name: p for p in pools}
    spec = deployment.spec
    out: list[PoolModel] = []
    for ref in spec.pools:
        pool = by_name.get(ref.name)
        if pool is None:
            raise UserError(
                f"spec.pools: pool {ref.name!r} is not among the CapacityPools given with -p "
                f"(have: {', '.join(sorted(by_name)) or 'none'})"
            )
        profile = spec.workload.profile_for(pool.spec.accelerator.type)
        if profile is None:
            continue  # the model cannot run on this accelerator: not eligible
        per_node = pool.spec.accelerator.count_per_node // profile.accelerators_per_replica
        if per_node < 1:
            continue  # one replica needs more accelerators than a node has
        caps = [c for c in (ref.max_replicas,) if c is not None]
        if pool.spec.limits.max_nodes is not None:
            caps.append(pool.spec.limits.max_nodes * per_node)
        out.append(
            PoolModel(
                name=ref.name,
                spot=pool.spec.capacity_type == CapacityType.SPOT,
                replica_cost_per_hour=node_hourly_cost(pool)
                * profile.accelerators_per_replica
                / pool.spec.accelerator.count_per_node,
                capacity_rps=profile.requests_per_second,
                service_s=profile.base_latency_seconds or 0.0,
                accelerators_per_replica=profile.accelerators_per_replica,
                replicas_per_node=per_node,
                node_cold_s=float(pool.spec.cold_start.node_seconds),
                load_s=float(spec.workload.model_load_seconds),
                interruption_rate_per_hour=pool.spec.interruption.rate_per_hour,
                notice_s=float(pool.spec.interruption.notice_seconds),
                max_replicas=min(caps) if caps else None,
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
    monthly = sum(to_float(item.amount) for item in cm.fixed_monthly) + to_float(cm.storage_monthly)
    return monthly / HOURS_PER_MONTH


def egress_cost_per_request(deployment: InferenceDeployment) -> float:
    """Egress $ per request served."""
    egress = deployment.spec.cost_model.egress
    return to_float(egress.price_per_gb) * egress.gb_per_thousand_requests / 1000.0
