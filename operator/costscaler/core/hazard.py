"""Spot hazard: a Gamma posterior on each spot pool's interruption rate (per instance-hour).

The pool's declared `ratePerHour` is the prior mean, worth `PRIOR_HOURS` instance-hours of
evidence: Gamma(alpha0 = rate x PRIOR_HOURS, beta0 = PRIOR_HOURS). Each observed interval adds
the replicas lost to alpha and the instance-hours exposed (replicas running, ready or warming,
times the interval) to beta; the estimate is alpha / beta (losses per instance-hour). Evidence
decays with a half-life of `HALF_LIFE_HOURS` toward the prior, because spot markets change
(a zone that was calm last week can be reclaiming today).

Losses come in bursts (a zone reclaims many instances at once): `BURST_SHARE` of the hazard is
modelled as whole-pool events by the optimizer (see `core.allocate`), the rest as independent
losses. Real GPU spot hazards run 0.2-0.7 per instance-hour (../shared/spot/README.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from costscaler.core.types import FloatArray

PRIOR_HOURS = 24.0
HALF_LIFE_HOURS = 72.0
BURST_SHARE = 0.5


def prior(rate_per_hour: float) -> tuple[float, float]:
    """(alpha, beta) of the prior: a declared rate worth PRIOR_HOURS instance-hours."""
    return max(rate_per_hour, 0.0) * PRIOR_HOURS, PRIOR_HOURS


def rate(posterior: tuple[float, float]) -> float:
    """Posterior mean interruption rate, losses per instance-hour."""
    alpha, beta = posterior
    return alpha / beta


def update(
    posterior: tuple[float, float],
    prior_post: tuple[float, float],
    times: FloatArray,
    running: FloatArray,
    lost: FloatArray,
    until: float,
) -> tuple[float, float]:
    """Fold the intervals ending after `until` into `posterior` (decayed toward `prior_post`).

    `running[k]`: spot replicas of the pool running (ready + warming) at sample k; `lost[k]`:
    replicas lost between samples k-1 and k. Non-finite or negative values are skipped.
    """
    post = np.array([posterior], dtype=np.float64)
    prior_arr = np.array([prior_post], dtype=np.float64)
    out = update_many(post, prior_arr, times, running[None, :], lost[None, :], until)
    return float(out[0, 0]), float(out[0, 1])


def update_many(
    posterior: FloatArray,
    prior_post: FloatArray,
    times: FloatArray,
    running: FloatArray,
    lost: FloatArray,
    until: float,
) -> FloatArray:
    """`update` for several pools at once: rows of (alpha, beta) and of samples per pool."""
    # Only the tail after `until` is new (times increase): work on it, not the whole window.
    start = max(int(np.searchsorted(times, until, side="right")) - 1, 0)
    times, running, lost = times[start:], running[:, start:], lost[:, start:]
    if times.size < 2:
        return posterior
    new = times[1:] > until
    if not new.any():
        return posterior
    span_h = np.diff(times) / 3600.0
    exposure = running[:, :-1] * span_h
    losses = lost[:, 1:]
    ok = new & np.isfinite(exposure) & np.isfinite(losses) & (exposure >= 0) & (losses >= 0)
    hours = float(span_h[new].sum())
    decay = math.exp(-math.log(2.0) * hours / HALF_LIFE_HOURS) if hours > 0 else 1.0
    gained = np.stack(
        (np.where(ok, losses, 0.0).sum(axis=1), np.where(ok, exposure, 0.0).sum(axis=1)), axis=1
    )
    out = prior_post + (posterior - prior_post) * decay + gained
    return np.asarray(np.maximum(out, np.array([0.0, 1e-9])), dtype=np.float64)


def posteriors(
    current: Mapping[str, tuple[float, float]],
    priors: Mapping[str, tuple[float, float]],
    times: FloatArray,
    running: FloatArray,
    lost: FloatArray,
    until: float,
) -> dict[str, tuple[float, float]]:
    """Update every spot pool's posterior; rows of `running` and `lost` follow `priors`' order.

    A pool with no posterior yet starts at its prior.
    """
    names = list(priors)
    if not names:
        return {}
    prior_arr = np.array([priors[n] for n in names], dtype=np.float64)
    post = np.array([current.get(n, priors[n]) for n in names], dtype=np.float64)
    out = update_many(post, prior_arr, times, running, lost, until)
    return {n: (float(a), float(b)) for n, (a, b) in zip(names, out.tolist(), strict=True)}
