"""decide(): the entry point on the API models, bad data, keep-alive, state and explanations."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from core_helpers import OD, SPOT_A, SPOT_B, planner, steady

from costscaler.api import CapacityPool, InferenceDeployment, load_manifests
from costscaler.core import EngineState, Observations, Planner, Reason, Settings, decide

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture(scope="module")
def llama() -> tuple[InferenceDeployment, list[CapacityPool]]:
    resources = load_manifests(EXAMPLES)
    dep = next(
        r
        for r in resources
        if isinstance(r, InferenceDeployment) and r.metadata.name == "llama-3-1-8b"
    )
    return dep, [r for r in resources if isinstance(r, CapacityPool)]


def test_decide_on_the_examples(llama):
    dep, pools = llama
    d = decide(dep.spec, pools, steady(12.0, now=1000.0), {}, 1000.0)
    assert set(d.replicas) == {p.name for p in dep.spec.pools}
    assert d.reason == Reason.COST_OPTIMAL
    assert d.metrics_available and 0.0 <= d.slo_risk <= 1.0 - dep.spec.slo.attainment
    capacity = {"L4": 1.6, "A10G": 2.6, "A100-40GB": 7.0}
    by_name = {p.name: p.spec.accelerator.type for p in pools}
    served = sum(n * capacity[by_name[k]] for k, n in d.replicas.items())
    assert served >= 12.0
    names = [a.name for a in d.alternatives]
    assert names[0] == "chosen"
    assert {"cheapest-on-demand", "max-spot", "current"} <= set(names)
    assert d.horizon_s == 240 + 120  # p4d's node cold start + model load


def _bad(kind: str) -> tuple[Observations, float]:
    obs = steady(10.0, now=1000.0, ready={"od": 4})
    now = 1000.0
    rate = obs.request_rate.copy()
    lat = obs.latency.copy()
    ready = dict(obs.ready)
    if kind == "nan-rate":
        rate[-1] = math.nan
    elif kind == "inf-rate":
        rate[-1] = math.inf
    elif kind == "negative-rate":
        rate[-1] = -1.0
    elif kind == "inf-latency":
        lat[-1] = math.inf
    elif kind == "negative-ready":
        ready = {"od": np.r_[np.full(239, 4.0), -1.0]}
    elif kind == "stale":
        now = 1000.0 + 600.0
    elif kind == "future":
        now = 1000.0 - 60.0
    elif kind == "empty":
        return Observations(np.zeros(0), np.zeros(0), np.zeros(0)), now
    return Observations(obs.times, rate, lat, ready=ready), now


BAD = ["nan-rate", "inf-rate", "negative-rate", "inf-latency", "negative-ready", "stale", "future"]


@pytest.mark.parametrize("kind", [*BAD, "empty"])
def test_bad_data_holds_and_never_scales_down(kind: str):
    pl = planner([OD, SPOT_A], replicas_max=10)
    obs, now = _bad(kind)
    state = EngineState(capacity_scale=1.2)
    d = pl.decide(obs, {"od": 4, "spot-a": 0}, now, state)
    assert d.reason == Reason.METRICS_UNAVAILABLE
    assert not d.metrics_available
    assert d.replicas == {"od": 4, "spot-a": 0}
    assert d.state == state  # nothing learned from bad data


def test_bad_data_with_nothing_running_holds_the_last_decision():
    pl = planner([OD, SPOT_A])
    obs, now = _bad("nan-rate")
    d = pl.decide(obs, {}, now, EngineState(last_replicas={"od": 3}))
    assert d.replicas == {"od": 3, "spot-a": 0}


def test_bad_data_still_respects_replica_bounds():
    pl = planner([OD], replicas_min=2, replicas_max=5)
    obs, now = _bad("nan-rate")
    assert pl.decide(obs, {"od": 9}, now).replicas == {"od": 5}
    assert pl.decide(obs, {"od": 0}, now).replicas == {"od": 2}


def test_unit_costs_follow_the_latest_rates():
    obs = steady(3.6)
    obs = Observations(obs.times, obs.request_rate, obs.latency, token_rate=obs.request_rate * 100)
    d = planner([OD]).decide(obs, {}, 3600.0)
    assert d.cost_per_1k_requests == pytest.approx(d.cost_per_hour / (3.6 * 3.6))
    assert d.cost_per_million_tokens == pytest.approx(d.cost_per_hour / (360 * 3600) * 1e6)
    idle = planner([OD]).decide(steady(0.0), {}, 3600.0)
    assert math.isnan(idle.cost_per_1k_requests) and math.isnan(idle.cost_per_million_tokens)


def test_idle_accelerators_are_the_unused_share():
    d = planner([OD], replicas_min=4).decide(steady(2.0), {}, 3600.0)
    assert d.replicas["od"] == 4  # 8 req/s of capacity for 2 req/s
    assert d.idle_accelerators == pytest.approx(4 * (1 - 2.0 / 8.0))


def test_nan_latency_is_not_bad_data():
    obs = steady(10.0, latency=math.nan)
    assert planner().decide(obs, {}, 3600.0).reason != Reason.METRICS_UNAVAILABLE


def test_surplus_is_kept_alive_then_released():
    pl = planner([OD], replicas_max=20, slo_miss_cost_per_hour=10.0)
    now, state = 3600.0, None
    d = pl.decide(steady(2.0, now=now, ready={"od": 10}), {"od": 10}, now, state)
    assert d.reason == Reason.KEEP_ALIVE and d.replicas["od"] == 10
    alt = {a.name: a for a in d.alternatives}["without-keep-alive"]
    assert alt.replicas["od"] < 10
    for _ in range(200):
        now += 15.0
        d = pl.decide(steady(2.0, now=now, ready={"od": 10}), {"od": 10}, now, d.state)
        if d.replicas["od"] < 10:
            break
    held_for = now - 3600.0
    assert 300.0 <= held_for < 3000.0  # at least the cold start, released in the end
    assert d.reason == Reason.COST_OPTIMAL


def test_new_demand_resets_the_keep_alive_clock():
    pl = planner([OD], replicas_max=20)
    d = pl.decide(steady(2.0, ready={"od": 10}), {"od": 10}, 3600.0)
    assert "od" in d.state.idle_since
    d = pl.decide(steady(19.0, now=3615.0), {"od": 10}, 3615.0, d.state)
    assert "od" not in d.state.idle_since


def test_observed_spot_losses_raise_the_hazard():
    pl = planner([OD, SPOT_A], spot_max_fraction=1.0)
    obs = steady(10.0, ready={"spot-a": 5})
    lost = np.zeros(240)
    lost[::20] = 2.0
    calm = pl.decide(obs, {}, 3600.0)
    stormy = pl.decide(
        Observations(
            obs.times, obs.request_rate, obs.latency, ready=obs.ready, lost={"spot-a": lost}
        ),
        {},
        3600.0,
    )
    assert stormy.state.hazard["spot-a"][0] > calm.state.hazard["spot-a"][0]


def test_state_round_trips_through_json():
    pl = planner([OD, SPOT_A, SPOT_B])
    d = pl.decide(steady(10.0, ready={"od": 7}), {"od": 7}, 3600.0)
    text = json.dumps(d.state.to_dict())
    assert EngineState.from_dict(json.loads(text)) == d.state
    assert EngineState.from_dict(EngineState().to_dict()) == EngineState()


def test_a_single_keep_alive_clock_from_an_older_state_still_reads():
    assert EngineState.from_dict({"idleSince": {"od": 12.0}}).idle_since == {"od": (12.0,)}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"version": 99}, id="unknown-version"),
        pytest.param({"capacityScale": -1}, id="negative-scale"),
        pytest.param({"hazard": {"s": [1.0]}}, id="short-hazard"),
        pytest.param({"hazard": {"s": [1.0, 0.0]}}, id="zero-exposure"),
        pytest.param({"idleSince": ["x"]}, id="idle-not-a-map"),
        pytest.param({"idleSince": {"od": ["x"]}}, id="idle-clock-not-a-time"),
    ],
)
def test_malformed_state_is_a_clear_error(data: dict[str, object]):
    with pytest.raises(ValueError, match="engine state is malformed"):
        EngineState.from_dict(data)


def test_decide_is_deterministic(llama):
    dep, pools = llama
    obs = steady(9.0, now=500.0, ready={"g6-xlarge-l4-spot": 2})
    a = decide(dep.spec, pools, obs, {"g6-xlarge-l4-spot": 2}, 500.0)
    b = decide(dep.spec, pools, obs, {"g6-xlarge-l4-spot": 2}, 500.0)
    assert repr(a) == repr(b)


def test_a_decision_without_alternatives_is_the_same_decision(llama):
    """The simulator asks for none: everything else it replays must not change."""
    dep, pools = llama
    obs = steady(9.0, now=500.0, ready={"g6-xlarge-l4-spot": 2})
    full = decide(dep.spec, pools, obs, {"g6-xlarge-l4-spot": 2}, 500.0)
    bare = decide(dep.spec, pools, obs, {"g6-xlarge-l4-spot": 2}, 500.0, alternatives=False)
    assert len(full.alternatives) >= 3 and bare.alternatives == ()
    assert replace(bare, alternatives=full.alternatives) == full


def test_no_eligible_pool_is_an_error():
    with pytest.raises(ValueError, match="no eligible pools"):
        Planner([], Settings(latency_threshold_s=1.0))
