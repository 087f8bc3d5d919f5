"""kopf handlers for CostBudgets: a thin shell over `budget_tick`.

Each budget's timer reads its members from a watch-fed index of InferenceDeployments (no GET
per tick), keeps its ledger in memory between ticks (status holds the checkpoint for
restarts), writes status once, posts an Event per threshold crossed, exports
`costscaler_budget_*` metrics, and leaves each member's allowed burn rate in the
`BudgetBook`, where the InferenceDeployment timer picks it up for `core.decide`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from pydantic import ValidationError

from costscaler.api import GROUP, VERSION, CostBudget
from costscaler.api.money import to_float
from costscaler.controller.budget_tick import (
    BudgetBook,
    Member,
    budget_tick,
    member_from_body,
    members_of,
)

BUDGETS, IDS = "costbudgets", "inferencedeployments"
LABELS = ("namespace", "budget")


@dataclass
class BudgetMetrics:
    """The `costscaler_budget_*` metrics."""

    spent: Gauge
    limit: Gauge
    forecast: Gauge
    burn: Gauge
    alerts: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry = REGISTRY) -> BudgetMetrics:
        """Register the metrics in `registry`."""
        return cls(
            spent=Gauge("costscaler_budget_spent", "Spent this period.", LABELS, registry=registry),
            limit=Gauge("costscaler_budget_limit", "Limit per period.", LABELS, registry=registry),
            forecast=Gauge(
                "costscaler_budget_forecast",
                "Forecast spend for the period.",
                LABELS,
                registry=registry,
            ),
            burn=Gauge(
                "costscaler_budget_burn_rate_per_hour",
                "Current spend per hour.",
                LABELS,
                registry=registry,
            ),
            alerts=Counter(
                "costscaler_budget_alerts",
                "Alert thresholds crossed.",
                [*LABELS, "threshold"],
                registry=registry,
            ),
        )


# prometheus_client registers a name once per process, and tests start several operators.
@functools.cache
def _metrics() -> BudgetMetrics:
    return BudgetMetrics.create()


def book(memo: Any) -> BudgetBook:
    """The operator's one BudgetBook, made at startup with the `Runtime`.

    kopf hands each object's handlers a shallow copy of the operator's memo, so a book stored
    in a handler's memo would stay with that one object: the budget timer's allowances never
    reached the deployments' ticks. The runtime is set before the first copy is made, and every
    copy refers to the same one.
    """
    found: BudgetBook = memo.runtime.budgets
    return found


def register(reg: kopf.OperatorRegistry, interval: float) -> None:
    """Register the CostBudget handlers in `reg`."""

    # Async (cheap, no I/O): a sync index hops to kopf's thread pool on every watch event.
    @kopf.index(GROUP, VERSION, IDS, id="budget_members_index", registry=reg)
    async def members_index(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, Member]:
        return {namespace or "default": member_from_body(body)}

    @kopf.timer(
        GROUP,
        VERSION,
        BUDGETS,
        id="budget_tick",
        interval=interval,
        sharp=True,
        backoff=interval,
        registry=reg,
    )
    async def tick(body: kopf.Body, patch: kopf.Patch, memo: Any, **kw: Any) -> None:
        """Accrue, forecast, alert and allocate for one budget."""
        try:
            budget = CostBudget.model_validate(
                {k: body.get(k) for k in ("apiVersion", "kind", "metadata", "spec", "status")}
            )
        except ValidationError as exc:
            raise kopf.PermanentError(f"invalid CostBudget: {exc}") from None
        books = book(memo)
        uid = str(body["metadata"].get("uid"))
        ns = budget.metadata.namespace or "default"
        members = members_of(budget, list(kw["budget_members_index"].get(ns, [])))
        now = datetime.now(UTC)
        result = budget_tick(
            budget, members, books.ledgers.get(uid), dict(body.get("status") or {}), now
        )
        books.ledgers[uid] = result.ledger
        books.allowances[uid] = result.allowances
        for key, value in result.status.items():
            patch.status[key] = value
        for kind, reason, message in result.events:
            kopf.event(body, type=kind, reason=reason, message=message)
        m, labels = _metrics(), (ns, budget.metadata.name)
        m.spent.labels(*labels).set(float(result.ledger.spent))
        m.limit.labels(*labels).set(to_float(budget.spec.limit.amount))
        m.forecast.labels(*labels).set(to_float(result.status["forecast"]))
        m.burn.labels(*labels).set(to_float(result.status["burnRatePerHour"]))
        for threshold in result.new_alerts:
            m.alerts.labels(*labels, str(threshold)).inc()

    @kopf.on.delete(GROUP, VERSION, BUDGETS, id="budget_forget", optional=True, registry=reg)
    async def forget(
        body: kopf.Body, namespace: str | None, name: str, memo: Any, **_: Any
    ) -> None:
        """Drop the deleted budget's ledger, allowances and metrics."""
        books = book(memo)
        uid = str(body["metadata"].get("uid"))
        books.ledgers.pop(uid, None)
        books.allowances.pop(uid, None)
        m = _metrics()
        for gauge in (m.spent, m.limit, m.forecast, m.burn):
            try:
                gauge.remove(namespace or "default", name)
            except KeyError:
                pass
