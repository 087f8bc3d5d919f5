"""Allocation across pools: bounds, spot limits, budget and the merit order, as table rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from core_helpers import BIG, OD, SPOT_A, SPOT_B, planner, steady
from hypothesis import given
from hypothesis import strategies as st
from test_properties import FAST, planners, rates

from costscaler.api.budget import OnConflict
from costscaler.core import BudgetConstraint, PoolView, hazard
from costscaler.core.allocate import evaluate, feasible, fits
from costscaler.core.forecast import forecast
from costscaler.core.step import learn, problem
from costscaler.core.types import EngineState

CHEAP_OD = PoolView(
    "cheap-od", spot=False, replica_cost_per_hour=0.5, capacity_rps=2.0, cold_start_s=300.0
)


def _decide(pools, rate, current=None, budget=None, **settings):
    pl = planner(pools, **settings)
    return pl, pl.decide(steady(rate), current or {}, 3600.0, None, budget)


@pytest.mark.parametrize(
    ("pools", "rate", "settings", "check"),
    [
        pytest.param([OD], 0.0, {}, lambda r: r == {"od": 1}, id="zero-load-min-one"),
        pytest.param(
            [OD], 0.0, {"replicas_min": 0}, lambda r: r == {"od": 0}, id="zero-load-scale-to-zero"
        ),
        pytest.param([OD], 7.0, {}, lambda r: r["od"] >= 4, id="one-pool-covers-demand"),
        pytest.param(
            [OD],
            50.0,
            {"replicas_min": 3, "replicas_max": 3},
            lambda r: r == {"od": 3},
            id="min-eq-max",
        ),
        pytest.param(
            [OD, SPOT_A],
            50.0,
            {"replicas_max": 6},
            lambda r: sum(r.values()) == 6,
            id="capped-at-max",
        ),
        pytest.param(
            [SPOT_A, SPOT_B],
            6.0,
            {"spot_max_fraction": 0.5},
            lambda r: sum(r.values()) >= 3,
            id="all-pools-spot",
        ),
        pytest.param(
            [OD, CHEAP_OD],
            6.0,
            {},
            lambda r: r["cheap-od"] >= r["od"],
            id="merit-order",
        ),
        pytest.param(
            [OD, BIG],
            30.0,
            {"replicas_max": 8},
            lambda r: r["big"] >= 2,
            id="dense-pool-when-max-binds",
        ),
    ],
)
def test_allocation_rows(pools, rate, settings, check):
    _, d = _decide(pools, rate, **settings)
    assert check(dict(d.replicas)), d.message


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("min_od", [0, 2])
def test_spot_limits_hold(fraction: float, min_od: int):
    _, d = _decide(
        [OD, SPOT_A, SPOT_B],
        20.0,
        spot_max_fraction=fraction,
        min_on_demand=min_od,
        replicas_max=30,
    )
    total = d.total_replicas
    spot = d.replicas["spot-a"] + d.replicas["spot-b"]
    assert spot <= math.floor(fraction * total + 1e-9)
    assert d.replicas["od"] >= min(min_od, total)


def test_spot_is_hedged_across_pools_or_with_on_demand():
    _, d = _decide([OD, SPOT_A, SPOT_B], 20.0, spot_max_fraction=1.0, replicas_max=40)
    spot_a, spot_b = d.replicas["spot-a"], d.replicas["spot-b"]
    assert spot_a + spot_b > 0, "spot is cheaper and should be used"
    # No single pool's burst may take the plan below the demand at the SLO floor.
    assert d.slo_risk <= 0.01 + 1e-9


@pytest.mark.parametrize("rate", [5.0, 20.0, 60.0])
def test_one_pool_bursts_miss_at_most_the_slo_share(rate: float):
    # A burst takes a whole pool with probability ~1.8 % within the cold start, above the 1 %
    # the SLO allows. It costs the share of its outage in which requests miss and the drain
    # of its backlog (`core.risk`), so the bursts' expected misses stay within the 1 %.
    pl, d = _decide([OD, SPOT_A, SPOT_B], rate, spot_max_fraction=1.0, replicas_max=80)
    capacity = {p.name: p.capacity_rps * d.replicas[p.name] for p in pl.pools}
    total, grace = sum(capacity.values()), pl.settings.latency_threshold_s / pl.horizon_s
    missed = 0.0
    for p in pl.pools:
        if p.spot:
            burst = 1.0 - math.exp(
                -hazard.DEFAULT_BURST_SHARE * p.interruption_rate_per_hour * p.cold_start_s / 3600
            )
            left, over = total - capacity[p.name], rate - (total - capacity[p.name])
            if over > 0:
                late = max(0.0, 1.0 - grace * left / over) if left > 0 else 1.0
                drain = max(0.0, (over - grace * total) / (total - rate)) if total > rate else 1.0
                missed += burst * (late + drain)
    assert missed <= 0.01


@pytest.mark.parametrize(
    ("on_conflict", "reason"),
    [
        # Nothing fits in $0/h: the replica minimum alone is past it (issue #14).
        pytest.param(OnConflict.PREFER_BUDGET, "BudgetBelowMinimum", id="prefer-budget"),
        pytest.param(OnConflict.PREFER_SLO, "BudgetExceededForSLO", id="prefer-slo"),
    ],
)
def test_budget_exhausted(on_conflict: OnConflict, reason: str):
    budget = BudgetConstraint(allowed_per_hour=0.0, on_conflict=on_conflict)
    _, free = _decide([OD], 10.0)
    _, d = _decide([OD], 10.0, budget=budget)
    assert d.reason == reason
    assert d.total_replicas >= 1  # the replica minimum is a bound, the budget is not
    if on_conflict == OnConflict.PREFER_BUDGET:
        assert d.total_replicas == 1 and d.budget_limited
    else:  # the SLO holds; the budget's weight takes what the miss cost alone would buy
        assert d.violating_share <= 1.0 - 0.99 + 1e-12
        assert d.total_replicas <= free.total_replicas


def test_budget_shifts_to_cheaper_pools_before_lowering_the_quantile():
    _, free = _decide(
        [OD, SPOT_A, SPOT_B], 10.0, spot_max_fraction=0.5, slo_miss_cost_per_hour=1000.0
    )
    allowed = free.cost_per_hour * 0.97
    budget = BudgetConstraint(allowed_per_hour=allowed, on_conflict=OnConflict.PREFER_BUDGET)
    _, d = _decide(
        [OD, SPOT_A, SPOT_B],
        10.0,
        budget=budget,
        spot_max_fraction=0.5,
        slo_miss_cost_per_hour=1000.0,
    )
    assert d.cost_per_hour <= allowed + 1e-9


def test_generous_budget_changes_nothing():
    _, free = _decide([OD, SPOT_A], 10.0)
    _, d = _decide([OD, SPOT_A], 10.0, budget=BudgetConstraint(allowed_per_hour=1e6))
    assert d.replicas == free.replicas and not d.budget_limited


@pytest.mark.parametrize("size", [1.0, 2.0, 4.0])
def test_the_miss_cost_is_per_unit_of_violating_requests_whatever_the_replica_size(size):
    """Issue 13 item 4: J = spend + s V / (1 - a). The old newsvendor fractile divided the
    deployment's miss cost by one replica's price, so its answer moved with replica size.
    Here a pool of replicas `size` times larger at `size` times the price, serving the same
    capacity, prices the same violating share at the same miss cost."""
    pool = PoolView(
        "p",
        spot=False,
        replica_cost_per_hour=1.0 * size,
        capacity_rps=2.0 * size,
        cold_start_s=300.0,
        base_latency_s=5.0,
    )
    pl = planner([pool], latency_threshold_s=10.0, slo_miss_cost_per_hour=40.0)
    state = learn(pl, steady(6.0), EngineState())
    prob = problem(pl, state, forecast(np.arange(240.0) * 15, np.full(240, 6.0), 300.0))
    plans = np.array([[int(8 / size)]], dtype=np.int64)
    spend, violating, obj = evaluate(prob, plans)
    assert violating[0] < 0.01  # within the SLO: no penalty term
    assert obj[0] == pytest.approx(spend[0] + 40.0 * violating[0] / 0.01, rel=1e-12)
    assert spend[0] == pytest.approx(8.0)


def test_feasible_rejects_every_bound():
    pl = planner(
        [OD, SPOT_A], replicas_min=2, replicas_max=6, spot_max_fraction=0.5, min_on_demand=1
    )
    state = learn(pl, steady(5.0), EngineState())

    prob = problem(pl, state, forecast(np.arange(10.0), np.full(10, 5.0), 300.0))
    rows = np.array([[1, 1], [1, 0], [4, 3], [0, 2], [-1, 3], [3, 3]])
    assert feasible(prob, rows).tolist() == [True, False, False, False, False, True]


@FAST
@given(
    planners(), rates, st.lists(st.lists(st.integers(-1, 9), min_size=4, max_size=4), max_size=12)
)
def test_fits_is_feasible_for_one_plan(pl, rate: float, rows):
    """`fits` (one plan, plain Python) agrees with `feasible` (rows, numpy) on every plan."""
    prob = problem(
        pl,
        learn(pl, steady(rate), EngineState()),
        forecast(np.arange(10.0), np.full(10, rate), 300.0),
    )
    n = len(pl.names)
    for row in rows:
        plan = np.array(row[:n], dtype=np.int64)
        assert fits(prob, plan) == bool(feasible(prob, plan[None, :])[0])
