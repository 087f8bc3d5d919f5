"""Backfill: one range query per metric for all deployments, placed on the tick grid."""

from __future__ import annotations

import math

import numpy as np

from costscaler.adapters.backfill import fetch_backfill, grid, range_queries, slices
from costscaler.adapters.prometheus import Target
from costscaler.adapters.promql import SeriesLabels, build_queries
from costscaler.api.deployment import Metrics, MetricsPreset

LABELS = SeriesLabels()
VLLM = build_queries(Metrics(preset=MetricsPreset.VLLM), LABELS, "1m")
END, STEP = 1_700_000_100.0, 10.0


def target(dep: str, window: float = 60.0, quantile: float = 0.95) -> Target:
    return Target(("ml", dep), VLLM, quantile, 1.0, window)


class RecordingRange:
    """Answers each query text with series of (t -> value) and records every call."""

    def __init__(self, answers: dict[str, list[tuple[dict, dict[float, str]]]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, float, float, float]] = []

    def custom_query_range(self, query: str, start: float, end: float, step: float) -> list[dict]:
        self.calls.append((query, start, end, step))
        if query not in self.answers:
            raise ConnectionError("connection refused")
        return [
            {"metric": labels, "values": [[t, v] for t, v in points.items() if start <= t <= end]}
            for labels, points in self.answers[query]
        ]


def queries_by_name(targets: list[Target]) -> dict[str, str]:
    return {m.name: m.query for m in range_queries(targets, LABELS)}


def test_one_range_query_per_metric_whatever_the_number_of_deployments():
    targets = [target(f"m{i}") for i in range(50)]
    found = range_queries(targets, LABELS)
    assert len(found) == 3 and all(len(keys) == 50 for keys in found.values())
    texts = queries_by_name(targets)
    assert texts["rate"] == f"sum by (namespace, deployment) ({VLLM.request_rate})"
    assert texts["latency"] == f"histogram_quantile(0.95, {VLLM.latency_buckets})"
    # A second SLO quantile needs its own latency query, still not one per deployment.
    assert len(range_queries([*targets, target("p99", quantile=0.99)], LABELS)) == 4


def test_grid_is_step_aligned_and_slices_bound_the_samples_per_response():
    times = grid(1005.0, 60.0, 10.0)
    assert times.tolist() == [940.0, 950.0, 960.0, 970.0, 980.0, 990.0, 1000.0]
    parts = slices(np.arange(100.0), series=1000, max_samples=25_000)
    assert [p.size for p in parts] == [25, 25, 25, 25]
    assert np.concatenate(parts).tolist() == list(np.arange(100.0))


def test_past_values_land_on_the_grid_per_deployment_and_missing_points_are_nan():
    targets = [target("a"), target("b", window=30.0)]
    texts = queries_by_name(targets)
    t = grid(END, 60.0, STEP)
    a, b = {"namespace": "ml", "deployment": "a"}, {"namespace": "ml", "deployment": "b"}
    client = RecordingRange({
        texts["rate"]: [
            (a, {x: str(i) for i, x in enumerate(t) if i != 3}),  # one scrape missing
            (b, {x: "7" for x in t}),
            ({"namespace": "ml", "deployment": "gone"}, {x: "1" for x in t}),
        ],
        texts["latency"]: [(a, {x: "0.5" for x in t}), (b, {t[-1]: "NaN"})],
        texts["tokens"]: [(a, {x: "90" for x in t})],
    })  # fmt: skip
    pasts, report = fetch_backfill(client, targets, LABELS, END, STEP)
    assert report.queries == 3 and report.errors == 0
    assert {c[0] for c in client.calls} == set(texts.values())
    assert all(c[3] == STEP for c in client.calls)
    pa, pb = pasts[("ml", "a")], pasts[("ml", "b")]
    assert pa.times.tolist() == t.tolist()
    assert pa.rate[:3].tolist() == [0.0, 1.0, 2.0] and math.isnan(pa.rate[3])
    assert (pa.latency == 0.5).all() and (pa.tokens == 90).all()
    assert pb.times.tolist() == t[-4:].tolist()  # its own 30 s window
    assert (pb.rate == 7).all() and np.isnan(pb.latency).all() and np.isnan(pb.tokens).all()
    assert report.samples == 6 + 4


def test_a_failed_query_leaves_gaps_and_a_deployment_without_history_gets_none():
    targets = [target("a"), target("new")]
    texts = queries_by_name(targets)
    t = grid(END, 60.0, STEP)
    a = {"namespace": "ml", "deployment": "a"}
    client = RecordingRange({texts["rate"]: [(a, {x: "2" for x in t[-3:]})]})
    pasts, report = fetch_backfill(client, targets, LABELS, END, STEP)
    assert report.errors == 2 and set(report.failed) == {texts["latency"], texts["tokens"]}
    pa = pasts[("ml", "a")]
    assert pa.times.tolist() == t[-3:].tolist()  # starts at its first request-rate sample
    assert np.isnan(pa.latency).all()
    assert pasts[("ml", "new")].times.size == 0


def test_long_windows_are_split_into_slices_that_cover_the_grid_once():
    targets = [target(f"m{i}", window=3600.0) for i in range(1000)]
    texts = queries_by_name(targets)
    rows = grid(END, 3600.0, STEP)
    answers = {
        texts["rate"]: [
            ({"namespace": "ml", "deployment": f"m{i}"}, {x: "1" for x in rows})
            for i in range(1000)
        ]
    }
    client = RecordingRange(answers)
    pasts, report = fetch_backfill(client, targets, LABELS, END, STEP)
    assert report.samples == 1000 * rows.size
    rate_calls = [c for c in client.calls if c[0] == texts["rate"]]
    assert len(rate_calls) == 2  # 361 points x 1,000 series > 250,000 samples
    assert rate_calls[0][1] == rows[0] and rate_calls[-1][2] == rows[-1]
    assert rate_calls[1][1] == rate_calls[0][2] + STEP
    assert all((p.rate == 1).all() and p.times.size == rows.size for p in pasts.values())
