"""The node layer off (chart `nodes.enabled=false`, for clusters without Karpenter), on the
real API server: the operator places replicas as without it, and writes no NodePool for a
pool that asks for one, no warm buffer, and no node layer status (issue 16, item 7)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from operator_harness import (  # noqa: F401 - kube_fixture provides the `kube` fixture
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

OD = "g6-xlarge-l4-ondemand"
NO_PROMETHEUS = "http://127.0.0.1:9"  # nothing listens: the engine holds replicas.min


def test_with_the_node_layer_off_replicas_are_placed_and_no_karpenter_object_written(
    kube, tmp_path: Path
) -> None:
    name = f"off-{uuid.uuid4().hex[:6]}"
    pool = get(kube, "capacitypool", OD)
    spec = {k: v for k, v in pool["spec"].items() if k != "nodePool"}
    spec["nodePool"] = {
        "mode": "Managed",
        "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"},
    }
    apply(kube, {"apiVersion": pool["apiVersion"], "kind": "CapacityPool",
                 "metadata": {"name": name}, "spec": spec})  # fmt: skip
    ns = new_namespace(kube)
    env = {"COSTSCALER_NODE_LAYER": "false", "COSTSCALER_WARM_NAMESPACE": ns}
    op = Operator(kube, ns, tmp_path / "op.log", NO_PROMETHEUS, extra_env=env)
    try:
        wait_for("operator", op.healthy, timeout=60)
        apply(kube, llama(ns, "Enforce", [OD]))
        wait_for("a ready replica on the static on-demand nodes", lambda: (children(
            kube, ns, "llama-3-1-8b").get(OD, {}).get("status") or {}).get(
            "readyReplicas", 0) >= 1, timeout=90)  # fmt: skip
        # The pool asking for a NodePool still gets its status from the nodes matching its
        # placement, with nothing of the node layer in it.
        status = wait_for("the pool's status", lambda: get(kube, "capacitypool", name).get(
            "status"), timeout=60)  # fmt: skip
        assert "nodes" in status and "nodePool" not in status and "warmNodes" not in status
        assert "NodePoolReady" not in {c["type"] for c in status.get("conditions", [])}
        assert op.metric("costscaler_pool_nodes", pool=name) == status["nodes"]
        nodepools = kube.kubectl("get", "nodepool", name, "--ignore-not-found", "-o", "name")
        assert nodepools.stdout.strip() == ""
        buffers = kube.kubectl("get", "capacitybuffers", "-n", ns, "-o", "name")
        assert buffers.stdout.strip() == ""
        rows = get(kube, "infd", "llama-3-1-8b", "-n", ns)["status"]["replicas"]
        assert all("freeSlots" not in r and "warmNodes" not in r for r in rows)
    finally:
        kube.kubectl("delete", "infd", "llama-3-1-8b", "-n", ns, "--wait=false", check=False)
        kube.kubectl("delete", "capacitypool", name, "--wait=false", check=False)
        op.stop()
