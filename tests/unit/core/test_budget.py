"""The budget as a constraint: PreferBudget stays within the allowed burn rate, keep-alive and
make-before-break included; PreferSLO may exceed it and says by how much (issue #14, item 1)."""

from __future__ import annotations

import numpy as np
import pytest
from core_helpers import OD, planner, steady
from hypothesis import given
from hypothesis import strategies as st
from test_properties import FAST, _current, planners, rates

from costscaler.api.budget import OnConflict
from costscaler.core import BudgetConstraint, PoolView
from costscaler.core.allocate import feasible
from costscaler.core.forecast import forecast
from costscaler.core.step import learn, problem
from costscaler.core.types import EngineState

EXP = PoolView("exp", spot=False, replica_cost_per_hour=2.0, capacity_rps=2.0, cold_start_s=300.0)
CHEAP = PoolView(
    "cheap", spot=False, replica_cost_per_hour=1.0, capacity_rps=2.0, cold_start_s=300.0
)


def _budgeted(allowed: float, on_conflict: OnConflict = OnConflict.PREFER_BUDGET):
    return BudgetConstraint(allowed_per_hour=allowed, on_conflict=on_conflict)


@pytest.mark.parametrize(
    "allowed",
    [pytest.param(7.0, id="7-allowed-was-18"), pytest.param(4.0, id="4-allowed-was-12")],
)
def test_a_move_to_a_cheaper_pool_stays_within_the_rate(allowed: float):
    """The reproducer: 6 replicas on a $2/h pool move to a $1/h pool. Keep-alive and
    make-before-break held the 6 old ones beside the new ones: $18/h against $7/h allowed
    (reason KeepAlive), $12/h against $4/h."""
    pl = planner([EXP, CHEAP], replicas_max=20)
    d = pl.decide(steady(10.0, ready={"exp": 6}), {"exp": 6}, 3600.0, None, _budgeted(allowed))
    assert d.cost_per_hour <= allowed + 1e-9, d.message
    assert d.budget_limited and d.reason == "BudgetLimited", d.reason


def test_keep_alive_competes_for_the_allowance_in_merit_order():
    """Demand fell: both pools hold surplus. The allowance left over the plan keeps the
    replicas that are cheapest per req/s first, and no more than it pays for."""
    pl = planner([EXP, CHEAP], replicas_max=20)
    current = {"exp": 2, "cheap": 6}
    free = pl.decide(steady(3.0, ready=current), current, 3600.0)
    assert free.replicas == current and free.reason == "KeepAlive"  # the surplus is held
    d = pl.decide(steady(3.0, ready=current), current, 3600.0, None, _budgeted(5.0))
    assert d.cost_per_hour <= 5.0 + 1e-9, d.message
    assert d.replicas["exp"] == 0 and d.replicas["cheap"] == 5, d.replicas
    assert d.budget_limited


def test_a_replica_minimum_above_the_budget_says_both_numbers():
    pl = planner([OD], replicas_min=3)
    d = pl.decide(steady(1.0), {}, 3600.0, None, _budgeted(2.0))
    assert d.reason == "BudgetBelowMinimum"
    assert d.replicas == {"od": 3} and d.budget_limited
    assert "$3.00/h" in d.message and "$2.00/h" in d.message, d.message


def test_prefer_slo_says_how_far_over_the_rate_it_goes():
    pl = planner([OD])
    d = pl.decide(steady(10.0), {}, 3600.0, None, _budgeted(2.0, OnConflict.PREFER_SLO))
    over = d.cost_per_hour - 2.0
    assert over > 0 and d.reason == "BudgetExceededForSLO" and d.budget_limited
    assert f"${over:.2f}/h over" in d.message, d.message


def test_prefer_slo_holds_idle_replicas_only_within_the_rate():
    """Idle replicas are a saving, not the SLO: under PreferSLO too they compete for the
    allowance (the plan, 2 cheap replicas at $2/h, meets the SLO)."""
    pl = planner([EXP, CHEAP], replicas_max=20)
    current = {"exp": 2, "cheap": 6}
    budget = _budgeted(3.0, OnConflict.PREFER_SLO)
    d = pl.decide(steady(3.0, ready=current), current, 3600.0, None, budget)
    assert d.replicas == {"exp": 0, "cheap": 3} and d.cost_per_hour <= 3.0 + 1e-9, d.message
    assert d.reason == "BudgetLimited" and d.budget_limited


def test_prefer_slo_keeps_serving_replicas_while_the_new_ones_warm_and_says_how_far_over():
    """The reproducer's move under PreferSLO: the 6 ready replicas serve until the 7 new ones
    (10 req/s at 2 req/s each, with the queueing slack the SLO needs) are ready, past the
    $7/h allowed; the message says by how much."""
    pl = planner([EXP, CHEAP], replicas_max=20)
    budget = _budgeted(7.0, OnConflict.PREFER_SLO)
    d = pl.decide(steady(10.0, ready={"exp": 6}), {"exp": 6}, 3600.0, None, budget)
    assert d.replicas == {"exp": 6, "cheap": 7}, d.replicas
    assert d.reason == "BudgetExceededForSLO" and d.budget_limited
    assert "$12.00/h over the budget's $7.00/h" in d.message, d.message


def _cheapest_within_bounds(pl, obs) -> float:
    """The least $/h of any plan within the hard bounds, by brute force over every plan."""
    prob = problem(pl, learn(pl, obs, EngineState()), forecast(np.zeros(1), np.zeros(1), 60.0))
    tops = np.minimum(prob.max_replicas, prob.total_max) + 1
    every = np.indices(tops.tolist()).reshape(tops.size, -1).T
    ok = feasible(prob, every)
    return float((every[ok] @ prob.price).min()) + pl.settings.fixed_per_hour


@FAST
@given(
    planners(),
    rates,
    st.lists(st.integers(0, 20), min_size=1, max_size=4),
    st.floats(0.0, 50.0),
    st.floats(0.0, 1.0),
)
def test_prefer_budget_stays_within_the_rate_unless_the_minimum_alone_costs_more(
    pl, rate: float, counts: list[int], allowed: float, ready_share: float
):
    """Keep-alive and make-before-break included: the current replicas (a share of them
    ready, the rest warming) are what the decision may hold past its plan."""
    current = _current(pl, counts)
    ready = {n: int(v * ready_share) for n, v in current.items()}
    obs = steady(rate, ready=ready)
    d = pl.decide(obs, current, 3600.0, None, _budgeted(allowed))
    if d.cost_per_hour <= allowed + 1e-6:
        return
    least = _cheapest_within_bounds(pl, obs)
    assert d.reason == "BudgetBelowMinimum" and d.budget_limited, d.message
    assert d.cost_per_hour <= least + 1e-6 and least > allowed, d.message
    assert f"${least:.2f}/h" in d.message and f"${allowed:.2f}/h" in d.message, d.message


@FAST
@given(planners(), rates, st.lists(st.integers(0, 20), min_size=1, max_size=4), st.floats(0, 50))
def test_prefer_slo_past_the_rate_says_by_how_much(pl, rate, counts: list[int], allowed: float):
    current = _current(pl, counts)
    budget = _budgeted(allowed, OnConflict.PREFER_SLO)
    d = pl.decide(steady(rate, ready=current), current, 3600.0, None, budget)
    if d.cost_per_hour > allowed + 1e-6:
        assert d.reason == "BudgetExceededForSLO" and d.budget_limited, d.message
        assert f"${d.cost_per_hour - allowed:.2f}/h over" in d.message, d.message
