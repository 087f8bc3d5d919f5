"""The queueing model against hand-computed cases and a brute-force FIFO replay."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costscaler.sim import service


def cumulative(arrivals):
    return np.concatenate(([0.0], np.cumsum(np.asarray(arrivals, dtype=float))))


@pytest.mark.parametrize(
    ("arrivals", "capacity", "backlog0", "served", "backlog"),
    [
        pytest.param([5, 5], [10, 10], 0, [5, 5], [0, 0], id="under-capacity"),
        pytest.param([15, 0, 0], [10, 10, 10], 0, [10, 5, 0], [5, 0, 0], id="burst-drains"),
        pytest.param([3], [0], 4, [0], [7], id="no-capacity-carries"),
        pytest.param([0, 0], [2, 2], 3, [2, 1], [1, 0], id="initial-backlog"),
        pytest.param([], [], 0, [], [], id="empty"),
    ],
)
def test_backlog_path(arrivals, capacity, backlog0, served, backlog):
    got_served, got_backlog = service.backlog_path(arrivals, capacity, 1.0, backlog0)
    np.testing.assert_allclose(got_served, served)
    np.testing.assert_allclose(got_backlog, backlog)


def test_under_capacity_has_no_wait_even_after_idle_steps():
    result = service.replay(cumulative([5, 0, 0, 5]), 0, [10] * 4, 0.5, 1.0)
    np.testing.assert_allclose(result.wait_first_s, 0)
    np.testing.assert_allclose(result.wait_last_s, 0)
    np.testing.assert_allclose(result.met, [5, 0, 0, 5])


def test_burst_waits_by_hand():
    # 20 arrive in step 0 at 10 req/s: the 10 started in step 0 arrived in its first half
    # (waits 0 -> 0.5 s); the 10 started in step 1 arrived in the second half (0.5 -> 1 s).
    result = service.replay(cumulative([20, 0]), 0, [10, 10], service_s=0.2, threshold_s=0.95)
    np.testing.assert_allclose(result.wait_first_s, [0, 0.5])
    np.testing.assert_allclose(result.wait_last_s, [0.5, 1.0])
    # latency <= 0.95 means wait <= 0.75: all of step 0, half of step 1.
    np.testing.assert_allclose(result.met, [10, 5])


def test_no_capacity_starts_nothing_then_drains():
    result = service.replay(cumulative([4, 0, 0]), 0, [0, 0, 10], service_s=0.0, threshold_s=2.5)
    np.testing.assert_allclose(result.served, [0, 0, 4])
    # Requests from step 0 (arrived over [0, 1)) start evenly over step 2 ([2, 3)): 2 s each.
    np.testing.assert_allclose([result.wait_first_s[2], result.wait_last_s[2]], [2, 2])
    assert result.met[2] == pytest.approx(4)
    late = service.replay(cumulative([4, 0, 0]), 0, [0, 0, 10], service_s=0.0, threshold_s=1.5)
    assert late.met[2] == 0


def test_service_time_over_threshold_misses():
    assert service.replay(cumulative([5]), 0, [100], service_s=2.0, threshold_s=1.0).met[0] == 0


def test_chunked_equals_whole():
    rng = np.random.default_rng(3)
    a, mu = rng.poisson(9, 500).astype(float), rng.uniform(5, 12, 500)
    arrived = cumulative(a)
    whole = service.replay(arrived, 0, mu, 0.3, 1.0)
    first = service.replay(arrived, 0, mu[:200], 0.3, 1.0)
    rest = service.replay(arrived, 200, mu[200:], 0.3, 1.0, started0=first.served.sum())
    np.testing.assert_allclose(np.concatenate([first.met, rest.met]), whole.met, atol=1e-9)
    np.testing.assert_allclose(rest.backlog, whole.backlog[200:], atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 30), min_size=1, max_size=40),
    st.lists(st.floats(0, 25), min_size=1, max_size=40),
)
def test_lindley_matches_loop(arrivals, capacity):
    n = min(len(arrivals), len(capacity))
    a, mu = np.array(arrivals[:n], float), np.array(capacity[:n])
    served, backlog = service.backlog_path(a, mu)
    b = 0.0
    for t in range(n):
        new = max(0.0, b + a[t] - mu[t])
        assert backlog[t] == pytest.approx(new, abs=1e-6)
        assert served[t] == pytest.approx(b + a[t] - new, abs=1e-6)
        b = new


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=1, max_size=30), st.floats(1, 15))
def test_met_never_exceeds_started(arrivals, capacity):
    result = service.replay(cumulative(arrivals), 0, [capacity] * len(arrivals), 0.1, 1.0)
    assert np.all(result.met <= result.served + 1e-9)
    assert np.all(result.wait_first_s >= 0) and np.all(result.wait_last_s >= 0)


def test_buckets_are_cumulative_and_end_at_started():
    result = service.replay(cumulative([20, 0]), 0, [10, 10], 0.1, 1.0)
    counts = service.latency_buckets(result, 0.1, [0.1, 0.5, 1.0, np.inf])
    assert np.all(np.diff(counts, axis=1) >= 0)
    np.testing.assert_allclose(counts[:, -1], result.served)


def test_in_flight_little():
    running, waiting = service.in_flight([10.0], [4.0], service_s=2.0, replicas=[2])
    assert running[0] == 10 and waiting[0] == 2


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=1, max_size=30), st.floats(2, 20))
def test_histogram_fast_path_matches_buckets(arrivals, capacity):
    result = service.replay(cumulative(arrivals), 0, [capacity] * len(arrivals), 0.3, 1.0)
    edges = [0.1, 0.3, 0.5, 1.0, 2.0, 5.0, np.inf]
    np.testing.assert_allclose(
        service.latency_histogram(result, 0.3, edges),
        service.latency_buckets(result, 0.3, edges).sum(axis=0),
        atol=1e-9,
    )


def test_latency_rank_is_the_histogram_searchsorted():
    rng = np.random.default_rng(5)
    arrivals = rng.poisson(12.0, 2000).astype(float)
    arrived = np.concatenate(([0.0], np.cumsum(arrivals)))
    capacity = np.where(np.arange(2000) % 300 < 200, 14.0, 9.0)  # queues build and drain
    res = service.replay(arrived, 0, capacity, 0.3, 2.0)
    edges = np.append(0.01 * 1.05 ** np.arange(200), np.inf)
    counts = service.latency_histogram(res, 0.3, edges)
    assert res.backlog.max() > 10
    for rank in (0.0, 1.0, 0.5 * arrived[-1], 0.99 * arrived[-1], counts[-1], counts[-1] + 1):
        want = int(np.searchsorted(counts, rank))
        assert service.latency_rank(res, 0.3, edges, rank) == want


def test_a_drained_queue_dates_its_last_start_to_its_own_arrival():
    # Ten requests in the first second, then a pause: at 0.3/s the running sum of starts
    # ends a hair above 10, which must not date the last start to the arrival after the pause.
    arrivals = np.array([10.0] + [0.0] * 40 + [2.0])
    arrived = np.concatenate(([0.0], np.cumsum(arrivals)))
    res = service.replay(arrived, 0, np.full(arrivals.size, 0.3), 0.0, 100.0)
    drain = int(np.flatnonzero(res.backlog == 0)[0])
    assert np.cumsum(res.served)[drain] > 10.0  # the drift this guards against
    assert res.wait_last_s[drain] == pytest.approx(drain + 1 - 1.0)
