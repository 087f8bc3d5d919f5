"""The exact optimum of an allocation problem, by branch and bound over pools.

An incumbent plan (the best start, `local.first_plan`) has objective J*. No plan x can beat
it unless a lower bound on its objective is below J*. The bound rests on R(C), a lower bound
on `RiskModel.of` that depends only on C(x) = sum_i x_i c_i (1 - f_i), the capacity left after
the expected independent spot losses f_i: every term of the risk is Phi((D_g + B - C(x)) / sd)
with B >= 0 (a burst only adds shortfall) and sd >= the kernel bandwidth bw. For D_g < C the
argument is at least (D_g - C) / bw (a negative number over a larger sd is nearer 0); for
D_g >= C it is at least 0, where Phi is 1/2. The scenario weights sum to 1, so

    R(C) = sum_g k_g x (Phi((D_g - C) / bw) if D_g < C else 1/2),  non-increasing in C,

and the objective is at least money(x) + s R(C(x)) + w max(R(C(x)) - floor, 0), with w the
SLO floor's weight (`allocate.evaluate`; the budget term is >= 0 and dropped).

Pools are assigned one at a time, cheapest per req/s first, every count of a pool under every
partial plan, counts capped by what the spend leaves under J*. A partial plan
is dropped when its money plus the least the pools left must still pay reaches J*: either the
cheapest way to add capacity at their best $/h per req/s against the risk terms (`RiskCost`),
or the on-demand replicas its spot replicas owe under spot.maxFraction. The complete plans
left are evaluated exactly, best bound first, so the result is the optimum. When the tree
grows past `max_nodes` partial plans at a level, `solve` gives up (None) and the local search's
plan stands.

The level loop itself is compiled (`_kernels.c`): as numpy it was ~30 array calls a level,
whose per-call cost was a third of a decision. Its arithmetic is the numpy formulas', in
the same order, so the plans kept and the give-up points are the same to the bit
(tests/unit/core/test_kernels.py replays it against them).
"""

from __future__ import annotations

import math

import numpy as np

from costscaler.core import _kernels
from costscaler.core.allocate import HARD, SOFT, Plan, Problem, evaluate, feasible, money
from costscaler.core.local import descend, first_plan
from costscaler.core.risk import IntArray
from costscaler.core.types import FloatArray

MAX_NODES = 1024
_GRID = 129
_UNIT = np.linspace(0.0, 1.0, _GRID)  # the capacity grid, as a share of its top
_CHUNK = 64
_SMALL = 256
_BRUTE = 65536
_DOUBLINGS = 6
MAX_WAIT = 16
_RATIO, _RATIO_PAST = 7, 8  # columns of a level row (the C enum's order)


def risk_bound(p: Problem, capacity: FloatArray) -> FloatArray:
    """R(C): a lower bound on the risk of any plan of nominal capacity C (see the module)."""
    return p.risk.demand.exceedance(capacity, bound=True)


def _bound(p: Problem, risk: FloatArray) -> FloatArray:
    """The objective's risk terms as a function of a risk lower bound."""
    floor_w = HARD if p.prefer_slo else SOFT
    return np.asarray(
        p.slo_miss_cost * risk + floor_w * np.maximum(risk - p.risk_floor, 0.0), dtype=np.float64
    )


class RiskCost:
    """Lower bounds on what a partial plan must still pay, as functions of its capacity.

    B(C) = the risk terms of the objective at R(C), tabulated on a capacity grid G. For the
    pools left to assign, with best ratio rho ($/h per req/s), a partial plan at capacity C
    pays at least g(C) = min over C' >= C of (C' - C) rho + B(C'). Between grid points,
    B(C') >= B(G_{k+1}) and C' >= G_k, so per cell j (G_j <= C < G_{j+1}):
    g >= min(B_{j+1}, min_{k>j} (G_k rho + B_{k+1}) - G_{j+1} rho), a valid bound.
    """

    def __init__(self, p: Problem) -> None:
        d = p.risk.demand
        self.grid = (float(d.samples[-1]) + 10.0 * d.bandwidth) * _UNIT
        self.step = float(self.grid[1])
        self.cost = _bound(p, risk_bound(p, self.grid))

    def tables(self, rho: list[float]) -> FloatArray:
        """L_j per cell for each ratio in `rho` (rows), and 0 past the grid, where capacity
        may be anything. An infinite ratio (no pool left) leaves B itself. Compiled
        (`_kernels.c`): one pass from the top cell down keeps the running minimum."""
        r = np.asarray(rho, dtype=np.float64)
        out = _kernels.tables(self.grid, self.cost, r, self.grid.size, r.size)
        return np.frombuffer(out, dtype=np.float64).reshape(r.size, self.grid.size)


class Tree:
    """What a search of `p` needs besides the incumbent (built once, shared by searches).

    `levels`: one row per level (`_kernels.grow`'s columns), pools cheapest per req/s first,
    identical pools next to each other, each row with what the pools after it can still add
    as lower bounds (`_kernels.setup`, compiled: a handful of pools, where Python's per-pool
    loops were a tenth of a decision):

    - `ratio`: the least $/h per req/s of any pool left;
    - with spot.maxFraction f < 1, spot replicas beyond a row's allowance (f / (1 - f) spot
      per on-demand replica it holds) each bring (1 - f) / f on-demand replicas (`per_spot`),
      so capacity past the allowance costs at least `ratio_past` = min(the on-demand pools'
      ratio, the best spot and on-demand pair at the share's limit: the LP of the cheapest
      mix within the share has at most two pools); `spot_cap`, the largest spot capacity left;
    - a row already past its allowance owes the on-demand replicas at the cheapest price left
      (`od_price`), adding at most the largest on-demand capacity left (`od_cap`);
    - `twin`: the level's pool is identical to the one before (same price, capacity, losses,
      bounds, running replicas and warm-up), so a plan holds no more of it than of that one.
    """

    def __init__(self, p: Problem) -> None:
        r = p.risk
        self.cap = r.capacity * (1.0 - r.indep_loss)
        self.bound = RiskCost(p)
        size = self.cap.size
        cur = p.current if p.current is not None else np.zeros(size, dtype=np.int64)
        start = p.start_cost if p.start_cost is not None else np.zeros(size)
        pools = np.column_stack(
            (p.price, self.cap, p.spot, r.indep_loss, r.burst_prob, p.max_replicas, cur, start)
        ).astype(np.float64)
        f = p.spot_max_fraction
        levels, self.per_od, self.per_spot = _kernels.setup(
            np.ascontiguousarray(pools), size, p.total_max, f, p.spot_limits and f < 1.0
        )
        self.levels = np.frombuffer(levels, dtype=np.float64).reshape(size, -1)
        ratio, past = self.levels[:, _RATIO], self.levels[:, _RATIO_PAST]
        self.tables = self.bound.tables([*ratio.tolist(), *past.tolist(), math.inf])


def solve(
    p: Problem,
    incumbent: Plan,
    max_nodes: int = MAX_NODES,
    ceiling: float = math.inf,
    tree: Tree | None = None,
) -> Plan | None:
    """The optimum if the tree stays within `max_nodes` partial plans per level, else None.

    The incumbent must be feasible with a finite objective; the result is never worse.
    With a `ceiling` below the incumbent's objective, only plans under it are searched: the
    result is then the optimum if its objective is under the ceiling, else the incumbent.
    Each partial plan is a row of (money $/h, capacity req/s, replicas, spot replicas).
    `tree` is `Tree(p)`, when the caller searches `p` more than once.
    """
    best = min(incumbent.objective, ceiling)
    if not math.isfinite(best):
        return None
    t = tree if tree is not None else Tree(p)
    tables = t.tables
    grown = _kernels.grow(
        best,
        max_nodes,
        p.total_max,
        t.per_od,
        t.per_spot,
        t.levels,
        t.bound.step,
        tables,
        tables.shape[1],
        t.cap.size,
    )
    if grown is None:
        return None
    plans = np.frombuffer(grown[0], dtype=np.int64).reshape(-1, t.cap.size)
    lower = np.frombuffer(grown[1], dtype=np.float64)
    return _best_leaf(p, plans, lower, incumbent, best)


def _best_leaf(
    p: Problem, plans: IntArray, lower: FloatArray, incumbent: Plan, cutoff: float = math.inf
) -> Plan:
    """The best of the complete plans left under `cutoff` (and the incumbent), evaluated in
    order of their lower bound a chunk at a time, until the next chunk's bound cannot beat
    the best found; the incumbent if none does."""
    bar = min(incumbent.objective, cutoff)
    ok = (lower < bar - 1e-9) & feasible(p, plans)
    plans, lower = plans[ok], lower[ok]
    ranked = np.argsort(lower, kind="stable")
    best = incumbent
    for lo in range(0, ranked.size, _CHUNK):
        chunk = ranked[lo : lo + _CHUNK]
        if not lower[chunk[0]] < bar - 1e-9:
            break
        spend, risk, obj = evaluate(p, plans[chunk])
        k = int(np.argmin(obj))
        if obj[k] < bar - 1e-9:
            bar = float(obj[k])
            best = Plan(plans[chunk[k]], float(spend[k]), float(risk[k]), float(obj[k]))
    return best


def _every(p: Problem, tops: IntArray, incumbent: Plan) -> Plan:
    """The best plan of the whole space (counts below `tops`), cheapest spend first."""
    every = np.indices(tops.tolist()).reshape(tops.size, -1).T
    return _best_leaf(p, every, money(p, every), incumbent)


def _within_floor(p: Problem, past: Plan, tree: Tree) -> Plan | None:
    """The optimum when the incumbent is past the SLO floor, or None.

    Past the floor the incumbent's objective carries the floor's penalty, so it prunes
    nothing. A plan within the floor costs at most its spend + s x floor: search under a
    ceiling of that form, from the incumbent's spend up, doubling; the first plan found under
    a ceiling is the optimum (every plan under it was in the tree).
    """
    spend = max(float(money(p, past.replicas[None, :])[0]), float(p.price.min()), 1e-6)
    for _ in range(_DOUBLINGS):
        ceiling = 1.25 * spend + p.slo_miss_cost * p.risk_floor
        if ceiling >= past.objective:
            return None
        found = solve(p, past, ceiling=ceiling, tree=tree)
        if found is None:
            return None
        if found.objective < ceiling:
            return found
        spend *= 2.0
    return None


def optimum(p: Problem, starts: list[IntArray]) -> Plan:
    """The optimum of `p`, or the best the local search finds when the tree is too wide."""
    return optimum_or_search(p, starts, attempt=True)[0]


def optimum_or_search(
    p: Problem, starts: list[IntArray], attempt: bool, narrow: bool = False
) -> tuple[Plan, bool | None]:
    """The plan, and whether it is proven optimal (None: the exact search was not tried).

    The local search descends from the best start (the current allocation is one: the
    optimum is usually near it after a small change of demand); its plan is the branch and
    bound's incumbent, and the better the incumbent the narrower the tree. A tree too
    wide in a small space (a start past the SLO floor) tries every plan instead. A space of
    `_SMALL` plans or fewer is always searched whole; otherwise the exact search runs only
    when `attempt` (see `backoff`). With `narrow` (the last search of this deployment
    succeeded), it first tries from the best start directly, on a quarter of the node
    budget: a narrow tree needs no local search to prove its optimum.
    """
    first = first_plan(p, starts)
    tops = np.minimum(p.max_replicas, p.total_max) + 1
    space = math.prod(tops.tolist())
    if space <= _SMALL:  # one or two small pools: try every plan
        return _every(p, tops, first), True
    tree = Tree(p) if attempt else None
    if tree is not None and narrow:
        quick = solve(p, first, MAX_NODES // 4, tree=tree)
        if quick is not None:
            return quick, True
    found = descend(p, first)
    if tree is None:
        return found, None
    exact = solve(p, found, tree=tree)
    if exact is None and found.risk > p.risk_floor and p.prefer_slo:
        exact = _within_floor(p, found, tree)
    if exact is None and space <= _BRUTE:
        exact = _every(p, tops, found)
    return (found, False) if exact is None else (exact, True)


def backoff(misses: int, wait: int, proven: bool | None) -> tuple[int, int]:
    """(misses, wait) after a decision: how many exact searches in a row gave up, and how
    many decisions to skip before the next try.

    A deployment whose trees are too wide to search (many pools, loose bounds) stays so from
    one tick to the next: each failed try doubles the ticks skipped (up to `MAX_WAIT`) so
    the engine does not pay for a search that gives up; one success resets it.
    """
    if proven is None:
        return misses, max(wait - 1, 0)
    if proven:
        return 0, 0
    return misses + 1, min(2 ** (misses + 1), MAX_WAIT) - 1
