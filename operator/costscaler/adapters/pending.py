"""Child pods the scheduler could not place: the operator's signal that a pool is out of stock.

A pod of a child Deployment that stays Pending with `PodScheduled=False` (no node fits: the
pool's nodes are full and none is launched, a quota, a spot zone without capacity) is
unplaceable once it has waited past its pool's grace (`controller.shortfall`). Only such
pods are indexed, as a few numbers each.

Child pods bound to a node are indexed as their pool and node (`placed_pod`): a node that
goes while it holds replicas is a spot interruption (`controller.interruptions`). Every pod
bound to a node with GPUs, child or not, is indexed as its node and GPU count
(`bound_accelerators`; a pod the scheduler nominated to a node, waiting for the pods it
preempts there to go, counts on that node): what the node layer's free slots leave out. A
child pod not bound yet is indexed as its pool and GPU count (`unbound_accelerators`): a
replica on its way to a slot, which the free slots leave out too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from costscaler.adapters.children import DO_NOT_DISRUPT, LABEL_DEPLOYMENT, LABEL_POOL
from costscaler.adapters.karpenter import GPU_RESOURCE, gpu_count


@dataclass(frozen=True)
class PendingPod:
    """An unscheduled child pod: its owner (InferenceDeployment), pool, and since when (epoch
    s) the scheduler has said it does not fit."""

    namespace: str
    owner: str
    pool: str
    since: float


def _epoch(stamp: Any) -> float | None:
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def pending_pod(body: dict[str, Any]) -> PendingPod | None:
    """The pod as a PendingPod when it is a child pod the scheduler has not placed, else None.

    A pod being deleted is not counted: a scale-down already takes it away.
    """
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = body.get("status") or {}
    if LABEL_DEPLOYMENT not in labels or LABEL_POOL not in labels:
        return None
    if status.get("phase") != "Pending" or meta.get("deletionTimestamp"):
        return None
    scheduled = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None
    )
    if scheduled is None or scheduled.get("status") != "False":
        return None
    since = _epoch(scheduled.get("lastTransitionTime")) or _epoch(meta.get("creationTimestamp"))
    if since is None:
        return None
    return PendingPod(
        meta.get("namespace", ""), labels[LABEL_DEPLOYMENT], labels[LABEL_POOL], since
    )


@dataclass(frozen=True)
class PlacedPod:
    """A child pod bound to a node: its owner (InferenceDeployment), pool and node."""

    namespace: str
    owner: str
    pool: str
    node: str


def _gpus(container: dict[str, Any]) -> int:
    """GPUs a container requests (its limit where no request is set: the API server
    defaults an extended resource's request to its limit); 0 for a malformed count."""
    res = container.get("resources") or {}
    requests = res.get("requests") or {}
    given = requests if GPU_RESOURCE in requests else (res.get("limits") or {})
    return max(gpu_count(given), 0)


def pod_accelerators(spec: dict[str, Any]) -> int:
    """GPUs a pod holds on its node, as the scheduler counts them: its containers' requests
    summed, or the largest init container's when that is more (init containers run one at
    a time, before the others)."""
    running = sum(_gpus(c) for c in spec.get("containers") or [])
    return max([running, *(_gpus(c) for c in spec.get("initContainers") or [])])


def bound_accelerators(body: dict[str, Any]) -> tuple[str, int] | None:
    """(node, GPUs) for any pod bound to a node that holds GPUs there, else None: a pod that
    finished (Succeeded, Failed) or is being deleted frees them, or is about to (a scale-down,
    whose slot the next replica may take). A pod not bound yet that the scheduler nominated
    to a node (`status.nominatedNodeName`: it preempted pods there and waits for them to go)
    holds them on that node already: the victims' GPUs, freed as they go, are its."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    node = spec.get("nodeName") or (body.get("status") or {}).get("nominatedNodeName")
    if not node or meta.get("deletionTimestamp"):
        return None
    if (body.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return None
    gpus = pod_accelerators(spec)
    return (str(node), gpus) if gpus > 0 else None


def unbound_accelerators(body: dict[str, Any]) -> tuple[str, int] | None:
    """(pool, GPUs) for a child pod that holds GPUs and is on its way to a node of its pool:
    Pending, not bound, not nominated to a node (`bound_accelerators` counts that one there),
    not being deleted; else None. Until the scheduler binds it, the node layer counts the
    slot it will take as taken (`node_layer.free_accelerators`)."""
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    spec, status = body.get("spec") or {}, body.get("status") or {}
    if LABEL_DEPLOYMENT not in labels or LABEL_POOL not in labels or meta.get("deletionTimestamp"):
        return None
    if spec.get("nodeName") or status.get("nominatedNodeName"):
        return None
    if status.get("phase", "Pending") != "Pending":
        return None
    gpus = pod_accelerators(spec)
    return (str(labels[LABEL_POOL]), gpus) if gpus > 0 else None


def placed_pod(body: dict[str, Any]) -> PlacedPod | None:
    """The pod as a PlacedPod when it is a child pod bound to a node and not being deleted
    (a pod on its way out is a scale-down, or its node already going), else None."""
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    node = (body.get("spec") or {}).get("nodeName")
    if LABEL_DEPLOYMENT not in labels or LABEL_POOL not in labels or not node:
        return None
    if meta.get("deletionTimestamp"):
        return None
    return PlacedPod(meta.get("namespace", ""), labels[LABEL_DEPLOYMENT], labels[LABEL_POOL], node)


def settled_pod(body: dict[str, Any]) -> str | None:
    """The pod's name when it is a child pod that is Ready and still carries
    `karpenter.sh/do-not-disrupt` (set while it loads its model), else None."""
    meta = body.get("metadata") or {}
    if LABEL_DEPLOYMENT not in (meta.get("labels") or {}) or meta.get("deletionTimestamp"):
        return None
    if (meta.get("annotations") or {}).get(DO_NOT_DISRUPT) != "true":
        return None
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (body.get("status") or {}).get("conditions") or []
    )
    return str(meta.get("name", "")) if ready else None
