"""The operator on the real API server: children, Recommend mode, conflicts, restarts, peering."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from operator_harness import (  # noqa: F401 - kube_fixture provides the `kube` fixture
    ROOT,
    Operator,
    apply,
    children,
    get,
    kube_fixture,
    llama,
    new_namespace,
    wait_for,
)

pytestmark = pytest.mark.integration

SPOT, OD = "g6-xlarge-l4-spot", "g6-xlarge-l4-ondemand"
NO_PROMETHEUS = "http://127.0.0.1:9"  # nothing listens: every reading is QueryFailed


@pytest.fixture
def ns(kube):
    return new_namespace(kube)


@pytest.fixture
def operator(kube, ns, tmp_path: Path):
    started: list[Operator] = []

    def start(priority: int = 100, name: str = "op") -> Operator:
        op = Operator(kube, ns, tmp_path / f"{name}.log", NO_PROMETHEUS, priority=priority)
        started.append(op)
        wait_for(f"{name} /healthz", op.healthy, timeout=30)
        return op

    yield start
    for op in started:
        op.stop()


def status(kube, ns: str, name: str = "llama-3-1-8b") -> dict:
    return get(kube, "infd", name, "-n", ns).get("status") or {}


def test_children_get_pool_placement_and_are_garbage_collected(kube, ns, operator):
    operator()
    apply(kube, llama(ns, "Enforce", [SPOT, OD]))
    kids = wait_for(
        "two children", lambda: (c := children(kube, ns, "llama-3-1-8b")) and len(c) == 2 and c
    )
    pod = kids[SPOT]["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["karpenter.sh/capacity-type"] == "spot"
    assert {"key": "costscaler.dev/spot", "operator": "Equal", "value": "true",
            "effect": "NoSchedule"} in pod["tolerations"]  # fmt: skip
    assert kids[OD]["spec"]["template"]["spec"]["nodeSelector"]["karpenter.sh/capacity-type"] == (
        "on-demand"
    )
    labels = kids[SPOT]["spec"]["template"]["metadata"]["labels"]
    assert labels["costscaler.dev/pool"] == SPOT and labels["app"] == "llama-3-1-8b"
    (owner,) = kids[SPOT]["metadata"]["ownerReferences"]
    assert owner["kind"] == "InferenceDeployment" and owner["controller"] is True
    s = wait_for("lastDecision", lambda: status(kube, ns).get("lastDecision") and status(kube, ns))
    # No metrics (Prometheus unreachable): the engine holds, at least replicas.min, on-demand.
    assert s["lastDecision"]["reason"] == "MetricsUnavailable"
    cond = {c["type"]: c for c in s["conditions"]}
    assert cond["MetricsAvailable"]["status"] == "False"

    def ready() -> int:
        kids = children(kube, ns, "llama-3-1-8b").values()
        return sum((d.get("status") or {}).get("readyReplicas", 0) for d in kids)

    wait_for("a ready pod", lambda: ready() >= 1, timeout=60)
    kube.kubectl("delete", "infd", "llama-3-1-8b", "-n", ns)
    wait_for("children garbage-collected", lambda: children(kube, ns, "llama-3-1-8b") == {})


def test_recommend_changes_no_replicas_and_writes_last_decision(kube, ns, operator):
    operator()
    apply(kube, llama(ns, "Recommend", [SPOT, OD]))
    wait_for("children", lambda: len(children(kube, ns, "llama-3-1-8b")) == 2)
    kube.kubectl("scale", "deployment", f"llama-3-1-8b-{SPOT}", "-n", ns, "--replicas=3")
    first = wait_for("lastDecision", lambda: status(kube, ns).get("lastDecision"))
    assert first["message"].startswith("Recommend mode, not applied.")
    t0 = first["time"]
    wait_for("a later decision", lambda: status(kube, ns)["lastDecision"]["time"] != t0)
    kids = children(kube, ns, "llama-3-1-8b")
    assert {p: d["spec"]["replicas"] for p, d in kids.items()} == {SPOT: 3, OD: 0}
    s = status(kube, ns)
    assert s["totalReplicas"] == 3
    printed = kube.kubectl("get", "infd", "-n", ns).stdout
    assert "Recommend" in printed and " 3 " in printed and "NoBudget" in printed


def test_conflict_on_write_is_retried_against_the_real_api_server(kube, ns):
    from costscaler.adapters.children import ANNOTATION_HASH, Owner, child_manifest
    from costscaler.adapters.kube import Kube, load_config
    from costscaler.api import load_manifests

    pools = {p.name: p for p in load_manifests(ROOT / "examples" / "pools")}
    k = Kube(load_config(str(kube.kubeconfig)))
    doc = llama(ns, "Recommend", [OD])
    doc["metadata"]["name"] = "conflicted"
    apply(kube, doc)  # a real owner, or the garbage collector removes the child
    owner = Owner(ns, "conflicted", get(kube, "infd", "conflicted", "-n", ns)["metadata"]["uid"])
    template = doc["spec"]["template"]
    first = child_manifest(owner, template, pools[OD])
    assert asyncio.run(k.apply_child(first, 1)) == "created"
    changed = {**template, "metadata": {"labels": {"app": "v2"}}}
    second = child_manifest(owner, changed, pools[OD])
    real_read, raced = k.apps.read_namespaced_deployment, []

    def read_then_someone_writes(name, namespace):
        live = real_read(name, namespace)
        if not raced:  # another writer bumps the resourceVersion after our read, once
            raced.append(1)
            k.apps.patch_namespaced_deployment(
                name, namespace, {"metadata": {"labels": {"touched": "yes"}}}
            )
        return live

    k.apps.read_namespaced_deployment = read_then_someone_writes
    assert asyncio.run(k.apply_child(second, 2)) == "updated"
    # At least ours; the deployment controller's status writes to the new child can add more.
    assert k.conflicts_retried >= 1
    stored = get(kube, "deployment", "conflicted-" + OD, "-n", ns)
    assert (
        stored["metadata"]["annotations"][ANNOTATION_HASH]
        == (second["metadata"]["annotations"][ANNOTATION_HASH])
    )
    assert stored["spec"]["replicas"] == 2


def test_killed_mid_tick_and_restarted_leaves_no_duplicates(kube, ns, operator):
    op = operator(name="first")
    apply(kube, llama(ns, "Enforce", [SPOT, OD]))
    wait_for("first child", lambda: children(kube, ns, "llama-3-1-8b"), every=0.05)
    op.stop(signal.SIGKILL)
    # The dead process's peering keep-alive lasts 60 s; a replacement of higher priority acts
    # at once (one of equal priority would pause until the dead peer expires).
    operator(priority=200, name="second")
    s = wait_for("a decision after restart", lambda: status(kube, ns).get("lastDecision"))
    assert s
    time.sleep(6)  # a few ticks of the restarted operator
    kids = children(kube, ns, "llama-3-1-8b")
    assert sorted(kids) == [OD, SPOT]
    rs = get(kube, "replicasets", "-n", ns)["items"]
    assert len(rs) == 2, [r["metadata"]["name"] for r in rs]  # one per child: no template churn
    desired = status(kube, ns)["lastDecision"]["replicas"]
    assert {c["pool"]: c["replicas"] for c in desired} == {
        p: d["spec"]["replicas"] for p, d in kids.items()
    }


def test_two_operators_only_the_higher_priority_acts(kube, ns, operator):
    low = operator(priority=10, name="low")
    high = operator(priority=20, name="high")
    wait_for("the low-priority operator to pause",
             lambda: "Pausing operations in favour of" in low.tail(400), timeout=60)  # fmt: skip
    apply(kube, llama(ns, "Enforce", [OD]))
    wait_for("decisions by the high-priority operator",
             lambda: high.metric("costscaler_decisions_total") >= 3, timeout=60)  # fmt: skip
    assert low.metric("costscaler_decisions_total") == 0
