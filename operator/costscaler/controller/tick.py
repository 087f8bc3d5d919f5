"""One tick of one InferenceDeployment: observe, `core.decide`, apply (Enforce) or record.

Level-based: everything is recomputed from what is observed now (children from the watch
index, load from the batched Prometheus reading, engine state from status), so running a tick
twice changes nothing the second time. The external systems sit behind the `Actuator` and
`Recorder` protocols; unit tests pass fakes that record calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from costscaler.adapters.children import (
    ChildNameTakenError,
    ChildState,
    Owner,
    child_manifest,
    child_name,
    child_names,
)
from costscaler.api import CapacityPool, InferenceDeployment, Mode
from costscaler.controller.failures import ObjectProblemError
from costscaler.controller.record import describe_change, status_for
from costscaler.controller.tick_input import TickInput
from costscaler.core import Decision, EngineState, Observations

Decide = Callable[..., Decision]


class Actuator(Protocol):
    """Writes to the cluster (the real one is `adapters.kube.Kube`)."""

    async def apply_child(self, manifest: dict[str, Any], replicas: int | None) -> str:
        """Create or update a child Deployment; None leaves its replicas alone."""
        ...

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        """Set a Deployment's replicas."""
        ...

    async def delete(self, namespace: str, name: str) -> None:
        """Delete a Deployment."""
        ...


@dataclass
class TickResult:
    """What a tick did: the decision, the status to write, the Event to post, the writes made."""

    decision: Decision
    status: dict[str, Any]
    event: tuple[str, str] | None
    actions: list[str] = field(default_factory=list)
    target: dict[str, int] = field(default_factory=dict)


def eligible_pools(
    infd: InferenceDeployment, known: Mapping[str, CapacityPool]
) -> tuple[list[CapacityPool], list[str]]:
    """The spec's pools that exist and fit the model (in spec order), and the missing names."""
    found, missing = [], []
    for ref in infd.spec.pools:
        pool = known.get(ref.name)
        if pool is None:
            missing.append(ref.name)
        elif infd.spec.workload.profile_for(pool.spec.accelerator.type) is not None:
            found.append(pool)
    return found, missing


def no_pools(infd: InferenceDeployment, missing: list[str]) -> ObjectProblemError:
    """Why no pool is eligible: all missing, or none with an accelerator the workload lists."""
    if len(missing) == len(infd.spec.pools):
        return ObjectProblemError(
            "PoolNotFound",
            f"none of the CapacityPools {missing} exists; create one or fix spec.pools",
        )
    kinds = sorted(p.accelerator for p in infd.spec.workload.capacity)
    return ObjectProblemError(
        "NoEligiblePool",
        f"no pool in spec.pools exists with an accelerator in spec.workload.capacity ({kinds})"
        + (f"; missing: {missing}" if missing else ""),
    )


def previous_state(status: Mapping[str, Any]) -> EngineState | None:
    """The engine state kept in status, or None when absent or unreadable (start afresh)."""
    raw = status.get("engineState")
    try:
        return EngineState.from_dict(raw) if isinstance(raw, dict) else None
    except ValueError:
        return None


async def run_tick(t: TickInput, decide: Decide, kube: Actuator) -> TickResult:
    """Observe, decide, and in Enforce mode make the children match the decision."""
    pools, missing = eligible_pools(t.infd, t.pools)
    if not pools:
        # Nothing to decide over: the children are held as they are.
        raise no_pools(t.infd, missing)
    current = {c.pool: c.desired for c in t.children}
    now_s = t.now.timestamp()
    slo = t.infd.spec.slo
    t.history.add(now_s, t.reading, t.children, slo.ttft is not None, slo.itl is not None)
    observations: Observations = t.history.observations(
        has_tokens=t.infd.spec.metrics.token_rate is not None or t.reading.token_rate is not None
    )
    # The SLO window's counts are this tick's (Prometheus keeps the window, not the history).
    observations = replace(observations, slo_good=t.reading.slo_good, slo_total=t.reading.slo_total)
    # Node facts: free accelerators on the Ready nodes of the pools with a NodePool.
    facts = t.free_accelerators or {}
    free = {p.name: facts[p.name] for p in pools if p.name in facts}
    if free:
        observations = replace(observations, free_accelerators=free)
    decision = decide(
        t.infd.spec,
        pools,
        observations,
        current,
        now_s,
        state=previous_state(t.status),
        budget=t.budget,
    )
    target = {p.name: int(decision.replicas.get(p.name, 0)) for p in pools}
    enforce = t.infd.spec.mode == Mode.ENFORCE
    actions = await converge(t.infd, pools, t.children, target if enforce else None, kube)
    changed = target != (current if enforce else _last_recommended(t.status))
    event = (
        (decision.reason, describe_change(current, target, t.status, decision)) if changed else None
    )
    status = status_for(t, decision, target, missing, enforce)
    return TickResult(decision, status, event, actions, target)


def _last_recommended(status: Mapping[str, Any]) -> dict[str, int] | None:
    last = status.get("lastDecision") or {}
    counts = last.get("replicas")
    return {c["pool"]: int(c["replicas"]) for c in counts} if counts is not None else None


async def converge(
    infd: InferenceDeployment,
    pools: list[CapacityPool],
    children: list[ChildState],
    target: dict[str, int] | None,
    kube: Actuator,
) -> list[str]:
    """Make the children what the spec and `target` (None: leave replicas) say.

    Template mode: one child per eligible pool (created or updated only when its template hash
    differs), children of pools no longer eligible drained to 0 then deleted. targetRef mode:
    scale the referenced Deployment.
    """
    spec, meta = infd.spec, infd.metadata
    ns = meta.namespace or "default"
    by_pool = {c.pool: c for c in children}
    actions: list[str] = []
    if spec.target_ref is not None:
        only = pools[0].name if pools else None
        child = by_pool.get(only or "")
        if only and target is not None and child and child.desired != target[only]:
            await kube.scale(ns, spec.target_ref.name, target[only])
            actions.append(f"scale {spec.target_ref.name} {child.desired}->{target[only]}")
        return actions
    owner = Owner(ns, meta.name, meta.uid or "")
    for pool in pools:
        child, want = by_pool.get(pool.name), None if target is None else target[pool.name]
        name = child_name(meta.name, pool.name, child.name if child else None)
        manifest = child_manifest(owner, spec.template or {}, pool, name)
        digest = manifest["metadata"]["annotations"]
        if child is None or child.template_hash != next(iter(digest.values())):
            done, manifest = await _apply(kube, owner, spec.template or {}, pool, manifest, want)
            actions.append(f"{done} {manifest['metadata']['name']}")
        elif want is not None and child.desired != want:
            await kube.scale(ns, child.name, want)
            actions.append(f"scale {child.name} {child.desired}->{want}")
    keep = {p.name for p in pools}
    for child in children:
        if child.pool in keep:
            continue
        if child.desired > 0:
            await kube.scale(ns, child.name, 0)
            actions.append(f"drain {child.name}")
        elif child.ready + child.warming == 0:
            await kube.delete(ns, child.name)
            actions.append(f"delete {child.name}")
    return actions


async def _apply(
    kube: Actuator,
    owner: Owner,
    template: Any,
    pool: CapacityPool,
    manifest: dict[str, Any],
    want: int | None,
) -> tuple[str, dict[str, Any]]:
    """Write a child; when another owner holds its plain name, take the hashed name instead.

    Raises `ChildNameTakenError` when the hashed name is held too (someone made that object on
    purpose): the condition then names the holder.
    """
    try:
        return await kube.apply_child(manifest, want), manifest
    except ChildNameTakenError:
        hashed = child_names(owner.name, pool.name)[1]
        if manifest["metadata"]["name"] == hashed:
            raise
        manifest = child_manifest(owner, template, pool, hashed)
        return await kube.apply_child(manifest, want), manifest
