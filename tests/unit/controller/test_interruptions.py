"""Spot interruptions come from nodes that go while they hold replicas (issue 16)."""

from __future__ import annotations

from costscaler.adapters.children import ChildState
from costscaler.adapters.pending import PlacedPod, placed_pod
from costscaler.controller.interruptions import losses, with_lost
from costscaler.controller.pools import node_view


def pod(node: str, pool: str = "spot") -> PlacedPod:
    return PlacedPod("ml", "llama", pool, node)


def test_a_node_gone_while_it_held_replicas_is_one_interruption_per_pool():
    held = {"n1": frozenset({"spot"}), "n2": frozenset({"spot", "spot-b"})}
    # n1 is gone, n2 is being deleted (Karpenter drains it), n3 is new.
    lost, now = losses(held, [pod("n2"), pod("n3")], {"n2": True, "n3": False}, ())
    assert lost == {"spot": 2, "spot-b": 1}
    assert now == {"n3": frozenset({"spot"})}  # a deleting node is counted once, not held


def test_two_replicas_on_one_lost_node_are_one_event():
    lost, _ = losses({"n1": frozenset({"spot"})}, [], {}, ())
    assert lost == {"spot": 1}


def test_nodes_that_stay_and_nodes_karpenter_takes_on_purpose_are_no_loss():
    held = {"n1": frozenset({"spot"}), "n2": frozenset({"spot"})}
    # n1 stays (its replica crashed or was scaled down: no pod on it now); n2 consolidated.
    lost, now = losses(held, [], {"n1": False}, {"n2"})
    assert lost == {} and now == {}


def test_the_first_tick_learns_nothing():
    lost, now = losses({}, [pod("n1"), pod("n1", "od")], {"n1": False}, ())
    assert lost == {} and now == {"n1": frozenset({"spot", "od"})}


def test_with_lost_sets_only_the_pools_that_lost():
    kids = [ChildState("ml", f"c-{p}", "llama", p, 1, 1, 0, "") for p in ("spot", "od")]
    out = with_lost(kids, {"spot": 1})
    assert [c.interrupted for c in out] == [1, 0]


def test_placed_pod_reads_bound_child_pods_only():
    labels = {"costscaler.dev/deployment": "llama", "costscaler.dev/pool": "spot"}
    body = {"metadata": {"namespace": "ml", "labels": labels}, "spec": {"nodeName": "n1"}}
    assert placed_pod(body) == PlacedPod("ml", "llama", "spot", "n1")
    assert placed_pod({**body, "spec": {}}) is None  # not scheduled yet
    going = {"metadata": {**body["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    assert placed_pod({**body, **going}) is None  # a scale-down takes it
    assert placed_pod({"metadata": {"labels": {}}, "spec": {"nodeName": "n1"}}) is None


def test_node_view_marks_a_node_being_deleted():
    body = {"metadata": {"name": "n1", "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    assert node_view(body).deleting and not node_view({"metadata": {"name": "n1"}}).deleting
