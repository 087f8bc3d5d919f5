"""SLO feedback: provision for a lower risk while the window shows more misses than allowed.

The optimiser bounds P(capacity < demand at the horizon) by 1 - attainment. That is a proxy
for the SLO, not the SLO: requests also miss while a queue built in a burst shorter than a
tick drains, while replicas warm that the forecast did not see coming, and when the demand
band is narrower than the workload's real swings. Where the metrics give the share of
requests within the latency threshold per scrape interval (`Observations.within`: a
histogram's bucket at the threshold over its count), the window says how the proxy fared:
`missed` = the rate-weighted share of requests over the threshold. When it exceeds the
allowed 1 - attainment, the risk the plan may carry is scaled by allowed / missed, down to
`MIN_FACTOR`:

    allowed risk = (1 - attainment) x max(MIN_FACTOR, min(1, (1 - attainment) / missed))

It never loosens the target (factor <= 1) and forgets with the window: misses older than
`forecast.windowSeconds` no longer count. (The SLO-quantile latency alone cannot drive it:
a minute whose p95 missed may hold 5 % of misses or all of them. Tried on the shared traces
with that signal, it bought capacity where the SLO was already met; see issue #3.)
"""

from __future__ import annotations

import numpy as np

from costscaler.core.types import FloatArray

MIN_FACTOR = 0.1


def missed_share(rate: FloatArray, within: FloatArray) -> float:
    """Rate-weighted share of requests over the threshold in the window (0 without data).

    Samples with no rate, or a share that is not a number in [0, 1], say nothing.
    """
    ok = np.isfinite(rate) & (rate > 0) & np.isfinite(within) & (within >= 0) & (within <= 1)
    total = float(rate[ok].sum())
    if total <= 0:
        return 0.0
    return float(rate[ok] @ (1.0 - within[ok])) / total


def allowed_risk(attainment: float, missed: float) -> float:
    """The risk the plan may carry (see the module docstring)."""
    allowed = 1.0 - attainment
    if missed <= allowed or allowed <= 0:
        return allowed
    return allowed * max(MIN_FACTOR, allowed / missed)
