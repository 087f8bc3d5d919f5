"""Karpenter objects for CapacityPools: the NodePool a Managed pool owns, and the
CapacityBuffer (and its PodTemplate) that keeps its warm nodes.

The builders are pure (a CapacityPool in, a manifest dict out); `NodePools` does the writes,
refusing to touch a NodePool that costscaler does not own (a Reference pool's, or anyone's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from kubernetes.client.exceptions import ApiException

from costscaler.adapters.children import DO_NOT_DISRUPT
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
GPU_RESOURCE = "nvidia.com/gpu"
# A node Karpenter is taking away (consolidation, drift, expiry) takes no new pods.
DISRUPTED_TAINT = "karpenter.sh/disrupted"
# A node tainted `costscaler.dev/pool=<pool>` (NoSchedule, NoExecute) takes only pods that
# tolerate that pool by name: the pool's children and warm buffer (its placement tolerates it),
# no other workload. An operator serving some namespaces sees every GPU on such a node.
DEDICATED_TAINT = "costscaler.dev/pool"
DISRUPTION_REASON = "DisruptionReason"
# The buffer's pods are never run (Karpenter only sizes nodes by them): any small image.
WARM_IMAGE = "registry.k8s.io/pause:3.10"
KARPENTER_CAPACITY = {CapacityType.ON_DEMAND: "on-demand", CapacityType.SPOT: "spot"}


class NodePoolNotOwnedError(Exception):
    """A NodePool by that name exists and costscaler does not manage it."""

    def __init__(self, name: str, pool: str) -> None:
        super().__init__(
            f"NodePool {name} exists and is not managed by costscaler: set "
            f"spec.nodePool.name of CapacityPool {pool} to another name, or use mode Reference"
        )


def gpu_count(resources: dict[str, Any]) -> int:
    """The `nvidia.com/gpu` quantity in a resources map (allocatable, requests, limits);
    0 when absent or not a whole number."""
    try:
        return int(str(resources.get(GPU_RESOURCE, 0)))
    except ValueError:
        return 0


def nodepool_name(pool: CapacityPool) -> str | None:
    """The NodePool behind the pool (Managed or Reference), or None without one."""
    settings = pool.spec.node_pool
    if settings is None:
        return None
    return settings.name or pool.name


def managed(pool: CapacityPool) -> bool:
    """Whether costscaler owns the pool's NodePool."""
    return pool.spec.node_pool is not None and pool.spec.node_pool.mode == NodePoolMode.MANAGED


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
                "taints": pool.spec.placement.taints(),
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


def warm_name(pool: CapacityPool) -> str:
    """The CapacityBuffer and PodTemplate that hold the pool's warm spare nodes."""
    return f"costscaler-warm-{pool.name}"[:253]


def warm_pod_template(pool: CapacityPool, namespace: str) -> dict[str, Any]:
    """The PodTemplate a warm node is sized by: a whole node's accelerators, the pool's
    placement, so that each buffer chunk holds exactly one spare node of the pool."""
    placement = pool.spec.placement
    gpus = str(pool.spec.accelerator.count_per_node)
    return {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {
            "name": warm_name(pool),
            "namespace": namespace,
            "labels": {MANAGED_BY: MANAGER, POOL_LABEL: pool.name},
        },
        "template": {
            "metadata": {"labels": {POOL_LABEL: pool.name}},
            "spec": {
                "nodeSelector": dict(placement.node_selector),
                "tolerations": [
                    t.model_dump(by_alias=True, exclude_none=True) for t in placement.tolerations
                ],
                "containers": [
                    {
                        "name": "warm",
                        "image": WARM_IMAGE,
                        # Requests, not only limits: the buffer sizes its chunks by requests.
                        "resources": {
                            "requests": {GPU_RESOURCE: gpus},
                            "limits": {GPU_RESOURCE: gpus},
                        },
                    }
                ],
            },
        },
    }


def buffer_manifest(pool: CapacityPool, namespace: str, nodes: int) -> dict[str, Any]:
    """A CapacityBuffer keeping `nodes` spare nodes of the pool launched and empty."""
    return {
        "apiVersion": f"{BUFFER_GROUP}/{BUFFER_VERSION}",
        "kind": "CapacityBuffer",
        "metadata": {
            "name": warm_name(pool),
            "namespace": namespace,
            "labels": {MANAGED_BY: MANAGER, POOL_LABEL: pool.name},
        },
        "spec": {"podTemplateRef": {"name": warm_name(pool)}, "replicas": nodes},
    }


def claim_in_flight(claim: dict[str, Any]) -> bool:
    """Whether a NodeClaim is still launching: not Initialized, and not being deleted."""
    if (claim.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return not any(
        c.get("type") == "Initialized" and c.get("status") == "True"
        for c in (claim.get("status") or {}).get("conditions") or []
    )


def disrupted_node(claim: dict[str, Any]) -> str | None:
    """The node of a NodeClaim that Karpenter disrupts on purpose (consolidation, drift,
    expiry: condition `DisruptionReason` True), else None. A spot interruption sets no such
    condition: the claim just goes."""
    status = claim.get("status") or {}
    node = status.get("nodeName")
    marked = any(
        c.get("type") == DISRUPTION_REASON and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return str(node) if node and marked else None


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

    async def keep_warm(self, pool: CapacityPool, namespace: str, nodes: int) -> None:
        """Hold `nodes` warm spare nodes for the pool: its PodTemplate and CapacityBuffer in
        `namespace` (created on the first spare, then kept, at 0 when none pays)."""
        template = warm_pod_template(pool, namespace)
        buffer = buffer_manifest(pool, namespace, nodes)
        name = warm_name(pool)

        def call() -> None:
            try:
                live: Any = self.custom.get_namespaced_custom_object(
                    BUFFER_GROUP, BUFFER_VERSION, namespace, "capacitybuffers", name
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
                if nodes == 0:
                    return
                self._put_template(namespace, name, template)
                self.custom.create_namespaced_custom_object(
                    BUFFER_GROUP, BUFFER_VERSION, namespace, "capacitybuffers", buffer
                )
                return
            self._put_template(namespace, name, template)
            if (live.get("spec") or {}).get("replicas") != nodes:
                self.custom.patch_namespaced_custom_object(
                    BUFFER_GROUP,
                    BUFFER_VERSION,
                    namespace,
                    "capacitybuffers",
                    name,
                    {"spec": {"replicas": nodes}},
                )

        await self._call(call)

    def _put_template(self, namespace: str, name: str, template: Any) -> None:
        try:
            live = self.core.read_namespaced_pod_template(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.core.create_namespaced_pod_template(namespace, template)
            return
        wire = self.core.api_client.sanitize_for_serialization(live)
        if not _contains(wire.get("template") or {}, template["template"]):
            self.core.replace_namespaced_pod_template(name, namespace, template)

    async def release(self, namespace: str, pods: list[str]) -> None:
        """Drop `karpenter.sh/do-not-disrupt` from these Ready pods (a pod gone is fine)."""
        patch = {"metadata": {"annotations": {DO_NOT_DISRUPT: None}}}

        def call() -> None:
            for name in pods:
                try:
                    self.core.patch_namespaced_pod(name, namespace, patch)
                except ApiException as exc:
                    if exc.status != 404:
                        raise

        await self._call(call)


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
