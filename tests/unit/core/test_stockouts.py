"""Stock-outs, readiness blips and a replica minimum beyond quota (issues 14 item 4, 18 item 5).

A pool the cluster cannot place replicas on is out at once and retried with exponential
back-off (1 min doubling to 30 min, kept in EngineState); a control-plane readiness blip is
a hold, not a stall; replicas.min past the pools' maxima says so.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from core_helpers import OD, SPOT_A, planner, steady
from hypothesis import given, settings
from hypothesis import strategies as st

from costscaler.core import EngineState, Observations, Reason, supply
from costscaler.core.stock import RETRY_FIRST_S, RETRY_MAX_S, backoff, blip, out_of_stock

NOW = 3600.0


def _with(obs: Observations, **series: dict[str, float]) -> Observations:
    """`obs` with per-pool series: `ready` over the whole window, the others (warming,
    unfulfillable) in the latest sample only (a scale-up asked just now)."""
    n = obs.times.size
    fields = {}
    for key, values in series.items():
        fields[key] = {p: np.full(n, float(v)) for p, v in values.items()}
        if key != "ready":
            for arr in fields[key].values():
                arr[:-1] = 0.0
    fields.setdefault("ready", dict(obs.ready))
    return Observations(obs.times, obs.request_rate, obs.latency, obs.token_rate, **fields)


def _spot_and_od():
    # Spot is cheaper per req/s: without a stock-out the plan leans on it.
    return planner([OD, SPOT_A], spot_max_fraction=1.0, replicas_max=20)


# --- back-off, as a table -------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "signal", "now", "after"),
    [
        pytest.param({}, {"a": 2}, 100.0, {"a": (160.0, 60.0)}, id="first-stockout-1-min"),
        pytest.param({}, {"a": 0}, 100.0, {}, id="no-signal-no-record"),
        pytest.param(
            {"a": (160.0, 60.0)}, {"a": 1}, 130.0, {"a": (160.0, 60.0)}, id="still-out-stands"
        ),
        pytest.param(
            {"a": (160.0, 60.0)}, {"a": 1}, 175.0, {"a": (295.0, 120.0)}, id="retry-failed-doubles"
        ),
        pytest.param(
            {"a": (1000.0, 1200.0)}, {"a": 1}, 1000.0, {"a": (2800.0, 1800.0)}, id="capped-30-min"
        ),
        pytest.param(
            {"a": (1000.0, 1800.0)}, {"a": 1}, 1000.0, {"a": (2800.0, 1800.0)}, id="stays-30-min"
        ),
        pytest.param(
            {"a": (160.0, 60.0)}, {}, 160.0 + 1800.0, {}, id="forgotten-after-quiet-30-min"
        ),
        pytest.param(
            {"a": (160.0, 60.0)}, {}, 1000.0, {"a": (160.0, 60.0)}, id="kept-while-recent"
        ),
    ],
)
def test_backoff_table(before, signal, now, after):
    assert backoff(before, signal, now) == after


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(1.0, 4000.0), st.integers(0, 3)), min_size=1, max_size=30))
def test_backoff_stays_between_a_minute_and_half_an_hour(ticks):
    """Any run of signals: every back-off is 60 s doubled (at most 1800 s), a pool with
    unplaced replicas is out at that tick, and the retry never comes before now."""
    state: dict[str, tuple[float, float]] = {}
    now = 0.0
    for dt, unplaced in ticks:
        now += dt
        state = backoff(state, {"a": unplaced}, now)
        for until, wait in state.values():
            assert until <= now + wait
            assert wait in {60.0, 120.0, 240.0, 480.0, 960.0, 1800.0}
            assert RETRY_FIRST_S <= wait <= RETRY_MAX_S
        if unplaced:
            assert out_of_stock(state, now) == {"a"}


# --- the engine -------------------------------------------------------------------------


def test_an_unplaceable_pool_is_out_within_one_tick_and_its_share_moves():
    pl = _spot_and_od()
    current = {"od": 1, "spot-a": 6}
    window = _with(steady(12.0, now=NOW), ready={"od": 1, "spot-a": 2}, warming={"spot-a": 4})
    unaware = pl.decide(window, current, NOW)
    assert unaware.replicas["spot-a"] > 2  # today: the cheap pool still carries the load
    obs = _with(
        window, ready={"od": 1, "spot-a": 2}, warming={"spot-a": 4}, unfulfillable={"spot-a": 4}
    )
    d = pl.decide(obs, current, NOW)
    assert d.replicas["spot-a"] <= 2  # held at what it has ready
    # The share moved to on-demand, not lost: the plan still covers its demand quantile.
    assert d.replicas["od"] > current["od"]
    served = sum(d.replicas.values()) * OD.capacity_rps * d.state.capacity_scale
    assert served >= d.demand_rps and d.slo_risk <= 0.01
    assert d.out_of_stock == ("spot-a",)
    assert d.reason == Reason.POOL_OUT_OF_STOCK
    assert "spot-a retried in 60 s" in d.message
    assert d.state.stockouts == {"spot-a": (NOW + 60.0, 60.0)}


def test_an_out_of_stock_pool_keeps_the_replicas_already_placed():
    """Replicas warming that the cluster did place (a node launched, a model loading) are not
    cut: moving them would pay their cold start again elsewhere. Only new ones stop."""
    pl = _spot_and_od()
    current = {"od": 1, "spot-a": 6}
    obs = _with(
        steady(12.0, now=NOW),
        ready={"od": 1, "spot-a": 2},
        warming={"spot-a": 4},
        unfulfillable={"spot-a": 1},
    )
    d = pl.decide(obs, current, NOW)
    assert d.out_of_stock == ("spot-a",)
    ready = np.array([1, 2])
    maxima = supply.deliverable(pl, obs, ready, NOW, d.state)
    assert maxima.tolist() == [pl.max_replicas[0], 2 + 3]  # ready + placed warming
    assert d.replicas["spot-a"] <= 5


def test_the_pool_is_retried_after_its_back_off_and_a_failed_retry_doubles_it():
    pl = _spot_and_od()
    obs = _with(steady(12.0, now=NOW), unfulfillable={"spot-a": 3})
    d = pl.decide(obs, {"od": 6, "spot-a": 3}, NOW)
    assert d.replicas["spot-a"] == 0
    later = NOW + RETRY_FIRST_S
    quiet = steady(12.0, now=later, ready={"od": 7})
    retry = pl.decide(quiet, d.replicas, later, d.state)
    assert retry.replicas["spot-a"] > 0 and retry.out_of_stock == ()
    failed = _with(steady(12.0, now=later + 15.0, ready={"od": 7}), unfulfillable={"spot-a": 2})
    again = pl.decide(failed, retry.replicas, later + 15.0, retry.state)
    assert again.replicas["spot-a"] == 0
    assert again.state.stockouts["spot-a"] == (later + 15.0 + 120.0, 120.0)


def test_without_metrics_unplaceable_replicas_move_and_the_rest_holds():
    """No pod runs, so no metrics: holding the Pending replica would hold forever. The hold
    moves what the pool cannot place and keeps everything else (found on the real cluster)."""
    pl = _spot_and_od()
    obs = _with(steady(float("nan"), now=NOW), ready={"od": 2}, unfulfillable={"spot-a": 3})
    d = pl.decide(obs, {"od": 2, "spot-a": 3}, NOW)
    assert d.reason == Reason.METRICS_UNAVAILABLE
    assert d.replicas == {"od": 5, "spot-a": 0}  # total held, the unplaceable three moved
    assert d.out_of_stock == ("spot-a",) and "Out of stock" in d.message
    assert d.state.stockouts == {"spot-a": (NOW + 60.0, 60.0)}
    quiet = pl.decide(steady(float("nan"), now=NOW), {"od": 2, "spot-a": 3}, NOW)
    assert quiet.replicas == {"od": 2, "spot-a": 3}  # no signal: the plain hold


def test_a_retried_pool_is_probed_with_one_replica_a_tick():
    """After its back-off the pool is on probation: one replica more than it has placed per
    tick, so a scale-up is not bet on capacity that may still be missing."""
    pl = _spot_and_od()
    state = EngineState(stockouts={"spot-a": (NOW - 1.0, 60.0)})
    obs = _with(steady(40.0, now=NOW), ready={"od": 4, "spot-a": 2})
    assert supply.deliverable(pl, obs, np.array([4, 2]), NOW, state).tolist() == [
        pl.max_replicas[0],
        3,
    ]
    d = pl.decide(obs, {"od": 4, "spot-a": 2}, NOW, state)
    assert d.replicas["spot-a"] <= 3 and d.out_of_stock == ()
    later = NOW - 1.0 + RETRY_MAX_S  # no new signal for the longest back-off: forgotten
    forgotten = EngineState(stockouts=backoff(d.state.stockouts, {}, later))
    assert forgotten.stockouts == {}
    assert supply.deliverable(pl, obs, np.array([4, 2]), later, forgotten)[1] == 20


def test_stockouts_survive_a_restart_through_the_state_dict():
    state = EngineState(stockouts={"spot-a": (3660.0, 120.0)})
    assert EngineState.from_dict(state.to_dict()) == state
    assert EngineState.from_dict({}).stockouts == {}
    with pytest.raises(ValueError, match="stockouts"):
        EngineState.from_dict({"stockouts": {"a": [1.0, 0.0]}})


def test_a_bad_unfulfillable_sample_is_ignored():
    pl = _spot_and_od()
    obs = _with(steady(12.0, now=NOW), unfulfillable={"spot-a": float("nan"), "nope": 3})
    d = pl.decide(obs, {}, NOW)
    assert d.out_of_stock == () and d.state.stockouts == {}


# --- readiness blips --------------------------------------------------------------------


def _blip_window(ready_now: dict[str, float], warming_now: dict[str, float]) -> Observations:
    obs = steady(12.0, now=NOW, ready={"od": 3, "spot-a": 4})
    ready = {p: a.copy() for p, a in obs.ready.items()}
    warming = {p: np.zeros(obs.times.size) for p in ready}
    for p in ready:
        ready[p][-1], warming[p][-1] = ready_now[p], warming_now[p]
    return Observations(obs.times, obs.request_rate, obs.latency, ready=ready, warming=warming)


def test_all_pools_going_not_ready_together_is_a_hold_not_a_stall():
    pl = _spot_and_od()
    current = {"od": 3, "spot-a": 4}
    obs = _blip_window({"od": 0, "spot-a": 0}, {"od": 3, "spot-a": 4})
    state = EngineState()
    d = pl.decide(obs, current, NOW, state)
    assert d.reason == Reason.CLUSTER_NOT_READY
    assert d.replicas == current
    # The blip's samples are consumed without learning a spot loss from them.
    assert d.state.hazard_until == NOW and d.state.hazard == state.hazard


def test_a_spot_pool_losing_its_replicas_alone_is_not_a_blip():
    pl = _spot_and_od()
    obs = _blip_window({"od": 3, "spot-a": 0}, {"od": 0, "spot-a": 4})
    d = pl.decide(obs, {"od": 3, "spot-a": 4}, NOW)
    assert d.reason != Reason.CLUSTER_NOT_READY


@pytest.mark.parametrize(
    ("ready_now", "warming_now", "spot", "expected"),
    [
        pytest.param([0, 0], [3, 4], [False, True], True, id="all-not-ready"),
        pytest.param([1, 2], [2, 2], [False, True], True, id="half-or-more-each"),
        pytest.param([3, 0], [0, 4], [False, True], False, id="one-pool-only"),
        pytest.param([0, 0], [0, 0], [False, True], False, id="scaled-down"),
        pytest.param([0, 0], [3, 4], [True, True], False, id="spot-only-may-be-reclaims"),
    ],
)
def test_blip_table(ready_now, warming_now, spot, expected):
    times = np.arange(0.0, 300.0, 15.0)
    ready = np.array([[3.0] * times.size, [4.0] * times.size])
    warming = np.zeros_like(ready)
    ready[:, -1], warming[:, -1] = ready_now, warming_now
    assert blip(times, ready, warming, np.array(spot)) is expected


# --- replicas.min beyond the pools' quotas ----------------------------------------------


def test_a_minimum_beyond_quota_says_so_not_cost_optimal():
    small = replace(SPOT_A, max_replicas=4)
    pl = planner([replace(OD, max_replicas=8), small], replicas_min=10000, replicas_max=20000)
    d = pl.decide(steady(2.0, now=NOW), {}, NOW)
    assert d.reason == Reason.MIN_BEYOND_QUOTA
    assert d.quota_shortfall == 10000 - 12 and d.total_replicas == 12
    assert "replicas.min 10000" in d.message and "hold together (12)" in d.message
