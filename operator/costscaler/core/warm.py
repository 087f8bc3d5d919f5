"""Warm spare nodes by total cost: keep a spare while it costs less than the SLO misses it saves.

A replica placed on a new node waits the node's cold start plus the model load; on a warm
(launched, empty) node it waits only the model load. A spare matters when demand passes what
the plan serves before new capacity could arrive, and then it saves the node's cold start
T_node of missing the SLO.

One deployment (`need`): N, the extra nodes it needs at the horizon H, has
P(N >= j) = P(demand > planned capacity + (j - 1) x one node's capacity), from the forecast.
A spare that serves it saves, per hour held, v = M x min(T_node, H) / H ($/h, M the SLO-miss
cost) times the chance it is needed.

A pool (`spares`): the deployments sharing it need N = sum N_k (independent), and the n-th
spare is kept while

    node price < P(N >= n) x v_bar,

v_bar the deployments' v weighted by how likely each needs a node. For one deployment alone
a spare never pays when its plan is cost-optimal: one more replica on that node would cost
the same and save the misses of the whole horizon, not only of T_node. Spares pay because
the deployments on a pool share them, which no single plan can do.

A deployment has no use for spares when its budget bound the plan (`budget_bound`): the
spares would spend what the budget holds back, on nodes for replicas it would not pay for
(seen in `make demo`: a plan cut by the budget left demand far past it, and its tail kept 24
spare nodes). Nor beyond replicas.max: a spare takes only replicas the plan may still add.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from costscaler.core.forecast import DemandForecast
from costscaler.core.risk import IntArray
from costscaler.core.types import FloatArray, WarmNeed, WarmNodes

if TYPE_CHECKING:
    from costscaler.core.engine import Planner

# Spares considered per pool: a tail thinner than this many nodes' upside saves nothing.
MAX_SPARES = 32


def need(
    pl: Planner,
    demand: DemandForecast,
    replicas: IntArray,
    capacity: FloatArray,
    budget_bound: bool = False,
) -> WarmNeed | None:
    """What this deployment would ask of a warm pool: the tail of the extra nodes it needs
    on the pool its next replica would go to (the launchable one with room, cheapest per
    request/s), or None when no eligible pool launches nodes, the budget bound the plan
    (`budget_bound`) or replicas.max leaves no replica to add. `capacity`: a replica's req/s
    in each pool as the plan was sized on it (calibrated; at the request mix for pools with
    a token profile, `core.tokens`)."""
    if budget_bound:
        return None
    per_node = pl.per_node
    nodes_now = -(-replicas // per_node)
    left = pl.settings.replicas_max - int(replicas.sum())  # replicas the plan may still add
    room = np.minimum(pl.max_replicas // per_node - nodes_now, -(-max(left, 0) // per_node))
    best: int | None = None
    for i, view in enumerate(pl.pools):
        if not view.launches_nodes or room[i] <= 0 or view.node_cold_start_s <= 0:
            continue
        if best is None or pl.price[i] / capacity[i] < pl.price[best] / capacity[best]:
            best = i
    if best is None or pl.horizon_s <= 0:
        return None
    planned = float(np.sum(replicas * capacity))
    node_rps = float(capacity[best] * per_node[best])
    steps = planned + node_rps * np.arange(min(int(room[best]), MAX_SPARES), dtype=np.float64)
    tail = demand.exceedance(steps)
    saved = min(pl.pools[best].node_cold_start_s, pl.horizon_s) / pl.horizon_s
    return WarmNeed(
        pool=pl.names[best],
        tail=tuple(float(x) for x in tail),
        value_per_hour=pl.settings.slo_miss_cost_per_hour * saved,
        node_cost_per_hour=float(pl.price[best] * per_node[best]),
        room=int(room[best]),
    )


def _pmf(tail: Sequence[float]) -> FloatArray:
    """P(N = j), j = 0..len(tail), from P(N >= j), j = 1..len(tail) (the rest lumped at the top)."""
    ge = np.concatenate(([1.0], np.minimum.accumulate(np.clip(tail, 0.0, 1.0)), [0.0]))
    return np.asarray(ge[:-1] - ge[1:], dtype=np.float64)


def spares(needs: Sequence[WarmNeed]) -> dict[str, WarmNodes]:
    """Warm spare nodes per pool for the deployments' needs (pools with none left out)."""
    by_pool: dict[str, list[WarmNeed]] = {}
    for n in needs:
        by_pool.setdefault(n.pool, []).append(n)
    out: dict[str, WarmNodes] = {}
    for pool, group in sorted(by_pool.items()):
        total = np.ones(1, dtype=np.float64)
        for n in group:
            total = np.convolve(total, _pmf(n.tail))
        at_least = 1.0 - np.cumsum(total)[:-1]  # P(N >= n), n = 1..
        first = np.array([n.tail[0] if n.tail else 0.0 for n in group], dtype=np.float64)
        values = np.array([n.value_per_hour for n in group], dtype=np.float64)
        v_bar = float(first @ values / first.sum()) if first.sum() > 0 else 0.0
        price = group[0].node_cost_per_hour
        room = min(min(n.room for n in group), MAX_SPARES)
        kept = int(np.count_nonzero(at_least[:room] * v_bar > price))
        if kept > 0:
            out[pool] = WarmNodes(nodes=kept, cost_per_hour=kept * price)
    return out
