"""The queueing model against hand-computed cases and a brute-force FIFO replay."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costscaler.sim import service


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


def test_wait_and_share_by_hand():
    # 20 arrivals, 10 req/s, no backlog: the queue grows 0 -> 10, waits 0 -> 1 s.
    result = service.replay([20], [10], service_s=0.2, threshold_s=0.7)
    assert result.wait_first_s[0] == 0 and result.wait_last_s[0] == pytest.approx(1.0)
    # wait <= 0.5 s for u <= 0.5: half of them.
    assert result.met[0] == pytest.approx(10.0)


def test_no_capacity_misses_everything():
    result = service.replay([4, 4], [0, 10], service_s=0.0, threshold_s=10)
    assert result.met[0] == 0 and np.isinf(result.wait_last_s[0])
    assert result.backlog[1] == 0 and result.met[1] == pytest.approx(4)


def test_service_time_over_threshold_misses():
    assert service.replay([5], [100], service_s=2.0, threshold_s=1.0).met[0] == 0


def test_chunked_equals_whole():
    rng = np.random.default_rng(3)
    a, mu = rng.poisson(9, 500).astype(float), rng.uniform(5, 12, 500)
    whole = service.replay(a, mu, 0.3, 1.0)
    first = service.replay(a[:200], mu[:200], 0.3, 1.0)
    rest = service.replay(a[200:], mu[200:], 0.3, 1.0, backlog0=first.backlog[-1])
    np.testing.assert_allclose(np.concatenate([first.met, rest.met]), whole.met)
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


def test_buckets_are_cumulative_and_end_at_arrivals():
    counts = service.latency_buckets([2.0], [8.0], [5.0], 0.1, [0.1, 0.5, 1.0, np.inf])
    assert np.all(np.diff(counts[0]) >= 0) and counts[0, -1] == pytest.approx(8)


def test_in_flight_little():
    running, waiting = service.in_flight([10.0], [4.0], service_s=2.0, replicas=[2])
    assert running[0] == 10 and waiting[0] == 2
