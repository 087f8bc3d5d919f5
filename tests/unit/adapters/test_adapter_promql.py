"""PromQL presets and the histogram arithmetic (Prometheus's interpolation rules)."""

from __future__ import annotations

import math

import pytest

from costscaler.adapters.promql import (
    SeriesLabels,
    build_queries,
    count_within,
    histogram_quantile,
    share_within,
)
from costscaler.api.deployment import Metrics, MetricsPreset

INF = math.inf
# Cumulative rates: 10 req/s under 1 s, 30 under 2 s, 40 in all.
BUCKETS = [(1.0, 10.0), (2.0, 30.0), (5.0, 40.0), (INF, 40.0)]


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        pytest.param(0.25, BUCKETS, 1.0, id="rank-at-bucket-edge"),
        pytest.param(0.5, BUCKETS, 1.5, id="interpolated"),
        pytest.param(0.125, BUCKETS, 0.5, id="first-bucket-from-zero"),
        pytest.param(0.99, [(1.0, 10.0), (INF, 20.0)], 1.0, id="in-inf-bucket-highest-bound"),
        pytest.param(0.5, [(1.0, 0.0), (INF, 0.0)], None, id="no-traffic-undefined"),
        pytest.param(0.5, [(1.0, 3.0)], None, id="no-inf-bucket"),
        pytest.param(0.5, [], None, id="empty"),
        pytest.param(0.95, list(reversed(BUCKETS)), 4.4, id="unordered-input"),
    ],
)
def test_histogram_quantile(q: float, buckets: list[tuple[float, float]], expected: float | None):
    got = histogram_quantile(q, buckets)
    assert got == pytest.approx(expected) if expected is not None else got is None


@pytest.mark.parametrize(
    ("threshold", "buckets", "expected"),
    [
        pytest.param(2.0, BUCKETS, 0.75, id="on-a-bound"),
        pytest.param(1.5, BUCKETS, 0.5, id="interpolated"),
        pytest.param(0.5, BUCKETS, 0.125, id="first-bucket"),
        pytest.param(10.0, BUCKETS, 1.0, id="above-last-finite-bound-all-in"),
        pytest.param(10.0, [(5.0, 30.0), (INF, 40.0)], 0.75, id="above-last-finite-some-slower"),
        pytest.param(1.0, [(1.0, 0.0), (INF, 0.0)], None, id="no-traffic"),
    ],
)
def test_share_within(threshold: float, buckets: list[tuple[float, float]], expected):
    got = share_within(threshold, buckets)
    assert got == pytest.approx(expected) if expected is not None else got is None


def test_vllm_preset_groups_by_deployment_and_pool_labels():
    q = build_queries(Metrics(preset=MetricsPreset.VLLM), SeriesLabels(), "1m")
    assert q.request_rate == (
        "sum by (namespace, deployment, pool) (rate(vllm:request_success_total[1m]))"
    )
    assert q.latency_buckets == (
        "sum by (namespace, deployment, le) (rate(vllm:e2e_request_latency_seconds_bucket[1m]))"
    )
    assert q.latency is None
    assert "vllm:generation_tokens_total" in (q.token_rate or "")
    assert q.freshness == (
        "time() - max by (namespace, deployment, pool) (timestamp(vllm:num_requests_running))"
    )
    assert len(q.required()) == 4
    assert q.queue_depth == "(sum by (namespace, deployment, pool) (vllm:num_requests_waiting))"
    assert "vllm:prompt_tokens_total[1m]" in (q.prompt_token_rate or "")
    assert len(q.texts()) == 7  # and the three fast signals


def test_triton_preset_uses_mean_latency_in_seconds():
    q = build_queries(Metrics(preset=MetricsPreset.TRITON), SeriesLabels(), "2m")
    assert "nv_inference_request_success[2m]" in q.request_rate
    assert q.latency_buckets is None
    assert q.latency is not None and "nv_inference_request_duration_us" in q.latency
    assert q.latency.endswith("* 1e-06")
    assert q.token_rate is None


def test_overrides_run_scoped_to_the_namespace_and_skip_freshness():
    m = Metrics(preset=MetricsPreset.GENERIC, request_rate="sum(rate(x[1m]))", latency="y")
    q = build_queries(m, SeriesLabels(), "1m", "ml")
    assert (q.request_rate, q.latency, q.latency_buckets, q.freshness) == (
        'sum(rate(x{namespace="ml"}[1m]))',
        'y{namespace="ml"}',
        None,
        None,
    )


def test_label_names_are_configurable():
    labels = SeriesLabels(namespace="kubernetes_namespace", deployment="app", pool="node_pool")
    q = build_queries(Metrics(), labels, "1m")
    assert "by (kubernetes_namespace, app, node_pool)" in q.request_rate


@pytest.mark.parametrize(
    ("threshold", "buckets", "expected"),
    [
        pytest.param(2.0, BUCKETS, (30.0, 40.0), id="on-a-bound"),
        pytest.param(1.5, BUCKETS, (20.0, 40.0), id="interpolated-like-histogram-quantile"),
        pytest.param(0.5, BUCKETS, (5.0, 40.0), id="first-bucket-from-zero"),
        pytest.param(10.0, [(5.0, 30.0), (INF, 40.0)], (30.0, 40.0), id="past-the-last-bound"),
        pytest.param(1.0, [(1.0, 0.0), (INF, 0.0)], (0.0, 0.0), id="no-requests-known"),
        pytest.param(1.0, [(1.0, 3.0)], None, id="no-inf-bucket"),
        # increase() extrapolates each bucket: a lower one may pass +Inf by a fraction.
        pytest.param(1.0, [(1.0, 40.2), (INF, 40.0)], (40.0, 40.0), id="extrapolated-over"),
    ],
)
def test_count_within(threshold: float, buckets, expected):
    assert count_within(threshold, buckets) == expected


def test_window_counts_are_one_query_per_window_grouped_by_deployment():
    q = build_queries(Metrics(), SeriesLabels(), "1m", "ml", slo_window="7d")
    assert q.slo_counts == (
        "sum by (namespace, deployment, le) (increase(vllm:e2e_request_latency_seconds_bucket[7d]))"
    )
    assert q.texts()[: len(q.required()) + 1] == [*q.required(), q.slo_counts]
    assert q.slo_counts not in q.required()
    # No histogram, no counts: Triton's mean, or a user latency query.
    triton = build_queries(Metrics(preset=MetricsPreset.TRITON), SeriesLabels(), "1m", None, "7d")
    assert triton.slo_counts is None
    user = Metrics(preset=MetricsPreset.GENERIC, request_rate="r", latency="lat")
    assert build_queries(user, SeriesLabels(), "1m", "ml", "7d").slo_counts is None
