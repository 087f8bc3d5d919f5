"""Assemble the operator: settings -> clients, metrics server, registry -> `kopf.operator`."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

import kopf

from costscaler.adapters.backfill import Past, fetch_backfill
from costscaler.adapters.karpenter import NodePools
from costscaler.adapters.kube import Kube, load_config
from costscaler.adapters.prometheus import FetchReport, Key, PrometheusSource, Target, connect
from costscaler.controller import budgets, handlers, session
from costscaler.controller.diffbase import SpecDigestStorage
from costscaler.controller.memory import release_free_memory
from costscaler.controller.metrics import Health, OperatorMetrics, serve
from costscaler.controller.runtime import Backfill, ReadingCache, Runtime
from costscaler.controller.settings import Settings

log = logging.getLogger(__name__)


# prometheus_client registers a name once per process, and tests start several operators.
@functools.cache
def _metrics() -> OperatorMetrics:
    return OperatorMetrics.create()


def build_runtime(settings: Settings) -> Runtime:
    """Clients, metrics and the reading cache from the settings."""
    metrics = _metrics()
    # A socket read never outlasts the fetch's deadline: a thread blocked on a hung Prometheus
    # is free again by the next round.
    deadline = settings.fetch_deadline_seconds
    client = connect(
        settings.prometheus_url,
        settings.token(),
        str(settings.prometheus_ca_file) if settings.prometheus_ca_file else None,
        deadline,
    )
    source = PrometheusSource(client, settings.series_labels(), settings.max_age_seconds, deadline)

    def on_fetch(report: FetchReport, seconds: float) -> None:
        metrics.queries.inc(report.queries)
        metrics.query_errors.inc(report.errors)
        for query, error in report.failed.items():
            log.warning("Prometheus query failed: %s: %s", query, error)
        log.debug("fetched %d queries in %.3f s", report.queries, seconds)
        release_free_memory()  # a round of ticks ended: what it freed goes back to the OS

    # One fetch per interval serves every deployment's tick (their phases are spread).
    cache = ReadingCache(source, list, settings.interval_seconds, on_fetch)
    api_client = load_config(settings.kubeconfig)
    kube = Kube(api_client, workers=settings.kube_connections)
    health = Health(stuck_after_seconds=max(60.0, 10 * settings.interval_seconds))
    rt = Runtime(settings, kube, cache, metrics, health, _backfill(settings, client, source))
    rt.nodepools = NodePools(api_client) if settings.node_layer else None
    return rt


def _backfill(settings: Settings, client: Any, source: PrometheusSource) -> Backfill:
    """Windows of deployments without history, from one range query per metric for all."""
    metrics, labels, step = _metrics(), settings.series_labels(), settings.interval_seconds

    async def fetch(targets: Sequence[Target], now: float) -> dict[Key, Past]:
        started = time.perf_counter()
        run = functools.partial(fetch_backfill, client, targets, labels, now, step)
        pasts, report = await asyncio.get_running_loop().run_in_executor(source.pool, run)
        metrics.range_queries.inc(report.queries)
        metrics.query_errors.inc(report.errors)
        metrics.backfilled.inc(report.samples)
        for query, error in report.failed.items():
            log.warning("Prometheus range query failed: %s: %s", query, error)
        log.info(
            "backfilled %d deployments with %d past samples from %d range queries in %.1f s",
            sum(1 for p in pasts.values() if p.times.size),
            report.samples,
            report.queries,
            time.perf_counter() - started,
        )
        return pasts

    # A range query's read may take 4 deadlines (`adapters.prometheus.connect`); a tick waits
    # that long for its past at most, then starts on the window it builds itself.
    return Backfill(fetch, list, deadline=4 * settings.fetch_deadline_seconds)


def build_registry(settings: Settings) -> kopf.OperatorRegistry:
    """A registry holding the costscaler handlers and the startup/cleanup of the runtime."""
    reg = kopf.OperatorRegistry()
    handlers.register(reg, settings)
    budgets.register(reg, settings.interval_seconds)

    @kopf.on.login(registry=reg)
    async def login(**kwargs: Any) -> Any:
        # Async: the aiohttp session must be made on kopf's event loop, not in a worker thread.
        # (A private registry has none of kopf's default login handlers anyway.)
        return session.login(_settings, **kwargs)

    @kopf.on.startup(registry=reg)
    async def startup(settings: kopf.OperatorSettings, memo: Any, **kw: Any) -> None:
        # kopf's own "handler succeeded" messages would become an Event per tick per object.
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 60
        # A per-object worker keeps the object's last event (the whole body, managedFields
        # included) while it waits for the next; ours come every tick or status refresh.
        settings.batching.idle_timeout = 1.0
        memo.runtime = build_runtime(_settings)
        # kopf hands startup the live index (empty now, kept current by the watch): wired
        # once here, every batched fetch and backfill reads the targets of that moment.
        targets: kopf.Index[Any, Any] = kw["targets_index"]
        memo.runtime.cache.targets = memo.runtime.backfill.targets = lambda: [
            t for found in targets.values() for t in found
        ]
        has_work = lambda: bool(memo.runtime.histories)  # noqa: E731
        memo.http, port = await serve(
            _settings.metrics_host, _settings.metrics_port, memo.runtime.health, has_work
        )
        log.info("serving /metrics and /healthz on port %d", port)

    @kopf.on.cleanup(registry=reg)
    async def cleanup(memo: Any, **_: Any) -> None:
        if getattr(memo, "http", None) is not None:
            await memo.http.cleanup()

    _settings = settings
    return reg


# Between SIGTERM and SIGKILL a pod gets 30 s by default. kopf's own last resort (it kills its
# thread when stopping takes too long) waits 10 minutes; 20 s leaves the pod's grace period
# room and is still longer than an orderly stop (handlers are cancelled after 5 s).
EXIT_DEADLINE_SECONDS = 20.0
EXIT_FAILED = 1


def kopf_settings_for(settings: Settings) -> kopf.OperatorSettings:
    """kopf's settings: short peering keep-alives, a bounded exit, a small diff-base."""
    kopf_settings = kopf.OperatorSettings()
    # A replica killed without notice (OOM, node loss) leaves its keep-alive behind; standbys
    # of equal or lower priority wait for it to lapse, so it is short (kopf's default is 60 s).
    kopf_settings.peering.lifetime = settings.peering_lifetime_seconds
    kopf_settings.peering.stealth = True  # no log line per keep-alive
    kopf_settings.process.ultimate_exiting_timeout = EXIT_DEADLINE_SECONDS
    kopf_settings.persistence.diffbase_storage = SpecDigestStorage()
    return kopf_settings


async def operator_main(
    settings: Settings, stop_flag: asyncio.Event | threading.Event | None = None
) -> None:
    """Run kopf with peering: the replica with the highest priority acts, the others wait."""
    scope: dict[str, Any] = (
        {"clusterwide": True} if settings.all_namespaces else {"namespaces": settings.namespaces}
    )
    standalone = settings.peering == "standalone"
    if settings.kubeconfig:
        # kopf's kubeconfig login and the kubernetes client both read it from here.
        os.environ["KUBECONFIG"] = settings.kubeconfig
    await kopf.operator(
        registry=build_registry(settings),
        settings=kopf_settings_for(settings),
        standalone=standalone,
        priority=settings.priority,
        peering_name=None if standalone else settings.peering_name,
        stop_flag=stop_flag,
        memo=kopf.Memo(),
        **scope,
    )


def run_operator(
    settings: Settings, main: Callable[[Settings], Coroutine[Any, Any, None]] = operator_main
) -> int:
    """Run the operator to its end: 0 when it was stopped, `EXIT_FAILED` when kopf failed.

    kopf ends `kopf.operator` with the exception of a task that died (a watch stream that
    could not parse an object, say); the process must then end non-zero so that Kubernetes
    restarts it, instead of living on with nothing running, as issue 18 saw.
    """
    try:
        asyncio.run(main(settings))
    except Exception:
        log.critical("the operator failed; exiting so that it is restarted", exc_info=True)
        return EXIT_FAILED
    return 0


def exit_process(code: int) -> NoReturn:
    """End the process now with `code`, logs flushed.

    Without waiting for worker threads: one blocked in an API or Prometheus call would hold
    the interpreter's exit past the pod's grace period.
    """
    logging.shutdown()
    os._exit(code)
