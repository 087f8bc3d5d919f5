"""Exposition of one pod's counters under vLLM's metric names (prometheus_client text format)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from cluster.twinload import LATENCY_EDGES_S, Histogram, PodCounters


class _PodCollector(Collector):
    def __init__(self, counters: PodCounters, model: str) -> None:
        self.c, self.model = counters, model

    def collect(self) -> Iterator[Metric]:
        labels, values = ["model_name"], [self.model]
        running = GaugeMetricFamily(
            "vllm:num_requests_running", "Requests running on the GPU.", labels=labels
        )
        running.add_metric(values, self.c.running)
        yield running
        waiting = GaugeMetricFamily(
            "vllm:num_requests_waiting", "Requests waiting to be processed.", labels=labels
        )
        waiting.add_metric(values, self.c.waiting)
        yield waiting
        success = CounterMetricFamily(
            "vllm:request_success",
            "Successfully processed requests.",
            labels=[*labels, "finished_reason"],
        )
        success.add_metric([*values, "stop"], self.c.success)
        if self.c.per_request:
            success.add_metric([*values, "abort"], self.c.aborted)
        yield success
        tokens = CounterMetricFamily(
            "vllm:generation_tokens", "Generation tokens processed.", labels=labels
        )
        tokens.add_metric(values, self.c.tokens)
        yield tokens
        latency = HistogramMetricFamily(
            "vllm:e2e_request_latency_seconds",
            "End-to-end request latency in seconds.",
            labels=labels,
        )
        buckets = [
            (f"{edge:g}", float(n)) for edge, n in zip(LATENCY_EDGES_S, self.c.buckets, strict=True)
        ]
        latency.add_metric(values, [*buckets, ("+Inf", self.c.latency_count)], self.c.latency_sum)
        yield latency
        if not self.c.per_request:
            return
        prompt = CounterMetricFamily(
            "vllm:prompt_tokens", "Number of prefill tokens processed.", labels=labels
        )
        prompt.add_metric(values, self.c.prompt_tokens)
        yield prompt
        kv = GaugeMetricFamily(
            "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", labels=labels
        )
        kv.add_metric(values, self.c.kv_cache_usage)
        yield kv
        yield _histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            self.c.ttft,
            values,
        )
        yield _histogram(
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            self.c.itl,
            values,
        )


def _histogram(name: str, doc: str, h: Histogram, values: list[str]) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=["model_name"])
    buckets = [(f"{edge:g}", float(n)) for edge, n in zip(h.edges, h.buckets, strict=True)]
    family.add_metric(values, [*buckets, ("+Inf", h.count)], h.total)
    return family


def render_pod(counters: PodCounters, model: str) -> bytes:
    """The text a vLLM server with these counters would answer on /metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_PodCollector(counters, model))
    return generate_latest(registry)
