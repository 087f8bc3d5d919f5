"""Replicas per pool that minimise expected cost per hour within every bound.

    minimise  J(x) = spend(x) + warm(x) + s V(x) / (1 - a)                        [$/h]
    subject to 0 <= x_i <= max_i, min <= sum x <= max,
               spot(x) <= floor(maxFraction x sum x), onDemand(x) >= min(minOnDemand, sum x),
               V(x) <= 1 - a (the SLO), spend(x) <= budget  (soft, ranked)

`spend` pays whole nodes, sum_i P_i ceil(x_i / k_i) (P_i a node's expected marginal $/h,
k_i replicas per node, `core.nodes`); `V` is the expected share of requests over the
latency threshold (`core.risk`), a the attainment target this tick (`core.step`), s the
SLO miss cost ($/h). The miss cost is per unit of violating requests: at V = 1 - a, the
most the SLO allows, it costs s; a plan missing twice as many requests pays twice. Spend
is per unit of capacity by construction (each replica pays its own node share), so no
ratio of a deployment-wide cost to a replica's price enters (the old newsvendor fractile
mixed those units and is gone: the exact optimum needs no demand quantile to size for).

A replica started beyond what runs now (`current`) also pays its warm-up once, amortised
over the time the demand that needs it is expected to last (`start_cost`, $/h per replica;
`core.step.problem`), so a move between pools must pay back its cold start within the
replica's expected lifetime, not within a constant few minutes. A pool has two start tiers
when the node layer reports free slots (`free_slots`: replicas that fit on its Ready nodes
now, warm spares included): the first of them pay `fast_start_cost` (the model load only,
no node to wait for), the rest `start_cost` (node cold start + model load). Per pool,

    warm(x_i) = f_i min(n_i, k_i) + s_i (n_i - k_i)+,   n_i = (x_i - current_i)+,

f_i <= s_i, so warm is non-decreasing in x_i and at least f_i n_i (`core.exact`'s bound).
Without node facts k_i = 0 and it is s_i n_i, as it always was.

`price_i` is the expected $/h of a replica: its marginal price, plus for spot the warm-up
paid again for each interruption (rate x cold start). The SLO and the budget are penalties
with lexicographic weights: the one `onConflict` prefers outranks the other, and both
outrank money, so each holds whenever it can. Past the SLO the penalty is the violating
share over 1 - a plus the share of requests beyond capacity (`RiskModel.evaluate`): when
no plan within the bounds meets the SLO, the plan with the least V wins, a plan with more
capacity wins among those that all miss every request (V = 1), and cost breaks what is
left of a tie.

The on-demand floor is min(minOnDemand, what on-demand pools hold, sum x). When on-demand
pools hold too little to carry replicas.min at the allowed spot share, the share yields only
as far as that quota forces: spot(x) <= max(floor(maxFraction x T), T - onDemandCapacity),
so every on-demand replica the quota allows is used before spot passes its share
(`Problem.spot_relaxed`); with no on-demand pool at all, spot is unlimited.

`core.exact` returns the exact minimiser.
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
    per_node: IntArray | None = None
    free_slots: IntArray | None = None
    fast_start_cost: FloatArray | None = None

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
    def node_size(self) -> IntArray:
        """Replicas per node per pool (1 when the caller gave none)."""
        if self.per_node is None:
            return np.ones(self.price.size, dtype=np.int64)
        return np.asarray(self.per_node, dtype=np.int64)

    @cached_property
    def fast_slots(self) -> tuple[IntArray, FloatArray] | None:
        """(free slots k, start_cost - fast_start_cost) per pool when some pool has a free
        slot and a cheaper start on it, else None: the warm-up of n new replicas of a pool is
        then n start_cost - min(n, k) (start_cost - fast_start_cost) (the module's warm)."""
        if self.free_slots is None or self.fast_start_cost is None or self.start_cost is None:
            return None
        free = np.maximum(np.asarray(self.free_slots, dtype=np.int64), 0)
        saved = np.clip(self.start_cost - self.fast_start_cost, 0.0, self.start_cost)
        if not (free * saved).any():
            return None
        return free, np.asarray(saved, dtype=np.float64)

    @cached_property
    def divisor(self) -> float:
        """1 - a, the violating share the SLO allows, floored at 1e-4 so that an attainment
        target of 1 prices a miss at 10,000 x the miss cost rather than dividing by 0."""
        return max(self.risk_floor, 1e-4)

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

    @cached_property
    def most_spot(self) -> int:
        """The most spot replicas any plan within the bounds holds (-1 when none is): the
        spot cap of a total T (`spot_caps`) where the on-demand pools can hold the rest of T,
        and no more than the spot pools' maxima."""
        t = np.arange(min(self.total_max, self._all_max) + 1)
        caps = self._spot_caps[: t.size]
        ok = (caps >= 0) & (caps >= t - self.on_demand_capacity)
        spot_max = self._all_max - self.on_demand_capacity
        return min(int(caps[ok].max()), spot_max) if ok.any() else -1


@dataclass(frozen=True)
class Plan:
    """A plan with its accelerator spend ($/h), violating share, penalised objective, and
    whether it is proven the optimum (False: the exact search stopped at its budget,
    `core.exact.MAX_CHILDREN`, and this is the best plan it had found). `gap`: how far the
    optimum's objective may lie below this plan's, as a share of it (0 when proven)."""

    replicas: IntArray
    spend: float
    risk: float
    objective: float
    proven: bool = True
    gap: float = 0.0


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


def penalties(p: Problem) -> tuple[float, float]:
    """(SLO weight, budget weight): the one `onConflict` prefers outranks the other."""
    return (HARD, SOFT) if p.prefer_slo else (SOFT, HARD)


def risk_terms(p: Problem, violating: FloatArray, overflow: FloatArray) -> FloatArray:
    """s V / (1 - a) plus, past the SLO, its penalty: w ((V - (1 - a)) + overflow).

    Non-decreasing in V and in overflow, so bounds on both bound it (`core.exact`)."""
    slo_w, _ = penalties(p)
    past = violating > p.risk_floor
    over = np.where(past, violating - p.risk_floor + overflow, 0.0)
    return np.asarray(p.slo_miss_cost * violating / p.divisor + slo_w * over, dtype=np.float64)


def evaluate(p: Problem, plans: IntArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(spend $/h, violating share V, objective J) of each plan (rows: plans):

        J = whole-node spend + warm-up + risk_terms(V, overflow) + w_budget (spend - budget)+

    `spend` is per replica (price . x), as `Plan.spend` holds it; `core.billing` adds the
    node slots a plan leaves empty, which J pays (`money`)."""
    x = np.asarray(plans, dtype=np.int64)
    spend = np.asarray(x @ p.price, dtype=np.float64)
    whole = nodes_spend(p, x)
    violating, overflow = p.risk.evaluate(x)
    obj = money(p, x, whole) + risk_terms(p, violating, overflow)
    if math.isfinite(p.budget):
        obj = obj + penalties(p)[1] * np.maximum(whole - p.budget, 0.0)
    return spend, violating, obj


def nodes_spend(p: Problem, plans: IntArray) -> FloatArray:
    """$/h of each plan with whole nodes paid: sum_i price_i k_i ceil(x_i / k_i)."""
    k = p.node_size
    return np.asarray((-(-plans // k) * k) @ p.price, dtype=np.float64)


def money(p: Problem, plans: IntArray, whole: FloatArray | None = None) -> FloatArray:
    """The objective's terms that are not risk: whole-node spend and warm-up ($/h), a lower
    bound on it. `whole` is `nodes_spend(p, plans)` when the caller has it."""
    out = nodes_spend(p, plans) if whole is None else whole
    if p.current is not None and p.start_cost is not None:
        started = np.maximum(plans - p.current, 0)
        out = out + started @ p.start_cost
        if p.fast_slots is not None:  # the first free slots' replicas pay the model load only
            out = out - np.minimum(started, p.fast_slots[0]) @ p.fast_slots[1]
    return np.asarray(out, dtype=np.float64)


def plan_of(p: Problem, replicas: IntArray) -> Plan:
    """Evaluate one plan."""
    spend, risk, obj = evaluate(p, replicas[None, :])
    return Plan(replicas, float(spend[0]), float(risk[0]), float(obj[0]))
