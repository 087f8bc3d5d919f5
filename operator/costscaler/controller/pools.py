"""CapacityPool status from the Nodes that match its placement: count, accelerators, $/h."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from costscaler.adapters.karpenter import gpu_count
from costscaler.api import CapacityPool
from costscaler.api.common import Toleration
from costscaler.controller.status import Cond, conditions, money
from costscaler.core.pools import node_hourly, node_marginal_hourly


@dataclass(frozen=True)
class NodeView:
    """What the pool status needs of a Node: labels, scheduling taints, allocatable GPUs, ready."""

    name: str
    labels: dict[str, str]
    taints: tuple[tuple[str, str, str], ...]  # (key, value, effect)
    accelerators: int
    ready: bool
    deleting: bool = False


def node_view(body: dict[str, Any]) -> NodeView:
    """A NodeView from a Node object."""
    meta, spec, status = body.get("metadata", {}), body.get("spec", {}), body.get("status", {})
    taints = tuple(
        (t.get("key", ""), t.get("value", "") or "", t.get("effect", ""))
        for t in spec.get("taints") or []
    )
    gpus = gpu_count(status.get("allocatable") or {})
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return NodeView(
        meta.get("name", ""),
        dict(meta.get("labels") or {}),
        taints,
        gpus,
        ready,
        deleting=bool(meta.get("deletionTimestamp")),
    )


def _tolerates(tols: list[Toleration], key: str, value: str, effect: str) -> bool:
    for t in tols:
        if t.effect not in (None, effect):
            continue
        if t.key is None and t.operator == "Exists":
            return True
        if t.key == key and (t.operator == "Exists" or (t.value or "") == value):
            return True
    return False


def matches(pool: CapacityPool, node: NodeView) -> bool:
    """The node carries the pool's node selector and the pool tolerates its scheduling taints."""
    placement = pool.spec.placement
    if any(node.labels.get(k) != v for k, v in placement.node_selector.items()):
        return False
    return all(
        _tolerates(placement.tolerations, key, value, effect)
        for key, value, effect in node.taints
        if effect in ("NoSchedule", "NoExecute")
    )


def pool_status(
    pool: CapacityPool,
    nodes: Iterable[NodeView],
    previous: list[dict[str, Any]],
    generation: int | None,
    now: datetime,
) -> dict[str, Any]:
    """Status of the pool: matching (ready) nodes, their allocatable accelerators, $/h per node."""
    mine = [n for n in nodes if n.ready and matches(pool, n)]
    count, gpus = len(mine), sum(n.accelerators for n in mine)
    ready = Cond(
        "Ready",
        count > 0,
        "NodesFound" if count else "NoMatchingNodes",
        f"{count} ready nodes with {gpus} allocatable accelerators match the placement",
    )
    return {
        "observedGeneration": generation,
        "nodes": count,
        "allocatableAccelerators": gpus,
        "effectiveHourlyCost": money(node_hourly(pool)),
        "marginalHourlyCost": money(node_marginal_hourly(pool)),
        "conditions": conditions([ready], previous, generation, now),
    }
