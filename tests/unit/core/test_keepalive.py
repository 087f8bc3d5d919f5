import numpy as np

from costscaler.core.keepalive import make_before_break


def _arr(*v: int) -> np.ndarray:
    return np.array(v, dtype=np.int64)


CAP = np.array([1.0, 2.0])


def test_ready_replicas_serve_until_the_plan_moved_to_is_ready():
    # 10 ready on pool 0; the plan moves to 5 on pool 1, none of which is ready yet.
    out = make_before_break(_arr(0, 5), _arr(10, 5), _arr(10, 0), _arr(0, 5), CAP, _arr(0, 1))
    assert out.tolist() == [10, 5]


def test_release_is_free_once_the_new_capacity_serves():
    out = make_before_break(_arr(0, 5), _arr(10, 5), _arr(10, 5), _arr(0, 5), CAP, _arr(0, 1))
    assert out.tolist() == [0, 5]


def test_only_the_capacity_the_plan_will_serve_is_kept():
    # The plan serves 4 req/s once ready: keep 4 of the 10 ready replicas, not all.
    out = make_before_break(_arr(0, 2), _arr(10, 2), _arr(10, 0), _arr(0, 2), CAP, _arr(0, 1))
    assert out.tolist() == [4, 2]
