"""Demand over the horizon: level, trend, seasonality and a band of quantiles."""

from __future__ import annotations

import numpy as np
import pytest

from costscaler.core.forecast import PRIOR_REL_SD, forecast

T = np.arange(240) * 15.0
RAMP_END = 10.0 + T[-1] / 60.0


@pytest.mark.parametrize(
    ("rate", "horizon", "lo", "hi"),
    [
        pytest.param(np.zeros(240), 300.0, 0.0, 0.0, id="zero-load"),
        pytest.param(np.full(240, 10.0), 300.0, 9.9, 10.1, id="constant"),
        pytest.param(
            10.0 + T / 60.0, 300.0, 10 + T[-1] / 60 + 4.5, 10 + T[-1] / 60 + 5.5, id="ramp"
        ),
        pytest.param(np.r_[np.full(200, 5.0), np.full(40, 20.0)], 300.0, 15.0, 26.0, id="step-up"),
    ],
)
def test_point_forecast(rate: np.ndarray, horizon: float, lo: float, hi: float):
    f = forecast(T, rate, horizon)
    assert lo <= f.point <= hi


def test_band_widens_with_noise_and_quantiles_are_ordered():
    rng = np.random.default_rng(7)
    calm = forecast(T, 20 + rng.normal(0, 0.5, 240), 300.0)
    noisy = forecast(T, 20 + rng.normal(0, 4.0, 240), 300.0)
    assert noisy.quantile(0.99) - noisy.quantile(0.5) > calm.quantile(0.99) - calm.quantile(0.5)
    qs = [noisy.quantile(q) for q in (0.1, 0.5, 0.9, 0.99, 0.999)]
    assert qs == sorted(qs)


def test_exceedance_matches_quantile():
    rng = np.random.default_rng(3)
    f = forecast(T, 30 + rng.normal(0, 3.0, 240), 300.0)
    for q in (0.5, 0.9, 0.99):
        assert f.exceedance(np.array([f.quantile(q)]))[0] == pytest.approx(1 - q, abs=2e-3)


def test_short_window_uses_the_prior_band():
    f = forecast(np.array([0.0]), np.array([10.0]), 300.0)
    assert f.point == 10.0
    assert f.bandwidth == pytest.approx(PRIOR_REL_SD * 10.0)


def test_nan_and_negative_samples_are_skipped():
    rate = np.full(240, 10.0)
    rate[::7] = np.nan
    rate[::11] = -5.0
    f = forecast(T, rate, 300.0)
    assert 9.9 <= f.point <= 10.1


def test_daily_seasonality_follows_yesterday():
    t = np.arange(0, 2 * 86400 + 1, 300.0)
    rate = 50 + 40 * np.sin(2 * np.pi * t / 86400)
    horizon = 3 * 3600.0
    expected = 50 + 40 * np.sin(2 * np.pi * (t[-1] + horizon) / 86400)
    with_season = forecast(t, rate, horizon, daily_seasonality=True)
    without = forecast(t, rate, horizon, daily_seasonality=False)
    assert abs(with_season.point - expected) < 3.0
    assert abs(with_season.point - expected) < abs(without.point - expected)


def test_long_windows_are_coarsened_but_still_follow_the_cycle():
    t = np.arange(0, 2 * 86400, 15.0)  # 11,520 samples
    rate = 50 + 40 * np.sin(2 * np.pi * t / 86400)
    horizon = 3600.0
    expected = 50 + 40 * np.sin(2 * np.pi * (t[-1] + horizon) / 86400)
    f = forecast(t, rate, horizon, daily_seasonality=True)
    assert abs(f.point - expected) < 3.0
