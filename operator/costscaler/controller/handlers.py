"""kopf handlers: a thin shell over `tick.run_tick`, the adapters and the watch-fed indexes.

Indexes (kept current by kopf's watches, so a tick makes no GET): CapacityPools by name, the
child Deployments by owner, Nodes, and each InferenceDeployment's Prometheus target (the
batch the `ReadingCache` fetches). Handlers: create/update/resume ensure the children; a timer
per InferenceDeployment decides; a timer per CapacityPool writes its status from the Nodes.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from costscaler.adapters.children import (
    LABEL_DEPLOYMENT,
    ChildState,
    child_state,
    deployment_state,
)
from costscaler.adapters.pending import pending_pod
from costscaler.adapters.prometheus import Target
from costscaler.adapters.promql import SeriesLabels, build_queries
from costscaler.adapters.promql_scope import UnscopedQueryError
from costscaler.adapters.targetref import check_target
from costscaler.api import GROUP, VERSION, CapacityPool, InferenceDeployment, Mode
from costscaler.api.loader import format_validation_error
from costscaler.controller import budgets
from costscaler.controller import runtime as rt_mod
from costscaler.controller.failures import FailureLog, ObjectProblemError, classify, ready_false
from costscaler.controller.pools import node_view, pool_status
from costscaler.controller.settings import Settings
from costscaler.controller.shortfall import with_unplaced
from costscaler.controller.status import status_due
from costscaler.controller.tick import converge, eligible_pools, no_pools, run_tick
from costscaler.controller.tick_input import TickInput
from costscaler.core import decide

log = logging.getLogger(__name__)
IDS, POOLS = "inferencedeployments", "capacitypools"


def _parse_infd(body: kopf.Body) -> InferenceDeployment:
    raw: dict[str, Any] = {k: body.get(k) for k in ("apiVersion", "kind", "spec")}
    meta = dict(body.get("metadata") or {})
    keep = ("name", "namespace", "uid", "generation")
    raw["metadata"] = {k: meta[k] for k in keep if meta.get(k) is not None}
    try:
        infd = InferenceDeployment.model_validate(raw)
    except ValidationError as exc:
        raise kopf.PermanentError(format_validation_error(exc, "spec")) from None
    try:  # a user query that cannot be confined to its namespace is never run (promql_scope)
        build_queries(infd.spec.metrics, SeriesLabels(), "1m", meta.get("namespace", ""))
    except UnscopedQueryError as exc:
        raise kopf.PermanentError(f"spec.metrics: query refused: {exc}") from None
    return infd


def _parse_pool(body: kopf.Body, report: bool = True) -> CapacityPool | None:
    raw: dict[str, Any] = {k: body.get(k) for k in ("apiVersion", "kind", "spec")}
    raw["metadata"] = {"name": dict(body.get("metadata") or {}).get("name", "")}
    try:
        return CapacityPool.model_validate(raw)
    except ValidationError as exc:
        if report:  # once per change of the pool (its index event), not per status timer
            log.warning("CapacityPool %s is invalid: %s", raw["metadata"]["name"], exc)
        return None


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


def register(reg: kopf.OperatorRegistry, settings: Settings) -> None:
    """Register every handler in `reg`, with the intervals from `settings`."""
    interval = settings.interval_seconds
    failures = FailureLog()

    # Index functions are async (cheap, no I/O): sync ones would hop to kopf's thread pool for
    # every watch event of thousands of objects.
    @kopf.index(GROUP, VERSION, POOLS, id="pools_index", registry=reg)
    async def pools_index(body: kopf.Body, name: str, **_: Any) -> dict[str, CapacityPool]:
        pool = _parse_pool(body)
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

    @kopf.index("", "v1", "nodes", id="nodes_index", registry=reg)
    async def nodes_index(body: kopf.Body, **_: Any) -> dict[None, Any]:
        return {None: node_view(dict(body))}

    @kopf.index(GROUP, VERSION, IDS, id="targets_index", registry=reg)
    async def targets_index(
        body: kopf.Body, namespace: str | None, name: str, **_: Any
    ) -> dict[None, Target]:
        try:
            infd = _parse_infd(body)
        except kopf.PermanentError:
            return {}
        s = infd.spec
        queries = build_queries(
            s.metrics, settings.series_labels(), settings.rate_window, namespace or ""
        )
        quantile, threshold = s.slo.latency.quantile, s.slo.latency.threshold_seconds
        window = s.forecast.window_seconds
        return {None: Target((namespace or "", name), queries, quantile, threshold, window)}

    @kopf.on.resume(GROUP, VERSION, IDS, id="ensure", registry=reg)
    @kopf.on.create(GROUP, VERSION, IDS, id="ensure", registry=reg)
    @kopf.on.update(GROUP, VERSION, IDS, field="spec", id="ensure", registry=reg)
    async def ensure(body: kopf.Body, patch: kopf.Patch, memo: Any, **kw: Any) -> None:
        """Validate and make the children match the spec (replicas are the timer's job)."""
        # Every failure becomes a condition, not a kopf retry: the timer converges the
        # children every tick anyway, and a retry would log a traceback each time.
        try:
            infd = _parse_infd(body)
            rt: rt_mod.Runtime = memo.runtime
            children = await _children(rt, infd, kw)
            pools, missing = eligible_pools(infd, _pools(kw))
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
            await _tick(body, memo, kw)
        except Exception as exc:
            _failed(failures, "tick", exc, body, patch)
        else:
            meta = dict(body.get("metadata") or {})
            failures.succeeded((meta.get("namespace") or "default", meta.get("name") or ""))

    async def _tick(body: kopf.Body, memo: Any, kw: dict[str, Any]) -> None:
        started = time.perf_counter()
        rt: rt_mod.Runtime = memo.runtime
        infd = _parse_infd(body)
        ns, name = infd.metadata.namespace or "default", infd.metadata.name
        targets = kw["targets_index"]
        rt.cache.targets = rt.backfill.targets = lambda: [t for s in targets.values() for t in s]
        reading = await rt.cache.get((ns, name))
        children = await _children(rt, infd, kw)
        pending = kw["pending_index"].get((ns, name), []) if "pending_index" in kw else []
        children = with_unplaced(children, pending, _pools(kw), time.time())
        history = rt.history((ns, name), infd.spec.forecast.window_seconds, time.time())
        if not history.n and (past := await rt.backfill.past((ns, name))) is not None:
            history.backfill(past, children)
        status = dict(body.get("status") or {})
        budget = budgets.book(memo).allowance((ns, name))
        t = TickInput(infd, _pools(kw), children, reading, history, status, _now(), budget)
        t.schedulable = rt.pool_nodes
        result = await run_tick(t, decide, rt.kube)
        if status_due(status, result.status, t.now, settings.status_interval_seconds):
            rt.kube.write_status(ns, name, result.status)
        if result.event:
            kopf.event(body, type="Normal", reason=result.event[0], message=result.event[1])
        _export(rt, infd, result, reading.problem is None)
        rt.metrics.reconcile.observe(time.perf_counter() - started)
        rt.health.beat()

    @kopf.on.delete(GROUP, VERSION, IDS, id="forget", optional=True, registry=reg)
    async def forget(
        namespace: str | None, name: str, spec: kopf.Spec, memo: Any, **_: Any
    ) -> None:
        """Drop the deleted deployment's metrics and history (children go by garbage collection)."""
        rt: rt_mod.Runtime = memo.runtime
        failures.forget((namespace or "default", name))
        rt.histories.pop((namespace or "", name), None)
        rt.backfill.forget((namespace or "", name))
        rt.metrics.forget(namespace or "", name, [p["name"] for p in spec.get("pools", [])])

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
        pool = _parse_pool(body, report=False)
        if pool is None:
            return
        nodes = list(kw["nodes_index"].get(None, []))
        prev = dict(body.get("status") or {})
        gen = dict(body.get("metadata") or {}).get("generation")
        new = pool_status(pool, nodes, list(prev.get("conditions") or []), gen, _now())
        rt: rt_mod.Runtime = memo.runtime
        rt.metrics.pool_nodes.labels(pool.name).set(new["nodes"])
        rt.pool_nodes[pool.name] = int(new["nodes"])
        rt.metrics.pool_hourly_cost.labels(pool.name).set(float(new["effectiveHourlyCost"]))
        if any(prev.get(k) != v for k, v in new.items()):
            for key, value in new.items():
                patch.status[key] = value


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _pools(kw: dict[str, Any]) -> dict[str, CapacityPool]:
    return {name: pool for name, store in kw["pools_index"].items() for pool in store}


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
    m.projected_monthly.labels(ns, name).set(d.cost_per_hour * 730)
    m.slo_risk.labels(ns, name).set(d.slo_risk)
    m.metrics_available.labels(ns, name).set(1.0 if usable else 0.0)
