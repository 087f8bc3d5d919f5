"""The oracle: exact on hand-computed cases, never beaten by any policy."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_helpers import pool, trace

from costscaler.sim.hpa import HPA, KEDA
from costscaler.sim.knative import KPA
from costscaler.sim.lineup import Lineup, Settings
from costscaler.sim.oracle import SpotLimits, lower_bound
from costscaler.sim.run import Costs, simulate
from costscaler.sim.scenario import Outage, Scenario
from costscaler.sim.static import Static


def test_constant_load_at_capacity_needs_exactly_that_capacity():
    # 20 req/s for an hour on 10 req/s replicas at 3.6 $/h: two replicas, $7.20.
    bound = lower_bound(np.full(3600, 20.0), 1.0, [pool()], 5.0, 1.0)
    assert bound.feasible and bound.replica_cost == pytest.approx(7.2, rel=1e-6)


def test_cheaper_pool_per_capacity_is_used():
    big = pool(name="big", capacity_rps=40.0, replica_cost_per_hour=7.2)  # half the $/req
    bound = lower_bound(np.full(3600, 40.0), 1.0, [pool(), big], 5.0, 1.0)
    assert bound.replica_cost == pytest.approx(7.2, rel=1e-6)


def test_cold_start_is_paid_before_a_burst():
    arrivals = np.zeros(600)
    arrivals[300:400] = 10.0  # 100 s of one replica's load
    warm = lower_bound(arrivals, 1.0, [pool()], 1.0, 1.0).replica_cost
    cold = lower_bound(arrivals, 1.0, [pool(load_s=50)], 1.0, 1.0).replica_cost
    assert warm == pytest.approx(0.1, rel=1e-3)  # 100 replica-seconds at $0.001
    # Plus 50 s of warm-up, less the one step the fluid model's rounding lets it borrow.
    assert 0.148 <= cold <= 0.15


def test_service_time_above_threshold_is_infeasible():
    bound = lower_bound(np.full(10, 1.0), 1.0, [pool(service_s=3.0)], 2.0, 0.5)
    assert not bound.feasible


def _policies(peak: float, rated: float) -> list:
    return [
        HPA(0, 0.7, 1, 50),
        KEDA(0, 0.7 * rated, 1, 50),
        KPA(0, 0.7, 1, 50),
        Static.for_peak(0, rated, peak, 1),
        Static(0, 1),
    ]


@settings(max_examples=15, deadline=None)
@given(
    rates=st.lists(st.floats(0.0, 60.0), min_size=2, max_size=5),
    load_s=st.integers(0, 60),
    threshold=st.floats(0.6, 20.0),
    seed=st.integers(0, 1000),
)
def test_no_policy_beats_the_oracle_at_its_own_attainment(rates, load_s, threshold, seed):
    rng = np.random.default_rng(seed)
    arrivals = rng.poisson(np.repeat(rates, 60)).astype(float)
    pools = [pool(load_s=load_s, node_cold_s=10)]
    for policy in _policies(max(rates), pools[0].capacity_rps):
        out = simulate(trace(arrivals), pools, policy, Costs(threshold), seed=seed)
        bound = lower_bound(arrivals, 1.0, pools, threshold, out.slo_attainment)
        assert bound.feasible
        assert bound.replica_cost <= out.replica_cost * (1 + 1e-7) + 1e-9, policy.name


def test_spot_limits_bind_the_spot_share():
    spot = pool(name="spot", spot=True, replica_cost_per_hour=1.8)
    arrivals = np.full(3600, 40.0)  # four replicas' worth
    free = lower_bound(arrivals, 1.0, [pool(), spot], 5.0, 1.0)
    half = lower_bound(arrivals, 1.0, [pool(), spot], 5.0, 1.0, spot=SpotLimits(0.5, 0))
    floor = lower_bound(arrivals, 1.0, [pool(), spot], 5.0, 1.0, spot=SpotLimits(1.0, 3))
    assert free.replica_cost == pytest.approx(4 * 1.8, rel=1e-6)
    assert half.replica_cost == pytest.approx(2 * 1.8 + 2 * 3.6, rel=1e-6)
    assert floor.replica_cost == pytest.approx(3 * 3.6 + 1 * 1.8, rel=1e-6)


@settings(max_examples=8, deadline=None)
@given(
    rates=st.lists(st.floats(0.0, 40.0), min_size=2, max_size=5),
    seed=st.integers(0, 1000),
)
def test_costscaler_does_not_beat_the_oracle(lineup, rates, seed):
    arrivals = np.random.default_rng(seed).poisson(np.repeat(rates, 120)).astype(float)
    names = ["costscaler", "costscaler-ondemand", "costscaler-single", "oracle", "oracle-single"]
    rows = {o.policy: o for o in lineup.run(names, trace(arrivals), seed=seed)}
    assert rows["oracle"].replica_cost <= rows["costscaler"].replica_cost * (1 + 1e-7) + 1e-9
    single = rows["costscaler-single"]
    assert rows["oracle-single"].replica_cost <= single.replica_cost * (1 + 1e-7) + 1e-9


# One scenario of each kind the bench runs: the oracle sees the true capacity, and ignores
# cold-start tails and stock-outs (relaxations: they only take options away from a policy).
SCENARIOS = {
    "capacity-error": Scenario("capacity-error", capacity_error=0.8),
    "cold-start-tail": Scenario("cold-start-tail", cold_start_tail=2.0),
    "stockout": Scenario("stockout", stockouts=((60.0, 240.0),)),
    "metrics-outage": Scenario("metrics-outage", outages=(Outage(60.0, 120.0, "down"),)),
}
BASELINES = ("hpa", "keda", "kpa", "static", "hpa-karpenter-spot", "keda-karpenter-spot")


@settings(max_examples=12, deadline=None)
@given(
    kind=st.sampled_from(sorted(SCENARIOS)),
    rates=st.lists(st.floats(0.0, 40.0), min_size=3, max_size=5),
    seed=st.integers(0, 1000),
)
def test_no_policy_beats_the_oracle_in_any_scenario(lineup, kind, rates, seed):
    """Every baseline and costscaler, in every scenario kind, costs at least the oracle's
    bound at its own attainment. Baselines against the bound on every pool without the
    deployment's spot limits (a policy on any subset of the pools, with any spot share,
    satisfies its constraints); costscaler, which obeys the limits, against `oracle`."""
    setup = Lineup(lineup.deployment, lineup.pools, Settings(scenario=SCENARIOS[kind]))
    arrivals = np.random.default_rng(seed).poisson(np.repeat(rates, 120)).astype(float)
    rows = setup.run([*BASELINES, "costscaler", "oracle"], trace(arrivals), seed=seed)
    by_name = {r.policy: r for r in rows}
    oracle = by_name.pop("oracle")
    assert oracle.slo_attainment == by_name["costscaler"].slo_attainment
    assert oracle.replica_cost <= by_name["costscaler"].replica_cost * (1 + 1e-7) + 1e-9
    true = [dataclasses.replace(m, capacity_rps=m.capacity_rps * 0.8) for m in setup.models]
    pools = true if kind == "capacity-error" else setup.models
    for name, row in by_name.items():
        bound = lower_bound(arrivals, 1.0, pools, setup.costs.threshold_s, row.slo_attainment)
        assert bound.feasible, (kind, name)
        assert bound.replica_cost <= row.replica_cost * (1 + 1e-7) + 1e-9, (kind, name)
