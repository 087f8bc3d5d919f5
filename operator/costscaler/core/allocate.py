"""Replicas per pool that minimise expected cost per hour within every bound.

    minimise  J(x) = sum_i price_i x_i + sloMissCostPerHour x risk(x)          [$/h]
    subject to 0 <= x_i <= max_i, min <= sum x <= max,
               spot(x) <= floor(maxFraction x sum x), onDemand(x) >= min(minOnDemand, sum x),
               risk(x) <= 1 - attainment (the SLO floor), price . x <= budget  (soft, ranked)

`price_i` is the expected $/h of a replica: its effective price, plus for spot the warm-up
paid again for each interruption (rate x cold start). `risk` is `core.risk`. The SLO floor and
the budget are penalties with lexicographic weights: the one `onConflict` prefers outranks the
other, and both outrank money, so each holds whenever it can.

The search starts from merit-order plans — fill the demand quantile from the cheapest $/h per
req/s of expected surviving capacity first, sized at the newsvendor critical fractile
q = max(attainment, s / (s + c)) with s the SLO miss cost and c the cheapest replica's $/h —
then improves the best start by local search: add one, remove one, or move one replica
between two pools, evaluated for all moves at once, until no move lowers J.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
from numpy.typing import NDArray

from costscaler.core.risk import IntArray, RiskModel
from costscaler.core.types import FloatArray

BoolArray = NDArray[np.bool_]
HARD = 1e9
SOFT = 1e6
MAX_STEPS = 500


@dataclass(frozen=True)
class Problem:
    """One allocation problem on plain arrays (pool order fixed by the caller)."""

    price: FloatArray
    spot: BoolArray
    max_replicas: IntArray
    total_min: int
    total_max: int
    spot_max_fraction: float
    min_on_demand: int
    slo_miss_cost: float
    risk_floor: float
    risk: RiskModel
    budget: float = math.inf
    prefer_slo: bool = True

    @cached_property
    def spot_limits(self) -> bool:
        """Whether spot.maxFraction and minOnDemandReplicas can hold with the replica bounds.

        They cannot with no on-demand pool, or when on-demand pools are too small to carry
        the replica minimum at the allowed spot share: the replica bounds win, spot fills in.
        """
        ns_cap = int(self.max_replicas[~self.spot].sum())
        if ns_cap == 0:
            return False
        f = self.spot_max_fraction
        most = int(self.max_replicas.sum())
        if f < 1.0:  # spot <= f T  and  T - spot <= ns_cap  =>  T <= ns_cap / (1 - f)
            most = min(most, math.floor(ns_cap / (1.0 - f) + 1e-9))
        return most >= self.reachable_min

    @cached_property
    def on_demand_floor(self) -> int:
        """minOnDemandReplicas, capped by what the on-demand pools and replicas.max hold."""
        ns_cap = int(self.max_replicas[~self.spot].sum())
        return min(self.min_on_demand, ns_cap, self.total_max)

    @cached_property
    def surviving(self) -> FloatArray:
        """Expected req/s per replica still serving at the horizon (spot losses removed)."""
        r = self.risk
        return np.asarray(r.capacity * (1.0 - r.indep_loss) * (1.0 - r.burst_prob))

    @property
    def reachable_min(self) -> int:
        """The total minimum, lowered to what the pools' maxima can hold."""
        return min(self.total_min, int(self.max_replicas.sum()))


@dataclass(frozen=True)
class Plan:
    """A plan with its accelerator spend ($/h), risk and penalised objective."""

    replicas: IntArray
    spend: float
    risk: float
    objective: float


@lru_cache(maxsize=64)
def _moves(n: int) -> IntArray:
    """Every +1, -1 and move-one-between-two-pools step for n pools, one per row."""
    eye = np.eye(n, dtype=np.int64)
    rows = [eye, -eye]
    if n > 1:
        i, j = np.nonzero(~np.eye(n, dtype=bool))
        rows.append(eye[j] - eye[i])
    return np.concatenate(rows)


def feasible(p: Problem, plans: IntArray) -> BoolArray:
    """Rows of `plans` within every hard bound (replica bounds, spot limits)."""
    total = plans.sum(axis=1)
    ok = (plans >= 0).all(axis=1) & (plans <= p.max_replicas).all(axis=1)
    ok &= (total >= p.reachable_min) & (total <= p.total_max)
    if p.spot_limits:
        spot = plans[:, p.spot].sum(axis=1)
        ok &= spot <= np.floor(p.spot_max_fraction * total + 1e-9)
        ok &= total - spot >= np.minimum(p.on_demand_floor, total)
    return np.asarray(ok, dtype=np.bool_)


def evaluate(p: Problem, plans: IntArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(spend $/h, risk, penalised objective) of each plan."""
    spend = plans @ p.price
    risk, shortfall = p.risk.with_shortfall(plans)
    # Past the floor, the shortfall share ranks plans whose risk is the same (e.g. all ~1).
    over_floor = np.where(risk > p.risk_floor, risk - p.risk_floor + shortfall, 0.0)
    over_budget = np.maximum(spend - p.budget, 0.0) if math.isfinite(p.budget) else 0.0 * spend
    floor_w, budget_w = (HARD, SOFT) if p.prefer_slo else (SOFT, HARD)
    obj = spend + p.slo_miss_cost * risk + floor_w * over_floor + budget_w * over_budget
    return spend, risk, np.asarray(obj, dtype=np.float64)


def plan_of(p: Problem, replicas: IntArray) -> Plan:
    """Evaluate one plan."""
    spend, risk, obj = evaluate(p, replicas[None, :])
    return Plan(replicas, float(spend[0]), float(risk[0]), float(obj[0]))


def merit_order(p: Problem) -> NDArray[np.intp]:
    """Pools by expected $/h per req/s of capacity that survives the horizon, cheapest first."""
    return np.argsort(p.price / np.maximum(p.surviving, 1e-12), kind="stable")


class _Filler:
    """Whole-replica filling on Python ints (a few pools: faster than numpy scalars)."""

    def __init__(self, p: Problem) -> None:
        self.p = p
        self.eff = p.surviving.tolist()
        self.spot = p.spot.tolist()
        self.cap = p.max_replicas.tolist()
        self.x = [0] * len(self.eff)
        self.limits = p.spot_limits and p.spot_max_fraction < 1.0

    def capacity(self) -> float:
        return float(sum(k * e for k, e in zip(self.x, self.eff, strict=True)))

    def spot_room(self) -> int:
        """Spot replicas that can be added now without breaking spot.maxFraction."""
        if not self.limits:
            return 1 << 40
        f = self.p.spot_max_fraction
        total, spot = sum(self.x), sum(k for k, s in zip(self.x, self.spot, strict=True) if s)
        return max(0, math.floor((f * total - spot) / (1.0 - f) + 1e-9))

    def add(self, i: int, want: int) -> int:
        """Add up to `want` replicas to pool i within its max, replicas.max and the spot room."""
        room = min(int(self.cap[i]) - self.x[i], self.p.total_max - sum(self.x))
        k = max(0, min(want, room, self.spot_room() if self.spot[i] else room))
        self.x[i] += k
        return k

    def need(self, i: int, demand: float) -> int:
        """Replicas of pool i that close the gap to `demand` (at least 1 while a gap is left)."""
        gap = demand - self.capacity()
        return 0 if gap <= 1e-9 else max(1, math.ceil(gap / float(self.eff[i]) - 1e-9))

    def on_demand_floor(self, order: list[int]) -> None:
        want = self.p.on_demand_floor if self.p.spot_limits else 0
        for i in order:
            if not self.spot[i]:
                want -= self.add(i, want)

    def to_bounds(self, order: list[int], use_spot: bool) -> IntArray:
        """Raise the total to the (reachable) minimum, best merit first."""
        for i in order:
            if use_spot or not self.spot[i]:
                self.add(i, self.p.reachable_min - sum(self.x))
        return np.array(self.x, dtype=np.int64)


def fill(p: Problem, demand_rps: float, order: NDArray[np.intp], use_spot: bool = True) -> IntArray:
    """Fill `demand_rps` of expected surviving capacity in merit `order`, within the bounds."""
    f, idx = _Filler(p), order.tolist()
    f.on_demand_floor(idx)
    for _ in range(2):  # a second pass uses spot room the on-demand pass opened
        for i in idx:
            if use_spot or not f.spot[i]:
                f.add(i, f.need(i, demand_rps))
    return f.to_bounds(idx, use_spot)


def max_spot(p: Problem, demand_rps: float, order: NDArray[np.intp]) -> IntArray:
    """Fill `demand_rps` with as much spot as spot.maxFraction allows, on-demand for the rest.

    Spot goes to the best spot pool with room; when the spot share is used up, just enough
    on-demand replicas are added to open room for one more spot replica.
    """
    f, idx = _Filler(p), order.tolist()
    f.on_demand_floor(idx)
    spot = [i for i in idx if f.spot[i]]
    other = [i for i in idx if not f.spot[i]]
    frac = p.spot_max_fraction
    while f.capacity() < demand_rps - 1e-9 and sum(f.x) < p.total_max:
        i = next((i for i in spot if f.x[i] < f.cap[i]), None)
        if i is not None and f.spot_room() > 0:
            f.add(i, f.need(i, demand_rps))
            continue
        j = next((j for j in other if f.x[j] < f.cap[j]), None)
        if j is None:
            break
        if i is None or frac < 1e-6:  # too small a share to open room for one spot replica
            f.add(j, f.need(j, demand_rps))
            continue
        nspot = sum(f.x[k] for k in spot)
        f.add(j, max(1, math.ceil((1.0 - frac + nspot) / frac - sum(f.x) - 1e-9)))
    return f.to_bounds(idx, True)


def search(p: Problem, starts: list[IntArray]) -> Plan:
    """Local search from the best feasible start (the first start if none is feasible)."""
    stack = np.stack(starts)
    ok = feasible(p, stack)
    _, _, obj = evaluate(p, stack)
    obj = np.where(ok, obj, np.inf)
    x = stack[int(np.argmin(obj))].copy()
    best = float(obj.min()) if ok.any() else math.inf
    moves = _moves(x.size)
    for _ in range(MAX_STEPS):
        cand = x + moves
        cand = cand[feasible(p, cand)]
        if cand.shape[0] == 0:
            break
        _, _, cobj = evaluate(p, cand)
        k = int(np.argmin(cobj))
        if not cobj[k] < best - 1e-9:
            break
        x, best = cand[k], float(cobj[k])
    return plan_of(p, x)


def on_demand_only(p: Problem) -> tuple[Problem, NDArray[np.intp]]:
    """The problem restricted to non-spot pools, priced on money alone with the SLO floor hard,
    and the indices of those pools: its optimum is the cheapest on-demand plan meeting the SLO."""
    keep = np.flatnonzero(~p.spot)
    r = p.risk
    sub = Problem(
        price=p.price[keep],
        spot=p.spot[keep],
        max_replicas=p.max_replicas[keep],
        total_min=p.total_min,
        total_max=p.total_max,
        spot_max_fraction=p.spot_max_fraction,
        min_on_demand=p.min_on_demand,
        slo_miss_cost=0.0,
        risk_floor=p.risk_floor,
        risk=RiskModel(r.capacity[keep], r.indep_loss[keep], r.burst_prob[keep], r.demand),
    )
    return sub, keep


def newsvendor_quantile(slo_miss_cost: float, replica_cost: float, attainment: float) -> float:
    """Critical fractile s / (s + c), floored at the SLO attainment target."""
    total = slo_miss_cost + replica_cost
    fractile = slo_miss_cost / total if total > 0 else 1.0
    return max(attainment, fractile)
