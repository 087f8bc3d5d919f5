"""The observation window's past from Prometheus: one range query per metric for all deployments.

A restarted operator (or a standby taking over) would otherwise decide on a window of one
sample and refill it tick by tick for `forecast.windowSeconds`. `fetch_backfill` asks Prometheus
for the past of every deployment at once: each distinct query text, summed per deployment
(`sum by (namespace, deployment)`) or, for latency histograms, turned into the SLO quantile by
Prometheus (`histogram_quantile`, one query per distinct quantile), runs as one `query_range`
at the tick interval. A response holds at most `max_samples` samples (about 150 bytes each once
parsed), so a long window for many deployments is split into consecutive time slices rather than
parsed in one piece; the number of queries never depends on the number of deployments beyond
that bound. Freshness is not checked for past points: Prometheus drops series silent for more
than its lookback (5 min) from range results on its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from costscaler.adapters.prometheus import Key, Target
from costscaler.adapters.promql import SeriesLabels

MAX_POINTS = 11_000  # Prometheus refuses a range query with more points per series
MAX_SAMPLES = 250_000  # per response: ~40 MB of parsed JSON at most


class RangeClient(Protocol):
    """The one call backfilling needs from a Prometheus client."""

    def custom_query_range(
        self, query: str, start: float, end: float, step: float
    ) -> list[dict[str, Any]]:
        """Run a range query (times in Unix seconds) and return its matrix."""
        ...


@dataclass
class Past:
    """One deployment's past samples on the step grid, oldest first (NaN where missing)."""

    times: np.ndarray
    rate: np.ndarray
    latency: np.ndarray
    tokens: np.ndarray


@dataclass
class BackfillReport:
    """What one backfill cost and found."""

    queries: int = 0
    errors: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    samples: int = 0


@dataclass(frozen=True)
class _Metric:
    name: str  # "rate", "latency" or "tokens"
    query: str


def range_queries(targets: Sequence[Target], labels: SeriesLabels) -> dict[_Metric, list[Key]]:
    """The range queries needed for `targets`, each with the deployments it serves."""
    by_dep = f"{labels.namespace}, {labels.deployment}"
    found: dict[_Metric, list[Key]] = {}
    for t in targets:
        q = t.queries
        wanted = [_Metric("rate", f"sum by ({by_dep}) ({q.request_rate})")]
        if q.token_rate:
            wanted.append(_Metric("tokens", f"sum by ({by_dep}) ({q.token_rate})"))
        if q.latency_buckets:
            wanted.append(
                _Metric("latency", f"histogram_quantile({t.quantile:g}, {q.latency_buckets})")
            )
        elif q.latency:
            wanted.append(_Metric("latency", q.latency))
        for metric in wanted:
            found.setdefault(metric, []).append(t.key)
    return found


def grid(end: float, window: float, step: float) -> np.ndarray:
    """Step-aligned times covering `window` seconds up to `end` (both ends included)."""
    last = math.floor(end / step) * step
    count = int(window // step) + 1
    return last - step * np.arange(count - 1, -1, -1, dtype=float)


def slices(times: np.ndarray, series: int, max_samples: int = MAX_SAMPLES) -> list[np.ndarray]:
    """`times` cut into consecutive runs small enough for one response of `series` series."""
    per = max(1, min(MAX_POINTS, max_samples // max(series, 1)))
    return [times[i : i + per] for i in range(0, times.size, per)]


def fetch_backfill(
    client: RangeClient,
    targets: Sequence[Target],
    labels: SeriesLabels,
    end: float,
    step: float,
) -> tuple[dict[Key, Past], BackfillReport]:
    """Every target's past up to `end`, over its own `window_seconds`, on a `step` grid.

    Synchronous (run it off the event loop). A failed query leaves that metric NaN for the
    deployments it serves: their windows start with gaps, which the engine skips.
    """
    window = max((t.window_seconds for t in targets), default=0.0)
    times = grid(end, window, step)
    pasts = {t.key: _empty(times) for t in targets}
    report = BackfillReport()
    for metric, keys in range_queries(targets, labels).items():
        wanted = set(keys)
        for part in slices(times, len(keys)):
            report.queries += 1
            try:
                matrix = client.custom_query_range(
                    metric.query, float(part[0]), float(part[-1]), step
                )
            except Exception as exc:  # any client failure is a failed query
                report.errors += 1
                report.failed[metric.query] = f"{type(exc).__name__}: {exc}"[:500]
                break
            _place(matrix, metric.name, wanted, pasts, times, labels)
            del matrix  # parsed JSON is the big transient: free it before the next slice
    for t in targets:
        _trim(pasts, t)
    report.samples = sum(int(np.isfinite(p.rate).sum()) for p in pasts.values())
    return pasts, report


def _empty(times: np.ndarray) -> Past:
    nan = np.full(times.size, np.nan)
    return Past(times, nan.copy(), nan.copy(), nan.copy())


def _place(
    matrix: list[dict[str, Any]],
    name: str,
    wanted: set[Key],
    pasts: dict[Key, Past],
    times: np.ndarray,
    labels: SeriesLabels,
) -> None:
    """Write a matrix's values into the wanted deployments' arrays (by label, or all of them
    for a series without deployment labels: a user query that belongs to one deployment)."""
    start, step = times[0], (times[1] - times[0]) if times.size > 1 else 1.0
    for series in matrix:
        meta = series.get("metric", {})
        key = (meta.get(labels.namespace), meta.get(labels.deployment))
        owners = [key] if key in wanted else (list(wanted) if key == (None, None) else [])
        if not owners:
            continue
        points = np.array([(float(t), _number(v)) for t, v in series.get("values", [])])
        if points.size == 0:
            continue
        rows = np.rint((points[:, 0] - start) / step).astype(int)
        ok = (rows >= 0) & (rows < times.size)
        for owner in owners:
            getattr(pasts[owner], name)[rows[ok]] = points[ok, 1]


def _number(value: Any) -> float:
    try:
        found = float(value)
    except (TypeError, ValueError):
        return math.nan
    return found if math.isfinite(found) and found >= 0 else math.nan


def _trim(pasts: dict[Key, Past], t: Target) -> None:
    """Keep the deployment's own window, and only from its first sample with a request rate."""
    p = pasts[t.key]
    keep = p.times >= p.times[-1] - t.window_seconds if p.times.size else p.times
    seen = np.isfinite(p.rate) & keep
    first = int(np.argmax(seen)) if seen.any() else p.times.size
    pasts[t.key] = Past(p.times[first:], p.rate[first:], p.latency[first:], p.tokens[first:])
