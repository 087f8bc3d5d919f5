"""The watch-fed indexes, so that a tick makes no GET.

CapacityPools by name, the child Deployments by owner, the unscheduled child pods (the
stock-out signal), the bound ones by node (the spot-loss signal), with the node layer every
pod's GPUs by node and the unbound child pods' by pool (the free slots), Nodes, and each
InferenceDeployment's Prometheus target (the batch the `ReadingCache` fetches).
"""

from __future__ import annotations

from typing import Any

import kopf

from costscaler.adapters.children import LABEL_DEPLOYMENT, child_state
from costscaler.adapters.pending import (
    bound_accelerators,
    pending_pod,
    placed_pod,
    settled_pod,
    unbound_accelerators,
)
from costscaler.adapters.prometheus import Target
from costscaler.adapters.promql import build_queries
from costscaler.api import GROUP, VERSION, CapacityPool
from costscaler.api.deployment import window_seconds
from costscaler.controller.objects import compact_body, parse_infd, parse_pool
from costscaler.controller.pools import node_view
from costscaler.controller.settings import Settings

IDS, POOLS = "inferencedeployments", "capacitypools"


def register_indexes(reg: kopf.OperatorRegistry, settings: Settings) -> None:
    """Register the indexes in `reg`; the Prometheus targets use `settings`' labels and window."""

    # Index functions are async (cheap, no I/O): sync ones would hop to kopf's thread pool for
    # every watch event of thousands of objects.
    @kopf.index(GROUP, VERSION, POOLS, id="pools_index", registry=reg)
    async def pools_index(body: kopf.Body, name: str, **_: Any) -> dict[str, CapacityPool]:
        # A pool being deleted (held by its NodePool's finalizer) takes no more replicas: the
        # ticks drain its children as for a pool that is gone.
        if dict(body.get("metadata") or {}).get("deletionTimestamp"):
            return {}
        pool = parse_pool(body)
        return {name: pool} if pool else {}

    @kopf.index(
        "apps",
        "v1",
        "deployments",
        labels={LABEL_DEPLOYMENT: kopf.PRESENT},
        id="children_index",
        registry=reg,
    )
    async def children_index(body: kopf.Body, **_: Any) -> dict[Any, Any]:
        state = child_state(dict(body))
        return {(state.namespace, state.owner): state} if state else {}

    # Only unscheduled child pods are kept (a few numbers each): the stock-out signal.
    @kopf.index(
        "",
        "v1",
        "pods",
        labels={LABEL_DEPLOYMENT: kopf.PRESENT},
        id="pending_index",
        registry=reg,
    )
    async def pending_index(body: kopf.Body, **_: Any) -> dict[Any, Any]:
        pod = pending_pod(dict(body))
        return {(pod.namespace, pod.owner): pod} if pod else {}

    # Child pods bound to nodes, as (pool, node): a node that goes while it holds replicas
    # is a spot interruption (`interruptions`).
    @kopf.index(
        "",
        "v1",
        "pods",
        labels={LABEL_DEPLOYMENT: kopf.PRESENT},
        id="placed_index",
        registry=reg,
    )
    async def placed_index(body: kopf.Body, **_: Any) -> dict[Any, Any]:
        pod = placed_pod(dict(body))
        return {(pod.namespace, pod.owner): pod} if pod else {}

    if settings.node_layer:
        # Ready child pods still marked do-not-disrupt: the tick lets Karpenter move them.
        @kopf.index(
            "",
            "v1",
            "pods",
            labels={LABEL_DEPLOYMENT: kopf.PRESENT},
            id="settled_index",
            registry=reg,
        )
        async def settled_index(body: kopf.Body, **_: Any) -> dict[Any, Any]:
            name = settled_pod(dict(body))
            if name is None:
                return {}
            meta = dict(body.get("metadata") or {})
            labels = dict(meta.get("labels") or {})
            return {(meta.get("namespace", ""), labels[LABEL_DEPLOYMENT]): name}

        # Every pod's GPUs by node, children and other workloads alike: what a node layer
        # pool's free slots leave out (`node_layer.free_accelerators`). The pods are watched
        # anyway (the filters above are kopf's, on one watch); this keeps a number per GPU pod.
        @kopf.index("", "v1", "pods", id="gpus_index", registry=reg)
        async def gpus_index(body: kopf.Body, **_: Any) -> dict[str, int]:
            bound = bound_accelerators(dict(body))
            if bound is None:
                return {}
            node, gpus = bound
            return {node: gpus}

        # Child pods not bound yet, as their pool's GPUs each: replicas on their way to a
        # free slot, which the next count of the pool's free slots must not offer again.
        @kopf.index(
            "",
            "v1",
            "pods",
            labels={LABEL_DEPLOYMENT: kopf.PRESENT},
            id="unbound_index",
            registry=reg,
        )
        async def unbound_index(body: kopf.Body, **_: Any) -> dict[str, int]:
            waiting = unbound_accelerators(dict(body))
            if waiting is None:
                return {}
            pool, gpus = waiting
            return {pool: gpus}

    @kopf.index("", "v1", "nodes", id="nodes_index", registry=reg)
    async def nodes_index(body: kopf.Body, **_: Any) -> dict[None, Any]:
        return {None: node_view(dict(body))}

    # Each node by name: whether it is being deleted (a tick looks up only the nodes it held).
    @kopf.index("", "v1", "nodes", id="deleting_index", registry=reg)
    async def deleting_index(body: kopf.Body, name: str, **_: Any) -> dict[str, bool]:
        return {name: bool(dict(body.get("metadata") or {}).get("deletionTimestamp"))}

    @kopf.index(GROUP, VERSION, IDS, id="targets_index", registry=reg)
    async def targets_index(
        body: kopf.Body, namespace: str | None, name: str, **_: Any
    ) -> dict[None, Target]:
        # Every event of an InferenceDeployment passes here before kopf hands its body to the
        # timer, which keeps it until the next event: kept compact.
        compact_body(body)
        try:
            infd = parse_infd(body)
        except kopf.PermanentError:
            return {}
        s = infd.spec
        queries = build_queries(
            s.metrics,
            settings.series_labels(),
            settings.rate_window,
            namespace or "",
            s.slo.window,
            s.slo,
        )
        quantile, threshold = s.slo.latency.quantile, s.slo.latency.threshold_seconds
        window, slo_window = s.forecast.window_seconds, window_seconds(s.slo.window)
        ttft, itl = s.slo.ttft, s.slo.itl
        return {
            None: Target(
                (namespace or "", name),
                queries,
                quantile,
                threshold,
                window,
                slo_window,
                ttft=None if ttft is None else (ttft.quantile, ttft.threshold_seconds),
                itl=None if itl is None else (itl.quantile, itl.threshold_seconds),
            )
        }
