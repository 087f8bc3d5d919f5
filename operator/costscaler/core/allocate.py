"""Replicas per pool that minimise expected cost per hour within every bound.

    minimise  J(x) = sum_i price_i x_i + sloMissCostPerHour x risk(x)          [$/h]
    subject to 0 <= x_i <= max_i, min <= sum x <= max,
               spot(x) <= floor(maxFraction x sum x), onDemand(x) >= min(minOnDemand, sum x),
               risk(x) <= 1 - attainment (the SLO floor), price . x <= budget  (soft, ranked)

`floor_demand` is the demand (req/s) at the attainment quantile: past the floor, the share of
it that a plan's expected capacity misses is added to the floor's penalty, so that plans
whose risk is the same (~1 when demand is out of reach of the bounds) still rank by capacity.

A replica started beyond what runs now (`current`) also pays its warm-up once, `start_cost`
($/h: the warm-up amortised over one horizon, the shortest time a plan governs): running
replicas are sunk, so a move between pools must pay back its cold start within the horizon,
and the search neither swaps pools on a sliver of saving nor re-buys what it just released.

`price_i` is the expected $/h of a replica: its effective price, plus for spot the warm-up
paid again for each interruption (rate x cold start). `risk` is `core.risk`. The SLO floor and
the budget are penalties with lexicographic weights: the one `onConflict` prefers outranks the
other, and both outrank money, so each holds whenever it can.

The on-demand floor is min(minOnDemand, what on-demand pools hold, sum x); with no on-demand
pool, or too little of it to carry replicas.min at the allowed spot share, the spot limits
yield to the replica bounds (`Problem.spot_limits`).

The search starts from plans filled to the demand at the newsvendor critical fractile
q = max(attainment, s / (s + c)), s the SLO miss cost and c the cheapest replica's $/h
(`core.fill`: merit order, each pool first, most spot, on-demand only, and the current
allocation), then improves the best by local search: add one, remove one, or move one
replica between two pools, all moves evaluated at once, until no move lowers J.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
from numpy.typing import NDArray

from costscaler.core import _kernels
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
    floor_demand: float = 0.0
    budget: float = math.inf
    prefer_slo: bool = True
    current: IntArray | None = None
    start_cost: FloatArray | None = None

    @cached_property
    def spot_limits(self) -> bool:
        """Whether spot.maxFraction and minOnDemandReplicas can hold with the replica bounds.

        They cannot with no on-demand pool, or when on-demand pools are too small to carry
        the replica minimum at the allowed spot share: the replica bounds win, spot fills in.
        """
        ns_cap = self._on_demand_max
        if ns_cap == 0:
            return False
        f = self.spot_max_fraction
        most = self._all_max
        if f < 1.0:  # spot <= f T  and  T - spot <= ns_cap  =>  T <= ns_cap / (1 - f)
            most = min(most, math.floor(ns_cap / (1.0 - f) + 1e-9))
        return most >= self.reachable_min

    @cached_property
    def on_demand_floor(self) -> int:
        """minOnDemandReplicas, capped by what the on-demand pools and replicas.max hold."""
        return min(self.min_on_demand, self._on_demand_max, self.total_max)

    @cached_property
    def _all_max(self) -> int:
        """The pools' maxima summed (plain Python: a handful of pools)."""
        return sum(self.max_replicas.tolist())

    @cached_property
    def _on_demand_max(self) -> int:
        """The on-demand pools' maxima summed."""
        spot = self.spot.tolist()
        return sum(m for m, s in zip(self.max_replicas.tolist(), spot, strict=True) if not s)

    @cached_property
    def surviving(self) -> FloatArray:
        """Expected req/s per replica still serving at the horizon (spot losses removed)."""
        r = self.risk
        return np.asarray(r.capacity * (1.0 - r.indep_loss) * (1.0 - r.burst_prob))

    @cached_property
    def spot_count(self) -> IntArray:
        """1 for spot pools, 0 otherwise: plans @ spot_count is a plan's spot replicas."""
        return np.ascontiguousarray(self.spot, dtype=np.int64)

    @cached_property
    def maxima(self) -> IntArray:
        """`max_replicas` as contiguous int64 (the compiled `feasible` reads it)."""
        return np.ascontiguousarray(self.max_replicas, dtype=np.int64)

    @cached_property
    def columns(self) -> FloatArray:
        """Per-pool rows for the compiled `evaluate` (`RiskModel.columns`)."""
        if self.current is None or self.start_cost is None:  # no warm-up term
            current = start = np.zeros(self.price.size)
        else:
            current, start = self.current.astype(np.float64), self.start_cost
        return self.risk.columns(self.price, self.surviving, current, start)

    @cached_property
    def as_lists(self) -> tuple[list[float], list[bool], list[int]]:
        """Surviving capacity, spot flags and maxima as Python lists (for scalar loops)."""
        return self.surviving.tolist(), self.spot.tolist(), self.max_replicas.tolist()

    @cached_property
    def merit(self) -> NDArray[np.intp]:
        """Pools by expected $/h per req/s of capacity that survives the horizon, cheapest
        first."""
        return np.argsort(self.price / np.maximum(self.surviving, 1e-12), kind="stable")

    @cached_property
    def reachable_min(self) -> int:
        """The total minimum, lowered to what the pools' maxima can hold."""
        return min(self.total_min, self._all_max)


@dataclass(frozen=True)
class Plan:
    """A plan with its accelerator spend ($/h), risk and penalised objective."""

    replicas: IntArray
    spend: float
    risk: float
    objective: float


@lru_cache(maxsize=64)
def _moves(capacity: tuple[float, ...]) -> IntArray:
    """Every +1, -1 and move-one-between-two-pools step, one per row; and, where one replica
    of pool i outweighs one of pool j, the swap of one i for the ceil(c_i / c_j) replicas of
    j that carry as much (and back). Without it, trading big replicas for small ones passes
    through plans short of capacity, and the search stops at a dearer plan."""
    n = len(capacity)
    eye = np.eye(n, dtype=np.int64)
    rows = [eye, -eye]
    if n > 1:
        i, j = np.nonzero(~np.eye(n, dtype=bool))
        rows.append(eye[j] - eye[i])
        cap = np.array(capacity)
        k = np.ceil(cap[i] / cap[j] - 1e-9).astype(np.int64)
        big = k > 1
        swap = k[big, None] * eye[j[big]] - eye[i[big]]
        rows.extend((swap, -swap))
    return np.concatenate(rows)


def feasible(p: Problem, plans: IntArray) -> BoolArray:
    """Rows of `plans` within every hard bound (replica bounds, spot limits), compiled:

    0 <= x_i <= max_i,  min <= T <= max  (T = sum x),  and with the spot limits
    spot(x) <= floor(maxFraction T),  T - spot(x) >= min(onDemandFloor, T)
    """
    x = np.ascontiguousarray(plans, dtype=np.int64)
    ok = _kernels.feasible(
        x,
        p.maxima,
        p.spot_count,
        x.shape[0],
        x.shape[1],
        p.reachable_min,
        p.total_max,
        p.spot_limits,
        p.spot_max_fraction,
        p.on_demand_floor,
    )
    return np.frombuffer(ok, dtype=np.bool_)


def fits(p: Problem, plan: IntArray) -> bool:
    """Whether one plan is within every hard bound (`feasible` for a single row)."""
    return bool(feasible(p, plan[None, :])[0])


def evaluate(p: Problem, plans: IntArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(spend $/h, risk, penalised objective) of each plan, compiled (`core/_kernels.c`):

        J = spend + warm-up + s risk + w_floor over_floor + w_budget max(spend - budget, 0)

    over_floor = risk - floor + missing past the floor, else 0: the capacity still missing
    to the floor's demand quantile (a share of it) ranks plans whose risk is the same (all ~1
    when demand is out of the bounds' reach)."""
    floor_w, budget_w = (HARD, SOFT) if p.prefer_slo else (SOFT, HARD)
    warm = p.current is not None and p.start_cost is not None
    return p.risk.evaluate(
        plans,
        p.columns,
        p.floor_demand,
        p.risk_floor,
        p.slo_miss_cost,
        floor_w,
        p.budget,
        budget_w,
        warm,
    )


def money(p: Problem, plans: IntArray, spend: FloatArray | None = None) -> FloatArray:
    """The objective's terms that are not risk (spend and warm-up): a lower bound on it.
    `spend` is plans @ price when the caller has it."""
    money = plans @ p.price if spend is None else spend
    if p.current is not None and p.start_cost is not None:
        money = money + np.maximum(plans - p.current, 0) @ p.start_cost
    return np.asarray(money, dtype=np.float64)


def plan_of(p: Problem, replicas: IntArray) -> Plan:
    """Evaluate one plan."""
    spend, risk, obj = evaluate(p, replicas[None, :])
    return Plan(replicas, float(spend[0]), float(risk[0]), float(obj[0]))


def _best(p: Problem, plans: IntArray) -> tuple[Plan, IntArray]:
    """The best plan among `plans`, and those within the hard bounds but past the floor."""
    ok = feasible(p, plans)
    spend, risk, obj = evaluate(p, plans)
    k = int(np.argmin(np.where(ok, obj, np.inf)))
    plan = Plan(plans[k], float(spend[k]), float(risk[k]), float(obj[k]) if ok[k] else math.inf)
    return plan, plans[ok & (risk > p.risk_floor)]


def first_plan(p: Problem, starts: list[IntArray]) -> Plan:
    """The best of `starts`; when none is within the SLO floor, those within the bounds also
    enter with their one-replica-more neighbours, so the search does not start past it."""
    best, short = _best(p, np.stack(starts))
    if short.shape[0] and best.risk > p.risk_floor:
        n = short.shape[1]
        grown = (short[:, None, :] + np.eye(n, dtype=np.int64)[None, :, :]).reshape(-1, n)
        other, _ = _best(p, grown)
        best = other if other.objective < best.objective else best
    return best


def search(p: Problem, starts: list[IntArray]) -> Plan:
    """Local search from the best start (`first_plan`): best single move at a time until
    none lowers J."""
    return descend(p, first_plan(p, starts))


def descend(p: Problem, best: Plan) -> Plan:
    """Best single move at a time from `best` until none lowers J."""
    moves = _moves(tuple(p.risk.capacity.tolist()))
    eye = np.eye(moves.shape[1], dtype=np.int64)
    stuck = False
    for _ in range(MAX_STEPS):
        cand = best.replicas + moves
        if stuck:
            # At a local optimum: one replica less anywhere, then any move (a trade of two
            # replicas for one that no single move reaches without crossing the floor).
            less = best.replicas - eye[best.replicas > 0]
            cand = (less[:, None, :] + moves[None, :, :]).reshape(-1, moves.shape[1])
        cand = cand[feasible(p, cand)]
        cand = cand[money(p, cand) < best.objective - 1e-9]  # risk only adds: skip the rest
        spend, risk, obj = evaluate(p, cand)
        k = int(np.argmin(obj)) if cand.shape[0] else -1
        if k < 0 or not obj[k] < best.objective - 1e-9:
            if stuck:
                break
            stuck = True
            continue
        best, stuck = Plan(cand[k], float(spend[k]), float(risk[k]), float(obj[k])), False
    return best


def newsvendor_quantile(slo_miss_cost: float, replica_cost: float, attainment: float) -> float:
    """Critical fractile s / (s + c), floored at the SLO attainment target."""
    total = slo_miss_cost + replica_cost
    fractile = slo_miss_cost / total if total > 0 else 1.0
    return max(attainment, fractile)
