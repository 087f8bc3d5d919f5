"""PromQL presets for model servers, and the histogram arithmetic done on their results.

Every preset query is written once for all InferenceDeployments: it aggregates `by` the series
labels that name the deployment and the pool (`SeriesLabels`), so one query per metric per tick
serves every deployment whatever its number. The latency histogram is fetched as bucket rates
(`sum by (namespace, deployment, le)`) rather than as `histogram_quantile(q, ...)`, because each
deployment has its own quantile and threshold: the quantile and the share of requests within
the threshold are computed here from the same buckets, with Prometheus's interpolation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from costscaler.adapters.promql_scope import UnscopedQueryError, scope_query
from costscaler.api.deployment import Metrics, MetricsPreset


@dataclass(frozen=True)
class SeriesLabels:
    """Series label names that carry the InferenceDeployment's namespace, name and pool.

    The per-pool Deployments' pods carry `costscaler.dev/deployment` and `costscaler.dev/pool`;
    the Prometheus scrape configuration must copy them (and the namespace) to these labels.
    """

    namespace: str = "namespace"
    deployment: str = "deployment"
    pool: str = "pool"


@dataclass(frozen=True)
class QuerySet:
    """The PromQL for one deployment's metrics; equal texts are run once per tick for all.

    `request_rate` and `token_rate` are per pool (req/s, tokens/s); `latency_buckets` returns
    cumulative bucket rates with an `le` label, or None when `latency` is a direct query returning
    the SLO quantile in seconds; `freshness` returns seconds since the newest sample per pool, or
    None when staleness cannot be checked (user queries).
    """

    request_rate: str
    latency_buckets: str | None
    latency: str | None
    token_rate: str | None
    freshness: str | None

    def texts(self) -> list[str]:
        """Every instant query text of this set (without duplicates, in a stable order)."""
        found = [self.request_rate, self.latency_buckets, self.latency, self.token_rate]
        found.append(self.freshness)
        return list(dict.fromkeys(q for q in found if q))


@dataclass(frozen=True)
class _Preset:
    requests: str  # counter of finished requests
    buckets: str | None  # latency histogram buckets, seconds
    latency_mean: tuple[str, str, float] | None  # (duration counter, count counter, to seconds)
    tokens: str | None  # counter of generated tokens
    alive: str  # a gauge or counter every server exports on every scrape


PRESETS: dict[MetricsPreset, _Preset] = {
    MetricsPreset.VLLM: _Preset(
        requests="vllm:request_success_total",
        buckets="vllm:e2e_request_latency_seconds_bucket",
        latency_mean=None,
        tokens="vllm:generation_tokens_total",
        alive="vllm:num_requests_running",
    ),
    # Triton exports no latency histogram by default: the mean (a lower bound of any quantile
    # above the median) is the best it offers; override `latency` where histograms are enabled.
    MetricsPreset.TRITON: _Preset(
        requests="nv_inference_request_success",
        buckets=None,
        latency_mean=("nv_inference_request_duration_us", "nv_inference_request_success", 1e-6),
        tokens=None,
        alive="nv_inference_request_success",
    ),
}


def build_queries(
    metrics: Metrics, labels: SeriesLabels, window: str, namespace: str | None = None
) -> QuerySet:
    """The queries for one deployment's `spec.metrics`; `window` is the rate range, e.g. "1m".

    Explicit `requestRate`, `latency` and `tokenRate` override the preset and run scoped to
    `namespace`: every selector gets the namespace matcher (`promql_scope`), so a user reads
    only their own namespace's series. A user query may return one series or series labelled
    with the deployment's labels. Raises `UnscopedQueryError` for a user query that cannot be
    scoped, or when there is one and `namespace` is None (presets need no namespace: they
    group by it and each deployment takes only its own series).
    """
    user = {
        name: _scoped(text, labels, namespace)
        for name, text in (
            ("request_rate", metrics.request_rate),
            ("latency", metrics.latency),
            ("token_rate", metrics.token_rate),
        )
        if text
    }
    by_pool = f"{labels.namespace}, {labels.deployment}, {labels.pool}"
    by_dep = f"{labels.namespace}, {labels.deployment}"
    preset = PRESETS.get(metrics.preset)

    def rate(counter: str, by: str) -> str:
        return f"sum by ({by}) (rate({counter}[{window}]))"

    request_rate = user.get("request_rate") or (rate(preset.requests, by_pool) if preset else "")
    buckets = latency = None
    if "latency" in user:
        latency = user["latency"]
    elif preset and preset.buckets:
        buckets = rate(preset.buckets, f"{by_dep}, le")
    elif preset and preset.latency_mean:
        total, count, scale = preset.latency_mean
        latency = f"({rate(total, by_dep)}) / ({rate(count, by_dep)}) * {scale:g}"
    tokens = user.get("token_rate") or (
        rate(preset.tokens, by_pool) if preset and preset.tokens else None
    )
    fresh = None
    if preset and not metrics.request_rate:
        fresh = f"time() - max by ({by_pool}) (timestamp({preset.alive}))"
    return QuerySet(request_rate, buckets, latency, tokens, fresh)


def _scoped(query: str, labels: SeriesLabels, namespace: str | None) -> str:
    if namespace is None:
        raise UnscopedQueryError("a user query needs the deployment's namespace to be scoped")
    return scope_query(query, labels.namespace, namespace)


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile of a histogram given as (upper bound `le`, cumulative rate) pairs.

    Prometheus's rule: find the bucket holding rank q x total and interpolate linearly inside it
    (from 0 for the first bucket); a rank in the +Inf bucket returns the highest finite bound.
    None when no request was observed (rate 0: the quantile is undefined, not zero).
    """
    ordered = sorted(buckets)
    if not ordered or not math.isinf(ordered[-1][0]) or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if math.isinf(le):
                return lower
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


def share_within(threshold: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The share of requests with latency <= `threshold` seconds (linear inside a bucket).

    None when no request was observed. Bucket bounds at the threshold give an exact answer;
    vLLM's default buckets include the usual SLO thresholds (1, 2.5, 5, 10, 15, 20, 30 s...).
    """
    ordered = sorted(buckets)
    if not ordered or not math.isinf(ordered[-1][0]) or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    lower, below = 0.0, 0.0
    for le, count in ordered:
        if threshold <= le:
            if math.isinf(le):
                return below / total
            fraction = (threshold - lower) / (le - lower) if le > lower else 1.0
            return min(1.0, (below + (count - below) * fraction) / total)
        lower, below = le, count
    return 1.0
