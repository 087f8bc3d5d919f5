"""The node layer's decisions that need no cluster: when a NodePool launches nothing, when a
pool is drained, and how its status reads."""

from __future__ import annotations

from pathlib import Path

from costscaler.adapters.children import ChildState
from costscaler.adapters.pending import (
    PendingPod,
    PlacedPod,
    bound_accelerators,
    placed_pod,
    unbound_accelerators,
)
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


def _reference(pool_name: str = "g6-xlarge-l4-spot") -> CapacityPool:
    from costscaler.api.pool import NodePoolSettings

    ref = NodePoolSettings.model_validate({"mode": "Reference", "name": "team-gpu"})
    spec = POOL.spec.model_copy(update={"node_pool": ref})
    return POOL.model_copy(update={"spec": spec, "metadata": POOL.metadata.model_copy(
        update={"name": pool_name})})  # fmt: skip


def test_an_operator_serving_some_namespaces_counts_only_nodes_dedicated_to_the_pool() -> None:
    """Namespaced mode: the operator sees the pods of the namespaces it serves only, so a pod
    of another namespace holding a node's GPUs is not in `used`, and the node would read as
    free. Only nodes tainted `costscaler.dev/pool=<pool>` (NoSchedule or NoExecute: no other
    workload lands there) are counted; a node without it, with another pool's value, or a
    PreferNoSchedule one (a soft taint keeps no pod off) offers no slot, and a start there
    is priced as a new node. Serving every namespace, every node is counted as before."""
    pool = _reference()
    name = pool.name
    nodes = [
        _node("a", 4, taints=((node_layer.karpenter.DEDICATED_TAINT, name, "NoSchedule"),)),
        _node("b", 4, taints=((node_layer.karpenter.DEDICATED_TAINT, name, "NoExecute"),)),
        _node("c", 4),  # a batch job in a namespace not served holds its GPUs, unseen
        _node("d", 4, taints=((node_layer.karpenter.DEDICATED_TAINT, "other", "NoSchedule"),)),
        _node("e", 4, taints=((node_layer.karpenter.DEDICATED_TAINT, name, "PreferNoSchedule"),)),
    ]
    used = {"a": [1]}
    assert node_layer.free_accelerators(pool, nodes, used, seen_all=False) == (3, 4)
    assert node_layer.free_accelerators(pool, nodes, used, seen_all=True) == (3, 4, 4, 4, 4)
    # No dedicated node: no slot at all, every start waits for a node.
    assert node_layer.free_accelerators(pool, nodes[2:], used, seen_all=False) == ()


def test_a_dedicated_pools_placement_makes_its_nodes_dedicated() -> None:
    """The pool opts in by tolerating `costscaler.dev/pool=<pool>`: a Managed pool's NodePool
    then taints its nodes with it (the tolerations that name a key become its taints), and its
    children and warm buffer, which carry the placement, tolerate it."""
    from costscaler.adapters.karpenter import DEDICATED_TAINT, nodepool_manifest
    from costscaler.api.common import Toleration

    own = Toleration.model_validate(
        {"key": DEDICATED_TAINT, "operator": "Equal", "value": POOL.name, "effect": "NoSchedule"}
    )
    placement = POOL.spec.placement.model_copy(
        update={"tolerations": [*POOL.spec.placement.tolerations, own]}
    )
    from costscaler.api.pool import NodePoolSettings

    managed = NodePoolSettings.model_validate(
        {"mode": "Managed", "nodeClassRef": {"group": "karpenter.kwok.sh",
         "kind": "KWOKNodeClass", "name": "default"}}
    )  # fmt: skip
    spec = POOL.spec.model_copy(update={"placement": placement, "node_pool": managed})
    pool = POOL.model_copy(update={"spec": spec})
    taints = nodepool_manifest(pool)["spec"]["template"]["spec"]["taints"]
    mark = {"key": DEDICATED_TAINT, "value": POOL.name, "effect": "NoSchedule"}
    assert mark in taints
    node = NodeView(
        "n1",
        {**placement.node_selector, "karpenter.sh/nodepool": POOL.name},
        tuple((t["key"], t.get("value", ""), t["effect"]) for t in taints),
        1,
        True,
    )
    assert node_layer.dedicated(pool, node)
    assert node_layer.free_accelerators(pool, [node], {}, seen_all=False) == (1,)
    from costscaler.controller.pools import matches

    assert matches(pool, node)  # the pool's own placement still lands on its nodes


def test_replicas_not_bound_yet_take_their_slots_before_the_next_count() -> None:
    """A replica the last decision started on a free slot holds no GPU until the scheduler
    binds its pod: the count in between must not offer its slot again. Child pods not bound
    (`unbound_accelerators`: pool, GPUs) take slots node by node; a pod nominated to a node
    (it preempted pods there, which are going and hold nothing any more) holds its GPUs on
    that node (`bound_accelerators`)."""
    pool = _reference()
    nodes = [_node("a", 2), _node("b", 1), _node("c", 4)]
    assert node_layer.free_accelerators(pool, nodes, {}) == (2, 1, 4)
    # Two single-GPU replicas and a 4-GPU one on their way: the 4-GPU one takes node c, the
    # two others node a; node b stays free.
    assert node_layer.free_accelerators(pool, nodes, {}, waiting=[1, 4, 1]) == (0, 1, 0)
    # More waiting than there is room: nothing free, nothing negative.
    assert node_layer.free_accelerators(pool, nodes, {}, waiting=[2, 2, 2, 2]) == (0, 1, 0)

    gpu = {"name": "vllm", "resources": {"requests": {"nvidia.com/gpu": "1"}}}
    labels = {"costscaler.dev/deployment": "llama", "costscaler.dev/pool": pool.name}
    pod = {"metadata": {"labels": labels}, "spec": {"containers": [gpu]},
           "status": {"phase": "Pending"}}  # fmt: skip
    assert unbound_accelerators(pod) == (pool.name, 1)
    assert unbound_accelerators({**pod, "status": {}}) == (pool.name, 1)  # just created
    assert bound_accelerators(pod) is None
    nominated = {**pod, "status": {"phase": "Pending", "nominatedNodeName": "a"}}
    assert unbound_accelerators(nominated) is None
    assert bound_accelerators(nominated) == ("a", 1)
    foreign = {"spec": {"containers": [gpu]}, "status": {"nominatedNodeName": "b"}}
    assert bound_accelerators(foreign) == ("b", 1)  # any workload's nominated pod
    assert unbound_accelerators(foreign) is None  # not a child: no pool to wait on
    bound = {**pod, "spec": {**pod["spec"], "nodeName": "a"}, "status": {"phase": "Running"}}
    assert unbound_accelerators(bound) is None
    going = {**pod, "metadata": {**pod["metadata"], "deletionTimestamp": "2026-12-05T16:00:00Z"}}
    assert unbound_accelerators(going) is None
    assert unbound_accelerators({**pod, "spec": {"containers": [{"name": "cpu"}]}}) is None
    assert unbound_accelerators({**pod, "status": {"phase": "Failed"}}) is None
