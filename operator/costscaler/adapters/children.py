"""The per-pool Deployments an InferenceDeployment owns: their desired shape and observed state.

A child is named `<name>-<pool>`, carries the labels `costscaler.dev/deployment` and
`costscaler.dev/pool` on itself and its pods (so Prometheus can tell pools apart), the pool's
placement merged into the pod template, and an owner reference so that deleting the
InferenceDeployment garbage-collects it. `costscaler.dev/template-hash` records the spec it was
built from: the controller rewrites a child only when the hash differs (level-based, and quiet
when nothing changed).
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from costscaler.api import API_VERSION, CapacityPool

LABEL_DEPLOYMENT = "costscaler.dev/deployment"
LABEL_POOL = "costscaler.dev/pool"
ANNOTATION_HASH = "costscaler.dev/template-hash"


@dataclass(frozen=True)
class Owner:
    """The InferenceDeployment a child belongs to."""

    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class ChildState:
    """What a child Deployment is: replicas asked (`desired`), serving and starting."""

    namespace: str
    name: str
    owner: str
    pool: str
    desired: int
    ready: int
    warming: int
    template_hash: str


def child_name(owner: str, pool: str) -> str:
    """`<name>-<pool>`, the child Deployment's name."""
    return f"{owner}-{pool}"


def _merge_placement(pod_spec: dict[str, Any], pool: CapacityPool) -> None:
    placement = pool.spec.placement
    selector = dict(pod_spec.get("nodeSelector") or {})
    selector.update(placement.node_selector)
    if selector:
        pod_spec["nodeSelector"] = selector
    tolerations = list(pod_spec.get("tolerations") or [])
    for tol in placement.tolerations:
        wire = tol.to_wire()
        if wire not in tolerations:
            tolerations.append(wire)
    if tolerations:
        pod_spec["tolerations"] = tolerations


def _quantities_as_strings(pod_spec: dict[str, Any]) -> None:
    # The API takes 1 or "1" for a quantity; the typed client accepts only strings.
    for key in ("containers", "initContainers"):
        for container in pod_spec.get(key) or []:
            resources = container.get("resources") or {}
            for kind in ("limits", "requests"):
                values = resources.get(kind)
                if isinstance(values, dict):
                    resources[kind] = {k: str(v) for k, v in values.items()}


def child_manifest(owner: Owner, template: dict[str, Any], pool: CapacityPool) -> dict[str, Any]:
    """The child Deployment for one pool, without `spec.replicas` (the scaler sets that)."""
    labels = {LABEL_DEPLOYMENT: owner.name, LABEL_POOL: pool.name}
    pod = copy.deepcopy(template)
    meta = pod.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    _merge_placement(pod.setdefault("spec", {}), pool)
    _quantities_as_strings(pod["spec"])
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": child_name(owner.name, pool.name),
            "namespace": owner.namespace,
            "labels": dict(labels),
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "InferenceDeployment",
                    "name": owner.name,
                    "uid": owner.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"selector": {"matchLabels": dict(labels)}, "template": pod},
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    body["metadata"]["annotations"] = {ANNOTATION_HASH: digest}
    return body


def child_state(body: dict[str, Any]) -> ChildState | None:
    """A child's state from its Deployment object, or None when it is not a costscaler child."""
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    if LABEL_DEPLOYMENT not in labels or LABEL_POOL not in labels:
        return None
    return deployment_state(body, owner=labels[LABEL_DEPLOYMENT], pool=labels[LABEL_POOL])


def deployment_state(body: dict[str, Any], owner: str, pool: str) -> ChildState:
    """Replicas of any Deployment (a child or a targetRef): warming = asked but not ready."""
    meta = body.get("metadata") or {}
    desired = int((body.get("spec") or {}).get("replicas") or 0)
    ready = int((body.get("status") or {}).get("readyReplicas") or 0)
    return ChildState(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        owner=owner,
        pool=pool,
        desired=desired,
        ready=min(ready, desired) if desired else ready,
        warming=max(0, desired - ready),
        template_hash=(meta.get("annotations") or {}).get(ANNOTATION_HASH, ""),
    )
