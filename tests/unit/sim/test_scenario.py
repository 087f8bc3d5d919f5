"""Scenarios: a world unlike the manifest, and how each policy meets a metrics outage."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sim_helpers import pool, trace

from costscaler.sim.hpa import HPA, KEDA
from costscaler.sim.lineup import Lineup, Settings
from costscaler.sim.oracle import SpotLimits, lower_bound
from costscaler.sim.run import Costs, Start, simulate
from costscaler.sim.scenario import Outage, Scenario, scenario_from
from costscaler.sim.static import Static


def test_true_capacity_below_declared_makes_a_fixed_count_late():
    arrivals = np.full(1200, 36.0)  # 4 declared replicas at 90 %
    runs = [
        simulate(
            trace(arrivals), [pool()], Static(0, 4), Costs(2.0), scenario=Scenario(capacity_error=e)
        )
        for e in (1.0, 0.8)
    ]
    assert runs[0].slo_attainment == 1.0
    assert runs[1].slo_attainment < 0.2  # 32 req/s of capacity for 36: the queue only grows
    assert runs[0].total_cost == runs[1].total_cost


def test_cold_starts_come_from_a_tail_above_the_declared_ones():
    p = pool(node_cold_s=60, load_s=40)
    ready_at = []
    for seed in range(40):
        out = simulate(
            trace(np.zeros(2000)),
            [p],
            Static(0, 1),
            Costs(2.0),
            seed=seed,
            scenario=Scenario(cold_start_tail=2.0),
            keep_timeline=True,
        )
        assert out.timeline is not None
        ready_at.append(int(np.argmax(out.timeline.ready[0] > 0)))
    waits = np.array(ready_at)
    assert waits.min() >= 100  # never faster than declared
    assert np.quantile(waits, 0.5) > 105 and waits.max() <= 2 * 100 * 1.3


def test_a_stockout_takes_every_spot_replica_until_it_ends():
    spot = pool(name="spot", spot=True, notice_s=30, load_s=20)
    scenario = Scenario(stockouts=((600.0, 1200.0),))
    out = simulate(
        trace(np.full(3000, 20.0)),
        [spot],
        Static(0, 3),
        Costs(2.0),
        scenario=scenario,
        keep_timeline=True,
    )
    assert out.timeline is not None
    ready = out.timeline.ready[0]
    assert ready[599] == 3 and ready[600:1800].max() == 0
    assert ready[1819] == 0 and ready[1820] == 3  # requested at the end, then the model load


def _view_policy(policy, outage: Outage, steps: int = 1800):
    """A policy's desired counts over a run with one outage, at 1 req/s per 10 req/s replica."""
    arrivals = np.concatenate([np.full(600, 30.0), np.full(steps - 600, 5.0)])
    out = simulate(
        trace(arrivals),
        [pool()],
        policy,
        Costs(5.0),
        start=Start((4,)),
        scenario=Scenario(outages=(outage,)),
        keep_timeline=True,
    )
    assert out.timeline is not None
    return out.timeline.ready[0]


def test_hpa_holds_while_prometheus_is_down():
    ready = _view_policy(HPA(0, 0.7, 1, 40), Outage(500.0, 900.0, "down"))
    assert ready[590] >= 4 and (ready[600:1400] == ready[600]).all()  # holds through the drop
    assert ready[-1] < ready[600]  # and scales down once the metric is back


@pytest.mark.parametrize(
    ("keda", "kind", "want"),
    [
        (KEDA(0, 5.0, 1, 40), "gap", "min"),  # ignoreNullValues: empty reads as 0
        (KEDA(0, 5.0, 1, 40, ignore_null_values=False), "gap", "hold"),
        (KEDA(0, 5.0, 1, 40), "down", "hold"),
        (KEDA(0, 5.0, 1, 40, fallback_replicas=9), "down", "fallback"),
    ],
)
def test_keda_meets_an_outage_as_documented(keda, kind, want):
    ready = _view_policy(keda, Outage(400.0, 500.0, kind))
    assert ready[390] >= 6  # before the outage it follows its polled value (30 req/s / 5)
    during = ready[850:900]
    if want == "min":
        assert during.max() == 1
    elif want == "hold":
        assert (during == ready[400]).all()
    else:
        assert (during == 9).all()


def test_costscaler_holds_on_an_outage_and_the_oracle_sees_the_truth(lineup):
    scenario = Scenario(capacity_error=0.8, outages=(Outage(900.0, 600.0, "nan"),))
    settings = dataclasses.replace(lineup.settings, scenario=scenario)
    world = Lineup(lineup.deployment, lineup.pools, settings)
    arrivals = np.concatenate([np.full(1200, 10.0), np.full(1200, 25.0)])
    rows = {
        o.policy: o
        for o in world.run(["costscaler", "oracle"], trace(arrivals), keep_timeline=True)
    }
    ready = rows["costscaler"].timeline.ready  # type: ignore[union-attr]
    on_demand = np.array([not m.spot for m in world.models])
    # The load rose at 1200: it held anyway. Spot replicas may only be lost meanwhile.
    assert (ready[on_demand, 920:1500] == ready[on_demand, 920:921]).all()
    assert (ready[:, 920:1500] <= ready[:, 920:921]).all()
    truth = [dataclasses.replace(m, capacity_rps=0.8 * m.capacity_rps) for m in world.models]
    limits = SpotLimits(world.deployment.spec.spot.max_fraction, 1)
    got = rows["costscaler"].slo_attainment
    bound = lower_bound(arrivals, 1.0, truth, world.costs.threshold_s, got, spot=limits)
    assert rows["oracle"].replica_cost == pytest.approx(bound.replica_cost)
    assert rows["oracle"].replica_cost <= rows["costscaler"].replica_cost


def test_scenario_files_are_checked_by_field():
    got = scenario_from(
        {
            "name": "bad day",
            "capacityError": 0.8,
            "coldStartTail": 2,
            "stockouts": [{"startSeconds": 10, "durationSeconds": 7200}],
            "outages": [{"startSeconds": 5, "durationSeconds": 600, "kind": "stale"}],
        },
        "s.yaml",
    )
    assert got.stockouts == ((10.0, 7200.0),) and got.outages[0].kind == "stale"
    with pytest.raises(ValueError, match=r"s\.yaml: unknown field"):
        scenario_from({"capacity": 0.8}, "s.yaml")
    with pytest.raises(ValueError, match="capacity_error"):
        Scenario(capacity_error=0)
    with pytest.raises(ValueError, match="kind"):
        Scenario(outages=(Outage(0, 10, "maybe"),))  # type: ignore[arg-type]


def test_simulate_names_the_scenario(lineup):
    settings = Settings(scenario=Scenario(name="x", capacity_error=0.9))
    assert Lineup(lineup.deployment, lineup.pools, settings).settings.scenario.name == "x"
