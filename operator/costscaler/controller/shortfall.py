"""What the pools cannot deliver, as the engine's input and as conditions.

Input: per pool, the child pods Pending unscheduled past a grace (the pool's node cold
start plus `GRACE_MARGIN_S`: a pod waiting for a node that is being launched is not yet a
stock-out), or at once on a pool whose NodePool launches nothing for them (no NodeClaim
30 s after a pod began waiting: `node_layer`), become `ChildState.unfulfillable`, which the
history hands to the engine (`core.stock`: the pool is out of stock at once, retried with
back-off).

Conditions: `CapacityAvailable` is False when replicas.min is past the pools' maxima
(ReplicasMinBeyondQuota), when a pool is out of stock (PoolOutOfStock), or when the plan
puts replicas on a pool with no ready node matching its placement (NoSchedulableNodes);
`SpotLimitRelaxed` is True when on-demand quota is too small to carry replicas.min at
spot.maxFraction, so spot passes its share (`Decision.spot_limit_relaxed`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace

from costscaler.adapters.children import ChildState
from costscaler.adapters.pending import PendingPod
from costscaler.api import CapacityPool
from costscaler.controller.status import Cond
from costscaler.core import Decision, Reason

CAPACITY_AVAILABLE = "CapacityAvailable"
SPOT_LIMIT_RELAXED = "SpotLimitRelaxed"
GRACE_MARGIN_S = 60.0
RELAXED_NOTE = "Spot limits relaxed:"  # how the engine's message gives the numbers (explain)


def grace_seconds(pool: CapacityPool) -> float:
    """How long (s) a child pod of `pool` may wait unscheduled before it counts as unplaceable."""
    return float(pool.spec.cold_start.node_seconds) + GRACE_MARGIN_S


def with_unplaced(
    children: list[ChildState],
    pending: Iterable[PendingPod],
    pools: Mapping[str, CapacityPool],
    now: float,
    stalled: Collection[str] = (),
) -> list[ChildState]:
    """`children` with `unfulfillable` set: their pods unscheduled past the pool's grace (at
    most the replicas the child asks for, so pods on their way out are not counted twice).

    `stalled`: pools whose NodePool launches nothing for pods that wait (`node_layer`): no
    node is on its way, so their pending pods count at once, not after a cold start.
    """
    late: dict[str, int] = {}
    for pod in pending:
        pool = pools.get(pod.pool)
        if pool is not None and (pod.pool in stalled or now - pod.since > grace_seconds(pool)):
            late[pod.pool] = late.get(pod.pool, 0) + 1
    return [
        replace(c, unfulfillable=min(late[c.pool], c.desired)) if c.pool in late else c
        for c in children
    ]


def capacity_conditions(
    d: Decision, target: Mapping[str, int], schedulable: Mapping[str, int] | None
) -> list[Cond]:
    """`CapacityAvailable` and `SpotLimitRelaxed` for this decision.

    `schedulable`: ready nodes matching each pool's placement (pools not known yet absent).
    """
    problems: list[tuple[str, str]] = []
    if d.quota_shortfall > 0:
        problems.append(
            (
                Reason.MIN_BEYOND_QUOTA,
                f"replicas.min is {d.quota_shortfall} replicas more than the eligible pools' "
                "maxima hold together; raise the pools' maxima or lower replicas.min",
            )
        )
    if d.out_of_stock:
        problems.append(
            (
                Reason.POOL_OUT_OF_STOCK,
                f"out of stock (replicas Pending past their grace): {', '.join(d.out_of_stock)};"
                " their share moved to the next pools, retried with back-off",
            )
        )
    bare = sorted(p for p, n in target.items() if n > 0 and (schedulable or {}).get(p) == 0)
    if bare:
        problems.append(
            (
                "NoSchedulableNodes",
                f"no ready node matches the placement of {', '.join(bare)}, where the plan puts "
                "replicas: they wait for a node to launch",
            )
        )
    if problems:
        capacity = Cond(
            CAPACITY_AVAILABLE, False, problems[0][0], "; ".join(m for _, m in problems)
        )
    else:
        capacity = Cond(CAPACITY_AVAILABLE, True, "PoolsCanPlace", "the pools can place the plan")
    if d.spot_limit_relaxed:
        at = d.message.find(RELAXED_NOTE)
        spot = Cond(
            SPOT_LIMIT_RELAXED,
            True,
            Reason.SPOT_LIMIT_RELAXED,
            d.message[at:]
            if at >= 0
            else "on-demand pools cannot carry replicas.min at spot.maxFraction: spot may pass "
            "its share as far as that forces (the plan is within it now)",
        )
    else:
        spot = Cond(
            SPOT_LIMIT_RELAXED,
            False,
            "WithinSpotLimits",
            "spot.maxFraction and minOnDemandReplicas hold",
        )
    return [capacity, spot]
