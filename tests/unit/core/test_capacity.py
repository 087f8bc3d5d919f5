"""Replicas for a demand, and the calibrator's bounded, noise-robust corrections."""

from __future__ import annotations

import numpy as np
import pytest

from costscaler.core.capacity import (
    DRAIN_LAG,
    HALF_LIFE_S,
    MAX_SCALE,
    MIN_SCALE,
    STEP,
    calibrate,
    replicas_needed,
)


@pytest.mark.parametrize(
    ("demand", "per", "scale", "expected"),
    [
        pytest.param(0.0, 2.0, 1.0, 0, id="zero-load"),
        pytest.param(4.0, 2.0, 1.0, 2, id="exact"),
        pytest.param(4.0000000001, 2.0, 1.0, 2, id="float-noise-no-extra"),
        pytest.param(4.1, 2.0, 1.0, 3, id="fraction-rounds-up"),
        pytest.param(4.0, 2.0, 0.5, 4, id="calibrated-down"),
        pytest.param(float("nan"), 2.0, 1.0, 0, id="nan-is-zero"),
    ],
)
def test_replicas_needed(demand: float, per: float, scale: float, expected: int):
    assert replicas_needed(demand, per, scale) == expected


def _window(load: float, latency: float, n: int = 50, steady: bool = True):
    times = np.arange(n) * 15.0
    return (
        times,
        np.full(n, load * 10.0),
        np.linspace(latency, 1.01 * latency, n),  # creeping up, as a queue that grows
        np.full(n, 10.0),  # declared capacity of the ready replicas
        np.full(n, 1.0 if steady else 0.0),
    )


@pytest.mark.parametrize(
    ("load", "latency", "direction"),
    [
        pytest.param(1.3, 0.5, +1, id="met-above-rating-raises"),
        pytest.param(0.8, 2.0, -1, id="missed-below-rating-lowers"),
        pytest.param(0.8, 0.5, 0, id="met-below-rating-says-nothing"),
        pytest.param(1.3, 2.0, 0, id="missed-above-rating-says-nothing"),
        pytest.param(0.2, 2.0, 0, id="miss-at-low-load-is-an-outlier"),
    ],
)
def test_calibrate_direction(load: float, latency: float, direction: int):
    scale, _ = calibrate(1.0, -np.inf, *_window(load, latency), threshold_s=1.0)
    assert np.sign(round(scale - 1.0, 9)) == direction


def test_calibrate_converges_but_stays_bounded():
    scale, _ = calibrate(1.0, -np.inf, *_window(5.0, 0.1, n=2000), threshold_s=1.0)
    assert scale == pytest.approx(MAX_SCALE, rel=1e-3)
    scale, _ = calibrate(1.0, -np.inf, *_window(0.55, 9.0, n=2000), threshold_s=1.0)
    assert MIN_SCALE <= scale < 0.6


def test_one_bad_sample_moves_scale_by_at_most_one_step():
    times, rate, lat, declared, steady = _window(0.9, 0.5, n=20)
    lat[10] = 30.0  # one pathological latency at 90 % of rated load
    scale, _ = calibrate(1.0, -np.inf, times, rate, lat, declared, steady, threshold_s=1.0)
    assert 1.0 - STEP * 0.1 - 1e-12 <= scale < 1.0


def test_unsteady_and_nan_samples_are_ignored():
    times, rate, lat, declared, _ = _window(1.5, 0.5)
    unsteady = np.zeros_like(times)
    assert calibrate(1.0, -np.inf, times, rate, lat, declared, unsteady, 1.0)[0] == 1.0
    steady = np.ones_like(times)
    nan_lat = np.full_like(times, np.nan)
    assert calibrate(1.0, -np.inf, times, rate, nan_lat, declared, steady, 1.0)[0] == 1.0


def test_each_sample_is_consumed_once():
    window = _window(1.5, 0.5)
    scale, until = calibrate(1.0, -np.inf, *window, threshold_s=1.0)
    again, until2 = calibrate(scale, until, *window, threshold_s=1.0)
    assert (again, until2) == (scale, until)


def test_a_draining_backlog_does_not_lower_capacity():
    """After a burst the queue drains: the latency misses but falls, or holds on a histogram
    step, while the replicas carry 80 % of their rating. That says they serve faster than
    requests come; weak replicas (the same load, a queue and a latency that grow) lower it."""
    times, rate, _, declared, steady = _window(0.8, 0.0, n=20)
    draining = np.linspace(30.0, 1.5, times.size)
    seen = times[DRAIN_LAG - 1]  # consumed by earlier ticks: the lag has its past
    assert calibrate(1.0, seen, times, rate, draining, declared, steady, 1.0)[0] == 1.0
    steps = np.repeat(np.linspace(30.0, 1.5, times.size // 2), 2)
    assert calibrate(1.0, seen, times, rate, steps, declared, steady, 1.0)[0] == 1.0
    growing = np.linspace(1.5, 6.0, times.size)
    assert calibrate(1.0, seen, times, rate, growing, declared, steady, 1.0)[0] < 1.0


def test_without_fresh_evidence_the_scale_returns_to_the_declared_capacity():
    """A start-up backlog lowered the scale to 0.8; the plan sized on it never loads the
    replicas enough to show otherwise. One half-life of quiet samples halves the gap."""
    n = int(HALF_LIFE_S / 15.0) + 1
    times, rate, lat, declared, steady = _window(0.3, 0.5, n=n)
    scale, _ = calibrate(0.8, -np.inf, times, rate, lat, declared, steady, 1.0)
    assert scale == pytest.approx(0.9, abs=1e-3)
    # A raised scale stays: the plan sized on it keeps showing whether it holds.
    assert calibrate(1.5, -np.inf, times, rate, lat, declared, steady, 1.0)[0] == 1.5
