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

The on-demand floor is min(minOnDemand, what on-demand pools hold, sum x). When on-demand
pools hold too little to carry replicas.min at the allowed spot share, the share yields only
as far as that quota forces: spot(x) <= max(floor(maxFraction x T), T - onDemandCapacity),
so every on-demand replica the quota allows is used before spot passes its share
(`Problem.spot_relaxed`); with no on-demand pool at all, spot is unlimited.

The search starts from plans filled to the demand at the newsvendor critical fractile
q = max(attainment, s / (s + c)), s the SLO miss cost and c the cheapest replica's $/h
(`core.fill`: merit order, each pool first, most spot, on-demand only, and the current
allocation), then improves the best by local search (`core.local`): add one, remove one,
or move one replica between two pools, all moves evaluated at once, until no move lowers J.
"""

from __future__ import annotations

import itertools
import math
import operator
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
        ns_cap = self.on_demand_capacity
        if ns_cap == 0:
            return False
        f = self.spot_max_fraction
        most = self._all_max
        if f < 1.0:  # spot <= f T  and  T - spot <= ns_cap  =>  T <= ns_cap / (1 - f)
            most = min(most, math.floor(ns_cap / (1.0 - f) + 1e-9))
        return most >= self.reachable_min

    @cached_property
    def spot_relaxed(self) -> bool:
        """Whether on-demand quota forces spot past its share: there are on-demand pools,
        but too few to carry replicas.min at the allowed share (`feasible` then bounds spot
        by max(floor(f T), T - on-demand capacity), not by floor(f T))."""
        return not self.spot_limits and self.on_demand_capacity > 0

    @cached_property
    def on_demand_floor(self) -> int:
        """minOnDemandReplicas, capped by what the on-demand pools and replicas.max hold."""
        return min(self.min_on_demand, self.on_demand_capacity, self.total_max)

    @cached_property
    def _all_max(self) -> int:
        """The pools' maxima summed (plain Python: a handful of pools)."""
        return sum(self.max_replicas.tolist())

    @cached_property
    def on_demand_capacity(self) -> int:
        """Replicas the on-demand pools can hold (their maxima summed)."""
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
    def _bounds(self) -> tuple[NDArray[np.uint64], BoolArray, IntArray] | None:
        """What `feasible` reads per pool: the maxima as uint64 (a negative count read as
        uint64 is past every maximum, so one comparison checks 0 <= x_i <= max_i), and
        ones as booleans and as integers (a row's "any" and its sum, as matmuls). None when
        a maximum is negative: then no plan is within the bounds."""
        maxima = np.asarray(self.max_replicas, dtype=np.int64)
        if min(maxima.tolist(), default=0) < 0:
            return None
        return (maxima.view(np.uint64), *_ones(maxima.size))

    @cached_property
    def _spot_caps(self) -> IntArray:
        """`spot_caps` for this problem's bounds (`feasible` reads it per plan total)."""
        limited = self.spot_limits or self.spot_relaxed
        return spot_caps(
            min(self.total_max, self._all_max),
            self.reachable_min,
            self.spot_max_fraction if limited else None,
            self.on_demand_floor if limited else 0,
            self.on_demand_capacity if self.spot_relaxed else None,
        )

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
def _ones(n: int) -> tuple[BoolArray, IntArray]:
    """n ones as booleans and as int64, read-only (memoised: a deployment's pool count)."""
    flags, ints = np.ones(n, dtype=np.bool_), np.ones(n, dtype=np.int64)
    flags.flags.writeable = ints.flags.writeable = False
    return flags, ints


@lru_cache(maxsize=256)
def spot_caps(
    top: int, minimum: int, fraction: float | None, on_demand_floor: int, relaxed: int | None
) -> IntArray:
    """Per total T = 0 .. top + 1, the most spot replicas a plan of T may hold; -1 where no
    plan of T is within the bounds (T < `minimum`, and T > `top`, the last entry standing
    for every larger total). `top` is the lesser of replicas.max and the pools' maxima
    summed (past those, some pool is past its own maximum).

    With the spot limits (`fraction` not None): floor(fraction T), or with `relaxed` (the
    on-demand capacity, when quota relaxes the share) max(floor(f T), T - relaxed); and
    T - spot >= min(on_demand_floor, T). Without: T. Memoised: a deployment's bounds change
    rarely, and the table is read-only.
    """
    t = np.arange(top + 2)
    caps = t.copy()
    if fraction is not None:
        share = np.floor(fraction * t + 1e-9)
        if relaxed is not None:
            share = np.maximum(share, t - relaxed)
        caps = np.minimum(share, t - np.minimum(on_demand_floor, t)).astype(np.int64)
    caps[: max(minimum, 0)] = -1
    caps[top + 1 :] = -1
    caps.flags.writeable = False
    return caps


def feasible(p: Problem, plans: IntArray) -> BoolArray:
    """Rows of `plans` within every hard bound (replica bounds, spot limits):

    0 <= x_i <= max_i,  min <= T <= max  (T = sum x),  and with the spot limits
    spot(x) <= floor(maxFraction T),  T - spot(x) >= min(onDemandFloor, T)

    When quota relaxes them (`Problem.spot_relaxed`), spot's bound is instead
    spot(x) <= max(floor(f T), T - onDemandCapacity), with T - spot(x) >= min(onDemandFloor, T).
    The bounds on T and spot(x) are one table per total (`spot_caps`): a decision checks
    tens of small batches, where each numpy call costs more than its arithmetic.
    """
    x = np.asarray(plans, dtype=np.int64)
    if x.shape[0] == 1:  # a single plan: plain Python beats a dozen numpy calls
        return np.array([fits(p, x[0])])
    if p._bounds is None:
        return np.zeros(x.shape[0], dtype=np.bool_)
    maxima, any_of, sum_of = p._bounds
    # Matmuls, not reductions along rows: the boolean one stops at a row's first count
    # past its maximum, and both are faster than numpy's sum and any on small batches.
    past = (x.view(np.uint64) > maxima) @ any_of
    ok: BoolArray = x @ p.spot_count <= p._spot_caps.take(x @ sum_of, mode="clip")
    ok &= ~past
    return ok


def fits(p: Problem, plan: IntArray) -> bool:
    """Whether one plan is within every hard bound (`feasible` for a single row), in plain
    Python: the keep-alive and make-before-break loops test one plan at a time, and on a
    handful of pools Python's integers beat numpy's per-call cost."""
    x: list[int] = plan.tolist()
    _, spot_flags, maxima = p.as_lists
    if min(x, default=0) < 0 or any(map(operator.gt, x, maxima)):
        return False
    total = sum(x)
    if not p.reachable_min <= total <= p.total_max:
        return False
    if not (p.spot_limits or p.spot_relaxed):
        return True
    spot = sum(itertools.compress(x, spot_flags))
    share = math.floor(p.spot_max_fraction * total + 1e-9)
    if p.spot_relaxed:
        share = max(share, total - p.on_demand_capacity)
    return spot <= share and total - spot >= min(p.on_demand_floor, total)


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


def newsvendor_quantile(slo_miss_cost: float, replica_cost: float, attainment: float) -> float:
    """Critical fractile s / (s + c), floored at the SLO attainment target."""
    total = slo_miss_cost + replica_cost
    fractile = slo_miss_cost / total if total > 0 else 1.0
    return max(attainment, fractile)
