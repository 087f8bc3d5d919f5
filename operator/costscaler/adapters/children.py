"""The per-pool Deployments an InferenceDeployment owns: their desired shape and observed state.

A child is named `<name>-<pool>` when that fits in 63 characters and no other object holds the
name; otherwise `<head>-<hash>`, the hash taken over name and pool apart, so that two owners
whose names run together (`col-g6` + `xlarge-l4-spot`, `col` + `g6-xlarge-l4-spot`) get
different children. A child carries the labels `costscaler.dev/deployment` and
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
from costscaler.api.podtemplate import PodTemplate

LABEL_DEPLOYMENT = "costscaler.dev/deployment"
LABEL_POOL = "costscaler.dev/pool"
ANNOTATION_HASH = "costscaler.dev/template-hash"
MAX_NAME = 63  # a DNS label: the Deployment's name also prefixes its ReplicaSets and pods
HASH_CHARS = 10


class ChildNameTakenError(Exception):
    """The child's name is held by an object another owner controls; it is left alone."""

    def __init__(self, namespace: str, name: str, holder: str) -> None:
        super().__init__(
            f"Deployment {namespace}/{name} already exists and belongs to {holder}, not to "
            "this InferenceDeployment; rename or delete it, or rename this InferenceDeployment"
        )
        self.namespace, self.name, self.holder = namespace, name, holder


@dataclass(frozen=True)
class Owner:
    """The InferenceDeployment a child belongs to."""

    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class ChildState:
    """What a child Deployment is: replicas asked (`desired`), serving and starting, and of
    those, `unfulfillable`: pods the cluster cannot place (`controller.shortfall`);
    `interrupted`: nodes lost since the last tick that held its replicas
    (`controller.interruptions`)."""

    namespace: str
    name: str
    owner: str
    pool: str
    desired: int
    ready: int
    warming: int
    template_hash: str
    unfulfillable: int = 0
    interrupted: int = 0


def child_names(owner: str, pool: str) -> tuple[str, str]:
    """The child's two possible names: `<name>-<pool>` first (when it fits), then the hashed one.

    The hashed name is `<name>-<pool>` cut to 52 characters, a dash and 10 hex digits of
    SHA-256 over `<name>/<pool>` ("/" appears in neither, so distinct pairs hash apart).
    """
    plain = f"{owner}-{pool}"
    digest = hashlib.sha256(f"{owner}/{pool}".encode()).hexdigest()[:HASH_CHARS]
    hashed = f"{plain[: MAX_NAME - HASH_CHARS - 1].rstrip('-')}-{digest}"
    return (plain, hashed) if len(plain) <= MAX_NAME else (hashed, hashed)


def child_name(owner: str, pool: str, current: str | None = None) -> str:
    """The name to give the child: the one it has already (if one of its own), else the first.

    Keeping the current name means a child that had to take the hashed name keeps it, rather
    than the controller trying the plain name again every tick.
    """
    names = child_names(owner, pool)
    return current if current in names else names[0]


DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"


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


def child_manifest(
    owner: Owner,
    template: PodTemplate | dict[str, Any],
    pool: CapacityPool,
    name: str | None = None,
) -> dict[str, Any]:
    """The child Deployment for one pool, without `spec.replicas` (the scaler sets that).

    `name` defaults to the first of `child_names`.
    """
    labels = {LABEL_DEPLOYMENT: owner.name, LABEL_POOL: pool.name}
    if isinstance(template, PodTemplate):
        pod = template.to_wire()
    else:
        pod = copy.deepcopy(template)
    meta = pod.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    if pool.spec.node_pool is not None:
        # Karpenter launches this pool's nodes: it must not take one away while a replica on
        # it is still loading. The operator removes the annotation once the pod is Ready
        # (`adapters.pending.settled_pod`), so consolidation may move serving replicas.
        meta["annotations"] = {**(meta.get("annotations") or {}), DO_NOT_DISRUPT: "true"}
    _merge_placement(pod.setdefault("spec", {}), pool)
    _quantities_as_strings(pod["spec"])
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name or child_names(owner.name, pool.name)[0],
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
