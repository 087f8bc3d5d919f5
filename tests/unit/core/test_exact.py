"""The branch and bound finds the optimum: checked against brute force on small problems."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
from core_helpers import steady
from hypothesis import given
from hypothesis import strategies as st
from test_properties import FAST, planners, rates

from costscaler.core import Planner, PoolView, Settings
from costscaler.core.allocate import Plan, evaluate, feasible
from costscaler.core.exact import (
    _BRUTE,
    MAX_WAIT,
    backoff,
    optimum,
    risk_bound,
    solve,
)
from costscaler.core.forecast import forecast
from costscaler.core.local import first_plan
from costscaler.core.step import learn, problem, start_plans
from costscaler.core.types import EngineState


def _problem(pl: Planner, rate: float, current: list[int] | None = None):
    obs = steady(rate)
    state = learn(pl, obs, EngineState())
    prob = problem(pl, state, forecast(obs.times, obs.request_rate, pl.horizon_s))
    if current is not None:
        cur = np.array(current, dtype=np.int64)
        prob = replace(
            prob, current=cur, start_cost=pl.price * pl.cold_start_s / max(pl.horizon_s, 1.0)
        )
    return prob


def _brute(prob) -> float:
    tops = [int(min(m, prob.total_max)) for m in prob.max_replicas]
    plans = np.array(list(itertools.product(*(range(t + 1) for t in tops))), dtype=np.int64)
    plans = plans[feasible(prob, plans)]
    return float(evaluate(prob, plans)[2].min()) if plans.size else np.inf


def _starts(pl: Planner, prob, rate: float) -> list[np.ndarray]:
    cur = prob.current if prob.current is not None else np.zeros(len(pl.names), dtype=np.int64)
    return start_plans(pl, prob, rate, cur)


@FAST
@given(planners(), rates, st.lists(st.integers(0, 8), min_size=4, max_size=4), st.booleans())
def test_the_optimum_is_never_beaten_by_any_plan(pl: Planner, rate: float, cur, warm: bool):
    """Exact within the space the engine guarantees (`exact._BRUTE` plans: it tries every
    plan there when the tree is too wide); beyond it, never worse than where it started."""
    prob = _problem(pl, rate, cur[: len(pl.names)] if warm else None)
    starts = _starts(pl, prob, rate)
    found = optimum(prob, starts)
    tops = np.minimum(prob.max_replicas, prob.total_max) + 1
    if math.prod(tops.tolist()) <= _BRUTE:
        assert found.objective <= _brute(prob) + 1e-6 * max(1.0, abs(found.objective))
    else:
        assert found.objective <= first_plan(prob, starts).objective + 1e-9


def test_the_dominated_plan_the_local_search_returned_is_fixed():
    """Found by hypothesis in CI (#3): the search stopped at {p0: 2, p1: 5} for 25.5 $/h
    although {p0: 4, p1: 2} carries as much for 23 $/h."""
    pools = [
        PoolView("p0", spot=False, replica_cost_per_hour=4.0, capacity_rps=9.875, cold_start_s=0),
        PoolView("p1", spot=False, replica_cost_per_hour=3.5, capacity_rps=6.5, cold_start_s=0),
    ]
    pl = Planner(
        pools,
        Settings(
            latency_threshold_s=1.0,
            attainment=0.9375,
            slo_miss_cost_per_hour=55.0,
            replicas_min=0,
            replicas_max=7,
        ),
    )
    prob = _problem(pl, 50.5)
    stuck = np.array([2, 5], dtype=np.int64)
    spend, risk, obj = evaluate(prob, stuck[None, :])
    start = Plan(stuck, float(spend[0]), float(risk[0]), float(obj[0]))
    solved = solve(prob, start)
    assert solved is not None and solved.objective < start.objective
    assert solved.objective <= _brute(prob) + 1e-9


@given(planners(), rates, st.floats(0.0, 200.0))
@FAST
def test_the_risk_bound_never_exceeds_the_risk(pl: Planner, rate: float, _unused: float):
    prob = _problem(pl, rate)
    tops = [int(min(m, prob.total_max, 6)) for m in prob.max_replicas]
    plans = np.array(list(itertools.product(*(range(t + 1) for t in tops))), dtype=np.int64)
    bound = risk_bound(prob, plans @ (prob.risk.capacity * (1.0 - prob.risk.indep_loss)))
    assert (bound <= prob.risk.of(plans) + 1e-12).all()


def test_a_start_past_the_floor_still_finds_the_cheapest_plan_within_it():
    """Found by hypothesis: every start leaned on a spot pool whose burst alone breaks the
    floor; the local search stayed past it (objective ~55,000) and the tree was too wide
    from there. The space is small, so every plan is tried."""
    pools = [
        PoolView("p0", spot=True, replica_cost_per_hour=1.0, capacity_rps=2.0, cold_start_s=0),
        PoolView("p1", spot=True, replica_cost_per_hour=2.0, capacity_rps=4.0, cold_start_s=0),
        PoolView(
            "p2",
            spot=True,
            replica_cost_per_hour=0.5,
            capacity_rps=2.0,
            cold_start_s=458.0,
            interruption_rate_per_hour=0.5,
        ),
    ]
    settings = Settings(
        latency_threshold_s=1.0,
        attainment=0.96875,
        slo_miss_cost_per_hour=0.0,
        replicas_min=0,
        replicas_max=17,
        spot_max_fraction=0.0,
    )
    pl = Planner(pools, settings)
    prob = _problem(pl, 14.0)
    found = optimum(prob, _starts(pl, prob, 14.0))
    assert found.risk <= prob.risk_floor
    assert found.objective <= _brute(prob) + 1e-9


@pytest.mark.parametrize(
    ("misses", "wait", "proven", "expected"),
    [
        pytest.param(0, 0, True, (0, 0), id="proven-stays-exact"),
        pytest.param(0, 0, False, (1, 1), id="first-give-up-skips-one"),
        pytest.param(1, 0, False, (2, 3), id="second-skips-three"),
        pytest.param(9, 0, False, (10, MAX_WAIT - 1), id="bounded"),
        pytest.param(3, 5, None, (3, 4), id="skipped-counts-down"),
        pytest.param(3, 0, True, (0, 0), id="success-resets"),
    ],
)
def test_backoff(misses: int, wait: int, proven, expected):
    assert backoff(misses, wait, proven) == expected


def test_the_engine_backs_off_where_the_tree_is_too_wide_and_says_so_in_its_state():
    """Twenty pools alike but for price: the tree is far too wide to search exactly."""
    pools = [
        PoolView(
            f"p{i}",
            spot=False,
            replica_cost_per_hour=1.0 + 0.01 * i,
            capacity_rps=2.0,
            cold_start_s=60.0,
        )
        for i in range(20)
    ]
    pl = Planner(pools, Settings(latency_threshold_s=1.0, replicas_max=60))
    d = pl.decide(steady(50.0), {}, 3600.0)
    assert (d.state.exact_misses, d.state.exact_wait) == (1, 1)
    assert EngineState.from_dict(d.state.to_dict()) == d.state
