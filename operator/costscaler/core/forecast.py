"""Demand over the cold-start horizon: level, trend, optional daily cycle, and a band.

The band comes from how wrong the same forecast would have been inside the window: for every
sample k with a sample about `h` seconds later, the error e_k = rate[k + h] - (level_k +
trend x h). The forecast distribution of demand at `now + h` is point + e, summarised as
quantiles of e at the mid-points of probability bins that are finer in the upper tail (where
an SLO quantile lives) and coarser below, each weighted by its bin's mass, and smoothed with a
Gaussian kernel, so quantiles beyond the observed errors still exist and the risk curve is
smooth in capacity. With too few errors to trust (a short
window), the band falls back to a relative spread (`PRIOR_REL_SD`) so a fresh deployment is
not sized on a point.
"""

from __future__ import annotations

import bisect
import math
import operator
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
from numpy.typing import NDArray

from costscaler.core.special import ndtr
from costscaler.core.types import FloatArray

# Probability bins of the demand sample: finer in the upper tail, where SLO quantiles live.
_EDGES = np.array([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 1.0])
_QS = (_EDGES[:-1] + _EDGES[1:]) / 2.0
_MASS = np.diff(_EDGES)
GRID = _QS.size
MIN_ERRORS = 12
MAX_POINTS = 1440
PRIOR_REL_SD = 0.25
LEVEL_SPANS_S = (60.0, 300.0, 900.0)
DAY_SECONDS = 86400.0
_UNIT = np.linspace(0.0, 1.0, 33)  # the quantile search's grid over a bracket


@dataclass(frozen=True)
class DemandForecast:
    """Demand at `now + horizon_s` (req/s) as a smoothed, weighted sample of `GRID` points.

    `level` (req/s now, a trailing mean over the best-scoring span), `trend` (req/s per s,
    shrunk toward 0 by its t-statistic), `point` (central forecast), `samples` (sorted),
    `bandwidth` (kernel sd, req/s).
    P(D > c) = sum_i mass_i [samples_i > 0] Phi((samples_i - c) / bandwidth): a sample at 0
    means no demand, which zero capacity serves.
    """

    horizon_s: float
    level: float
    trend: float
    point: float
    samples: FloatArray
    bandwidth: float
    _memo: dict[float, float] = field(default_factory=dict, compare=False, repr=False)

    def exceedance(self, capacity: FloatArray, bound: bool = False) -> FloatArray:
        """P(demand > capacity) for each capacity (req/s), same shape as `capacity`; with
        `bound`, samples at or above the capacity count 1/2 (`exact.risk_bound`)."""
        c = np.asarray(capacity, dtype=np.float64)
        z = self.samples - c[..., None]
        z /= self.bandwidth
        if bound:
            # Phi(0) is exactly 1/2; fmin, not minimum: a NaN capacity counts 1/2 too, the
            # weakest bound (it prunes nothing).
            np.fmin(z, 0.0, out=z)
        return np.asarray(ndtr(z, out=z) @ self.weights)

    @cached_property
    def weights(self) -> FloatArray:
        """Kernel weights of the samples: their bins' mass, 0 for a sample of no demand."""
        return np.asarray((self.samples > 0) * _MASS, dtype=np.float64)

    @cached_property
    def _top(self) -> float:
        """Where the demand's support ends, for `quantile`'s search (req/s)."""
        return float(self.samples[-1]) + 8.0 * self.bandwidth

    @cached_property
    def _passes(self) -> dict[int, tuple[FloatArray, list[float]]]:
        """`quantile`'s grids and their exceedance, shared between every q: the first pass
        over the whole support (key -1), and the second inside each bracket k of it."""
        grid = self._top * _UNIT
        return {-1: (grid, self.exceedance(grid).tolist())}

    def quantile(self, q: float) -> float:
        """The demand (req/s) exceeded with probability 1 - q (memoised per q).

        Exceedance is monotone in capacity: evaluate it on a grid over the support, then on a
        finer grid inside the bracket, and interpolate linearly. The grids' exceedance is
        kept per forecast: a decision asks for two q, often in the same bracket.
        """
        hit = self._memo.get(q)
        if hit is not None:
            return hit
        tail = 1.0 - q
        passes = self._passes
        grid, ex = passes[-1]
        k, value = _interpolate(grid, ex, tail, 0.0, self._top)
        if 0 < k < len(ex):
            lo, hi = float(grid[k - 1]), float(grid[k])
            if k not in passes:
                fine = lo + (hi - lo) * _UNIT
                passes[k] = fine, self.exceedance(fine).tolist()
            value = _interpolate(*passes[k], tail, lo, hi)[1]
        self._memo[q] = value
        return value


def _interpolate(
    grid: FloatArray, ex: list[float], tail: float, lo: float, hi: float
) -> tuple[int, float]:
    """The first point k of `grid` whose exceedance `ex` (descending) is below `tail`, and
    the capacity where the exceedance crosses it, interpolated linearly between points k - 1
    and k (`lo` or `hi` when the grid starts below it or never gets there)."""
    # numpy's searchsorted(-ex, -tail, side="right"), on Python floats.
    k = bisect.bisect_right(ex, -tail, key=operator.neg)
    if k == 0 or k >= len(ex):
        return k, lo if k == 0 else hi
    lo, hi = float(grid[k - 1]), float(grid[k])
    share = (ex[k - 1] - tail) / max(ex[k - 1] - ex[k], 1e-300)
    return k, lo + (hi - lo) * min(max(share, 0.0), 1.0)


def _trend(times: FloatArray, rate: FloatArray) -> float:
    """OLS slope (req/s per s) shrunk by t^2 / (1 + t^2), so noise alone gives ~no trend."""
    if rate.size < 3:
        return 0.0
    # sum / size is the mean (the same reduction as ndarray.mean, without its wrapper).
    t = times - times.sum() / times.size
    sxx = float(t @ t)
    if sxx <= 0:
        return 0.0
    centred = rate - rate.sum() / rate.size
    slope = float(t @ centred) / sxx
    resid = centred - slope * t
    se2 = float(resid @ resid) / (rate.size - 2) / sxx
    if se2 <= 0:
        return slope
    t2 = slope * slope / se2
    return slope * t2 / (1.0 + t2)


def _seasonal_shift(times: FloatArray, level: FloatArray, horizon: float) -> float | None:
    """Yesterday's change over the horizon: level(now - 1d + h) - level(now - 1d), or None."""
    now = times[-1]
    if now - times[0] < DAY_SECONDS:
        return None
    a = np.interp(now - DAY_SECONDS, times, level)
    b = np.interp(now - DAY_SECONDS + horizon, times, level)
    return float(b - a)


def forecast(
    times: FloatArray, rate: FloatArray, horizon_s: float, daily_seasonality: bool = False
) -> DemandForecast:
    """Forecast demand (req/s) `horizon_s` after the last sample from a window of rates.

    Samples that are not finite or negative are skipped. The caller guarantees at least one
    good sample (see `core.validate`). With `daily_seasonality` and a window longer than a day,
    the central forecast follows yesterday's change over the same horizon instead of the trend.
    """
    ok = np.isfinite(rate) & np.isfinite(times) & (rate >= 0)
    t, r = _coarsen(times[ok], rate[ok])
    dt = float(t[-1] - t[0]) / (t.size - 1) if t.size > 1 else LEVEL_SPANS_S[0]
    dt = dt if dt > 0 else LEVEL_SPANS_S[0]
    # A trend fitted over a span shorter than the horizon is trusted in proportion: a minute
    # of ramp-up says little about the next five.
    span = float(t[-1] - t[0]) if t.size > 1 else 0.0
    trend = _trend(t, r) * (min(1.0, span / horizon_s) if horizon_s > 0 else 1.0)
    lag = max(1, round(horizon_s / dt))
    level, errors = _best_level(r, dt, trend, lag)
    shift = trend * horizon_s
    if daily_seasonality:
        seasonal = _seasonal_shift(t, level, horizon_s)
        shift = shift if seasonal is None else seasonal
    point = max(float(level[-1]) + shift, 0.0)
    return _band(horizon_s, float(level[-1]), trend, point, errors)


def _best_level(r: FloatArray, dt: float, trend: float, lag: int) -> tuple[FloatArray, FloatArray]:
    """The smoothing span whose level forecast `lag` samples ahead erred least in the window.

    A trailing mean over a longer span averages noise away but reacts later to a shift; which
    wins depends on the workload, so each span in `LEVEL_SPANS_S` is scored on its own past
    errors (mean squared) and the best is used. Returns (levels, errors) of that span.
    """
    # A window too short for MIN_ERRORS errors at the horizon's lag (a fresh deployment) is
    # scored at the longest lag that has them, and its errors are widened by sqrt(lag ratio):
    # forecast errors of a level that wanders grow like a random walk's with the lead time.
    fit = min(lag, max(1, r.size - MIN_ERRORS))
    widen = math.sqrt(lag / fit)
    # Per span (a row each), the trailing mean from one cumulative sum, with the half span it
    # lags a trend by added back, and its errors `fit` samples ahead.
    n = r.size
    spans = tuple(max(1, round(span / dt)) for span in LEVEL_SPANS_S)
    lo, count = _trailing(n, spans)
    csum = np.empty(n + 1)
    csum[0] = 0.0
    np.cumsum(r, out=csum[1:])
    levels = csum[1:] - csum.take(lo)
    levels /= count
    levels += np.array([trend * (min(m, n) - 1) * dt / 2.0 for m in spans])[:, None]
    errors = levels[:, : n - fit] + trend * fit * dt
    np.subtract(r[fit:], errors, out=errors)
    errors *= widen
    best, best_score = 0, math.inf
    if errors.shape[1] >= MIN_ERRORS:
        # The first span of the least mean squared error (a later one must be strictly less).
        for k, row in enumerate(errors):
            score = float(row @ row) / row.size
            if k == 0 or score < best_score:
                best, best_score = k, score
    return levels[best], errors[best]


@lru_cache(maxsize=64)
def _trailing(n: int, spans: tuple[int, ...]) -> tuple[NDArray[np.intp], FloatArray]:
    """Per span (rows) and sample i (columns) of a window of `n`: where its trailing mean
    starts in the cumulative sum, and how many samples it averages (fewer at the start).
    Memoised: every decision of a deployment has the same window and spans."""
    hi = np.arange(1, n + 1)
    lo = np.maximum(hi - np.array(spans)[:, None], 0)
    count = (hi - lo).astype(np.float64)
    lo.flags.writeable = count.flags.writeable = False
    return lo, count


def _coarsen(t: FloatArray, r: FloatArray) -> tuple[FloatArray, FloatArray]:
    """At most `MAX_POINTS` samples: a long window (days, for seasonality) is averaged into
    buckets of consecutive samples that end at the latest one, so a decision stays cheap."""
    if t.size <= MAX_POINTS:
        return t, r
    k = -(-t.size // MAX_POINTS)
    drop = t.size % k
    t, r = t[drop:], r[drop:]
    return t[k - 1 :: k], r.reshape(-1, k).mean(axis=1)


def _band(
    horizon_s: float, level: float, trend: float, point: float, errors: FloatArray
) -> DemandForecast:
    if errors.size >= MIN_ERRORS:
        ordered = np.sort(errors)
        e = np.interp(_QS * (errors.size - 1), np.arange(errors.size), ordered)
        centred = errors - errors.sum() / errors.size
        sd = math.sqrt(float(centred @ centred) / errors.size)
        width = 1.06 * sd * errors.size ** (-0.2)
    else:
        # Too few errors to trust: a relative spread around the point (a prior, not a fit).
        e = np.zeros(GRID)
        width = PRIOR_REL_SD * point
    # Poisson counting noise of a rate measured over a minute is a floor on the spread.
    width = max(width, math.sqrt(max(point, 0.0) / LEVEL_SPANS_S[0]), 1e-6)
    samples = np.maximum(point + e, 0.0)  # ascending, as the bins are
    return DemandForecast(horizon_s, level, trend, point, samples, width)
