"""The InferenceDeployment handlers: ensure the children, decide every interval, forget.

create/update/resume ensure the children match the spec; a sharp timer per object observes,
decides (`tick.run_tick` over `core.decide`) and applies or records; delete drops what the
process keeps for it. Every per-object failure becomes `Ready=False` (`failures`), never a
kopf retry with a traceback per tick.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import kopf

from costscaler.adapters.children import ChildState, deployment_state
from costscaler.adapters.karpenter import NodePools
from costscaler.adapters.kube import API_ERRORS
from costscaler.adapters.targetref import check_target
from costscaler.api import GROUP, VERSION, InferenceDeployment, Mode
from costscaler.controller import budgets, interruptions, node_layer
from costscaler.controller import runtime as rt_mod
from costscaler.controller.failures import FailureLog, ObjectProblemError, classify, ready_false
from costscaler.controller.indexes import IDS
from costscaler.controller.objects import now, parse_infd, pools_of
from costscaler.controller.settings import Settings
from costscaler.controller.shortfall import with_unplaced
from costscaler.controller.status import HOURS_PER_MONTH, status_due
from costscaler.controller.tick import converge, eligible_pools, no_pools, run_tick
from costscaler.controller.tick_input import TickInput
from costscaler.core import decide

log = logging.getLogger(__name__)


def register_deployment_handlers(reg: kopf.OperatorRegistry, settings: Settings) -> None:
    """Register ensure, the decision timer and forget in `reg`, with `settings`' intervals."""
    interval = settings.interval_seconds
    failures = FailureLog()

    @kopf.on.resume(GROUP, VERSION, IDS, id="ensure", registry=reg)
    @kopf.on.create(GROUP, VERSION, IDS, id="ensure", registry=reg)
    @kopf.on.update(GROUP, VERSION, IDS, field="spec", id="ensure", registry=reg)
    async def ensure(body: kopf.Body, patch: kopf.Patch, memo: Any, **kw: Any) -> None:
        """Validate and make the children match the spec (replicas are the timer's job)."""
        # Every failure becomes a condition, not a kopf retry: the timer converges the
        # children every tick anyway, and a retry would log a traceback each time.
        try:
            infd = parse_infd(body)
            rt: rt_mod.Runtime = memo.runtime
            children = await _children(rt, infd, kw)
            pools, missing = eligible_pools(infd, pools_of(kw))
            if not pools:
                raise no_pools(infd, missing)
            await converge(infd, pools, children, None, rt.kube)
        except Exception as exc:
            _failed(failures, "ensure", exc, body, patch)

    def phase(uid: str, **_: Any) -> float:
        # Spread the first ticks over the interval by uid: after a restart a thousand
        # deployments do not all decide (and write) in the same second.
        return int(uid.replace("-", "")[:8] or "0", 16) % 1000 / 1000 * interval

    # Sharp: one decision every `interval` seconds, however long the tick itself took.
    @kopf.timer(
        GROUP,
        VERSION,
        IDS,
        id="tick",
        interval=interval,
        sharp=True,
        initial_delay=phase,
        backoff=interval,
        registry=reg,
    )
    async def tick(body: kopf.Body, patch: kopf.Patch, memo: Any, **kw: Any) -> None:
        """Observe, decide, apply or record: once per interval per InferenceDeployment."""
        try:
            await _tick(body, memo, kw, settings)
        except Exception as exc:
            _failed(failures, "tick", exc, body, patch)
        else:
            meta = dict(body.get("metadata") or {})
            failures.succeeded((meta.get("namespace") or "default", meta.get("name") or ""))

    @kopf.on.delete(GROUP, VERSION, IDS, id="forget", optional=True, registry=reg)
    async def forget(
        namespace: str | None, name: str, spec: kopf.Spec, memo: Any, **_: Any
    ) -> None:
        """Drop the deleted deployment's metrics and history (children go by garbage collection)."""
        rt: rt_mod.Runtime = memo.runtime
        failures.forget((namespace or "default", name))
        rt.histories.pop((namespace or "", name), None)
        rt.warm_needs.pop((namespace or "default", name), None)
        rt.held_nodes.pop((namespace or "default", name), None)
        rt.backfill.forget((namespace or "", name))
        rt.metrics.forget(namespace or "", name, [p["name"] for p in spec.get("pools", [])])


async def _tick(body: kopf.Body, memo: Any, kw: dict[str, Any], settings: Settings) -> None:
    started = time.perf_counter()
    rt: rt_mod.Runtime = memo.runtime
    infd = parse_infd(body)
    ns, name = infd.metadata.namespace or "default", infd.metadata.name
    reading = await rt.cache.get((ns, name))
    children = await _children(rt, infd, kw)
    pending = kw["pending_index"].get((ns, name), []) if "pending_index" in kw else []
    children = with_unplaced(children, pending, pools_of(kw), time.time(), rt.stalled_pools)
    children = _interrupted(rt, (ns, name), children, kw)
    settled = list(kw["settled_index"].get((ns, name), [])) if "settled_index" in kw else []
    if settled and rt.nodepools is not None:
        await _release(rt.nodepools, ns, settled)
    history = rt.history((ns, name), infd.spec.forecast.window_seconds, time.time())
    if not history.n and (past := await rt.backfill.past((ns, name))) is not None:
        history.backfill(past, children)
    status = dict(body.get("status") or {})
    budget = budgets.book(memo).allowance((ns, name))
    t = TickInput(infd, pools_of(kw), children, reading, history, status, now(), budget)
    t.schedulable, t.warm_nodes = rt.pool_nodes, rt.pool_warm
    t.free_accelerators = rt.pool_free
    result = await run_tick(t, node_layer.claiming(decide, rt.pool_free), rt.kube)
    if result.decision.warm_need is None:
        rt.warm_needs.pop((ns, name), None)
    else:
        rt.warm_needs[(ns, name)] = result.decision.warm_need
    if status_due(status, result.status, t.now, settings.status_interval_seconds):
        rt.kube.write_status(ns, name, result.status)
    if result.event:
        kopf.event(body, type="Normal", reason=result.event[0], message=result.event[1])
    _export(rt, infd, result, reading.problem is None)
    rt.metrics.reconcile.observe(time.perf_counter() - started)
    rt.health.beat()


def _interrupted(
    rt: rt_mod.Runtime, key: tuple[str, str], children: list[ChildState], kw: dict[str, Any]
) -> list[ChildState]:
    """`children` with the nodes lost since the last tick that held their replicas."""
    placed = list(kw["placed_index"].get(key, [])) if "placed_index" in kw else []
    held = rt.held_nodes.get(key, {})
    if not placed and not held:
        return children
    index = kw.get("deleting_index", {})
    deleting = {n: next(iter(index[n])) for n in {*held, *(p.node for p in placed)} if n in index}
    marked = kw["voluntary_index"].get(None, []) if "voluntary_index" in kw else []
    voluntary = rt.seen_voluntary(marked, time.time())
    lost, rt.held_nodes[key] = interruptions.losses(held, placed, deleting, voluntary)
    return interruptions.with_lost(children, lost) if lost else children


async def _release(nodepools: NodePools, ns: str, pods: list[str]) -> None:
    """Let Karpenter disrupt replicas that finished loading (a failed patch is retried next
    tick: the pod stays in the index until its annotation is gone)."""
    try:
        await nodepools.release(ns, pods)
    except API_ERRORS as exc:
        log.warning("do-not-disrupt not removed from %s in %s: %s", pods, ns, exc)


def _failed(
    failures: FailureLog, what: str, exc: Exception, body: kopf.Body, patch: kopf.Patch
) -> None:
    """Ready=False with the failure's reason (written only when it changed), logged once."""
    meta = dict(body.get("metadata") or {})
    key = (meta.get("namespace") or "default", meta.get("name") or "")
    if isinstance(exc, kopf.PermanentError):
        exc = ObjectProblemError("InvalidSpec", str(exc))
    failure = classify(exc)
    failures.failed(key, what, failure, exc)
    status = dict(body.get("status") or {})
    conds = ready_false(failure, status, meta.get("generation"), datetime.now(UTC))
    if conds is not None:
        patch.status["conditions"] = conds


async def _children(
    rt: rt_mod.Runtime, infd: InferenceDeployment, kw: dict[str, Any]
) -> list[ChildState]:
    ns = infd.metadata.namespace or "default"
    ref = infd.spec.target_ref
    if ref is None:
        return list(kw["children_index"].get((ns, infd.metadata.name), []))
    body = await rt.kube.read(ns, ref.name)
    if body is None:
        raise ObjectProblemError(
            "TargetNotFound", f"spec.targetRef: Deployment {ns}/{ref.name} not found"
        )
    check_target(body, ns, ref.name)  # before any use: no consent, no read and no scale
    return [deployment_state(body, owner=infd.metadata.name, pool=infd.spec.pools[0].name)]


def _export(rt: rt_mod.Runtime, infd: InferenceDeployment, result: Any, usable: bool) -> None:
    ns, name, m = infd.metadata.namespace or "default", infd.metadata.name, rt.metrics
    d = result.decision
    mode = infd.spec.mode.value if isinstance(infd.spec.mode, Mode) else str(infd.spec.mode)
    m.decisions.labels(ns, name, d.reason, mode).inc()
    for pool, n in result.target.items():
        m.replicas.labels(ns, name, pool).set(n)
    for row in result.status.get("replicas", []):
        m.ready.labels(ns, name, row["pool"]).set(row["ready"])
    m.cost_per_hour.labels(ns, name).set(d.cost_per_hour)
    m.marginal_cost_per_hour.labels(ns, name).set(d.marginal_cost_per_hour)
    m.projected_monthly.labels(ns, name).set(d.cost_per_hour * HOURS_PER_MONTH)
    m.cost_per_million_input_tokens.labels(ns, name).set(d.cost_per_million_input_tokens)
    m.cost_per_million_output_tokens.labels(ns, name).set(d.cost_per_million_output_tokens)
    m.slo_risk.labels(ns, name).set(d.slo_risk)
    m.metrics_available.labels(ns, name).set(1.0 if usable else 0.0)
    window = result.status.get("errorBudget") or {}
    m.set_window(ns, name, tuple(window.get(k) for k in ("attainment", "remaining", "burnRate")))
