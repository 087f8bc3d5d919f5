"""The node layer's decisions that need no cluster: when a NodePool launches nothing, when a
pool is drained, and how its status reads."""

from __future__ import annotations

from pathlib import Path

from costscaler.adapters.children import ChildState
from costscaler.adapters.pending import PendingPod, PlacedPod, bound_accelerators, placed_pod
from costscaler.api import CapacityPool, load_manifests
from costscaler.controller import node_layer
from costscaler.controller.pools import NodeView
from costscaler.controller.status import Cond, money
from costscaler.core.types import WarmNodes

ROOT = Path(__file__).resolve().parents[3]
POOL = next(
    m
    for m in load_manifests(ROOT / "examples" / "pools")
    if isinstance(m, CapacityPool) and m.name == "g6-xlarge-l4-spot"
)
GRACE = node_layer.NO_CLAIM_AFTER_S


def _pod(since: float, pool: str = "g6-xlarge-l4-spot") -> PendingPod:
    return PendingPod(namespace="ml", owner="llama", pool=pool, since=since)


def test_no_launch_names_the_instance_type_once_pods_waited_with_no_claim() -> None:
    now = 1000.0
    why = node_layer.no_launch(POOL, [_pod(now - GRACE - 1)], claims=0, now=now)
    assert why is not None and "spec.instanceType g6.xlarge" in why
    # Within the grace, with a NodeClaim on its way, or for another pool's pods: nothing yet.
    assert node_layer.no_launch(POOL, [_pod(now - GRACE + 5)], claims=0, now=now) is None
    assert node_layer.no_launch(POOL, [_pod(now - GRACE - 1)], claims=1, now=now) is None
    assert node_layer.no_launch(POOL, [_pod(0.0, "other")], claims=0, now=now) is None


def test_a_pool_is_drained_when_no_child_asks_for_replicas_on_it() -> None:
    def child(pool: str, desired: int) -> ChildState:
        return ChildState("ml", f"llama-{pool}", "llama", pool, desired, 0, 0, "h")

    assert node_layer.drained("a", [child("a", 0), child("b", 3)])
    assert not node_layer.drained("a", [child("a", 1)])


def test_status_shows_the_nodepool_and_the_warm_nodes_cost() -> None:
    cond = Cond(node_layer.NODEPOOL_READY, True, "NodePoolApplied", "NodePool x created")
    warm = node_layer.NodeLayerStatus(cond, "x", WarmNodes(nodes=2, cost_per_hour=0.8))
    assert node_layer.status_fields(warm, money) == {
        "nodePool": "x",
        "warmNodes": 2,
        "warmHourlyCost": money(0.8),
    }
    cold = node_layer.NodeLayerStatus(cond, "x", None)
    assert node_layer.status_fields(cold, money)["warmNodes"] == 0


def _limited(max_nodes: int) -> CapacityPool:
    spec = POOL.spec.model_copy(update={"limits": POOL.spec.limits.model_copy(
        update={"max_nodes": max_nodes})})  # fmt: skip
    return POOL.model_copy(update={"spec": spec})


def test_at_limit_names_max_nodes_once_no_claim_is_launching() -> None:
    now, pool = 1000.0, _limited(2)
    late, limit = [_pod(now - GRACE - 1)], (2, "spec.limits.maxNodes")
    why = node_layer.at_limit(pool, late, claims=2, in_flight=0, now=now, limit=limit)
    assert why is not None and "spec.limits.maxNodes 2" in why
    # Below the limit, a claim still launching (it may take the pod), a pod within Karpenter's
    # window, another pool's pods, or no limit: nothing to say yet.
    assert node_layer.at_limit(pool, late, 1, 0, now, limit) is None
    assert node_layer.at_limit(pool, late, 2, 1, now, limit) is None
    assert node_layer.at_limit(pool, [_pod(now - 5)], 2, 0, now, limit) is None
    assert node_layer.at_limit(pool, [_pod(0.0, "other")], 2, 0, now, limit) is None
    assert node_layer.at_limit(pool, late, 2, 0, now, None) is None


def test_node_limit_is_the_managed_pools_max_nodes_or_the_referenced_nodepools_own() -> None:
    from costscaler.api.pool import NodePoolMode, NodePoolSettings

    base = _limited(3)
    ref = NodePoolSettings.model_validate({"mode": "Reference", "name": "team-gpu"})
    assert ref.mode == NodePoolMode.REFERENCE
    reference = base.model_copy(update={"spec": base.spec.model_copy(
        update={"node_pool": ref})})  # fmt: skip
    live = {"spec": {"limits": {"nodes": "4", "cpu": "1000"}}}
    assert node_layer.node_limit(reference, live) == (
        4, "spec.limits.nodes of NodePool team-gpu (spec.nodePool.name)")  # fmt: skip
    assert node_layer.node_limit(reference, {"spec": {"limits": {"cpu": "10"}}}) is None
    assert node_layer.node_limit(reference, None) is None


def test_a_claim_is_in_flight_until_initialized_or_deleted() -> None:
    from costscaler.adapters.karpenter import claim_in_flight, disrupted_node

    launched = {"status": {"conditions": [{"type": "Launched", "status": "True"}]}}
    ready = {"status": {"conditions": [{"type": "Initialized", "status": "True"}]}}
    going = {"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}
    assert claim_in_flight(launched) and claim_in_flight({})
    assert not claim_in_flight(ready) and not claim_in_flight(going)
    consolidated = {"status": {"nodeName": "n1", "conditions": [
        {"type": "DisruptionReason", "status": "True", "reason": "Underutilized"}]}}  # fmt: skip
    assert disrupted_node(consolidated) == "n1"
    assert disrupted_node({"status": {"nodeName": "n1"}}) is None  # an interruption says nothing


def _node(name: str, gpus: int, pool: str = "team-gpu", **kw: object) -> NodeView:
    labels = {"karpenter.sh/nodepool": pool}
    return NodeView(name, labels, kw.pop("taints", ()), gpus, kw.pop("ready", True), **kw)  # type: ignore[arg-type]


def test_free_accelerators_are_the_ready_nodepool_nodes_less_every_pod_on_them() -> None:
    """Item 4 of issue 16: a new replica on a free slot of a Ready node pays the model load
    only. Free: allocatable less the GPUs of every pod bound there, children and other
    workloads alike, per Ready node of the pool's NodePool (a warm spare has none bound: all
    its GPUs are free); nodes not Ready, being deleted, disrupted by Karpenter, or of another
    NodePool offer nothing."""
    nodes = [
        _node("a", 4),
        _node("b", 1),  # a warm spare: nothing bound
        _node("c", 4, ready=False),
        _node("d", 4, deleting=True),
        _node("e", 4, taints=(("karpenter.sh/disrupted", "", "NoSchedule"),)),
        _node("f", 4, pool="other"),
        _node("g", 4),  # shared: another workload's pod holds 3 of its GPUs
    ]
    used = {"a": [1, 2], "f": [1], "g": [3]}
    from costscaler.api.pool import NodePoolSettings

    ref = NodePoolSettings.model_validate({"mode": "Reference", "name": "team-gpu"})
    pool = POOL.model_copy(update={"spec": POOL.spec.model_copy(update={"node_pool": ref})})
    assert node_layer.free_accelerators(pool, nodes, used) == (1, 1, 1)
    assert node_layer.free_accelerators(POOL, nodes, used) is None  # no NodePool


def test_every_bound_pod_holds_its_requested_gpus_until_it_finishes_or_goes() -> None:
    """The free slots subtract every pod's GPUs, not only the children's: a node shared
    with another workload has fewer. A pod holds what its containers request (limits where
    no request is set), or its largest init container's when more; a finished pod, one
    being deleted, one not bound, or one without GPUs holds none."""
    gpu = {"name": "vllm", "resources": {"limits": {"nvidia.com/gpu": "2"}}}
    side = {"name": "proxy", "resources": {"requests": {"nvidia.com/gpu": 1}}}
    bad = {"name": "bad", "resources": {"limits": {"nvidia.com/gpu": "x"}}}
    spec = {"nodeName": "n1", "containers": [gpu, side, bad]}
    body = {"metadata": {"namespace": "batch"}, "spec": spec}
    assert bound_accelerators(body) == ("n1", 3)  # no costscaler labels: counted all the same
    init = {"name": "warm", "resources": {"requests": {"nvidia.com/gpu": "4"}}}
    with_init = {**body, "spec": {**spec, "initContainers": [init]}}
    assert bound_accelerators(with_init) == ("n1", 4)
    assert bound_accelerators({**body, "status": {"phase": "Succeeded"}}) is None
    assert bound_accelerators({**body, "status": {"phase": "Running"}}) == ("n1", 3)
    going = {**body, "metadata": {"deletionTimestamp": "2026-11-23T12:00:00Z"}}
    assert bound_accelerators(going) is None
    assert bound_accelerators({"spec": {"containers": [gpu]}}) is None  # not bound yet
    assert bound_accelerators({"spec": {"nodeName": "n1", "containers": [{"name": "cpu"}]}}) is None
    labels = {"costscaler.dev/deployment": "llama", "costscaler.dev/pool": "spot"}
    child = {"metadata": {"namespace": "ml", "labels": labels}, "spec": spec}
    assert placed_pod(child) == PlacedPod("ml", "llama", "spot", "n1")
