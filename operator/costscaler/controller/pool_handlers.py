"""The CapacityPool handlers: the status timer (the Nodes matching its placement, and with the
node layer its NodePool and warm spare nodes), and a Managed pool's deletion (its replicas
drained first, then its NodePool removed)."""

from __future__ import annotations

import time
from typing import Any

import kopf

from costscaler.adapters import karpenter
from costscaler.api import GROUP, VERSION
from costscaler.controller import node_layer
from costscaler.controller import runtime as rt_mod
from costscaler.controller.indexes import POOLS
from costscaler.controller.node_layer import NODEPOOL_READY
from costscaler.controller.objects import now, parse_pool
from costscaler.controller.pools import pool_status
from costscaler.controller.settings import Settings
from costscaler.controller.status import Cond, conditions, money

DRAIN_RETRY_SECONDS = 10.0


def _managed(spec: kopf.Spec, **_: Any) -> bool:
    return dict(spec.get("nodePool") or {}).get("mode") == "Managed"


def register_pool_handlers(reg: kopf.OperatorRegistry, settings: Settings) -> None:
    """Register the CapacityPool status timer (every interval, 10 s at least) in `reg`, and
    with the node layer on, the deletion of Managed pools."""
    interval = settings.interval_seconds

    @kopf.timer(
        GROUP,
        VERSION,
        POOLS,
        id="pool_status",
        interval=max(interval, 10.0),
        backoff=interval,
        registry=reg,
    )
    async def pool_tick(body: kopf.Body, patch: kopf.Patch, memo: Any, **kw: Any) -> None:
        """CapacityPool status from the Nodes matching its placement; written when it changed."""
        pool = parse_pool(body, report=False)
        if pool is None:
            return
        nodes = list(kw["nodes_index"].get(None, []))
        prev = dict(body.get("status") or {})
        gen = dict(body.get("metadata") or {}).get("generation")
        rt: rt_mod.Runtime = memo.runtime
        extra: list[Cond] = []
        layer = None
        if rt.nodepools is not None:
            pending = [p for store in kw["pending_index"].values() for p in store]
            index = kw.get("claims_index", {})
            claims = {k: len(v) for k, v in index.items()}
            in_flight = {k: sum(1 for _, flying in v if flying) for k, v in index.items()}
            last = next(
                (c for c in prev.get("conditions") or [] if c.get("type") == NODEPOOL_READY), None
            )
            layer = await node_layer.reconcile(
                pool,
                rt.nodepools,
                pending,
                claims,
                list(rt.warm_needs.values()),
                settings.warm_namespace,
                time.time(),
                None
                if last is None
                else Cond(
                    NODEPOOL_READY,
                    last.get("status") == "True",
                    last.get("reason", ""),
                    last.get("message", ""),
                ),
                in_flight,
            )
            if layer is not None:
                extra.append(layer.condition)
            if layer is not None and layer.condition.reason in node_layer.NOTHING_LAUNCHING:
                rt.stalled_pools.add(pool.name)
            else:
                rt.stalled_pools.discard(pool.name)
        new = pool_status(pool, nodes, list(prev.get("conditions") or []), gen, now())
        if extra:
            before = list(prev.get("conditions") or [])
            new["conditions"] = new["conditions"] + conditions(extra, before, gen, now())
        used = kw.get("gpus_index", {})
        waiting = list(kw.get("unbound_index", {}).get(pool.name, []))
        free = (
            node_layer.free_accelerators(
                pool, nodes, used, seen_all=settings.all_namespaces, waiting=waiting
            )
            if rt.nodepools
            else None
        )
        if free is None:
            rt.pool_free.pop(pool.name, None)
        else:
            rt.pool_free[pool.name] = free
        if layer is not None:
            new.update(node_layer.status_fields(layer, money))
            rt.metrics.pool_warm_nodes.labels(pool.name).set(new["warmNodes"])
            rt.pool_warm[pool.name] = int(new["warmNodes"])
            rt.metrics.pool_warm_hourly_cost.labels(pool.name).set(float(new["warmHourlyCost"]))
        else:
            rt.pool_warm.pop(pool.name, None)
        rt.metrics.pool_nodes.labels(pool.name).set(new["nodes"])
        rt.pool_nodes[pool.name] = int(new["nodes"])
        rt.metrics.pool_hourly_cost.labels(pool.name).set(float(new["effectiveHourlyCost"]))
        if any(prev.get(k) != v for k, v in new.items()):
            for key, value in new.items():
                patch.status[key] = value

    if not settings.node_layer:
        return

    @kopf.index(
        karpenter.KARPENTER_GROUP, karpenter.KARPENTER_VERSION, "nodeclaims",
        id="claims_index", registry=reg,
    )  # fmt: skip
    async def claims_index(body: kopf.Body, name: str, **_: Any) -> dict[str, tuple[str, bool]]:
        labels = dict(dict(body.get("metadata") or {}).get("labels") or {})
        pool = labels.get(karpenter.NODEPOOL_LABEL)
        return {pool: (name, karpenter.claim_in_flight(dict(body)))} if pool else {}

    # Nodes Karpenter takes on purpose: their going is no spot interruption (`interruptions`).
    @kopf.index(
        karpenter.KARPENTER_GROUP, karpenter.KARPENTER_VERSION, "nodeclaims",
        id="voluntary_index", registry=reg,
    )  # fmt: skip
    async def voluntary_index(body: kopf.Body, **_: Any) -> dict[None, str]:
        node = karpenter.disrupted_node(dict(body))
        return {None: node} if node else {}

    @kopf.on.delete(GROUP, VERSION, POOLS, id="pool_nodepool", when=_managed, registry=reg)
    async def pool_deleted(body: kopf.Body, memo: Any, **kw: Any) -> None:
        """Drain the pool's replicas (the ticks no longer see it), then delete its NodePool."""
        pool = parse_pool(body, report=False)
        rt: rt_mod.Runtime = memo.runtime
        if pool is None or rt.nodepools is None:
            return
        children = [c for store in kw["children_index"].values() for c in store]
        if not node_layer.drained(pool.name, children):
            raise kopf.TemporaryError(
                f"waiting for the replicas on {pool.name} to drain before its NodePool goes",
                delay=DRAIN_RETRY_SECONDS,
            )
        name = karpenter.nodepool_name(pool)
        if name is not None and not await rt.nodepools.delete(pool.name, name):
            raise kopf.TemporaryError(f"NodePool {name} is being deleted", delay=5.0)
