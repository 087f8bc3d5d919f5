"""Karpenter objects for CapacityPools: the NodePool a Managed pool owns, the CapacityBuffer
that keeps its warm nodes, and what NodeClaims and Nodes say about launches and losses.

The builders are pure (a CapacityPool in, a manifest dict out); `NodePools` does the writes,
refusing to touch a NodePool that costscaler does not own (a Reference pool's, or anyone's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes.client.exceptions import ApiException

from costscaler.api import CapacityPool
from costscaler.api.pool import CapacityType, NodePoolMode

T = TypeVar("T")
KARPENTER_GROUP, KARPENTER_VERSION = "karpenter.sh", "v1"
BUFFER_GROUP, BUFFER_VERSION = "autoscaling.x-k8s.io", "v1beta1"
POOL_LABEL = "costscaler.dev/pool"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "costscaler"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
ZONE_LABEL = "topology.kubernetes.io/zone"
NODEPOOL_LABEL = "karpenter.sh/nodepool"
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
# Taints Karpenter puts on a node it is about to take away (consolidation, drift, expiry).
DISRUPTION_TAINT = "karpenter.sh/disrupted"
KARPENTER_CAPACITY = {CapacityType.ON_DEMAND: "on-demand", CapacityType.SPOT: "spot"}


class NodePoolNotOwnedError(Exception):
    """A NodePool by that name exists and costscaler does not manage it."""

    def __init__(self, name: str, pool: str) -> None:
        super().__init__(
            f"NodePool {name} exists and is not managed by costscaler: set "
            f"spec.nodePool.name of CapacityPool {pool} to another name, or use mode Reference"
        )


def nodepool_name(pool: CapacityPool) -> str | None:
    """The NodePool behind the pool (Managed or Reference), or None without one."""
    settings = pool.spec.node_pool
    if settings is None:
        return None
    return settings.name or pool.name


def managed(pool: CapacityPool) -> bool:
    """Whether costscaler owns the pool's NodePool."""
    return pool.spec.node_pool is not None and pool.spec.node_pool.mode == NodePoolMode.MANAGED


def _taints(pool: CapacityPool) -> list[dict[str, str]]:
    """The taints the pool's tolerations exist for (a toleration without a key names none)."""
    taints = []
    for tol in pool.spec.placement.tolerations:
        if not tol.key:
            continue
        taint = {"key": tol.key, "effect": tol.effect or "NoSchedule"}
        if tol.operator != "Exists" and tol.value:
            taint["value"] = tol.value
        taints.append(taint)
    return taints


def _requirements(pool: CapacityPool) -> list[dict[str, Any]]:
    spec, settings = pool.spec, pool.spec.node_pool
    assert settings is not None and spec.instance_type is not None
    wanted: dict[str, list[str]] = {
        INSTANCE_TYPE_LABEL: [spec.instance_type],
        CAPACITY_TYPE_LABEL: [KARPENTER_CAPACITY[spec.capacity_type]],
    }
    if settings.zones:
        wanted[ZONE_LABEL] = sorted(settings.zones)
    # The placement's own selector must match the launched nodes, so each entry is required.
    for key, value in sorted(spec.placement.node_selector.items()):
        if key in wanted and wanted[key] != [value]:
            raise ValueError(
                f"CapacityPool {pool.name}: spec.placement.nodeSelector[{key}]={value} "
                f"contradicts what the pool launches ({', '.join(wanted[key])}): fix one of them"
            )
        wanted[key] = [value]
    return [{"key": k, "operator": "In", "values": v} for k, v in wanted.items()]


def nodepool_manifest(pool: CapacityPool) -> dict[str, Any]:
    """The NodePool a Managed pool owns (see `NodePoolSettings` for the mapping).

    ValueError names the field when the placement contradicts the launched nodes.
    """
    settings = pool.spec.node_pool
    if settings is None or settings.mode != NodePoolMode.MANAGED:
        raise ValueError(f"CapacityPool {pool.name}: spec.nodePool.mode is not Managed")
    assert settings.node_class_ref is not None
    spec: dict[str, Any] = {
        "template": {
            "metadata": {"labels": {POOL_LABEL: pool.name}},
            "spec": {
                "nodeClassRef": settings.node_class_ref.model_dump(),
                "requirements": _requirements(pool),
                "taints": _taints(pool),
                "expireAfter": "Never",
            },
        },
        "disruption": {
            "consolidationPolicy": "WhenEmptyOrUnderutilized",
            "consolidateAfter": settings.consolidate_after,
            "budgets": [{"nodes": settings.disruption_budget}],
        },
    }
    if pool.spec.limits.max_nodes is not None:
        spec["limits"] = {"nodes": str(pool.spec.limits.max_nodes)}
    return {
        "apiVersion": f"{KARPENTER_GROUP}/{KARPENTER_VERSION}",
        "kind": "NodePool",
        "metadata": {
            "name": nodepool_name(pool),
            "labels": {MANAGED_BY: MANAGER, POOL_LABEL: pool.name},
        },
        "spec": spec,
    }


def buffer_name(child: str) -> str:
    """The CapacityBuffer holding warm nodes for a child Deployment."""
    return f"{child}-warm"[:253]


def buffer_manifest(
    pool: CapacityPool, namespace: str, child: str, child_uid: str, replicas: int
) -> dict[str, Any]:
    """A CapacityBuffer keeping room for `replicas` more pods shaped like the child's: Karpenter
    keeps that many spare slots on launched nodes (scalableRef: the pods' template is the
    child's, so a warm node fits exactly what the next scale-up places). The child owns it,
    so deleting the child deletes its buffer."""
    return {
        "apiVersion": f"{BUFFER_GROUP}/{BUFFER_VERSION}",
        "kind": "CapacityBuffer",
        "metadata": {
            "name": buffer_name(child),
            "namespace": namespace,
            "labels": {MANAGED_BY: MANAGER, POOL_LABEL: pool.name},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": child, "uid": child_uid}
            ],
        },
        "spec": {
            "scalableRef": {"apiGroup": "apps", "kind": "Deployment", "name": child},
            "replicas": replicas,
        },
    }


@dataclass(frozen=True)
class ClaimView:
    """What the node facts need of a NodeClaim: its NodePool, whether it launched, and why not."""

    name: str
    nodepool: str
    launched: bool
    insufficient_capacity: bool
    created: float


def claim_view(body: dict[str, Any], created: float) -> ClaimView:
    """A ClaimView from a NodeClaim object (`created`: its creation time, epoch seconds)."""
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    conds = {c.get("type"): c for c in status.get("conditions") or []}
    launched = conds.get("Launched", {})
    # Karpenter deletes a claim that cannot launch; until then Launched is False with the
    # provider's reason (InsufficientCapacity, or NodeClassNotReady).
    short = launched.get("status") == "False" and "Insufficient" in str(
        launched.get("reason", "")
    ) + str(launched.get("message", ""))
    return ClaimView(
        name=str(meta.get("name", "")),
        nodepool=str((meta.get("labels") or {}).get(NODEPOOL_LABEL, "")),
        launched=launched.get("status") == "True",
        insufficient_capacity=short,
        created=created,
    )


class NodePools:
    """NodePool, CapacityBuffer and PodTemplate writes (blocking calls on a small thread pool)."""

    def __init__(self, api_client: Any, workers: int = 2) -> None:
        from kubernetes import client

        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="karpenter")

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def read(self, name: str) -> dict[str, Any] | None:
        """A NodePool as a dict, or None when there is none."""

        def call() -> dict[str, Any] | None:
            try:
                got: Any = self.custom.get_cluster_custom_object(
                    KARPENTER_GROUP, KARPENTER_VERSION, "nodepools", name
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
            return dict(got)

        return await self._call(call)

    async def apply(self, pool: str, manifest: dict[str, Any]) -> str:
        """Create the NodePool, or replace its spec when it differs; returns what it did.

        NodePoolNotOwnedError when a NodePool of that name is not costscaler's.
        """
        name = manifest["metadata"]["name"]

        def call() -> str:
            try:
                live: Any = self.custom.get_cluster_custom_object(
                    KARPENTER_GROUP, KARPENTER_VERSION, "nodepools", name
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self.custom.create_cluster_custom_object(
                    KARPENTER_GROUP, KARPENTER_VERSION, "nodepools", manifest
                )
                return "created"
            labels = live.get("metadata", {}).get("labels") or {}
            if labels.get(MANAGED_BY) != MANAGER or labels.get(POOL_LABEL) != pool:
                raise NodePoolNotOwnedError(name, pool)
            if _contains(live.get("spec") or {}, manifest["spec"]):
                return "unchanged"
            patch = {"metadata": {"labels": manifest["metadata"]["labels"]}}
            # A merge patch keeps keys it does not name: clear a limit no longer wanted.
            patch["spec"] = {"limits": None, **manifest["spec"]}
            self.custom.patch_cluster_custom_object(
                KARPENTER_GROUP, KARPENTER_VERSION, "nodepools", name, patch
            )
            return "updated"

        return await self._call(call)

    async def delete(self, pool: str, name: str) -> bool:
        """Delete the pool's own NodePool; True once it is gone (never another's)."""

        def call() -> bool:
            try:
                live: Any = self.custom.get_cluster_custom_object(
                    KARPENTER_GROUP, KARPENTER_VERSION, "nodepools", name
                )
            except ApiException as exc:
                if exc.status == 404:
                    return True
                raise
            labels = live.get("metadata", {}).get("labels") or {}
            if labels.get(MANAGED_BY) != MANAGER or labels.get(POOL_LABEL) != pool:
                return True  # not ours to remove
            self.custom.delete_cluster_custom_object(
                KARPENTER_GROUP, KARPENTER_VERSION, "nodepools", name
            )
            return False

        return await self._call(call)


def _contains(live: Any, wanted: Any) -> bool:
    """Whether `live` already holds everything in `wanted` (the server adds defaults)."""
    if isinstance(wanted, dict):
        return isinstance(live, dict) and all(_contains(live.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return (
            isinstance(live, list)
            and len(live) == len(wanted)
            and all(_contains(a, b) for a, b in zip(live, wanted, strict=True))
        )
    return bool(live == wanted)
