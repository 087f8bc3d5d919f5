"""PromQL presets for model servers, and the histogram arithmetic done on their results.

Every preset query is written once for all InferenceDeployments: it aggregates `by` the series
labels that name the deployment and the pool (`SeriesLabels`), so one query per metric per tick
serves every deployment whatever its number. The latency histograms (end-to-end, and time to
first token and inter-token latency when the SLO states them) are fetched as bucket rates
(`sum by (namespace, deployment, le)`) rather than as `histogram_quantile(q, ...)`, because each
deployment has its own quantile and threshold: the quantile and the share of requests within
the threshold are computed here from the same buckets, with Prometheus's interpolation.

A server that renamed a metric (vLLM's `gpu_cache_usage_perc` became `kv_cache_usage_perc`,
`time_per_output_token_seconds` became `inter_token_latency_seconds`) is read under either
name in one query: `(new) or (old)` keeps the old name's series only where no series of the
same labels has the new name, so a server exporting both is not counted twice.

The SLO window's good and total request counts come from the same histogram: its buckets'
`increase` over the window (`spec.slo.window`), one query per distinct window for all
deployments, fetched in the same round. A deployment younger than the window gets what
Prometheus holds of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from costscaler.adapters.promql_scope import UnscopedQueryError, scope_query
from costscaler.api.deployment import SLO, Metrics, MetricsPreset


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
    None when staleness cannot be checked (user queries). `slo_counts` returns the latency
    buckets' cumulative request counts over the SLO window (with `le`), or None when there
    is no histogram (Triton, a user latency query) or no window was asked for; unlike the
    others it is optional: its failure leaves the counts unknown, not the reading unusable.
    `ttft_buckets`/`ttft` and `itl_buckets`/`itl` are the pair `latency_buckets`/`latency` is
    for time to first token and inter-token latency, set only when the SLO states them
    (required then). The fast signals, per pool, are optional like `slo_counts`:
    `queue_depth` (requests waiting), `kv_cache_usage` (mean share of the KV cache in use, 0-1)
    and `prompt_token_rate` (input tokens/s).
    """

    request_rate: str
    latency_buckets: str | None
    latency: str | None
    token_rate: str | None
    freshness: str | None
    slo_counts: str | None = None
    ttft_buckets: str | None = None
    ttft: str | None = None
    itl_buckets: str | None = None
    itl: str | None = None
    queue_depth: str | None = None
    kv_cache_usage: str | None = None
    prompt_token_rate: str | None = None
    # The preset texts whose answers are one sample per pool (rates, freshness, fast signals):
    # small, the operator's own and never failing alone, so the source may send several as one
    # query. User texts stay apart: one deployment's query must not fail another's.
    mergeable: tuple[str, ...] = ()

    def required(self) -> list[str]:
        """The query texts a usable reading needs (without duplicates, in a stable order)."""
        found = [self.request_rate, self.latency_buckets, self.latency, self.token_rate]
        found += [self.freshness, self.ttft_buckets, self.ttft, self.itl_buckets, self.itl]
        return list(dict.fromkeys(q for q in found if q))

    def texts(self) -> list[str]:
        """Every instant query text of this set: the required ones, then the optional ones
        (`slo_counts` and the fast signals)."""
        optional = [self.slo_counts, self.queue_depth, self.kv_cache_usage]
        optional.append(self.prompt_token_rate)
        return list(dict.fromkeys([*self.required(), *(q for q in optional if q)]))


@dataclass(frozen=True)
class _Preset:
    requests: str  # counter of finished requests
    buckets: str | None  # latency histogram buckets, seconds
    latency_mean: tuple[str, str, float] | None  # (duration counter, count counter, to seconds)
    tokens: str | None  # counter of generated tokens
    alive: str  # a gauge or counter every server exports on every scrape
    # Names, newest first, of: the time-to-first-token and inter-token-latency histogram
    # buckets (s), the gauge of requests waiting, the KV-cache usage gauge (0-1) and the prompt
    # token counter. Empty: the server exports none.
    ttft: tuple[str, ...] = ()
    itl: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()
    kv_cache: tuple[str, ...] = ()
    prompt_tokens: tuple[str, ...] = ()


PRESETS: dict[MetricsPreset, _Preset] = {
    MetricsPreset.VLLM: _Preset(
        requests="vllm:request_success_total",
        buckets="vllm:e2e_request_latency_seconds_bucket",
        latency_mean=None,
        tokens="vllm:generation_tokens_total",
        alive="vllm:num_requests_running",
        ttft=("vllm:time_to_first_token_seconds_bucket",),
        itl=(
            "vllm:inter_token_latency_seconds_bucket",
            "vllm:time_per_output_token_seconds_bucket",
        ),
        waiting=("vllm:num_requests_waiting",),
        kv_cache=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
        prompt_tokens=("vllm:prompt_tokens_total",),
    ),
    MetricsPreset.SGLANG: _Preset(
        requests="sglang:num_requests_total",
        buckets="sglang:e2e_request_latency_seconds_bucket",
        latency_mean=None,
        tokens="sglang:generation_tokens_total",
        alive="sglang:num_running_reqs",
        ttft=("sglang:time_to_first_token_seconds_bucket",),
        itl=("sglang:inter_token_latency_seconds_bucket",),
        waiting=("sglang:num_queue_reqs",),
        kv_cache=("sglang:token_usage",),
        prompt_tokens=("sglang:prompt_tokens_total",),
    ),
    # TGI counts tokens only as histograms per request (their _sum is the counter), exports
    # no TTFT and no KV-cache gauge; its inter-token latency is each request's mean time per
    # output token.
    MetricsPreset.TGI: _Preset(
        requests="tgi_request_success",
        buckets="tgi_request_duration_bucket",
        latency_mean=None,
        tokens="tgi_request_generated_tokens_sum",
        alive="tgi_queue_size",
        itl=("tgi_request_mean_time_per_token_duration_bucket",),
        waiting=("tgi_queue_size",),
        prompt_tokens=("tgi_request_input_length_sum",),
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
    metrics: Metrics,
    labels: SeriesLabels,
    window: str,
    namespace: str | None = None,
    slo_window: str | None = None,
    slo: SLO | None = None,
) -> QuerySet:
    """The queries for one deployment's `spec.metrics`; `window` is the rate range, e.g. "1m",
    and `slo_window` the SLO window (`spec.slo.window`, e.g. "7d") the counts cover, if any.
    TTFT and ITL are read only when `slo` states them (histograms are the largest answers).

    Explicit `requestRate`, `latency`, `tokenRate`, `ttft` and `itl` override the preset and run
    scoped to `namespace`: every selector gets the namespace matcher (`promql_scope`), so a user
    reads only their own namespace's series. A user query may return one series or series labelled
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
            ("ttft", metrics.ttft),
            ("itl", metrics.itl),
        )
        if text
    }
    by_pool = f"{labels.namespace}, {labels.deployment}, {labels.pool}"
    by_dep = f"{labels.namespace}, {labels.deployment}"
    preset = PRESETS.get(metrics.preset)

    def rate(counter: str, by: str) -> str:
        return f"sum by ({by}) (rate({counter}[{window}]))"

    request_rate = user.get("request_rate") or (rate(preset.requests, by_pool) if preset else "")
    buckets = latency = counts = None
    if "latency" in user:
        latency = user["latency"]
    elif preset and preset.buckets:
        buckets = rate(preset.buckets, f"{by_dep}, le")
        if slo_window:
            counts = f"sum by ({by_dep}, le) (increase({preset.buckets}[{slo_window}]))"
    elif preset and preset.latency_mean:
        total, count, scale = preset.latency_mean
        latency = f"({rate(total, by_dep)}) / ({rate(count, by_dep)}) * {scale:g}"
    tokens = user.get("token_rate") or (
        rate(preset.tokens, by_pool) if preset and preset.tokens else None
    )
    fresh = None
    if preset and not metrics.request_rate:
        fresh = f"time() - max by ({by_pool}) (timestamp({preset.alive}))"

    def either(names: tuple[str, ...], template: str) -> str | None:
        return " or ".join(f"({template.format(n)})" for n in names) or None

    names = preset or _Preset("", None, None, None, "")
    histogram = f"sum by ({by_dep}, le) (rate({{}}[{window}]))"
    ttft = itl = ttft_buckets = itl_buckets = None
    if slo is not None and slo.ttft is not None:
        ttft, ttft_buckets = user.get("ttft"), either(names.ttft, histogram)
    if slo is not None and slo.itl is not None:
        itl, itl_buckets = user.get("itl"), either(names.itl, histogram)
    queue_depth = either(names.waiting, f"sum by ({by_pool}) ({{}})")
    kv_cache_usage = either(names.kv_cache, f"avg by ({by_pool}) ({{}})")
    prompt_token_rate = either(names.prompt_tokens, f"sum by ({by_pool}) (rate({{}}[{window}]))")
    per_pool = [request_rate, tokens, fresh, queue_depth, kv_cache_usage, prompt_token_rate]
    users = set(user.values())
    return QuerySet(
        request_rate,
        buckets,
        latency,
        tokens,
        fresh,
        counts,
        ttft_buckets=None if ttft else ttft_buckets,
        ttft=ttft,
        itl_buckets=None if itl else itl_buckets,
        itl=itl,
        queue_depth=queue_depth,
        kv_cache_usage=kv_cache_usage,
        prompt_token_rate=prompt_token_rate,
        mergeable=tuple(dict.fromkeys(q for q in per_pool if q and q not in users)),
    )


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
    found = count_within(threshold, buckets)
    if found is None or found[1] <= 0:
        return None
    good, total = found
    return min(1.0, good / total)


def count_within(
    threshold: float, buckets: Sequence[tuple[float, float]]
) -> tuple[float, float] | None:
    """(requests with latency <= `threshold` s, all requests) of a cumulative histogram.

    Buckets are (upper bound `le`, cumulative count or rate) pairs; the total is the `+Inf`
    bucket. A threshold between two bounds is interpolated linearly inside its bucket (from
    0 for the first), as `histogram_quantile` assumes requests spread evenly in a bucket; a
    threshold past the highest finite bound counts only the requests under that bound (the
    +Inf bucket says nothing of how slow the rest were). None without a `+Inf` bucket;
    (0, 0) when it counts no request.
    """
    ordered = sorted(buckets)
    if not ordered or not math.isinf(ordered[-1][0]):
        return None
    total = max(ordered[-1][1], 0.0)
    lower, below = 0.0, 0.0
    for le, count in ordered:
        if threshold <= le:
            if math.isinf(le):
                return min(below, total), total
            fraction = (threshold - lower) / (le - lower) if le > lower else 1.0
            return min(below + (count - below) * fraction, total), total
        lower, below = le, count
    return total, total
