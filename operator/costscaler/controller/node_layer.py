"""The node layer: each pool's Karpenter NodePool (Managed: written; Reference: read) and its
warm spare nodes as a CapacityBuffer, reported as CapacityPool conditions and status.

Called from the CapacityPool timer when the node layer is on (`Settings.node_layer`). A pool
whose NodePool cannot be written or found gets `NodePoolReady=False` naming the field to fix;
the other pools, and the deployments' decisions, go on as before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from costscaler.adapters import karpenter
from costscaler.adapters.children import ChildState
from costscaler.adapters.pending import PendingPod
from costscaler.api import CapacityPool, InferenceDeploymentSpec, Mode
from costscaler.controller.pools import NodeView
from costscaler.controller.status import Cond
from costscaler.controller.tick import Decide
from costscaler.core import warm
from costscaler.core.engine import planner_for
from costscaler.core.nodes import taken
from costscaler.core.types import Decision, Observations, WarmNeed, WarmNodes

log = logging.getLogger(__name__)
NODEPOOL_READY = "NodePoolReady"
NO_OFFERING = "NoOfferingLaunched"
AT_LIMIT = "NodePoolLimitReached"
# Reasons that say no node is on its way for the pool's waiting pods: they count as
# unplaceable at once (`shortfall.with_unplaced`), not after a node cold start plus a minute.
NOTHING_LAUNCHING = frozenset({NO_OFFERING, AT_LIMIT})
# Karpenter creates a NodeClaim within its batching window (10 s at most) of a pod it can
# place; a pod pending this long with no claim at all is one no offering fits. Shorter than
# the stock-out grace, so the pool says why before its replicas move elsewhere.
NO_CLAIM_AFTER_S = 30.0


@dataclass(frozen=True)
class NodeLayerStatus:
    """What the pool's status shows of its node layer."""

    condition: Cond
    node_pool: str
    warm: WarmNodes | None


def _api_message(exc: ApiException) -> str:
    body = getattr(exc, "body", None) or ""
    return f"{exc.status} {exc.reason}: {str(body)[:400]}"


def no_launch(
    pool: CapacityPool, pending: Iterable[PendingPod], claims: int, now: float
) -> str | None:
    """Why nothing launches for the pool's replicas, when its pods have waited
    `NO_CLAIM_AFTER_S` and its NodePool has no NodeClaim: the instance type, capacity type or
    zones match no offering of the provider."""
    late = [p for p in pending if p.pool == pool.name and now - p.since > NO_CLAIM_AFTER_S]
    if not late or claims > 0:
        return None
    zones = pool.spec.node_pool.zones if pool.spec.node_pool else []
    return (
        f"{len(late)} replicas waited {NO_CLAIM_AFTER_S:.0f} s and no node was launched: "
        f"spec.instanceType {pool.spec.instance_type} ({pool.spec.capacity_type}"
        + (f", spec.nodePool.zones {', '.join(zones)}" if zones else "")
        + ") matches no offering of the provider; fix the instance type or zones"
    )


def node_limit(pool: CapacityPool, live: Mapping[str, Any] | None) -> tuple[int, str] | None:
    """The pool's NodePool's node limit and what sets it, None when it has none: a Managed
    pool's `spec.limits.maxNodes`; a Reference pool's NodePool's own `spec.limits.nodes`
    (`live`, as read), which its owner changes, not costscaler."""
    if karpenter.managed(pool):
        limit = pool.spec.limits.max_nodes
        return None if limit is None else (limit, "spec.limits.maxNodes")
    raw = (((live or {}).get("spec") or {}).get("limits") or {}).get("nodes")
    try:
        nodes = int(str(raw))
    except ValueError:
        return None  # no limit, or one in a unit that is no node count
    name = karpenter.nodepool_name(pool)
    return nodes, f"spec.limits.nodes of NodePool {name} (spec.nodePool.name)"


def at_limit(
    pool: CapacityPool,
    pending: Iterable[PendingPod],
    claims: int,
    in_flight: int,
    now: float,
    limit: tuple[int, str] | None,
) -> str | None:
    """Why no more nodes launch for the pool's replicas, when its pods have waited
    `NO_CLAIM_AFTER_S`, its NodePool already holds its `limit` (`node_limit`) of NodeClaims
    and none of them is still launching (a claim in flight may yet take them): Karpenter
    launches no node past the NodePool's limit, so none is coming."""
    if limit is None or claims < limit[0] or in_flight > 0:
        return None
    late = [p for p in pending if p.pool == pool.name and now - p.since > NO_CLAIM_AFTER_S]
    if not late:
        return None
    nodes, field = limit
    return (
        f"{len(late)} replicas waited {NO_CLAIM_AFTER_S:.0f} s and the NodePool already holds "
        f"{claims} nodes, its limit {field} {nodes} (warm spare nodes count too): "
        f"raise {field}, or let the replicas go to the deployments' next pools"
    )


async def reconcile(
    pool: CapacityPool,
    nodepools: karpenter.NodePools,
    pending: Iterable[PendingPod],
    claims: Mapping[str, int],
    needs: Iterable[WarmNeed],
    warm_namespace: str,
    now: float,
    previous: Cond | None = None,
    in_flight: Mapping[str, int] | None = None,
) -> NodeLayerStatus | None:
    """Write or read the pool's NodePool and keep its warm buffer; None without a nodePool.

    `claims`: NodeClaims per NodePool; `in_flight`: those not initialized yet.
    `previous`: the pool's last NodePoolReady, to keep saying no offering launched after its
    replicas moved elsewhere (the pods that showed it are gone) until a NodeClaim appears.
    """
    name = karpenter.nodepool_name(pool)
    if name is None:
        return None
    if karpenter.managed(pool):
        cond, live = await _apply(pool, name, nodepools), None
    else:
        cond, live = await _read(pool, name, nodepools)
    if cond.status:
        launched = claims.get(name, 0)
        why = no_launch(pool, pending, launched, now)
        if why is None and previous is not None and previous.reason == NO_OFFERING:
            why = previous.message if launched == 0 else None
        if why is not None:
            cond = Cond(NODEPOOL_READY, False, NO_OFFERING, why)
        else:
            launching = (in_flight or {}).get(name, 0)
            full = at_limit(pool, pending, launched, launching, now, node_limit(pool, live))
            if full is not None:
                cond = Cond(NODEPOOL_READY, False, AT_LIMIT, full)
    spare = warm.spares([n for n in needs if n.pool == pool.name]).get(pool.name)
    try:
        await nodepools.keep_warm(pool, warm_namespace, spare.nodes if spare else 0)
    except (ApiException, HTTPError, OSError) as exc:
        log.warning("warm buffer of pool %s not written: %s", pool.name, exc)
        return NodeLayerStatus(cond, name, None)
    return NodeLayerStatus(cond, name, spare)


async def _apply(pool: CapacityPool, name: str, nodepools: karpenter.NodePools) -> Cond:
    try:
        manifest = karpenter.nodepool_manifest(pool)
        done = await nodepools.apply(pool.name, manifest)
    except ValueError as exc:
        return Cond(NODEPOOL_READY, False, "InvalidPlacement", str(exc))
    except karpenter.NodePoolNotOwnedError as exc:
        return Cond(NODEPOOL_READY, False, "NodePoolNotOwned", str(exc))
    except ApiException as exc:
        if exc.status == 404:
            return Cond(NODEPOOL_READY, False, "KarpenterMissing", _MISSING)
        return Cond(
            NODEPOOL_READY,
            False,
            "NodePoolRejected",
            f"NodePool {name} was refused ({_api_message(exc)}): fix spec.nodePool",
        )
    except (HTTPError, OSError) as exc:
        return Cond(NODEPOOL_READY, False, "ApiUnavailable", f"NodePool {name} not written: {exc}")
    return Cond(NODEPOOL_READY, True, "NodePoolApplied", f"NodePool {name} {done}")


async def _read(
    pool: CapacityPool, name: str, nodepools: karpenter.NodePools
) -> tuple[Cond, dict[str, Any] | None]:
    try:
        live = await nodepools.read(name)
    except ApiException as exc:
        if exc.status == 404:
            return Cond(NODEPOOL_READY, False, "KarpenterMissing", _MISSING), None
        return Cond(NODEPOOL_READY, False, "ApiUnavailable", _api_message(exc)), None
    except (HTTPError, OSError) as exc:
        return Cond(NODEPOOL_READY, False, "ApiUnavailable", str(exc)), None
    if live is None:
        return Cond(
            NODEPOOL_READY,
            False,
            "NodePoolNotFound",
            f"NodePool {name} does not exist: fix spec.nodePool.name of {pool.name}",
        ), None
    found = Cond(NODEPOOL_READY, True, "NodePoolFound", f"NodePool {name} is read, never written")
    return found, live


_MISSING = (
    "the NodePool API (karpenter.sh/v1) is not served: install Karpenter, or remove "
    "spec.nodePool (or install the chart with nodes.enabled=false)"
)


def dedicated(pool: CapacityPool, node: NodeView) -> bool:
    """Whether the node takes only the pool's own pods: it carries the taint
    `costscaler.dev/pool=<pool>` with effect NoSchedule or NoExecute, which no other
    workload tolerates (the pool's placement does, so its children and warm buffer do)."""
    return any(
        key == karpenter.DEDICATED_TAINT and value == pool.name and effect != "PreferNoSchedule"
        for key, value, effect in node.taints
    )


def free_accelerators(
    pool: CapacityPool,
    nodes: Iterable[NodeView],
    used: Mapping[str, Iterable[int]],
    *,
    seen_all: bool = True,
    waiting: Iterable[int] = (),
) -> tuple[int, ...] | None:
    """The accelerators free on each Ready node of the pool's NodePool (warm spares
    included: a CapacityBuffer holds its nodes with virtual pods, which take nothing), what
    the engine reads as slots where a new replica pays the model load only; None without a
    NodePool. Free: allocatable less what the pods bound there hold (`used`: node -> each
    pod's GPUs, `pending.bound_accelerators`), children and other workloads alike, less the
    slots the pool's child pods not bound yet will take (`waiting`: each one's GPUs,
    `pending.unbound_accelerators`), node by node as `core.nodes.taken` counts them.

    `seen_all`: whether the operator sees every pod (it serves all namespaces). When it
    serves some namespaces only, another namespace's pods on a node are not in `used`, and
    their GPUs would read as free: only nodes `dedicated` to the pool are counted then."""
    name = karpenter.nodepool_name(pool)
    if name is None:
        return None
    mine = sorted(
        n.name
        for n in nodes
        if n.ready
        and not n.deleting
        and n.labels.get(karpenter.NODEPOOL_LABEL) == name
        and not any(key == karpenter.DISRUPTED_TAINT for key, _, _ in n.taints)
        and (seen_all or dedicated(pool, n))
    )
    allocatable = {n.name: n.accelerators for n in nodes}
    free = tuple(max(allocatable[n] - sum(used.get(n, ())), 0) for n in mine)
    # Largest first, so the result does not hang on the index's order.
    for gpus in sorted(waiting, reverse=True):
        free = taken(free, 1, gpus)
    return free


def claiming(decide: Decide, free: dict[str, tuple[int, ...]]) -> Decide:
    """`decide` that takes the free slots its decision starts replicas on out of `free` (the
    pools' shared counts, `Runtime.pool_free`) as soon as it returns: deployments deciding
    before the pool timer counts the nodes again see the slots gone, rather than all price a
    start on the same one. The next count replaces them (the new replicas' pods hold the
    GPUs by then, or the decision did not start them). A Recommend decision starts nothing,
    so it takes nothing."""

    def decide_and_claim(
        spec: InferenceDeploymentSpec,
        pools: Sequence[CapacityPool],
        observations: Observations,
        current: Mapping[str, int],
        *args: Any,
        **kwargs: Any,
    ) -> Decision:
        decision = decide(spec, pools, observations, current, *args, **kwargs)
        if decision.free_slots and spec.mode == Mode.ENFORCE:  # Recommend starts nothing
            pl = planner_for(spec, pools)
            for name, slots in decision.free_slots.items():
                started = decision.replicas.get(name, 0) - current.get(name, 0)
                if name in free and name in pl.index and min(started, slots) > 0:
                    per = int(pl.accelerators[pl.index[name]])
                    free[name] = taken(free[name], min(started, slots), per)
        return decision

    return decide_and_claim


def drained(pool: str, children: Iterable[ChildState]) -> bool:
    """Whether no child Deployment still asks for replicas on `pool`."""
    return not any(c.pool == pool and c.desired > 0 for c in children)


def status_fields(layer: NodeLayerStatus, money: Any) -> dict[str, Any]:
    """The CapacityPool status keys of the node layer (`money` formats $/h)."""
    spare = layer.warm
    return {
        "nodePool": layer.node_pool,
        "warmNodes": spare.nodes if spare else 0,
        "warmHourlyCost": money(spare.cost_per_hour if spare else 0.0),
    }
