"""Spot hazard: a Gamma posterior on each spot pool's interruption rate (per instance-hour).

The pool's declared `ratePerHour` is the prior mean, worth `PRIOR_HOURS` instance-hours of
evidence: Gamma(alpha0 = rate x PRIOR_HOURS, beta0 = PRIOR_HOURS). Each observed interval adds
the replicas lost to alpha and the instance-hours exposed (replicas running, ready or warming,
times the interval) to beta; the estimate is alpha / beta (losses per instance-hour). Evidence
decays with a half-life of `HALF_LIFE_HOURS` toward the prior, because spot markets change
(a zone that was calm last week can be reclaiming today).

Losses come in bursts (a zone reclaims many instances at once): a share of the hazard is
modelled as whole-pool events by the risk model (`core.risk`), the rest as independent losses.
The share is the pool's `interruption.burstShare` (default `DEFAULT_BURST_SHARE`), a Beta prior
worth `BURST_PRIOR_LOSSES` losses that the losses the operator observes update (`bursts`): a
loss is co-occurring when the pool lost another replica in the same sample interval.

`DEFAULT_BURST_SHARE` is measured on the real spot traces (../shared/spot, AWS p3.2xlarge):
the share of lost instances lost together with another instance of the same zone within one
sample (300 s). Only the 4-instance set can show it (the 1-instance zones lose one at a time):
369 of 600 lost instances, 0.62 (per zone 0.37, 0.52, 0.72; a burst took 71-84 % of the
running instances on average). Chance co-occurrence of independent losses at those rates is
under 0.1 of a loss's neighbours, so the figure is rounded down to 0.6.
Real GPU spot hazards run 0.2-0.7 per instance-hour (../shared/spot/README.md).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import numpy as np

from costscaler.core.types import FloatArray

PRIOR_HOURS = 24.0
HALF_LIFE_HOURS = 72.0
DEFAULT_BURST_SHARE = 0.6
BURST_PRIOR_LOSSES = 10.0


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
    # It is a sample or two per tick, so the sums run on plain floats.
    start = max(int(np.searchsorted(times, until, side="right")) - 1, 0)
    t: list[float] = times[start:].tolist()
    if len(t) < 2 or not t[-1] > until:
        return posterior
    span_h = [(b - a) / 3600.0 for a, b in itertools.pairwise(t)]
    new = [b > until for b in t[1:]]
    hours = sum(h for h, fresh in zip(span_h, new, strict=True) if fresh)
    decay = math.exp(-math.log(2.0) * hours / HALF_LIFE_HOURS) if hours > 0 else 1.0
    out = np.empty_like(posterior)
    for row, (run, gone) in enumerate(
        zip(running[:, start:].tolist(), lost[:, start:].tolist(), strict=True)
    ):
        losses = exposure = 0.0
        for h, fresh, r, k in zip(span_h, new, run[:-1], gone[1:], strict=True):
            e = r * h
            if fresh and math.isfinite(e) and math.isfinite(k) and e >= 0 and k >= 0:
                losses += k
                exposure += e
        alpha0, beta0 = prior_post[row]
        alpha, beta = posterior[row]
        out[row, 0] = max(alpha0 + (alpha - alpha0) * decay + losses, 0.0)
        out[row, 1] = max(beta0 + (beta - beta0) * decay + exposure, 1e-9)
    return out


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


def burst_prior(share: float) -> tuple[float, float]:
    """(co-occurring, all) losses of the burst-share prior: `share` worth BURST_PRIOR_LOSSES."""
    return min(max(share, 0.0), 1.0) * BURST_PRIOR_LOSSES, BURST_PRIOR_LOSSES


def burst_share(posterior: tuple[float, float]) -> float:
    """Posterior mean share of losses that come in bursts (co-occurring / all)."""
    together, total = posterior
    return min(max(together / total, 0.0), 1.0) if total > 0 else 0.0


def bursts(
    current: Mapping[str, tuple[float, float]],
    priors: Mapping[str, tuple[float, float]],
    times: FloatArray,
    lost: FloatArray,
    until: float,
) -> dict[str, tuple[float, float]]:
    """Update each spot pool's burst-share posterior with the samples after `until`.

    Rows of `lost` follow `priors`' order (replicas lost between samples k-1 and k). A sample
    that lost two or more replicas of a pool counts them all as co-occurring; evidence decays
    toward the prior with the hazard's half-life (in hours of samples seen), as bursts come
    and go with the market. A pool with no posterior yet starts at its prior.
    """
    out: dict[str, tuple[float, float]] = {}
    fresh = times > until
    hours = float(times[-1] - max(until, float(times[0]))) / 3600.0 if fresh.any() else 0.0
    decay = math.exp(-math.log(2.0) * hours / HALF_LIFE_HOURS) if hours > 0 else 1.0
    for row, name in enumerate(priors):
        k = lost[row][fresh]
        k = k[np.isfinite(k) & (k > 0)]
        (a0, b0), (a, b) = priors[name], current.get(name, priors[name])
        together = float(k[k >= 2].sum())
        out[name] = (a0 + (a - a0) * decay + together, b0 + (b - b0) * decay + float(k.sum()))
    return out
