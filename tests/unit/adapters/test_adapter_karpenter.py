"""A Managed CapacityPool maps to the NodePool it owns; a warm node is one buffer chunk;
replicas on a Karpenter pool load under do-not-disrupt."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from costscaler.adapters import karpenter
from costscaler.adapters.children import DO_NOT_DISRUPT, Owner, child_manifest
from costscaler.adapters.pending import settled_pod
from costscaler.api import CapacityPool, load_manifests

ROOT = Path(__file__).resolve().parents[3]
POOLS = {
    m.metadata.name: m
    for m in load_manifests(ROOT / "examples" / "pools")
    if isinstance(m, CapacityPool)
}
NODE_CLASS = {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"}


def _managed(pool_name: str, **node_pool: Any) -> CapacityPool:
    raw = POOLS[pool_name].model_dump(by_alias=True, exclude_none=True)
    raw["spec"]["nodePool"] = {"mode": "Managed", "nodeClassRef": NODE_CLASS, **node_pool}
    return CapacityPool.model_validate(copy.deepcopy(raw))


def _reqs(manifest: dict[str, Any]) -> dict[str, list[str]]:
    return {r["key"]: r["values"] for r in manifest["spec"]["template"]["spec"]["requirements"]}


def test_managed_spot_pool_maps_to_a_nodepool_it_owns() -> None:
    pool = _managed("g6-xlarge-l4-spot", zones=["test-zone-b", "test-zone-a"])
    np = karpenter.nodepool_manifest(pool)
    assert np["metadata"]["name"] == "g6-xlarge-l4-spot"
    assert np["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "costscaler",
        "costscaler.dev/pool": "g6-xlarge-l4-spot",
    }
    reqs = _reqs(np)
    assert reqs["node.kubernetes.io/instance-type"] == ["g6.xlarge"]
    assert reqs["karpenter.sh/capacity-type"] == ["spot"]
    assert reqs["topology.kubernetes.io/zone"] == ["test-zone-a", "test-zone-b"]
    template = np["spec"]["template"]
    assert template["metadata"]["labels"] == {"costscaler.dev/pool": "g6-xlarge-l4-spot"}
    assert template["spec"]["nodeClassRef"] == NODE_CLASS
    # Only tolerations that name a key become taints; Exists carries no value.
    assert template["spec"]["taints"] == [
        {"key": "nvidia.com/gpu", "effect": "NoSchedule"},
        {"key": "costscaler.dev/spot", "effect": "NoSchedule", "value": "true"},
    ]
    assert np["spec"]["limits"] == {"nodes": "40"}
    assert np["spec"]["disruption"] == {
        "consolidationPolicy": "WhenEmptyOrUnderutilized",
        "consolidateAfter": "30s",
        "budgets": [{"nodes": "10%"}],
    }


def test_on_demand_pool_with_its_own_name_and_no_zones_or_limit() -> None:
    raw = _managed("g5-xlarge-a10g-ondemand", name="gpu-a10g").model_dump(by_alias=True)
    raw["spec"]["limits"] = {}
    np = karpenter.nodepool_manifest(CapacityPool.model_validate(raw))
    assert np["metadata"]["name"] == "gpu-a10g"
    assert "topology.kubernetes.io/zone" not in _reqs(np)
    assert _reqs(np)["karpenter.sh/capacity-type"] == ["on-demand"]
    assert "limits" not in np["spec"]


def test_a_placement_contradicting_the_launched_nodes_names_the_field() -> None:
    pool = _managed("g6-xlarge-l4-spot")
    pool.spec.placement.node_selector["karpenter.sh/capacity-type"] = "on-demand"
    with pytest.raises(ValueError, match=r"nodeSelector\[karpenter.sh/capacity-type\]"):
        karpenter.nodepool_manifest(pool)


def test_reference_pools_and_plain_pools_have_no_manifest() -> None:
    raw = POOLS["g6-xlarge-l4-spot"].model_dump(by_alias=True, exclude_none=True)
    raw["spec"]["nodePool"] = {"mode": "Reference", "name": "platform-gpu"}
    ref = CapacityPool.model_validate(raw)
    assert karpenter.nodepool_name(ref) == "platform-gpu"
    assert not karpenter.managed(ref)
    with pytest.raises(ValueError, match="not Managed"):
        karpenter.nodepool_manifest(ref)
    assert karpenter.nodepool_name(POOLS["g6-xlarge-l4-spot"]) is None


def test_a_warm_node_is_one_buffer_chunk_of_a_whole_nodes_accelerators() -> None:
    pool = POOLS["p4d-24xlarge-a100-ondemand"]
    buf = karpenter.buffer_manifest(pool, "ml", 2)
    assert buf["metadata"]["name"] == "costscaler-warm-p4d-24xlarge-a100-ondemand"
    assert buf["spec"] == {"podTemplateRef": {"name": buf["metadata"]["name"]}, "replicas": 2}
    tmpl = karpenter.warm_pod_template(pool, "ml")["template"]["spec"]
    # Requests too: a buffer sizes its chunks by requests, and limits alone fit anywhere.
    assert tmpl["containers"][0]["resources"]["requests"] == {"nvidia.com/gpu": "8"}
    assert tmpl["nodeSelector"] == pool.spec.placement.node_selector
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in (
        tmpl["tolerations"]
    )


def _pod(ready: bool, annotated: bool, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "llama-spot-abc",
        "namespace": "ml",
        "labels": {"costscaler.dev/deployment": "llama", "costscaler.dev/pool": "p"},
        "annotations": {"karpenter.sh/do-not-disrupt": "true"} if annotated else {},
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    cond = {"type": "Ready", "status": "True" if ready else "False"}
    return {"metadata": meta, "status": {"conditions": [cond]}}


def test_replicas_on_a_karpenter_pool_load_protected_and_are_released_once_ready() -> None:
    owner = Owner("ml", "llama", "uid-1")
    template = {"spec": {"containers": [{"name": "vllm", "image": "v"}]}}
    managed = child_manifest(owner, template, _managed("g6-xlarge-l4-spot"))
    annotations = managed["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {DO_NOT_DISRUPT: "true"}
    # A pool Karpenter does not launch keeps its template (and its hash) as before.
    plain = child_manifest(owner, template, POOLS["g6-xlarge-l4-spot"])
    assert "annotations" not in plain["spec"]["template"]["metadata"]
    assert settled_pod(_pod(ready=True, annotated=True)) == "llama-spot-abc"
    assert settled_pod(_pod(ready=False, annotated=True)) is None  # still loading
    assert settled_pod(_pod(ready=True, annotated=False)) is None  # already released
    assert settled_pod(_pod(ready=True, annotated=True, deleting=True)) is None
