import numpy as np

from costscaler.core.stock import stalled

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
