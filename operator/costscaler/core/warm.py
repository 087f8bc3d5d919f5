"""Warm spare nodes by total cost: keep a spare while it removes more of the plan's expected
cost than its price.

Units: $/h for costs and values, s for times, req/s for capacity and demand, shares and
probabilities dimensionless.

A replica placed on a new node waits the node's cold start T_node plus the model load; on a
warm (launched, empty) node it waits the model load only. A spare helps when demand passes
what the plan serves: the replicas the next decisions add then serve T_node sooner.

One deployment (`need`), on the pool b its next replica would go to (the launchable one with
room, cheapest per req/s), k replicas per node, node price P ($/h). Its plan x minimises
spend + warm-up + s V(x) / (1 - a) (`core.allocate`: s the SLO-miss cost, V the expected
share of requests over the latency threshold across the horizon H, a the attainment
target). The j-th node past the plan, held over the whole horizon, would remove

    s (V(x + (j-1) k e_b) - V(x + j k e_b)) / (1 - a)        [$/h]

of it. A spare removes only the part that falls where the deployment needs the node: its
next replicas go to a spare only once demand passes what the plan plus j - 1 nodes serve,
C_{j-1} = C + (j - 1) K (C the plan's rated capacity, K a node's). There, the misses the
j-th node removes are at most the requests past C_{j-1} it takes, O(C_{j-1}) - O(C_j), with
O(C) = sum omega (D - C)+ the share of requests past C (`RiskModel.overflow_at`), so

    dV_j = min(V(x + (j-1) k e_b) - V(x + j k e_b), O(C_{j-1}) - O(C_j)).

The rest of the plan's misses (latency below rated capacity) no spare removes: no replica
goes to it. Counted as a saving, 100 alike deployments whose plans covered their forecasts
(P(N >= 1) < 0.001 each) kept 4-5 spares that none of them would use.

A spare does not serve over the horizon: it lets that node's replicas serve T_node
sooner, min(T_node, H) / H of it. When used (demand needs j nodes or more: P(N >= j) =
P(demand > planned capacity + (j - 1) node capacity), from the forecast) it also saves the
warm-up: the new node's P x T_node billed while it launches, P T_node / H per hour of
horizon. So the j-th spare saves, per hour held,

    w_j = min(T_node, H) / H x (s dV_j / (1 - a) + P(N >= j) P)        [$/h].

The deployment's need (`WarmNeed`) carries w_j, j = 1..: `saves`, and P(N >= j): `tail`.

A pool (`spares`): the deployments sharing it need N_k nodes each (independent), and a spare
serves whichever needs it. Counting, for each deployment, the others' needs as served first
(so a sharing that depends on who comes first is not counted on), its j-th need finds the
n-th spare when the others need exactly n - j, and the n-th spare saves

    m_n = sum_k sum_{j <= n} w_kj P(N_-k = n - j)        [$/h]

(N_-k: the others' needs, the convolution of their distributions). The pool keeps the n
that maximises sum_{i <= n} (m_i - P): for one deployment, m_n = w_n, its own saving.

A spare rarely pays on one deployment's plan: the plan adds the j-th node itself once
s dV_j / (1 - a) passes P plus its warm-up, so w_j stays below P unless T_node is most of H
and the node is likely to be needed. It pays when deployments share the pool and their
forecasts pass their plans now and then: one spare then covers the need of any of them. A
plan that covers its forecast (a high SLO-miss cost) leaves P(N >= 1) near 0 and asks for
none, however many share the pool. Sized on the plan's own V, a forecast band that is
wide early in a window asks for no more than the plan's marginal cost of its misses: the old
sizing valued every likely node at s T_node / H, as if one node's absence missed every
request, and kept 20 spare nodes for one deployment in a `make demo` run (8.13 node-hours
launched against 1.26).

A deployment has no use for spares when its budget bound the plan (`budget_bound`): the
spares would spend what the budget holds back, on nodes for replicas it would not pay for
(seen in `make demo`: a plan cut by the budget left demand far past it, and its tail kept 24
spare nodes). Nor beyond what the plan may still add on the pool within its bounds:
replicas.max, the pool's maximum as deliverable now (a pool out of stock or stalled launches
nothing) and the most spot replicas any plan holds. A spare takes only replicas the plan
may add there; counted to the pool's own maximum, a plan the bounds hold at SLOAtRisk let
the forecast's tail past it ask for a node each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from costscaler.core.allocate import Problem
from costscaler.core.risk import IntArray
from costscaler.core.types import FloatArray, WarmNeed, WarmNodes

if TYPE_CHECKING:
    from costscaler.core.engine import Planner

# Spares considered per pool: a tail thinner than this many nodes' upside saves nothing.
MAX_SPARES = 32


def need(
    pl: Planner, prob: Problem, replicas: IntArray, budget_bound: bool = False
) -> WarmNeed | None:
    """What this deployment would ask of a warm pool (the module docstring): the tail of the
    extra nodes it needs on the pool its next replica would go to (the launchable one with
    room, cheapest per request/s) and what each spare saves it ($/h), on the
    plan's own objective `prob` (capacity as the plan was sized on it: calibrated, at the
    request mix for pools with a token profile). None when no eligible pool launches nodes
    or has room for a node the plan may add, or the budget bound the plan (`budget_bound`)."""
    if budget_bound:
        return None
    capacity = prob.risk.capacity
    per_node = pl.per_node
    # Nodes the plan may still add per pool: within the pool's maximum as deliverable now (a
    # pool out of stock or stalled launches nothing a spare could save), replicas.max, and
    # for spot the most spot any plan within the bounds holds (on-demand replicas added
    # beside raise the spot share's cap; at the largest total they cannot raise it more).
    left = max(prob.total_max - int(replicas.sum()), 0)
    spot_left = max(prob.most_spot - int(replicas @ prob.spot_count), 0)
    left_of = np.where(prob.spot, min(left, spot_left), left)
    room = np.minimum((prob.max_replicas - replicas) // per_node, -(-left_of // per_node))
    best: int | None = None
    for i, view in enumerate(pl.pools):
        if not view.launches_nodes or room[i] <= 0 or view.node_cold_start_s <= 0:
            continue
        if best is None or pl.price[i] / capacity[i] < pl.price[best] / capacity[best]:
            best = i
    if best is None or pl.horizon_s <= 0:
        return None
    count = min(int(room[best]), MAX_SPARES)
    planned = float(np.sum(replicas * capacity))
    node_rps = float(capacity[best] * per_node[best])
    tail = prob.risk.demand.exceedance(planned + node_rps * np.arange(count, dtype=np.float64))
    # The plan with 0, 1, .., count more nodes on the pool: what each node removes of s V/(1-a).
    more = np.repeat(replicas[None, :], count + 1, axis=0)
    more[:, best] += per_node[best] * np.arange(count + 1)
    dv = np.maximum(-np.diff(prob.risk.of(more)), 0.0)
    # Of it, a spare saves only what falls where the deployment needs the node: the requests
    # past the plan's capacity plus j - 1 nodes that the j-th node takes.
    edges = prob.risk.overflow_at(planned + node_rps * np.arange(count + 1, dtype=np.float64))
    used = np.minimum(dv, np.maximum(-np.diff(edges), 0.0))
    node_price = float(pl.price[best] * per_node[best])
    sooner = min(pl.pools[best].node_cold_start_s, pl.horizon_s) / pl.horizon_s
    saves = sooner * (prob.slo_miss_cost * used / prob.divisor + tail * node_price)
    return WarmNeed(
        pool=pl.names[best],
        tail=tuple(float(x) for x in tail),
        saves=tuple(float(x) for x in saves),
        node_cost_per_hour=node_price,
        room=count,
    )


def _pmf(tail: Sequence[float]) -> FloatArray:
    """P(N = j), j = 0..len(tail), from P(N >= j), j = 1..len(tail) (the rest lumped at the top)."""
    ge = np.concatenate(([1.0], np.minimum.accumulate(np.clip(tail, 0.0, 1.0)), [0.0]))
    return np.asarray(ge[:-1] - ge[1:], dtype=np.float64)


def _conv(a: FloatArray, b: FloatArray) -> FloatArray:
    """The distribution of the sum of two independent counts, cut at MAX_SPARES (only
    P(N = m), m < MAX_SPARES, is read)."""
    return np.asarray(np.convolve(a, b)[:MAX_SPARES], dtype=np.float64)


def _others(pmfs: Sequence[FloatArray]) -> list[FloatArray]:
    """For each deployment, the distribution of the others' needs summed (prefix and suffix
    convolutions: linear in the deployments, not quadratic)."""
    one = np.ones(1, dtype=np.float64)
    before, after = [one], [one]
    for p in pmfs[:-1]:
        before.append(_conv(before[-1], p))
    for p in reversed(pmfs[1:]):
        after.append(_conv(after[-1], p))
    after.reverse()
    return [_conv(b, a) for b, a in zip(before, after, strict=True)]


def spares(needs: Sequence[WarmNeed]) -> dict[str, WarmNodes]:
    """Warm spare nodes per pool for the deployments' needs (pools with none left out)."""
    by_pool: dict[str, list[WarmNeed]] = {}
    for n in needs:
        by_pool.setdefault(n.pool, []).append(n)
    out: dict[str, WarmNodes] = {}
    for pool, group in sorted(by_pool.items()):
        room = min(min(n.room for n in group), MAX_SPARES)
        if room <= 0:
            continue
        marginal = np.zeros(room, dtype=np.float64)  # m_n, n = 1..room
        for n, others in zip(group, _others([_pmf(n.tail) for n in group]), strict=True):
            w = np.asarray(n.saves[:room], dtype=np.float64)
            # The j-th need takes the n-th spare when the others need n - j: sum_j w_j P(n - j).
            m = np.convolve(w, others)[:room]
            marginal[: m.size] += m
        price = group[0].node_cost_per_hour
        gain = np.concatenate(([0.0], np.cumsum(marginal - price)))
        kept = int(np.argmax(gain))
        if kept > 0:
            out[pool] = WarmNodes(nodes=kept, cost_per_hour=kept * price)
    return out
