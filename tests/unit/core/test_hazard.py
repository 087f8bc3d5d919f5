"""Spot hazard posteriors: the declared rate as a prior, updated by observed losses."""

from __future__ import annotations

import numpy as np
import pytest

from costscaler.core import hazard


def _window(hours: float, running: float, losses: int, n: int = 100):
    times = np.linspace(0.0, hours * 3600.0, n)
    lost = np.zeros(n)
    lost[1 : losses + 1] = 1.0
    return times, np.full(n, running), lost


@pytest.mark.parametrize(
    ("declared", "running", "hours", "losses", "direction"),
    [
        pytest.param(0.3, 4.0, 10.0, 0, -1, id="calm-lowers"),
        pytest.param(0.3, 4.0, 10.0, 40, +1, id="many-losses-raise"),
        pytest.param(0.0, 4.0, 1.0, 3, +1, id="zero-prior-learns"),
        pytest.param(0.3, 0.0, 10.0, 0, 0, id="no-exposure-no-change"),
    ],
)
def test_update_direction(declared: float, running: float, hours: float, losses: int, direction):
    p = hazard.prior(declared)
    post = hazard.update(p, p, *_window(hours, running, losses), until=-np.inf)
    assert np.sign(round(hazard.rate(post) - declared, 9)) == direction


def test_windows_are_not_counted_twice():
    p = hazard.prior(0.3)
    window = _window(5.0, 4.0, 10)
    once = hazard.update(p, p, *window, until=-np.inf)
    twice = hazard.update(once, p, *window, until=float(window[0][-1]))
    assert twice == once


def test_evidence_decays_toward_the_prior():
    p = hazard.prior(0.3)
    burst = hazard.update(p, p, *_window(1.0, 4.0, 20), until=-np.inf)
    times = np.linspace(3600.0, 3600.0 + 30 * 86400.0, 50)
    later = hazard.update(burst, p, times, np.zeros(50), np.zeros(50), until=3600.0)
    assert hazard.rate(later) == pytest.approx(0.3, rel=0.05)
    assert hazard.rate(burst) > 0.9  # (7.2 + 20) / (24 + 4)


def test_posteriors_start_new_pools_at_their_prior():
    none = np.zeros((1, 1))
    out = hazard.posteriors({}, {"s": hazard.prior(0.5)}, np.array([0.0]), none, none, -np.inf)
    assert hazard.rate(out["s"]) == pytest.approx(0.5)
