"""Pods with a pool's placement land on that pool's KWOK node and run; without it they wait."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from costscaler.api import CapacityPool, load_manifests

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
POOLS = {
    m.metadata.name: m
    for m in load_manifests(ROOT / "examples" / "pools")
    if isinstance(m, CapacityPool)
}


def _deployment(name: str, pool: CapacityPool, tolerations: list[dict[str, Any]]) -> str:
    placement = pool.spec.placement
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": placement.node_selector,
                    "tolerations": tolerations,
                    "containers": [
                        {
                            "name": "server",
                            "image": "vllm/vllm-openai:v0.6.3",
                            "resources": {"limits": {"nvidia.com/gpu": "1"}},
                        }
                    ],
                },
            },
        },
    }
    return json.dumps(body)


def _tolerations(pool: CapacityPool) -> list[dict[str, Any]]:
    return [t.model_dump(by_alias=True, exclude_none=True) for t in pool.spec.placement.tolerations]


def _pods(cluster, app: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "pods", "-l", f"app={app}", "-o", "json")
    return list(json.loads(out.stdout)["items"])


def _wait_pod(cluster, app: str, ok, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    pods: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        pods = _pods(cluster, app)
        if pods and ok(pods[0]):
            return pods[0]
        time.sleep(0.5)
    raise AssertionError(f"pod of {app} never reached the expected state: {pods}")


@pytest.mark.parametrize("pool_name", ["g6-xlarge-l4-spot", "onprem-h100"])
def test_pool_placement_runs_on_the_pools_node(cluster, pool_name: str) -> None:
    pool = POOLS[pool_name]
    name = f"placed-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("apply", "-f", "-", stdin=_deployment(name, pool, _tolerations(pool)))
    pod = _wait_pod(cluster, name, lambda p: p["status"].get("phase") == "Running")
    node = json.loads(cluster.kubectl("get", "node", pod["spec"]["nodeName"], "-o", "json").stdout)
    assert node["metadata"]["labels"]["costscaler.dev/pool"] == pool_name
    for key, value in pool.spec.placement.node_selector.items():
        assert node["metadata"]["labels"][key] == value
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == str(
        pool.spec.accelerator.count_per_node
    )
    # Deleting must really remove the pod (KWOK's delete stage stands in for the kubelet).
    cluster.kubectl("delete", "deployment", name, "--wait=true")
    deadline = time.monotonic() + 30
    while _pods(cluster, name) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _pods(cluster, name)


def test_without_the_spot_toleration_the_pod_stays_pending(cluster) -> None:
    pool = POOLS["g6-xlarge-l4-spot"]
    # Tolerate the GPU taint but not costscaler.dev/spot: only the spot taint keeps it out.
    tolerations = [t for t in _tolerations(pool) if t["key"] != "costscaler.dev/spot"]
    name = f"unplaced-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("apply", "-f", "-", stdin=_deployment(name, pool, tolerations))
    pod = _wait_pod(
        cluster,
        name,
        lambda p: any(
            c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable"
            for c in p["status"].get("conditions", [])
        ),
    )
    time.sleep(2)
    pod = _pods(cluster, name)[0]
    assert pod["status"]["phase"] == "Pending"
    assert "nodeName" not in pod["spec"]
    message = next(c["message"] for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert "untolerated taint" in message
    cluster.kubectl("delete", "deployment", name)
