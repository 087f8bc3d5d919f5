"""The CapacityPool timer: its status from the Nodes matching its placement."""

from __future__ import annotations

from typing import Any

import kopf

from costscaler.api import GROUP, VERSION
from costscaler.controller import runtime as rt_mod
from costscaler.controller.indexes import POOLS
from costscaler.controller.objects import now, parse_pool
from costscaler.controller.pools import pool_status


def register_pool_handlers(reg: kopf.OperatorRegistry, interval: float) -> None:
    """Register the CapacityPool status timer in `reg`, every `interval` s (10 s at least)."""

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
        new = pool_status(pool, nodes, list(prev.get("conditions") or []), gen, now())
        rt: rt_mod.Runtime = memo.runtime
        rt.metrics.pool_nodes.labels(pool.name).set(new["nodes"])
        rt.pool_nodes[pool.name] = int(new["nodes"])
        rt.metrics.pool_hourly_cost.labels(pool.name).set(float(new["effectiveHourlyCost"]))
        if any(prev.get(k) != v for k, v in new.items()):
            for key, value in new.items():
                patch.status[key] = value
