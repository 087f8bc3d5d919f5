"""Latency versus load for one replica: the share of its requests over the SLO threshold.

Model (per pool, i.e. per accelerator profile). A continuously batching model server holds
up to m requests in flight; each takes the idle latency b seconds. As a queue that is
M/M/m (Poisson arrivals, exponential service, m servers) with

    c  = rated req/s of one replica (`requestsPerSecond`, corrected by the calibrator):
         the rate at which the replica saturates, m / s;
    m  = max(1, c b) concurrent slots (continuous: Erlang's formulas hold for real m);
    s  = m / c, the service time of one request (= b whenever c b >= 1);
    u  = lambda / c, the replica's utilisation at per-replica arrival rate lambda (req/s).

A request's latency is s plus its wait W in the queue. For u < 1 the wait exceeds t with
P(W > t) = ErlangC(m, m u) exp(-(c - lambda) t), so the share of requests over the
threshold L is

    v(u) = ErlangC(m, m u) x exp(-c (1 - u) (L - s))          for u < 1,  1 for u >= 1,

dimensionless, in [0, 1], non-decreasing in u, and 1 at u = 1 (ErlangC(m, m) = 1).
ErlangC(m, a) = B / (1 - (a / m)(1 - B)) with Erlang B in closed form for real m,
B(m, a) = Poisson(m; a) / Q(m + 1, a), Q the regularised upper incomplete gamma
(`scipy.special.gammaincc`).

Assumptions: the router sends requests to the replica with the fewest outstanding, in
proportion to capacity, so every ready replica of a plan runs at the same utilisation D / C
(demand over the plan's capacity); a replica past saturation makes every request late
(a backlog only grows); L > s (a pool whose idle latency is already over the threshold is
rejected by the API: `workload.capacity[].baseLatencySeconds`). When the profile states no
base latency, b = `DEFAULT_BASE_SHARE` x L: half the threshold, the middle of the slack
an SLO usually leaves (the example's 6-8 s against 15 s).

`curve` tabulates v on a uniform utilisation grid once per pool (it depends on c, b and L
only); the engine interpolates it linearly, so the model it optimises is that piecewise
linear curve, which is non-decreasing like v.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import special

from costscaler.core.types import FloatArray

DEFAULT_BASE_SHARE = 0.5
GRID = 1025  # utilisation points of a curve, u = 0 .. 1


def default_base_latency(threshold_s: float) -> float:
    """The idle latency (s) assumed for a profile that states none (see the module)."""
    return DEFAULT_BASE_SHARE * threshold_s


def erlang_c(m: float, a: FloatArray) -> FloatArray:
    """P(wait > 0) in M/M/m at offered load `a` (erlangs) for real m >= 1; 1 for a >= m."""
    a = np.asarray(a, dtype=np.float64)
    out = np.ones_like(a)
    ok = (a > 0) & (a < m)
    x = a[ok]
    log_pois = m * np.log(x) - x - special.gammaln(m + 1.0)
    b = np.exp(log_pois) / special.gammaincc(m + 1.0, x)
    out[ok] = b / (1.0 - (x / m) * (1.0 - b))
    out[a <= 0] = 0.0
    return out


def violating(u: FloatArray, rated_rps: float, base_s: float, threshold_s: float) -> FloatArray:
    """v(u): the share of a replica's requests over `threshold_s` at utilisation `u`."""
    if not threshold_s > base_s > 0 or not rated_rps > 0:
        raise ValueError(
            f"latency model needs 0 < base latency ({base_s} s) < threshold ({threshold_s} s) "
            f"and a positive rated rate ({rated_rps} req/s)"
        )
    u = np.asarray(u, dtype=np.float64)
    m = max(1.0, rated_rps * base_s)
    service_s = m / rated_rps
    if service_s >= threshold_s:  # a slot is slower than the threshold: every request misses
        return np.ones_like(u)
    slack = threshold_s - service_s
    waits = erlang_c(m, m * np.clip(u, 0.0, 1.0))
    tail = np.exp(-rated_rps * np.clip(1.0 - u, 0.0, 1.0) * slack)
    return np.asarray(np.where(u >= 1.0, 1.0, np.minimum(waits * tail, 1.0)), dtype=np.float64)


@lru_cache(maxsize=512)
def _curve(rated_rps: float, base_s: float, threshold_s: float) -> FloatArray:
    out = violating(np.linspace(0.0, 1.0, GRID), rated_rps, base_s, threshold_s)
    # Monotone by construction; the running maximum removes float noise at u ~ 0.
    out = np.maximum.accumulate(out)
    out.setflags(write=False)
    return out


def curve(rated_rps: float, base_s: float, threshold_s: float) -> FloatArray:
    """v on `GRID` utilisation points from 0 to 1 (read-only, memoised per pool model)."""
    if not math.isfinite(rated_rps * base_s * threshold_s):
        raise ValueError("latency model: rated rate, base latency and threshold must be finite")
    return _curve(float(rated_rps), float(base_s), float(threshold_s))
