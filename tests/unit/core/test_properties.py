"""Invariants of the engine over generated pools, settings and loads (hypothesis)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from core_helpers import steady
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from costscaler.api.budget import OnConflict
from costscaler.core import BudgetConstraint, Planner, PoolView, Settings
from costscaler.core.allocate import feasible
from costscaler.core.exact import optimum
from costscaler.core.forecast import forecast
from costscaler.core.step import learn, problem
from costscaler.core.types import EngineState, Observations

# Derandomised in CI by the "ci" profile (tests/conftest.py).
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def pool_views(draw: st.DrawFn, index: int, interruptible: bool = True) -> PoolView:
    spot = draw(st.booleans()) if interruptible else False
    return PoolView(
        name=f"p{index}",
        spot=spot,
        replica_cost_per_hour=draw(st.floats(0.05, 5.0)),
        capacity_rps=draw(st.floats(0.5, 10.0)),
        cold_start_s=draw(st.floats(0.0, 600.0)),
        max_replicas=draw(st.none() | st.integers(0, 15)),
        interruption_rate_per_hour=draw(st.floats(0.0, 0.7)) if spot else 0.0,
    )


@st.composite
def planners(draw: st.DrawFn, interruptible: bool = True) -> Planner:
    n = draw(st.integers(1, 4))
    pools = [draw(pool_views(i, interruptible)) for i in range(n)]
    lo = draw(st.integers(0, 3))
    hi = draw(st.integers(max(lo, 1), 20))
    return Planner(
        pools,
        Settings(
            latency_threshold_s=1.0,
            attainment=draw(st.floats(0.9, 0.999)),
            slo_miss_cost_per_hour=draw(st.floats(0.0, 200.0)),
            replicas_min=lo,
            replicas_max=hi,
            spot_max_fraction=draw(st.floats(0.0, 1.0)),
            min_on_demand=draw(st.integers(0, min(3, hi))),
        ),
    )


rates = st.floats(0.0, 60.0)


def _current(pl: Planner, counts: list[int]) -> dict[str, int]:
    return {name: counts[i % len(counts)] for i, name in enumerate(pl.names)}


def _capacity(pl: Planner, replicas: dict[str, int]) -> float:
    return float(sum(replicas[n] * pl.capacity[i] for i, n in enumerate(pl.names)))


def _within_bounds(pl: Planner, replicas: dict[str, int]) -> bool:
    state = learn(pl, steady(1.0), EngineState())
    prob = problem(pl, state, forecast(np.zeros(1), np.zeros(1), 60.0))
    x = np.array([[replicas[n] for n in pl.names]])
    return bool(feasible(prob, x)[0])


budgets = st.none() | st.builds(
    BudgetConstraint, st.floats(0.0, 50.0), st.sampled_from(list(OnConflict))
)


@FAST
@given(planners(), rates, st.lists(st.integers(0, 20), min_size=1, max_size=4), budgets)
def test_allocation_is_always_within_every_bound(
    pl: Planner, rate: float, counts: list[int], budget: BudgetConstraint | None
):
    current = _current(pl, counts)
    d = pl.decide(steady(rate, ready=current), current, 3600.0, None, budget)
    assert _within_bounds(pl, dict(d.replicas)), d.message


@FAST
@given(planners(), rates, st.floats(0.1, 30.0))
def test_more_demand_never_lowers_the_optimum(pl: Planner, rate: float, more: float):
    """What the engine minimises never falls as demand rises: every plan's violating share
    grows with the rate, its money does not change. Capacity itself need not grow: one
    larger replica (6 req/s, 3 queue slots) can beat two smaller ones (4 req/s, 2 slots
    each) at twice the rate, because it pools its queue, so fewer req/s may rightly serve
    more demand (hypothesis found that case against the old capacity property)."""
    low = _expected_cost(pl, rate)
    assert _expected_cost(pl, rate + more) >= low - 1e-9 * max(1.0, abs(low))


def _expected_cost(pl: Planner, rate: float) -> float:
    """The least objective the engine can reach from nothing running (`core.exact`)."""
    obs = steady(rate)
    demand = forecast(obs.times, obs.request_rate, pl.horizon_s)
    cur = np.zeros(len(pl.names), dtype=np.int64)
    prob = problem(pl, learn(pl, obs, EngineState()), demand, None, cur)
    return optimum(prob).objective


@FAST
@given(planners(), rates)
def test_expected_attainment_is_one_minus_the_violating_share(pl: Planner, rate: float):
    d = pl.decide(steady(rate), {}, 3600.0)
    assert 0.0 <= d.violating_share <= 1.0
    assert d.expected_attainment == 1.0 - d.violating_share
    assert d.slo_risk == d.violating_share


@FAST
@given(planners(), rates, st.data())
def test_a_lower_price_never_gives_a_more_expensive_plan(pl: Planner, rate: float, data):
    i = data.draw(st.integers(0, len(pl.pools) - 1))
    factor = data.draw(st.floats(0.1, 0.99))
    pools = list(pl.pools)
    pools[i] = replace(pools[i], replica_cost_per_hour=pools[i].replica_cost_per_hour * factor)
    cheaper = Planner(pools, pl.settings)
    base = _expected_cost(pl, rate)
    assert _expected_cost(cheaper, rate) <= base + 1e-9 * max(1.0, abs(base))


@FAST
@given(planners(), rates, st.floats(1.0, 10.0))
def test_a_higher_slo_miss_cost_never_lowers_the_quantile(pl: Planner, rate: float, k: float):
    dearer = Planner(
        pl.pools,
        replace(pl.settings, slo_miss_cost_per_hour=pl.settings.slo_miss_cost_per_hour * k + 1),
    )
    base = pl.decide(steady(rate), {}, 3600.0)
    more = dearer.decide(steady(rate), {}, 3600.0)
    assert more.quantile >= base.quantile
    assert 1.0 - more.slo_risk >= 1.0 - base.slo_risk - 1e-9


BAD_VALUES = st.sampled_from([math.nan, math.inf, -math.inf, -1.0])


@FAST
@given(planners(), rates, st.lists(st.integers(0, 20), min_size=1, max_size=4), BAD_VALUES)
def test_bad_observations_never_cause_a_scale_down(pl: Planner, rate, counts, bad: float):
    current = _current(pl, counts)
    capped = {n: min(current[n], int(pl.max_replicas[i])) for i, n in enumerate(pl.names)}
    assume(sum(capped.values()) <= pl.settings.replicas_max)
    obs = steady(rate, ready=current)
    rates_ = obs.request_rate.copy()
    rates_[-1] = bad
    d = pl.decide(Observations(obs.times, rates_, obs.latency, ready=obs.ready), current, 3600.0)
    assert all(d.replicas[n] >= capped[n] for n in pl.names)
    assert not d.metrics_available


@FAST
@given(planners(), rates, st.lists(st.integers(0, 20), min_size=1, max_size=4))
def test_decide_is_deterministic(pl: Planner, rate: float, counts: list[int]):
    current = _current(pl, counts)
    obs = steady(rate, ready=current)
    assert repr(pl.decide(obs, current, 3600.0)) == repr(pl.decide(obs, current, 3600.0))


@FAST
@given(planners(), rates, st.lists(st.integers(0, 20), min_size=1, max_size=4), BAD_VALUES)
def test_a_hold_on_bad_data_is_within_every_bound(pl: Planner, rate, counts, bad: float):
    """Holding scales no pool down, yet the replica bounds hold, and the spot limits too
    unless no on-demand replica could be added (replicas.max or every on-demand pool full)."""
    current = _current(pl, counts)
    obs = steady(rate, ready=current)
    rates_ = obs.request_rate.copy()
    rates_[-1] = bad
    d = pl.decide(Observations(obs.times, rates_, obs.latency, ready=obs.ready), current, 3600.0)
    x = np.array([d.replicas[n] for n in pl.names])
    assert (x <= pl.max_replicas).all() and x.sum() <= pl.settings.replicas_max
    od_full = all(x[i] >= pl.max_replicas[i] for i in range(x.size) if not pl.spot[i])
    full = x.sum() >= pl.settings.replicas_max or od_full
    assert full or _within_bounds(pl, dict(d.replicas)), d.message
