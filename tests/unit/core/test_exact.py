"""The branch and bound returns the exact optimum: against brute force on 1,000 random small
problems, against an independent MILP on wide ones, and the bound it prunes with."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
from core_helpers import steady
from hypothesis import given
from scipy import optimize, sparse
from test_properties import FAST, planners, rates

from costscaler.core import Planner, PoolView, Settings
from costscaler.core.allocate import (
    Problem,
    evaluate,
    feasible,
    money,
    penalties,
    risk_terms,
)
from costscaler.core.exact import _Search, groups, optimum, split
from costscaler.core.forecast import forecast
from costscaler.core.step import learn, problem, start_plans
from costscaler.core.types import EngineState, Observations


def _problem(pl: Planner, rate: float, current: list[int] | None = None) -> Problem:
    obs = steady(rate)
    state = learn(pl, obs, EngineState())
    demand = forecast(obs.times, obs.request_rate, pl.horizon_s)
    prob = problem(pl, state, demand)
    if current is not None:
        cur = np.array(current, dtype=np.int64)
        prob = replace(
            prob, current=cur, start_cost=pl.price * pl.cold_start_s / max(pl.horizon_s, 1.0)
        )
    return prob


def _every(prob: Problem) -> np.ndarray:
    tops = [int(min(m, prob.total_max)) for m in prob.max_replicas]
    plans = np.array(list(itertools.product(*(range(t + 1) for t in tops))), dtype=np.int64)
    return plans[feasible(prob, plans)]


def _brute(prob: Problem) -> float:
    plans = _every(prob)
    return float(evaluate(prob, plans)[2].min()) if plans.size else np.inf


def _random_problem(rng: np.random.Generator) -> tuple[Problem, Planner]:
    """A small random problem: 1-3 pools (spot or not, nodes of 1-3 replicas), noisy demand,
    running replicas, and now and then a budget."""
    n = int(rng.integers(1, 4))
    threshold = float(rng.uniform(2.0, 20.0))
    pools = []
    for i in range(n):
        spot = bool(rng.random() < 0.5)
        pools.append(
            PoolView(
                f"p{i}",
                spot=spot,
                replica_cost_per_hour=float(rng.uniform(0.2, 4.0)),
                capacity_rps=float(rng.uniform(0.5, 8.0)),
                cold_start_s=float(rng.uniform(0.0, 600.0)),
                max_replicas=int(rng.integers(1, 7)),
                interruption_rate_per_hour=float(rng.uniform(0.0, 2.0)) if spot else 0.0,
                burst_share=float(rng.uniform(0.0, 1.0)),
                replicas_per_node=int(rng.integers(1, 4)),
                base_latency_s=float(rng.uniform(0.05, 0.95)) * threshold,
            )
        )
    lo = int(rng.integers(0, 4))
    settings = Settings(
        latency_threshold_s=threshold,
        attainment=float(rng.choice([0.9, 0.95, 0.99, 0.999])),
        slo_miss_cost_per_hour=float(rng.uniform(0.0, 200.0)),
        replicas_min=lo,
        replicas_max=int(rng.integers(max(lo, 1), 12)),
        spot_max_fraction=float(rng.choice([0.0, 0.3, 0.5, 1.0])),
        min_on_demand=int(rng.integers(0, 3)),
    )
    pl = Planner(pools, settings)
    rate = float(rng.uniform(0.0, 30.0))
    times = 3600.0 - 15.0 * np.arange(240)[::-1]
    noisy = np.maximum(rate * (1.0 + 0.2 * rng.standard_normal(240)), 0.0)
    obs = Observations(times=times, request_rate=noisy, latency=np.full(240, 1.0))
    demand = forecast(obs.times, obs.request_rate, pl.horizon_s)
    cur = rng.integers(0, 4, size=n).astype(np.int64)
    prob = problem(pl, learn(pl, obs, EngineState()), demand, None, cur, settings.attainment)
    if rng.random() < 0.3:
        prob = replace(
            prob, budget=float(rng.uniform(0.0, 20.0)), prefer_slo=bool(rng.random() < 0.5)
        )
    return prob, pl


def test_the_optimum_equals_brute_force_on_a_thousand_random_problems():
    rng = np.random.default_rng(20261205)
    for case in range(1000):
        prob, pl = _random_problem(rng)
        cur = prob.current if prob.current is not None else np.zeros(prob.price.size, np.int64)
        starts = start_plans(pl, prob, prob.floor_demand, cur)
        found = optimum(prob, starts)
        best = _brute(prob)
        if not np.isfinite(best):  # nothing within the hard bounds: the maxima come back
            continue
        assert abs(found.objective - best) <= 1e-9 * max(1.0, abs(best)), case
        assert bool(feasible(prob, found.replicas[None, :])[0]), case


def _with_twins(prob: Problem, rng: np.random.Generator) -> Problem | None:
    """`prob` with one or two copies of one of its burst-free pools (one replica per node),
    each with its own maximum and running replicas: pools `exact.optimum` merges."""
    risk = prob.risk
    free = np.flatnonzero(risk.burst_prob == 0)
    if free.size == 0:
        return None
    i = int(rng.choice(free))
    n = prob.price.size
    idx = np.array([*range(n), *([i] * int(rng.integers(1, 3)))])
    twins = idx.size - n
    maxima = np.concatenate((prob.max_replicas, rng.integers(0, 4, size=twins)))
    cur = prob.current if prob.current is not None else np.zeros(n, dtype=np.int64)
    per_node = prob.node_size.copy()
    per_node[i] = 1
    return replace(
        prob,
        price=prob.price[idx],
        spot=prob.spot[idx],
        max_replicas=maxima.astype(np.int64),
        risk=replace(
            risk,
            capacity=risk.capacity[idx],
            indep_loss=risk.indep_loss[idx],
            burst_prob=risk.burst_prob[idx],
            base_latency_s=risk.base_latency_s[idx],
        ),
        current=np.concatenate((cur, rng.integers(0, 4, size=twins))).astype(np.int64),
        start_cost=None if prob.start_cost is None else prob.start_cost[idx],
        per_node=per_node[idx],
        free_slots=None
        if prob.free_slots is None
        else np.concatenate((prob.free_slots, rng.integers(0, 4, size=twins))).astype(np.int64),
        fast_start_cost=None if prob.fast_start_cost is None else prob.fast_start_cost[idx],
    )


def _two_tier(prob: Problem, rng: np.random.Generator) -> Problem:
    """`prob` with free slots on its pools (0-3 each, the node layer's count): the first
    replicas started on a pool pay a share of its start cost (the model load), the rest all
    of it (node cold start + model load). Half the time nothing runs and the start costs up
    to 20 x more (a long node cold start over a short life): the bound's warm-up term
    then decides what is pruned."""
    n = prob.price.size
    assert prob.start_cost is not None and prob.current is not None
    slow = prob.start_cost * rng.choice([1.0, 5.0, 20.0])
    return replace(
        prob,
        current=prob.current if rng.random() < 0.5 else np.zeros(n, dtype=np.int64),
        start_cost=slow,
        free_slots=rng.integers(0, 4, size=n).astype(np.int64),
        fast_start_cost=slow * rng.choice([0.0, 0.2, 0.5, 1.0], size=n),
    )


def test_a_stopped_search_reports_a_gap_the_optimum_respects():
    """A search stopped by a small budget returns a plan marked unproven with `gap`: the
    optimum (brute force) is at least its objective times (1 - gap), the rows the budget
    left unexplored bounded by the least of their bounds. Proven plans have gap 0. With and
    without starts (without, a dive seeds the incumbent); 600 random small problems."""
    rng = np.random.default_rng(1313)
    stopped = 0
    for case in range(600):
        prob, pl = _random_problem(rng)
        best = _brute(prob)
        if not np.isfinite(best):
            continue
        cur = prob.current if prob.current is not None else np.zeros(prob.price.size, np.int64)
        starts = start_plans(pl, prob, prob.floor_demand, cur) if case % 2 else None
        found = optimum(prob, starts, budget=int(rng.choice([0, 1, 3, 10, 30])))
        slack = 1e-9 * max(1.0, abs(best))
        assert found.gap >= 0.0, case
        assert found.objective >= best - slack, case
        if found.proven:
            assert found.gap == 0.0 and found.objective <= best + slack, case
        else:
            stopped += 1
            assert best >= found.objective * (1.0 - found.gap) - slack, case
    assert stopped > 100  # the budgets stop many searches: the gaps are exercised


def test_the_root_bound_is_below_every_plan():
    """The root's bound is the floor a stopped search's gap starts from and the first
    ceiling: it must bound plans with any count of the pool searched first. It used level
    0's tables, which bound only what the pools after the first add, and passed the brute
    force optimum on 121 of these 300 problems."""
    rng = np.random.default_rng(1313)
    for case in range(300):
        prob, _ = _random_problem(rng)
        best = _brute(prob)
        if np.isfinite(best):
            assert _Search(prob, None).root() <= best + 1e-9 * max(1.0, abs(best)), case


def test_the_optimum_equals_brute_force_with_two_start_tiers():
    """Pools with free slots on Ready nodes start their first replicas at the model load and
    the rest at the node cold start too (`allocate` warm): on 600 random problems the
    search's bound stays below every plan and the optimum equals brute force to 1e-9."""
    rng = np.random.default_rng(16)
    tiered = 0
    for case in range(600):
        prob, pl = _random_problem(rng)
        prob = _two_tier(prob, rng)
        tiered += prob.fast_slots is not None
        cur = prob.current if prob.current is not None else np.zeros(prob.price.size, np.int64)
        best = _brute(prob)
        if not np.isfinite(best):
            continue
        # Without starts nothing but the bound finds the optimum (no descent from a start).
        for starts in ([], start_plans(pl, prob, prob.floor_demand, cur)):
            found = optimum(prob, starts)
            assert abs(found.objective - best) <= 1e-9 * max(1.0, abs(best)), case
            assert bool(feasible(prob, found.replicas[None, :])[0]), case
    assert tiered > 400


def test_two_start_tiers_charge_the_free_slots_first():
    """Warm-up of n new replicas on a pool with k free slots: f min(n, k) + s (n - k)+."""
    prob, _ = _random_problem(np.random.default_rng(3))
    n = prob.price.size
    prob = replace(
        prob,
        current=np.zeros(n, dtype=np.int64),
        start_cost=np.full(n, 3.0),
        free_slots=np.full(n, 2, dtype=np.int64),
        fast_start_cost=np.full(n, 1.0),
        per_node=np.ones(n, dtype=np.int64),
    )
    plans = np.zeros((5, n), dtype=np.int64)
    plans[:, 0] = np.arange(5)
    warm = money(prob, plans) - plans @ prob.price
    assert warm.tolist() == pytest.approx([0.0, 1.0, 2.0, 5.0, 8.0])
    # Without node facts every new replica pays the whole start, as before.
    plain = money(replace(prob, free_slots=None, fast_start_cost=None), plans)
    assert (plain - plans @ prob.price).tolist() == pytest.approx([0.0, 3.0, 6.0, 9.0, 12.0])


def test_merged_pools_with_free_slots_keep_the_optimum():
    """Alike pools with their own free slots are merged with the slots summed and split
    back onto the free slots first (`exact.merge`, `split`): equal to brute force."""
    rng = np.random.default_rng(17)
    merged = 0
    for case in range(300):
        twin = _with_twins(_two_tier(_random_problem(rng)[0], rng), rng)
        if twin is None:
            continue
        merged += len(groups(twin)) < twin.price.size
        found = optimum(twin)
        best = _brute(twin)
        if not np.isfinite(best):
            continue
        assert abs(found.objective - best) <= 1e-9 * max(1.0, abs(best)), case
        assert bool(feasible(twin, found.replicas[None, :])[0]), case
    assert merged > 150


def test_merged_pools_keep_the_optimum_on_random_problems():
    """Pools alike in everything J reads are searched as one and split back (`exact.groups`):
    on 300 random problems with copies of a pool the optimum still equals brute force over
    the unmerged pools, and the plan is within every bound."""
    rng = np.random.default_rng(13)
    merged = 0
    for case in range(300):
        twin = _with_twins(_random_problem(rng)[0], rng)
        if twin is None:
            continue
        merged += len(groups(twin)) < twin.price.size
        found = optimum(twin)
        best = _brute(twin)
        if not np.isfinite(best):
            continue
        assert abs(found.objective - best) <= 1e-9 * max(1.0, abs(best)), case
        assert bool(feasible(twin, found.replicas[None, :])[0]), case
    assert merged > 150


def test_a_merged_plan_keeps_running_replicas_in_place():
    """The split is deterministic: replicas stay in the pools that run them (no warm-up for
    a move between alike pools), new ones fill the group's pools in order."""
    pool = PoolView("z", spot=False, replica_cost_per_hour=1.0, capacity_rps=2.0,
                    cold_start_s=120.0, max_replicas=3, interruption_rate_per_hour=0.0)  # fmt: skip
    pools = [replace(pool, name=f"z{i}") for i in range(3)]
    pl = Planner(pools, Settings(latency_threshold_s=10.0, slo_miss_cost_per_hour=50.0))
    prob = _problem(pl, 8.0, [0, 2, 0])
    assert groups(prob) == [[0, 1, 2]]
    found = optimum(prob)
    total = int(found.replicas.sum())
    assert 3 <= total <= 9
    expected = [0, min(total, 2), 0]
    left = total - expected[1]
    for i in range(3):
        more = min(3 - expected[i], left)
        expected[i], left = expected[i] + more, left - more
    assert found.replicas.tolist() == expected
    assert split(prob, [[0, 1, 2]], np.array([total])).tolist() == expected
    assert found.objective == pytest.approx(_brute(prob), rel=1e-9)


def test_a_plan_past_the_bound_grid_is_not_pruned():
    """Single-slot replicas (capacity 1-2 req/s, base latency 0.3 s) need more headroom than
    the grid's REACH x demand holds: the only plans within the SLO lie past its end. The bound
    took their risk from the grid's last cell and pruned them, returning [0, 1, 9] at a 9.7e6
    penalty, marked proven, instead of [0, 0, 4] at $12/h (found by hypothesis in CI; the
    threshold and attainment restate the case for the rated-rate latency model)."""

    def pool(name: str, price: float, rps: float) -> PoolView:
        return PoolView(
            name,
            spot=False,
            replica_cost_per_hour=price,
            capacity_rps=rps,
            cold_start_s=0.0,
            max_replicas=None,
            interruption_rate_per_hour=0.0,
        )

    settings = Settings(latency_threshold_s=0.6, attainment=0.999, slo_miss_cost_per_hour=0.0,
                        replicas_min=0, replicas_max=10, spot_max_fraction=0.0)  # fmt: skip
    pl = Planner([pool("p0", 1.0, 1.0), pool("p1", 1.0, 1.0), pool("p2", 3.0, 2.0)], settings)
    prob = _problem(pl, 1.0, [0, 0, 0])
    found = optimum(prob)
    assert found.replicas.tolist() == [0, 0, 4]
    assert found.objective == pytest.approx(_brute(prob)) == pytest.approx(12.0)


def test_the_optimum_equals_brute_force_with_single_slot_replicas():
    """As above with random prices: short thresholds make every replica one M/M/1 slot."""
    rng = np.random.default_rng(5)
    for case in range(200):
        pools = [
            PoolView(f"p{i}", spot=False, replica_cost_per_hour=float(rng.uniform(0.5, 4.0)),
                     capacity_rps=float(rng.uniform(0.5, 2.0)), cold_start_s=0.0,
                     max_replicas=int(rng.integers(2, 10)), interruption_rate_per_hour=0.0)
            for i in range(int(rng.integers(1, 4)))
        ]  # fmt: skip
        settings = Settings(latency_threshold_s=1.0, attainment=float(rng.uniform(0.9, 0.99)),
                            slo_miss_cost_per_hour=0.0, replicas_min=0, replicas_max=12,
                            spot_max_fraction=0.0)  # fmt: skip
        prob = _problem(Planner(pools, settings), float(rng.uniform(0.1, 3.0)), [0] * len(pools))
        best = _brute(prob)
        if np.isfinite(best):
            assert optimum(prob).objective == pytest.approx(best, rel=1e-9), case


@FAST
@given(planners(), rates)
def test_starts_change_the_time_not_the_optimum(pl: Planner, rate: float):
    prob = _problem(pl, rate)
    plain = optimum(prob, [])
    started = optimum(prob, start_plans(pl, prob, rate, np.zeros(len(pl.names), np.int64)))
    assert abs(plain.objective - started.objective) <= 1e-9 * max(1.0, abs(plain.objective))


@FAST
@given(planners(), rates)
def test_the_capacity_bound_never_exceeds_the_violating_share(pl: Planner, rate: float):
    """Vlow(C) and the overflow at C bound V and the overflow of every plan of capacity C
    (`core.risk`), so the risk terms at them bound the plan's (`core.exact`)."""
    prob = _problem(pl, rate)
    tops = [int(min(m, prob.total_max, 6)) for m in prob.max_replicas]
    plans = np.array(list(itertools.product(*(range(t + 1) for t in tops))), dtype=np.int64)
    cap = plans @ prob.risk.effective
    violating, overflow = prob.risk.evaluate(plans)
    assert (prob.risk.low(cap) <= violating + 1e-12).all()
    assert (prob.risk.overflow_at(cap) <= overflow + 1e-12).all()
    low = risk_terms(prob, prob.risk.low(cap), prob.risk.overflow_at(cap))
    exact = risk_terms(prob, violating, overflow)
    assert (low <= exact + 1e-9 * np.maximum(1.0, np.abs(exact))).all()


def _milp_at(prob: Problem, total: int) -> float:
    """min J over plans of exactly `total` replicas, as a MILP: all pools have the same
    capacity e, so C = e T is fixed and V = sum_i x_i T_i(1 / C) / T is linear in x.

    Variables: x_i (replicas), n_i (nodes), w_i (replicas started), p (V past the floor),
    b (spend past the budget). J = sum P_i n_i + start_i w_i + s V / (1 - a) + w_slo (p +
    [V > floor] overflow) + w_budget b; V > floor is decided per level by the sign of p.
    """
    n = prob.price.size
    e = float(prob.risk.effective[0])
    cap = e * total
    if total == 0:
        slope = np.zeros(n)
        overflow = float(prob.risk.overflow_at(np.array([0.0]))[0])
    else:
        tables = prob.risk._interp(prob.risk._grid[1], np.array([cap]))[:, 0]
        slope = tables / total
        overflow = float(prob.risk.overflow_at(np.array([cap]))[0])
    if total == 0:
        violating_const = 1.0 if prob.risk.samples[0].size else 0.0
    else:
        violating_const = 0.0
    k = prob.node_size.astype(np.float64)
    slo_w, budget_w = penalties(prob)
    s = prob.slo_miss_cost / prob.divisor
    cur = prob.current if prob.current is not None else np.zeros(n)
    start = prob.start_cost if prob.start_cost is not None else np.zeros(n)
    best = np.inf
    for past in (False, True):  # V within the floor, or past it (its overflow then paid)
        # x (n), nodes (n), started (n), p, b
        c = np.concatenate((s * slope, prob.price * k, start, [slo_w, budget_w]))
        const = s * violating_const + (slo_w * overflow if past else 0.0)
        rows: list[np.ndarray] = []
        lo: list[float] = []
        hi: list[float] = []

        def add(coef: dict[int, float], low: float, high: float, out=(rows, lo, hi)) -> None:
            row = np.zeros(3 * n + 2)
            for j, v in coef.items():
                row[j] = v
            out[0].append(row)
            out[1].append(low)
            out[2].append(high)

        add({i: 1.0 for i in range(n)}, total, total)
        for i in range(n):
            add({i: 1.0, n + i: -k[i]}, -np.inf, 0.0)  # x_i <= k_i n_i
            add({2 * n + i: 1.0, i: -1.0}, -cur[i], np.inf)  # w_i >= x_i - cur_i
        spot = prob.spot.astype(np.float64)
        if prob.spot_limits or prob.spot_relaxed:
            share = np.floor(prob.spot_max_fraction * total + 1e-9)
            if prob.spot_relaxed:
                share = max(share, total - prob.on_demand_capacity)
            add({i: spot[i] for i in range(n)}, -np.inf, share)
            floor_od = min(prob.on_demand_floor, total)
            add({i: 1.0 - spot[i] for i in range(n)}, floor_od, np.inf)
        vio = {i: slope[i] for i in range(n)}
        if past:  # p >= V - floor, V > floor
            add({**vio, 3 * n: -1.0}, -np.inf, prob.risk_floor - violating_const)
            add(vio, prob.risk_floor - violating_const + 1e-12, np.inf)
        else:
            add(vio, -np.inf, prob.risk_floor - violating_const)
        if np.isfinite(prob.budget):  # b >= spend - budget
            add(
                {**{n + i: prob.price[i] * k[i] for i in range(n)}, 3 * n + 1: -1.0},
                -np.inf,
                prob.budget,
            )
        ub = np.concatenate(
            (
                np.minimum(prob.max_replicas, prob.total_max),
                np.full(n, np.inf),
                np.full(n, np.inf),
                [np.inf, np.inf],
            )
        )
        integrality = np.concatenate((np.ones(2 * n), np.zeros(n + 2)))
        res = optimize.milp(
            c,
            constraints=optimize.LinearConstraint(sparse.csr_array(np.array(rows)), lo, hi),
            integrality=integrality,
            bounds=optimize.Bounds(np.zeros(3 * n + 2), ub),
            options={"mip_rel_gap": 0.0},
        )
        if res.status == 0:
            best = min(best, float(res.fun) + const)
    return best


# Rows enough to prove the optimum on the wide spaces below (the decisions stop at
# `exact.MAX_CHILDREN`, for speed).
PROOF_BUDGET = 400_000


@pytest.mark.parametrize("seed", range(12))
def test_the_optimum_matches_an_independent_milp_on_wide_spaces(seed: int):
    """Eight pools of up to 30 replicas (30^8 plans: far past brute force). With every
    pool's replica serving the same req/s, a plan's capacity is fixed by its total T, and at
    a fixed capacity V is linear in the replicas (each pool's table read at 1 / C): the
    objective is then a MILP in (replicas, nodes, warm-ups), solved by HiGHS per T. The two
    formulations share only the tables; they agree to 1e-6 relative (HiGHS's tolerance)."""
    rng = np.random.default_rng(seed)
    threshold = 10.0
    pools = [
        PoolView(
            f"p{i}",
            spot=bool(i % 3 == 2),
            replica_cost_per_hour=float(rng.uniform(0.5, 3.0)),
            capacity_rps=3.0,
            cold_start_s=float(rng.uniform(60.0, 300.0)),
            max_replicas=int(rng.integers(5, 31)),
            replicas_per_node=int(rng.integers(1, 5)),
            base_latency_s=float(rng.uniform(1.0, 8.0)),
        )
        for i in range(8)
    ]
    pl = Planner(
        pools,
        Settings(
            latency_threshold_s=threshold,
            attainment=float(rng.choice([0.95, 0.99])),
            slo_miss_cost_per_hour=float(rng.uniform(10.0, 200.0)),
            replicas_min=1,
            replicas_max=40,
            spot_max_fraction=0.5,
            min_on_demand=1,
        ),
    )
    rate = float(rng.uniform(5.0, 60.0))
    times = 3600.0 - 15.0 * np.arange(240)[::-1]
    noisy = np.maximum(rate * (1.0 + 0.15 * rng.standard_normal(240)), 0.0)
    obs = Observations(times=times, request_rate=noisy, latency=np.full(240, 1.0))
    demand = forecast(obs.times, obs.request_rate, pl.horizon_s)
    cur = rng.integers(0, 6, size=8).astype(np.int64)
    prob = problem(pl, learn(pl, obs, EngineState()), demand, None, cur, 0.99)
    starts = start_plans(pl, prob, prob.floor_demand, cur)
    milp = min(_milp_at(prob, t) for t in range(prob.reachable_min, prob.total_max + 1))
    # The search is exact given the rows to prove it (here at most 400,000) ...
    found = optimum(prob, starts, budget=PROOF_BUDGET)
    assert found.proven
    assert found.objective == pytest.approx(milp, rel=1e-6, abs=1e-6)
    # ... and within the decision's budget either the optimum or a plan marked unproven.
    quick = optimum(prob, starts)
    assert quick.objective >= milp - 1e-6 * max(1.0, abs(milp))
    if quick.proven:
        assert quick.objective == pytest.approx(milp, rel=1e-6, abs=1e-6)


def _alike(n: int) -> Planner:
    """n pools of three accelerators, every other one spot with bursts, 1 % apart in price
    (the decide benchmark's space)."""
    kinds = [(0.805, 1.6, 4.0), (1.006, 2.6, 3.0), (4.1, 7.0, 2.0)]
    pools = []
    for i in range(n):
        price, rps, base = kinds[i % 3]
        spot = i % 2 == 1
        pools.append(
            PoolView(
                f"p{i}",
                spot=spot,
                replica_cost_per_hour=price * (0.45 if spot else 1.0) * (1 + 0.01 * i),
                capacity_rps=rps,
                cold_start_s=240.0 + 10 * i,
                max_replicas=40,
                interruption_rate_per_hour=0.3 if spot else 0.0,
                base_latency_s=base,
            )
        )
    settings = Settings(
        latency_threshold_s=10.0,
        slo_miss_cost_per_hour=50.0,
        replicas_max=60,
        spot_max_fraction=0.6,
        min_on_demand=1,
    )
    return Planner(pools, settings)


def test_a_wide_space_of_alike_spot_pools_stops_at_the_budget_and_says_so():
    """Twenty alike pools, half of them spot (`_alike`): the bound cannot tell the spreads
    of spot apart and the tree outgrows `exact.MAX_CHILDREN`. The search stops there (it ran
    for minutes before): the plan is the best found, within every bound, no worse than the
    best start, and the decision says it is not proven."""
    pl = _alike(20)
    prob = _problem(pl, 30.0)
    starts = start_plans(pl, prob, prob.floor_demand, np.zeros(20, dtype=np.int64))
    found = optimum(prob, starts)
    assert not found.proven
    assert bool(feasible(prob, found.replicas[None, :])[0])
    stack = np.stack(starts)
    ok = feasible(prob, stack)
    assert found.objective <= float(evaluate(prob, stack[ok])[2].min()) + 1e-9
    d = pl.decide(steady(30.0), {}, 3600.0, alternatives=False)
    assert not d.optimum_proven and "not proven optimal" in d.message
    assert 0.0 < d.optimum_gap < 1.0 and f"{100 * d.optimum_gap:.1f} % lower" in d.message


@pytest.mark.parametrize(("rate", "gap"), [(15.0, 0.0), (30.0, 0.0), (45.0, 0.005)])
def test_an_unproven_search_still_returns_the_optimum_of_six_alike_pools(rate: float, gap: float):
    """Six alike pools (`_alike`): the proof needs about 100,000 rows, past the decision's
    budget, and the budgeted search used to return its dive's plan, which on the decide
    benchmark cost $32/h against an optimum of $21/h. The descent from the best start
    (`exact.climb`) reaches the optimum the full search proves, or stops at a local optimum
    within `gap` of it: at 45 req/s the optimum spreads spot over both A10G spot pools, 4
    moves away, and the descent stops 0.17 % above it (the decision says not proven)."""
    pl = _alike(6)
    prob = _problem(pl, rate, [0, 1, 0, 0, 17, 0])
    starts = start_plans(pl, prob, prob.floor_demand, prob.current)
    proof = optimum(prob, starts, budget=2_000_000)
    assert proof.proven
    quick = optimum(prob, starts)
    assert quick.objective <= proof.objective * (1.0 + gap) + 1e-9
    assert quick.objective >= proof.objective - 1e-9


def _bounds_hold(prob: Problem) -> bool:
    """Whether every bound the search prunes a partial plan by (`_Search._lower`, the
    capacity table, the blended one) is at most the objective of each of its completions
    within the hard bounds, at every level, for every partial plan (brute force)."""
    every = _every(prob)
    if every.shape[0] == 0:
        return True
    obj = evaluate(prob, every)[2]
    search = _Search(prob, None)
    slack = 1e-9 * np.maximum(1.0, np.abs(obj))
    for depth, lv in enumerate(search.levels):
        assigned = [level.pool for level in search.levels[: depth + 1]]
        part = every[:, assigned]
        money = sum(search.levels[d].money[part[:, d]] for d in range(depth + 1))
        cap = part @ prob.risk.effective[assigned]
        count = part.sum(axis=1)
        spot = part @ prob.spot_count[assigned]
        lost = part @ search.lost[assigned]
        lower = search._lower(lv, money, cap, count, spot, lost)
        table = money + search._look(lv.table, cap)
        # A row is pruned when a bound reaches the incumbent: each must be below the best
        # completion of its partial plan, hence below each completion.
        if (lower > obj + slack).any() or (table > obj + slack).any():
            return False
        if search.blend is not None and (search._look(search.blend, cap) > obj + slack).any():
            return False
    return True


def test_the_search_bounds_hold_with_two_start_tiers():
    """The bound's proof (the module docstring of `core.exact`) with free slots: on 300
    random two-tier problems every bound the search prunes by is at most the objective of
    each plan it would prune, at every level (brute force over all plans)."""
    rng = np.random.default_rng(1605)
    for case in range(300):
        prob = _two_tier(_random_problem(rng)[0], rng)
        assert _bounds_hold(prob), case
