"""Fake KWOK nodes for CapacityPools: the labels, GPU capacity and taints a real pool has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from costscaler.api import CapacityPool, load_manifests

POOL_LABEL = "costscaler.dev/pool"
CAPACITY_TYPE_LABELS = {
    "OnDemand": "on-demand",
    "Spot": "spot",
    "Reserved": "reserved",
    "OnPrem": "on-prem",
}
# What one GPU node offers besides its accelerators: enough that only the GPU count binds.
HOST_RESOURCES = {"cpu": "64", "memory": "512Gi", "pods": "110", "ephemeral-storage": "1Ti"}


SYSTEM_NODE = "system-0"


def system_node() -> dict[str, Any]:
    """An untainted CPU node, as real clusters have for the operator and other system pods."""
    labels = {
        "type": "kwok",
        "kubernetes.io/hostname": SYSTEM_NODE,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "m6i.xlarge",
        "karpenter.sh/capacity-type": "on-demand",
    }
    resources = {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": SYSTEM_NODE,
            "labels": labels,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
        },
        "status": {"capacity": resources, "allocatable": resources},
    }


def load_pools(path: Path) -> list[CapacityPool]:
    """CapacityPools from a YAML file or folder (other kinds skipped)."""
    return [m for m in load_manifests(path) if isinstance(m, CapacityPool)]


def _labels(pool: CapacityPool, name: str) -> dict[str, str]:
    spec = pool.spec
    labels = {
        "type": "kwok",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "karpenter.sh/capacity-type": CAPACITY_TYPE_LABELS[str(spec.capacity_type)],
        "nvidia.com/gpu.product": spec.accelerator.type,
        "nvidia.com/gpu.count": str(spec.accelerator.count_per_node),
        POOL_LABEL: pool.metadata.name,
    }
    if spec.instance_type:
        labels["node.kubernetes.io/instance-type"] = spec.instance_type
    # The pool's own selector must match its nodes even when it uses other labels.
    labels.update(spec.placement.node_selector)
    return labels


def node_count(pool: CapacityPool, per_pool: int) -> int:
    """Nodes to create: the pool's maxNodes, capped to keep the fake cluster small."""
    limit = pool.spec.limits.max_nodes
    return per_pool if limit is None else min(limit, per_pool)


def pool_nodes(pool: CapacityPool, per_pool: int) -> list[dict[str, Any]]:
    """Node objects (with status, which KWOK keeps) for one pool."""
    gpus = str(pool.spec.accelerator.count_per_node)
    resources = dict(HOST_RESOURCES, **{"nvidia.com/gpu": gpus})
    nodes = []
    for index in range(node_count(pool, per_pool)):
        name = f"{pool.metadata.name}-{index}"
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": _labels(pool, name),
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                },
                "spec": {"taints": pool.spec.placement.taints()},
                "status": {"capacity": resources, "allocatable": resources},
            }
        )
    return nodes
