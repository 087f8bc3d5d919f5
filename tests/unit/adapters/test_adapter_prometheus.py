"""Batched readings: one query per distinct text, and every kind of bad result rejected."""

from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest
from prom_answers import answer

from costscaler.adapters.prometheus import PrometheusSource, Target
from costscaler.adapters.promql import SeriesLabels, build_queries
from costscaler.api.deployment import Metrics, MetricsPreset

LABELS = SeriesLabels()
VLLM = build_queries(Metrics(preset=MetricsPreset.VLLM), LABELS, "1m")


def sample(value: float | str, **labels: str) -> dict:
    return {"metric": labels, "value": [1700000000.0, str(value)]}


class RecordingProm:
    """Answers canned vectors per query text and records every query sent."""

    def __init__(self, answers: dict[str, list[dict]], fail: set[str] = frozenset()) -> None:
        self.answers = answers
        self.fail = fail
        self.sent: list[str] = []

    def custom_query(self, query: str) -> list[dict]:
        self.sent.append(query)
        return answer(self.answers, self.fail, query)


def healthy(ns: str = "ml", dep: str = "llama", rate: float = 4.0) -> dict[str, list[dict]]:
    return {
        VLLM.request_rate: [
            sample(rate * 0.75, namespace=ns, deployment=dep, pool="spot"),
            sample(rate * 0.25, namespace=ns, deployment=dep, pool="od"),
        ],
        VLLM.latency_buckets: [
            sample(rate * 0.5, namespace=ns, deployment=dep, le="1"),
            sample(rate, namespace=ns, deployment=dep, le="2"),
            sample(rate, namespace=ns, deployment=dep, le="+Inf"),
        ],
        VLLM.token_rate: [sample(100, namespace=ns, deployment=dep, pool="spot")],
        VLLM.freshness: [sample(1.5, namespace=ns, deployment=dep, pool="spot")],
    }


def fetch(client: RecordingProm, *keys: tuple[str, str], queries=VLLM):
    source = PrometheusSource(client, LABELS, max_age_seconds=4.0)
    targets = [Target(k, queries, quantile=0.95, threshold_seconds=1.0) for k in keys]
    return asyncio.run(source.fetch(targets))


def test_healthy_reading_sums_pools_and_computes_quantile_and_attainment():
    readings, report = fetch(RecordingProm(healthy()), ("ml", "llama"))
    r = readings[("ml", "llama")]
    assert r.problem is None
    assert r.rate_by_pool == {"spot": 3.0, "od": 1.0}
    assert r.request_rate == 4.0
    assert r.latency_seconds == pytest.approx(1.9)
    assert r.attainment == pytest.approx(0.5)
    assert r.token_rate == 100
    # Four texts a reading needs, three fast signals (queue, KV cache, prompt tokens): the
    # histogram alone, the six per-pool texts three to a query.
    assert len(VLLM.texts()) == 7 and (report.queries, report.errors) == (3, 0)


def test_one_query_per_metric_whatever_the_number_of_deployments():
    answers = healthy()
    for i in range(50):
        for text, vector in healthy(dep=f"d{i}").items():
            answers[text] = answers[text] + vector
    client = RecordingProm(answers)
    readings, report = fetch(client, *[("ml", f"d{i}") for i in range(50)])
    assert len(client.sent) == 3 == report.queries
    assert all(r.problem is None and r.request_rate == 4.0 for r in readings.values())


def test_zero_traffic_is_data_not_missing():
    answers = healthy(rate=0.0)
    r = fetch(RecordingProm(answers), ("ml", "llama"))[0][("ml", "llama")]
    assert r.problem is None
    assert r.request_rate == 0.0
    assert r.latency_seconds is None


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        pytest.param(lambda a: a.update({VLLM.request_rate: []}), "NoData", id="empty"),
        pytest.param(
            lambda a: a[VLLM.request_rate].append(
                sample(1, namespace="ml", deployment="llama", pool="spot")
            ),
            "MultipleSeries",
            id="duplicate-pool-series",
        ),
        pytest.param(
            lambda a: a[VLLM.request_rate].__setitem__(
                0, sample(math.nan, namespace="ml", deployment="llama", pool="spot")
            ),
            "InvalidValue",
            id="nan",
        ),
        pytest.param(
            lambda a: a[VLLM.latency_buckets].__setitem__(
                0, sample("+Inf", namespace="ml", deployment="llama", le="1")
            ),
            "InvalidValue",
            id="inf",
        ),
        pytest.param(
            lambda a: a.update(
                {VLLM.freshness: [sample(9, namespace="ml", deployment="llama", pool="spot")]}
            ),
            "StaleMetrics",
            id="stale-over-two-intervals",
        ),
        pytest.param(
            lambda a: a[VLLM.request_rate].__setitem__(
                0, sample(-1, namespace="ml", deployment="llama", pool="spot")
            ),
            "NegativeValue",
            id="negative",
        ),
    ],
)
def test_bad_results_are_rejected_with_a_reason(mutate, reason):
    answers = healthy()
    mutate(answers)
    r = fetch(RecordingProm(answers), ("ml", "llama"))[0][("ml", "llama")]
    assert r.problem == reason
    assert r.request_rate is None
    assert r.message


def test_failed_query_marks_every_dependent_reading_and_counts_one_error():
    client = RecordingProm(healthy(), fail={VLLM.request_rate})
    readings, report = fetch(client, ("ml", "llama"), ("ml", "other"))
    assert {r.problem for r in readings.values()} == {"QueryFailed"}
    assert "connection refused" in readings[("ml", "llama")].message
    assert report.errors == 1


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        pytest.param(sample(math.nan, namespace="ml", deployment="a", pool="spot"), "InvalidValue"),
        pytest.param({"metric": {"namespace": "ml", "deployment": "a"}}, "MalformedResult"),
    ],
)
def test_a_bad_sample_is_only_its_deployments_problem_and_names_it(bad, reason):
    # Samples are compacted as they arrive; a bad value is kept as such and reported by the
    # deployment reading it, not by the fetch or its neighbours.
    answers = healthy(dep="a")
    for text, vector in healthy(dep="b").items():
        answers[text] = answers[text] + vector
    answers[VLLM.request_rate] = [bad, *answers[VLLM.request_rate][1:]]
    readings, report = fetch(RecordingProm(answers), ("ml", "a"), ("ml", "b"))
    assert readings[("ml", "a")].problem == reason
    assert "('ml', 'a')" in readings[("ml", "a")].message
    assert readings[("ml", "b")].problem is None and readings[("ml", "b")].request_rate == 4.0
    assert report.errors == 0


def test_other_deployments_series_are_not_mine():
    r = fetch(RecordingProm(healthy(dep="someone-else")), ("ml", "llama"))[0][("ml", "llama")]
    assert r.problem == "NoData"


def test_user_query_without_labels_belongs_to_its_deployment():
    m = Metrics(preset=MetricsPreset.GENERIC, request_rate="sum(rate(x[1m]))", latency="lat")
    q = build_queries(m, LABELS, "1m", "ml")
    client = RecordingProm({q.request_rate: [sample(2.5)], q.latency: [sample(0.7)]})
    r = fetch(client, ("ml", "llama"), queries=q)[0][("ml", "llama")]
    assert (r.problem, r.request_rate, r.latency_seconds) == (None, 2.5, 0.7)


def test_user_latency_with_two_series_is_ambiguous():
    m = Metrics(preset=MetricsPreset.GENERIC, request_rate="r", latency="lat")
    q = build_queries(m, LABELS, "1m", "ml")
    lat = [sample(0.7, a="1"), sample(0.9, a="2")]
    client = RecordingProm({q.request_rate: [sample(2)], q.latency: lat})
    assert fetch(client, ("ml", "x"), queries=q)[0][("ml", "x")].problem == "MultipleSeries"


def test_mean_latency_nan_without_traffic_is_not_bad_data():
    q = build_queries(Metrics(preset=MetricsPreset.TRITON), LABELS, "1m")
    key = {"namespace": "ml", "deployment": "resnet"}
    client = RecordingProm(
        {
            q.request_rate: [sample(0, pool="od", **key)],
            q.latency: [sample(math.nan, **key)],
            q.freshness: [sample(1, pool="od", **key)],
        }
    )
    r = fetch(client, ("ml", "resnet"), queries=q)[0][("ml", "resnet")]
    assert (r.problem, r.request_rate, r.latency_seconds) == (None, 0.0, None)


class HungProm(RecordingProm):
    """A Prometheus that accepts queries and answers none until released (SIGSTOP)."""

    def __init__(self, answers: dict[str, list[dict]]) -> None:
        super().__init__(answers)
        self.released = threading.Event()

    def custom_query(self, query: str) -> list[dict]:
        self.sent.append(query)
        if not self.released.wait(timeout=10):
            raise TimeoutError("read timed out")
        return answer(self.answers, self.fail, query)


def test_a_hung_prometheus_fails_the_fetch_by_its_deadline_without_a_queue():
    client = HungProm(healthy())
    source = PrometheusSource(client, LABELS, max_age_seconds=4.0, deadline_seconds=0.2)
    targets = [Target(("ml", "llama"), VLLM, quantile=0.95, threshold_seconds=1.0)]
    try:
        for _ in range(3):  # three rounds of ticks while it hangs
            started = time.monotonic()
            readings, report = asyncio.run(source.fetch(targets))
            assert time.monotonic() - started < 1.0  # the deadline, not a 10 s read timeout
            assert readings[("ml", "llama")].problem == "QueryFailed"
            assert report.errors == report.queries == 3
        # Two threads each hold one query; the ones that found no thread were dropped, and
        # the held ones were not sent again: nothing waits to be sent when Prometheus returns.
        assert len(client.sent) == 2
    finally:
        client.released.set()
    wait_until(lambda: not source.waiting)
    readings, report = asyncio.run(source.fetch(targets))
    assert readings[("ml", "llama")].problem is None and report.errors == 0


def wait_until(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.01)


# Issue 13: the SLO window's counts, from the histogram's increase over the window.
WEEK = build_queries(Metrics(preset=MetricsPreset.VLLM), LABELS, "1m", slo_window="7d")
DAY = build_queries(Metrics(preset=MetricsPreset.VLLM), LABELS, "1m", slo_window="24h")


def counted(dep: str = "llama", queries=WEEK, scale: float = 1.0) -> dict[str, list[dict]]:
    answers = healthy(dep=dep)
    key = {"namespace": "ml", "deployment": dep}
    answers[queries.slo_counts] = [  # 9,000 under 1 s, 9,900 under 2 s, 10,000 in all
        sample(9000 * scale, le="1", **key),
        sample(9900 * scale, le="2", **key),
        sample(10000 * scale, le="+Inf", **key),
    ]
    return answers


def test_window_counts_come_from_the_histogram_interpolated_at_the_threshold():
    source = PrometheusSource(RecordingProm(counted()), LABELS, max_age_seconds=4.0)
    targets = [Target(("ml", "llama"), WEEK, quantile=0.95, threshold_seconds=1.5)]
    r = asyncio.run(source.fetch(targets))[0][("ml", "llama")]
    # 1.5 s is halfway through the (1, 2] bucket: 9,000 + 900 / 2 good.
    assert (r.problem, r.slo_good, r.slo_total) == (None, 9450.0, 10000.0)


def test_one_counts_query_per_window_for_every_deployment():
    answers: dict[str, list[dict]] = {}
    for i in range(20):
        for text, vector in counted(f"d{i}", WEEK if i % 2 else DAY).items():
            answers[text] = answers.get(text, []) + vector
    client = RecordingProm(answers)
    source = PrometheusSource(client, LABELS, max_age_seconds=4.0)
    targets = [
        Target(("ml", f"d{i}"), WEEK if i % 2 else DAY, quantile=0.95, threshold_seconds=1.0)
        for i in range(20)
    ]
    readings, report = asyncio.run(source.fetch(targets))
    assert report.queries == len(client.sent) == 5  # 3 per tick + one per distinct window
    assert WEEK.slo_counts in client.sent and DAY.slo_counts in client.sent
    assert {(r.slo_good, r.slo_total) for r in readings.values()} == {(9000.0, 10000.0)}


def _keep(answers: dict) -> None:
    """No change: the counts query itself fails."""


@pytest.mark.parametrize(
    ("spoil", "fail"),
    [
        pytest.param(_keep, True, id="query-failed"),
        pytest.param(lambda a: a.update({WEEK.slo_counts: []}), False, id="no-series-yet"),
        pytest.param(lambda a: a[WEEK.slo_counts].pop(), False, id="no-inf-bucket"),
        pytest.param(
            lambda a: a[WEEK.slo_counts].append(sample(1, namespace="ml", deployment="llama")),
            False,
            id="bucket-without-le",
        ),
    ],
)
def test_unusable_counts_are_unknown_and_the_reading_stands(spoil, fail: bool):
    answers = counted()
    spoil(answers)
    client = RecordingProm(answers, fail={WEEK.slo_counts} if fail else set())
    source = PrometheusSource(client, LABELS, max_age_seconds=4.0)
    targets = [Target(("ml", "llama"), WEEK, quantile=0.95, threshold_seconds=1.0)]
    r, report = asyncio.run(source.fetch(targets))
    reading = r[("ml", "llama")]
    assert (reading.problem, reading.request_rate) == (None, 4.0)
    assert (reading.slo_good, reading.slo_total) == (None, None)
    assert report.errors == (1 if fail else 0)


def test_window_counts_are_asked_again_only_when_due():
    # A 7-day window's counts move by a tick's requests in a week's: they are reused for
    # COUNTS_EVERY_S (a hundredth of the window when shorter), then asked again.
    now = [1000.0]
    client = RecordingProm(counted())
    source = PrometheusSource(client, LABELS, max_age_seconds=4.0, clock=lambda: now[0])
    week = [Target(("ml", "llama"), WEEK, 0.95, 1.0, slo_window_seconds=7 * 86400.0)]
    hour = [Target(("ml", "llama"), WEEK, 0.95, 1.0, slo_window_seconds=3600.0)]

    def round_(targets, after: float) -> tuple[int, tuple]:
        now[0] += after
        sent = len(client.sent)
        readings, report = asyncio.run(source.fetch(targets))
        r = readings[("ml", "llama")]
        assert report.queries == len(client.sent) - sent
        return report.queries, (r.slo_good, r.slo_total)

    # 3 a tick (7 texts: the histogram alone, six per pool three to a query), 4 with counts.
    assert round_(week, 0) == (4, (9000.0, 10000.0))
    assert round_(week, 15) == (3, (9000.0, 10000.0))  # reused
    assert round_(week, 284) == (3, (9000.0, 10000.0))
    assert round_(week, 1) == (4, (9000.0, 10000.0))  # 300 s: due again
    assert round_(hour, 15) == (3, (9000.0, 10000.0))  # an hour's window: every 36 s
    assert round_(hour, 21) == (4, (9000.0, 10000.0))
    client.fail = {WEEK.slo_counts}
    assert round_(hour, 36) == (4, (None, None))  # failed: unknown, and asked next round
    assert round_(hour, 15) == (4, (None, None))


def test_counts_without_a_deployments_series_are_asked_again_next_round():
    """Before, an answer with no series for a deployment (no sample yet, or created since)
    was reused for the whole refresh period: its error budget stayed unknown for 5 min."""
    now = [1000.0]
    answers = counted()
    answers[WEEK.slo_counts] = []  # the histogram has no sample yet
    client = RecordingProm(answers)
    source = PrometheusSource(client, LABELS, max_age_seconds=4.0, clock=lambda: now[0])
    week = [Target(("ml", "llama"), WEEK, 0.95, 1.0, slo_window_seconds=7 * 86400.0)]
    r, report = asyncio.run(source.fetch(week))
    assert report.queries == 4 and r[("ml", "llama")].slo_total is None
    client.answers[WEEK.slo_counts] = counted()[WEEK.slo_counts]
    now[0] += 15
    r, report = asyncio.run(source.fetch(week))
    assert report.queries == 4, "asked again at once"
    assert (r[("ml", "llama")].slo_good, r[("ml", "llama")].slo_total) == (9000.0, 10000.0)
    now[0] += 15
    assert asyncio.run(source.fetch(week))[1].queries == 3, "then reused while fresh"


def _merged_and_alone(answers: dict, keys: list[tuple[str, str]], fail: frozenset = frozenset()):
    alone = PrometheusSource(RecordingProm(answers, fail), LABELS, max_age_seconds=4.0)
    alone.MERGE_PARTS = 1
    targets = [Target(k, VLLM, quantile=0.95, threshold_seconds=1.0) for k in keys]
    merged = PrometheusSource(RecordingProm(answers, fail), LABELS, max_age_seconds=4.0)
    return asyncio.run(merged.fetch(targets)), asyncio.run(alone.fetch(targets))


def _two(mutate) -> dict:
    answers = healthy(dep="a")
    for text, vector in healthy(dep="b").items():
        answers[text] = answers[text] + vector
    answers[VLLM.queue_depth] = [sample(3, namespace="ml", deployment="a", pool="spot")]
    mutate(answers)
    return answers


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda a: None, id="healthy"),
        pytest.param(lambda a: a[VLLM.request_rate].__setitem__(
            0, sample(math.nan, namespace="ml", deployment="a", pool="spot")), id="nan"),
        pytest.param(lambda a: a[VLLM.token_rate].append(
            sample(1, namespace="ml", deployment="a", pool="spot")), id="duplicate"),
        pytest.param(lambda a: a[VLLM.freshness].__setitem__(
            0, sample(-1, namespace="ml", deployment="b", pool="spot")), id="negative-age"),
        pytest.param(lambda a: a[VLLM.freshness].__setitem__(
            0, sample(9, namespace="ml", deployment="a", pool="spot")), id="stale"),
        pytest.param(lambda a: a[VLLM.request_rate].__setitem__(
            0, {"metric": {"namespace": "ml", "deployment": "a"}}), id="malformed"),
        pytest.param(lambda a: a.update({VLLM.request_rate: []}), id="missing"),
    ],
)  # fmt: skip
def test_merged_queries_read_as_if_each_text_were_sent_alone(mutate):
    """Issue 18: the per-pool texts go three to a query; each deployment's reading, its bad
    values and their attribution are the same as with one query per text."""
    answers = _two(mutate)
    (merged, merged_report), (alone, alone_report) = _merged_and_alone(
        answers, [("ml", "a"), ("ml", "b"), ("ml", "c")]
    )
    assert merged == alone
    assert (merged_report.queries, alone_report.queries) == (3, 7)


def test_a_failed_merged_query_fails_only_the_texts_it_carried():
    # The fast signals share a query: its failure leaves readings usable, without signals.
    (readings, report), _ = _merged_and_alone(
        _two(lambda a: None), [("ml", "a")], fail=frozenset({VLLM.queue_depth})
    )
    r = readings[("ml", "a")]
    assert r.problem is None and r.request_rate == 4.0 and r.queue_by_pool == {}
    assert report.errors == 1
    assert set(report.failed) == {VLLM.queue_depth, VLLM.kv_cache_usage, VLLM.prompt_token_rate}
    # A required text's query failing fails the reading, naming that text.
    (readings, report), _ = _merged_and_alone(
        _two(lambda a: None), [("ml", "a")], fail=frozenset({VLLM.token_rate})
    )
    assert readings[("ml", "a")].problem == "QueryFailed"
    assert VLLM.request_rate in readings[("ml", "a")].message and report.errors == 1


def test_user_queries_are_never_merged():
    """One user's query that Prometheus rejects must not fail another deployment's reading."""
    m = Metrics(preset=MetricsPreset.VLLM, request_rate="sum(rate(x[1m]))")
    q = build_queries(m, LABELS, "1m", "ml")
    assert q.request_rate not in q.mergeable and q.token_rate in q.mergeable
    client = RecordingProm({q.request_rate: [sample(2.5)]})
    fetch(client, ("ml", "llama"), queries=q)
    assert q.request_rate in client.sent
