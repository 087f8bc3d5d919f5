"""`PoolView`: what the engine needs of one eligible pool, derived once from the API models.

`pool_views(spec, pools)` is the one adapter from `costscaler.api`; everything after it works
on plain numbers, so tests and the simulator can build `PoolView`s directly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from costscaler.api.deployment import CapacityProfile, InferenceDeploymentSpec
from costscaler.api.money import to_float
from costscaler.api.pool import CapacityPool, CapacityType
from costscaler.core.cost import ownership_hourly, ownership_marginal_hourly, replica_hourly


@dataclass(frozen=True)
class PoolView:
    """One eligible pool for one deployment (units in the names).

    `replica_cost_per_hour`: allocated $/h of one replica (price or ownership TCO share), what
    chargeback views show. `marginal_cost_per_hour`: what a decision pays per replica-hour,
    None when it is the allocated cost (clouds); for owned and reserved pools only energy and
    per-use operations, as capex and reservations are paid whether used or not.
    `capacity_rps`: declared requests/s one replica serves within the SLO.
    `max_replicas`: the deployment's per-pool max and the pool's node quota folded together
    (None: unlimited). `cold_start_s`: node cold start + model load, the time new capacity
    takes to serve. `interruption_rate_per_hour`: the declared spot hazard per instance-hour.
    `base_latency_s`: end-to-end latency of a request on an idle replica (None: the engine
    assumes `latency.default_base_latency` of the threshold).
    `replicas_per_node`: replicas one node holds (countPerNode // acceleratorsPerReplica); a
    node bills whole from its first replica, the prices above are per replica of a full node.
    `prefill_tokens_per_second`, `decode_tokens_per_second`, `max_concurrent_sequences`: one
    replica's token profile (`core.tokens`), None when the workload declares none for this
    accelerator (the bound may be left out of a profile).
    `bucket_rps`: req/s one replica serves of each `workload.requestSizes` entry alone, in
    their order (0 where it cannot serve a size); None without request sizes (`core.sizes`).
    """

    name: str
    spot: bool
    replica_cost_per_hour: float
    capacity_rps: float
    cold_start_s: float
    max_replicas: int | None = None
    interruption_rate_per_hour: float = 0.0
    # Prior share of the hazard that comes as whole-pool bursts (`core.hazard`); None: the
    # default measured on real spot traces (`hazard.DEFAULT_BURST_SHARE`).
    burst_share: float | None = None
    accelerators_per_replica: int = 1
    tokens_per_second: float | None = None
    marginal_cost_per_hour: float | None = None
    replicas_per_node: int = 1
    # Nodes a NodePool launches on demand (spec.nodePool set): they pay `node_cold_start_s`,
    # and warm spares can spare it (`core.warm`).
    launches_nodes: bool = False
    node_cold_start_s: float = 0.0
    prefill_tokens_per_second: float | None = None
    decode_tokens_per_second: float | None = None
    base_latency_s: float | None = None
    max_concurrent_sequences: int | None = None
    bucket_rps: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not self.capacity_rps > 0:
            raise ValueError(f"pool {self.name}: capacity_rps must be > 0")
        if not self.replica_cost_per_hour >= 0:
            raise ValueError(f"pool {self.name}: replica_cost_per_hour must be >= 0")
        if not self.decision_cost_per_hour >= 0:
            raise ValueError(f"pool {self.name}: marginal_cost_per_hour must be >= 0")
        if self.base_latency_s is not None and not self.base_latency_s > 0:
            raise ValueError(f"pool {self.name}: base_latency_s must be > 0")
        if self.replicas_per_node < 1:
            raise ValueError(f"pool {self.name}: replicas_per_node must be >= 1")

    @property
    def decision_cost_per_hour(self) -> float:
        """$/h of one replica as decisions price it: the marginal cost (`marginal_cost_per_hour`,
        else the allocated one)."""
        if self.marginal_cost_per_hour is None:
            return self.replica_cost_per_hour
        return self.marginal_cost_per_hour


def node_hourly(pool: CapacityPool) -> float:
    """Effective $/h of one node of `pool`: its cloud price, or its ownership TCO."""
    spec = pool.spec
    if spec.price is not None:
        return to_float(spec.price.hourly)
    own = spec.ownership
    if own is None:
        raise ValueError(f"pool {pool.name}: spec.price or spec.ownership is required")
    return ownership_hourly(
        to_float(own.purchase_price),
        own.amortization_months,
        own.power_watts,
        own.pue,
        to_float(own.electricity_per_kwh),
        to_float(own.operations_per_month),
        to_float(own.operations_per_node_hour),
    )


def node_marginal_hourly(pool: CapacityPool) -> float:
    """$/h one node of `pool` adds when it serves: its cloud price, or for owned and reserved
    nodes (paid whether used or not) energy and per-use operations."""
    own = pool.spec.ownership
    if own is None:
        return node_hourly(pool)
    return ownership_marginal_hourly(
        own.power_watts,
        own.pue,
        to_float(own.electricity_per_kwh),
        to_float(own.operations_per_node_hour),
    )


def pool_views(spec: InferenceDeploymentSpec, pools: Sequence[CapacityPool]) -> list[PoolView]:
    """The deployment's eligible pools, in `spec.pools` order.

    A pool is eligible when it is listed in `spec.pools`, present in `pools`, the workload
    has a capacity profile for its accelerator, and one replica fits on a node. Pools that
    fail any of these are left out (the caller reports missing ones; see `missing_pools`).
    """
    by_name = {p.name: p for p in pools}
    views: list[PoolView] = []
    for ref in spec.pools:
        pool = by_name.get(ref.name)
        if pool is None:
            continue
        acc = pool.spec.accelerator
        profile = spec.workload.profile_for(acc.type)
        if profile is None or acc.count_per_node < profile.accelerators_per_replica:
            continue
        per_node = acc.count_per_node // profile.accelerators_per_replica
        caps = [] if ref.max_replicas is None else [ref.max_replicas]
        if pool.spec.limits.max_nodes is not None:
            caps.append(pool.spec.limits.max_nodes * per_node)
        if pool.spec.commitment is not None:  # a reservation holds no more than it reserved
            caps.append(pool.spec.commitment.count * per_node)
        spot = pool.spec.capacity_type == CapacityType.SPOT
        views.append(
            PoolView(
                name=ref.name,
                spot=spot,
                replica_cost_per_hour=replica_hourly(
                    node_hourly(pool), profile.accelerators_per_replica, acc.count_per_node
                ),
                capacity_rps=profile.requests_per_second,
                cold_start_s=float(
                    pool.spec.cold_start.node_seconds + spec.workload.model_load_seconds
                ),
                max_replicas=min(caps) if caps else None,
                interruption_rate_per_hour=pool.spec.interruption.rate_per_hour if spot else 0.0,
                burst_share=pool.spec.interruption.burst_share,
                accelerators_per_replica=profile.accelerators_per_replica,
                tokens_per_second=profile.tokens_per_second,
                marginal_cost_per_hour=None
                if pool.spec.ownership is None
                else replica_hourly(
                    node_marginal_hourly(pool), profile.accelerators_per_replica, acc.count_per_node
                ),
                replicas_per_node=per_node,
                launches_nodes=pool.spec.node_pool is not None,
                node_cold_start_s=float(pool.spec.cold_start.node_seconds),
                prefill_tokens_per_second=profile.prefill_tokens_per_second,
                decode_tokens_per_second=profile.decode_tokens_per_second,
                base_latency_s=profile.base_latency_seconds,
                max_concurrent_sequences=profile.max_concurrent_sequences,
                bucket_rps=_bucket_rps(spec, profile),
            )
        )
    return views


def _bucket_rps(
    spec: InferenceDeploymentSpec, profile: CapacityProfile
) -> tuple[float, ...] | None:
    """A capacity profile's req/s per request size, in `workload.requestSizes` order: as
    declared, else from its token profile at the size's middle (I and O the midpoints of
    its ranges: 1 / (I / P + O / D), `core.tokens`); 0 for a size it leaves out (it cannot
    serve it). None without request sizes."""
    sizes = spec.workload.request_sizes
    if sizes is None:
        return None
    have = {b.size: b.requests_per_second for b in profile.buckets or []}
    out = []
    for size in sizes:
        if size.name not in have:
            out.append(0.0)
            continue
        declared = have[size.name]
        if declared is not None:
            out.append(float(declared))
            continue
        prefill, decode = profile.prefill_tokens_per_second, profile.decode_tokens_per_second
        if prefill is None or decode is None:  # the API refuses this: a clear error anyway
            raise ValueError(
                f"{profile.accelerator} bucket {size.name}: requestsPerSecond is unset and "
                "there is no token profile to derive it from"
            )
        i = (size.input_tokens.min + size.input_tokens.max) / 2.0
        o = (size.output_tokens.min + size.output_tokens.max) / 2.0
        out.append(1.0 / (i / prefill + o / decode))
    return tuple(out)


def token_capacity(views: Sequence[PoolView], replicas: Mapping[str, int]) -> tuple[float, float]:
    """(prefill, decode) tokens/s of these replicas together; NaN when a pool serving any of
    them has no token profile (`cost.cost_per_million_input_output` then splits by tokens)."""
    prefill = decode = 0.0
    for view in views:
        count = replicas.get(view.name, 0)
        if count <= 0:
            continue
        if view.prefill_tokens_per_second is None or view.decode_tokens_per_second is None:
            return math.nan, math.nan
        prefill += count * view.prefill_tokens_per_second
        decode += count * view.decode_tokens_per_second
    return prefill, decode


def missing_pools(spec: InferenceDeploymentSpec, pools: Sequence[CapacityPool]) -> list[str]:
    """Names in `spec.pools` with no CapacityPool among `pools`."""
    have = {p.name for p in pools}
    return [ref.name for ref in spec.pools if ref.name not in have]
