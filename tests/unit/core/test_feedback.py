"""SLO feedback: the risk target tightens while the window shows more misses than allowed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from core_helpers import OD, planner, steady

from costscaler.core.feedback import MIN_FACTOR, allowed_risk, missed_share
from costscaler.core.types import Observations

N = 10
RATE = np.full(N, 10.0)


@pytest.mark.parametrize(
    ("within", "rate", "expected"),
    [
        pytest.param(np.ones(N), RATE, 0.0, id="all-met"),
        pytest.param(np.r_[np.ones(8), 0.5, 0.5], RATE, 0.1, id="two-half-missed"),
        pytest.param(np.full(N, math.nan), RATE, 0.0, id="not-measured"),
        pytest.param(np.zeros(N), np.zeros(N), 0.0, id="no-traffic"),
        pytest.param(np.r_[0.0, np.ones(9)], np.r_[30.0, np.full(9, 10.0)], 0.25, id="weighted"),
        pytest.param(np.r_[1.5, -1.0, np.ones(8)], RATE, 0.0, id="out-of-range-skipped"),
    ],
)
def test_missed_share(within, rate, expected):
    assert missed_share(rate, within) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("missed", "expected"),
    [
        pytest.param(0.0, 0.01, id="none-missed"),
        pytest.param(0.01, 0.01, id="as-allowed"),
        pytest.param(0.04, 0.0025, id="four-times"),
        pytest.param(1.0, 0.01 * MIN_FACTOR, id="floored"),
    ],
)
def test_allowed_risk_never_loosens(missed: float, expected: float):
    assert allowed_risk(0.99, missed) == pytest.approx(expected)


def _with_within(obs: Observations, within: np.ndarray) -> Observations:
    return Observations(obs.times, obs.request_rate, obs.latency, ready=obs.ready, within=within)


def test_misses_in_the_window_buy_more_capacity_and_say_so():
    pl = planner([OD], attainment=0.99, slo_miss_cost_per_hour=5.0, replicas_max=40)
    obs = steady(11.0, ready={"od": 6})
    n = obs.times.size
    calm = pl.decide(_with_within(obs, np.ones(n)), {"od": 6}, 3600.0)
    missed = np.where(np.arange(n) % 10 == 0, 0.6, 1.0)  # 4 % of requests over the threshold
    pressed = pl.decide(_with_within(obs, missed), {"od": 6}, 3600.0)
    unmeasured = pl.decide(obs, {"od": 6}, 3600.0)
    assert pressed.replicas["od"] > calm.replicas["od"] == unmeasured.replicas["od"]
    assert "sized for 0.25% risk" in pressed.message and "sized for" not in calm.message
