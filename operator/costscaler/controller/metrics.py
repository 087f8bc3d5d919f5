"""The operator's own metrics (`costscaler_*`) and the HTTP server for /metrics and /healthz."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

DEP = ("namespace", "deployment")


class SeriesGauge(Collector):
    """A gauge whose series are plain floats in one dict, for the per-deployment gauges.

    prometheus_client keeps each labelled series as an object with its own lock and dicts:
    a thousand deployments' 16 series held 9.6 MB that way (issue 18: memory at 1,000
    deployments). Set and read on the event loop only, so no lock; exported the same way.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.values: dict[tuple[str, ...], float] = {}
        registry.register(self)

    def labels(self, *values: str) -> _Series:
        """The series of these label values (in `labelnames` order), to `set`."""
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: labels {self.labelnames}, got values {values}")
        return _Series(self.values, values)

    def remove(self, *values: str) -> None:
        """Drop a series; KeyError when there is none (as prometheus_client's `remove`)."""
        del self.values[values]

    def describe(self) -> list[GaugeMetricFamily]:
        """The family without samples (the registry checks names with it)."""
        return [GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The family with every series, for /metrics."""
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, value in self.values.items():
            family.add_metric(key, value)
        yield family


class _Series:
    __slots__ = ("key", "values")

    def __init__(self, values: dict[tuple[str, ...], float], key: tuple[str, ...]) -> None:
        self.values, self.key = values, key

    def set(self, value: float) -> None:
        """Set the series' value."""
        self.values[self.key] = float(value)


@dataclass
class OperatorMetrics:
    """Every metric the operator exports; one instance per registry."""

    decisions: Counter
    replicas: SeriesGauge
    ready: SeriesGauge
    cost_per_hour: SeriesGauge
    marginal_cost_per_hour: SeriesGauge
    projected_monthly: SeriesGauge
    cost_per_million_input_tokens: SeriesGauge
    cost_per_million_output_tokens: SeriesGauge
    slo_risk: SeriesGauge
    metrics_available: SeriesGauge
    slo_attainment: SeriesGauge
    error_budget_remaining: SeriesGauge
    error_budget_burn_rate: SeriesGauge
    reconcile: Histogram
    query_errors: Counter
    queries: Counter
    range_queries: Counter
    backfilled: Counter
    pool_nodes: Gauge
    pool_hourly_cost: Gauge
    pool_warm_nodes: Gauge
    pool_warm_hourly_cost: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry = REGISTRY) -> OperatorMetrics:
        """Register the metrics in `registry`."""
        r = registry
        return cls(
            decisions=Counter(
                "costscaler_decisions",
                "Decisions made, by reason and mode.",
                [*DEP, "reason", "mode"],
                registry=r,
            ),
            replicas=SeriesGauge(
                "costscaler_replicas",
                "Replicas per pool the last decision chose (applied in Enforce).",
                [*DEP, "pool"],
                registry=r,
            ),
            ready=SeriesGauge(
                "costscaler_ready_replicas", "Ready replicas per pool.", [*DEP, "pool"], registry=r
            ),
            cost_per_hour=SeriesGauge(
                "costscaler_cost_per_hour",
                "Allocated cost per hour of the decision, $/h: owned and reserved capacity at "
                "full TCO, for chargeback.",
                DEP,
                registry=r,
            ),
            marginal_cost_per_hour=SeriesGauge(
                "costscaler_marginal_cost_per_hour",
                "Marginal cost per hour the decision pays, $/h: owned and reserved capacity at "
                "energy and per-use operations; what budgets hold.",
                DEP,
                registry=r,
            ),
            projected_monthly=SeriesGauge(
                "costscaler_projected_monthly_cost",
                "Cost per hour x 730, $/month.",
                DEP,
                registry=r,
            ),
            cost_per_million_input_tokens=SeriesGauge(
                "costscaler_cost_per_million_input_tokens",
                "Allocated cost per 1M input tokens, $: the prefill share of the cost per hour "
                "over the input tokens served (NaN without token counters).",
                DEP,
                registry=r,
            ),
            cost_per_million_output_tokens=SeriesGauge(
                "costscaler_cost_per_million_output_tokens",
                "Allocated cost per 1M output tokens, $: the decode share of the cost per hour "
                "over the output tokens served (NaN without token counters).",
                DEP,
                registry=r,
            ),
            slo_risk=SeriesGauge(
                "costscaler_slo_risk", "Probability capacity falls short (0-1).", DEP, registry=r
            ),
            metrics_available=SeriesGauge(
                "costscaler_metrics_available",
                "1 when the last Prometheus reading was usable, else 0.",
                DEP,
                registry=r,
            ),
            slo_attainment=SeriesGauge(
                "costscaler_slo_attainment",
                "Share of requests within the latency threshold over the SLO window so far.",
                DEP,
                registry=r,
            ),
            error_budget_remaining=SeriesGauge(
                "costscaler_error_budget_remaining",
                "Share of the full SLO window's allowed bad requests not yet spent (1 none spent, "
                "negative past the target).",
                DEP,
                registry=r,
            ),
            error_budget_burn_rate=SeriesGauge(
                "costscaler_error_budget_burn_rate",
                "Bad-request share over the SLO window over the allowed share (1 = as allowed).",
                DEP,
                registry=r,
            ),
            reconcile=Histogram(
                "costscaler_reconcile_duration_seconds",
                "Duration of one deployment's tick (observe, decide, apply, record), s.",
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                registry=r,
            ),
            query_errors=Counter(
                "costscaler_prometheus_query_errors", "Prometheus queries that failed.", registry=r
            ),
            queries=Counter(
                "costscaler_prometheus_queries", "Prometheus queries sent.", registry=r
            ),
            range_queries=Counter(
                "costscaler_prometheus_range_queries",
                "Prometheus range queries sent to backfill observation windows.",
                registry=r,
            ),
            backfilled=Counter(
                "costscaler_backfilled_samples",
                "Past samples with a request rate put into observation windows at start-up.",
                registry=r,
            ),
            pool_nodes=Gauge(
                "costscaler_pool_nodes", "Nodes matching a pool's placement.", ["pool"], registry=r
            ),
            pool_hourly_cost=Gauge(
                "costscaler_pool_node_hourly_cost",
                "Effective cost of one node of the pool, $/h.",
                ["pool"],
                registry=r,
            ),
            pool_warm_nodes=Gauge(
                "costscaler_pool_warm_nodes",
                "Warm spare nodes kept for a pool whose nodes Karpenter launches.",
                ["pool"],
                registry=r,
            ),
            pool_warm_hourly_cost=Gauge(
                "costscaler_pool_warm_hourly_cost",
                "What a pool's warm spare nodes cost, $/h (marginal).",
                ["pool"],
                registry=r,
            ),
        )

    def forget(self, namespace: str, deployment: str, pools: list[str]) -> None:
        """Drop a deleted deployment's series so dashboards do not show ghosts."""
        for gauge in (
            self.cost_per_hour,
            self.marginal_cost_per_hour,
            self.projected_monthly,
            self.cost_per_million_input_tokens,
            self.cost_per_million_output_tokens,
            self.slo_risk,
            *self.window_gauges(),
        ):
            _remove(gauge, namespace, deployment)
        _remove(self.metrics_available, namespace, deployment)
        for pool in pools:
            _remove(self.replicas, namespace, deployment, pool)
            _remove(self.ready, namespace, deployment, pool)

    def window_gauges(self) -> tuple[SeriesGauge, SeriesGauge, SeriesGauge]:
        """The SLO window's gauges: attainment, budget remaining, burn rate (that order)."""
        return self.slo_attainment, self.error_budget_remaining, self.error_budget_burn_rate

    def set_window(self, namespace: str, deployment: str, values: tuple[float | None, ...]) -> None:
        """Set the SLO window's gauges (`window_gauges` order); an unknown value drops its
        series rather than exporting a stale or made-up figure."""
        for gauge, value in zip(self.window_gauges(), values, strict=True):
            if value is None:
                _remove(gauge, namespace, deployment)
            else:
                gauge.labels(namespace, deployment).set(value)


def _remove(metric: Gauge | SeriesGauge, *labels: str) -> None:
    try:
        metric.remove(*labels)
    except KeyError:
        pass


class Health:
    """Liveness: the event loop answers and the timers are not stuck."""

    def __init__(self, stuck_after_seconds: float) -> None:
        self.stuck_after = stuck_after_seconds
        self.last_tick = time.monotonic()

    def beat(self) -> None:
        """Called at the end of every tick."""
        self.last_tick = time.monotonic()

    def healthy(self, has_work: bool) -> bool:
        """Unhealthy only when there is work and no tick finished for `stuck_after` seconds."""
        return not has_work or time.monotonic() - self.last_tick < self.stuck_after


async def serve(
    host: str, port: int, health: Health, has_work: object, registry: CollectorRegistry = REGISTRY
) -> tuple[web.AppRunner, int]:
    """Start /metrics and /healthz; returns the runner (to clean up) and the bound port.

    `has_work` is a zero-argument callable telling whether any deployment is being served.
    """

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        ok = health.healthy(bool(has_work()))  # type: ignore[operator]
        return web.Response(status=200 if ok else 503, text="ok\n" if ok else "stuck\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, int(bound)
