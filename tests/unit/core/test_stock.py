import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from costscaler.core.stock import STALL_FACTOR, stalled

T = np.arange(0.0, 1800.0, 15.0)
COLD = np.array([300.0])


def test_replicas_pending_for_twice_the_cold_start_stall_the_pool():
    ready = np.zeros((1, T.size))
    warming = np.full((1, T.size), 3.0)
    assert stalled(T, ready, warming, COLD).tolist() == [True]


def test_a_normal_cold_start_does_not_stall():
    ready = np.where(T >= 300.0, 3.0, 0.0)[None, :]
    warming = np.where(T < 300.0, 3.0, 0.0)[None, :]
    assert stalled(T, ready, warming, COLD).tolist() == [False]


def test_a_long_scale_up_that_keeps_delivering_does_not_stall():
    # Something is always warming, but a replica becomes ready every two minutes.
    ready = (T // 120.0)[None, :]
    warming = np.full((1, T.size), 2.0)
    assert stalled(T, ready, warming, COLD).tolist() == [False]


def _reference(times, ready, warming, cold_start_s):
    """`stalled` as numpy (the engine's before the scan was compiled)."""
    w = np.nan_to_num(warming, nan=0.0)
    r = np.nan_to_num(ready, nan=0.0)
    grew = np.concatenate((np.ones((r.shape[0], 1), dtype=bool), r[:, 1:] > r[:, :-1]), axis=1)
    progress = (w <= 0) | grew
    last = np.maximum.accumulate(np.where(progress, times[None, :], -np.inf), axis=1)
    waited = np.where(w > 0, times[None, :] - last, 0.0)
    return (waited > STALL_FACTOR * cold_start_s[:, None]).any(axis=1)


counts = st.sampled_from([0.0, 1.0, 2.0, 3.0, math.nan])


@settings(max_examples=300, deadline=None)
@given(st.data(), st.integers(1, 4), st.integers(1, 30))
def test_the_compiled_scan_matches_the_numpy_formulas(data, n, t):
    times = np.cumsum(data.draw(st.lists(st.floats(0.0, 60.0), min_size=t, max_size=t)))
    grid = st.lists(st.lists(counts, min_size=t, max_size=t), min_size=n, max_size=n)
    ready, warming = np.array(data.draw(grid)), np.array(data.draw(grid))
    cold = np.array(data.draw(st.lists(st.floats(0.0, 120.0), min_size=n, max_size=n)))
    assert (
        stalled(times, ready, warming, cold).tolist()
        == _reference(times, ready, warming, cold).tolist()
    )
