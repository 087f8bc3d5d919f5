"""Spot interruptions learned from the nodes that go, not from drops in ready replicas.

A replica that crashes, fails its readiness probe or is scaled down leaves its node in
place; an interruption takes the node. So the operator remembers, per deployment, the nodes
that held its replicas at the last tick (`held`), by pool. A held node that is gone now, or
being deleted, is one interruption of each pool it held replicas of, unless Karpenter took it
on purpose (consolidation, drift: its NodeClaim said `DisruptionReason`), which is no loss of
capacity the market decided. The counts become `ChildState.interrupted`, the engine's spot
losses (`Observations.lost`, `core.hazard`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace

from costscaler.adapters.children import ChildState
from costscaler.adapters.pending import PlacedPod

# Held: node name -> the pools with replicas on it.
Held = dict[str, frozenset[str]]


def losses(
    held: Mapping[str, frozenset[str]],
    placed: Iterable[PlacedPod],
    deleting: Mapping[str, bool],
    voluntary: Collection[str],
) -> tuple[dict[str, int], Held]:
    """Interruptions per pool since the last tick, and the nodes held now.

    `held`: the last tick's; `placed`: the deployment's pods bound to nodes; `deleting`: every
    live node, True when it is being deleted; `voluntary`: nodes Karpenter disrupts on purpose.
    A node counts once: a deleting node is no longer held.
    """
    lost: dict[str, int] = {}
    for node, pools in held.items():
        if deleting.get(node) is False or node in voluntary:
            continue
        for pool in pools:
            lost[pool] = lost.get(pool, 0) + 1
    now: dict[str, set[str]] = {}
    for pod in placed:
        if deleting.get(pod.node) is False:
            now.setdefault(pod.node, set()).add(pod.pool)
    return lost, {node: frozenset(pools) for node, pools in now.items()}


def with_lost(children: list[ChildState], lost: Mapping[str, int]) -> list[ChildState]:
    """`children` with `interrupted` set from `lost` (per pool)."""
    return [replace(c, interrupted=lost[c.pool]) if c.pool in lost else c for c in children]
