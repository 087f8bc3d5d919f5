import numpy as np

from costscaler.core.keepalive import apply, make_before_break


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


NAMES = ("od",)
HOLD = np.array([300.0])


def test_each_surplus_replica_keeps_its_own_clock():
    # Two replicas became surplus at 0 s, a third at 200 s: at 300 s the first two go.
    final, clocks = apply(NAMES, _arr(3), _arr(6), {"od": (0.0, 0.0, 200.0)}, 300.0, HOLD)
    assert final.tolist() == [4] and clocks == {"od": (200.0,)}


def test_new_surplus_starts_a_clock_now_and_demand_back_stops_the_oldest():
    final, clocks = apply(NAMES, _arr(3), _arr(5), {"od": (0.0,)}, 100.0, HOLD)
    assert final.tolist() == [5] and clocks == {"od": (0.0, 100.0)}
    # Demand takes one replica back: the oldest clock stops, the younger one runs on.
    final, clocks = apply(NAMES, _arr(4), _arr(5), clocks, 250.0, HOLD)
    assert final.tolist() == [5] and clocks == {"od": (100.0,)}


def test_no_surplus_no_clock():
    final, clocks = apply(NAMES, _arr(5), _arr(5), {"od": (0.0,)}, 900.0, HOLD)
    assert final.tolist() == [5] and clocks == {}
