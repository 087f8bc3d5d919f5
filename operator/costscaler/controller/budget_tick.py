"""One tick of one CostBudget: accrue, forecast, alert, and set each member's allowed burn rate.

Pure over its inputs (the budget, its members' status figures, the checkpointed ledger and
`now`), so it is unit-tested without a cluster; `controller/budgets.py` is the kopf shell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from costscaler.api import CostBudget, Enforcement, OnConflict
from costscaler.api.money import format_money, to_decimal
from costscaler.controller.status import Cond, conditions
from costscaler.core import BudgetConstraint
from costscaler.core.accrual import DeploymentSpend, Ledger, accrue
from costscaler.core.budget_status import ledger_from_status, status_fields
from costscaler.core.budget_view import BudgetState, allowed_burn_rates, view

Key = tuple[str, str]
ENFORCED = "Enforced"


@dataclass(frozen=True)
class Member:
    """What a budget needs of one InferenceDeployment, read from its labels and status.

    `rate_per_hour` is what runs now at the margin (status.cost.marginalPerHour: budgets
    hold what decisions pay, owned and reserved capacity's capex is paid anyway);
    `need_per_hour` is what its last decision would spend unconstrained
    (status.lastDecision.marginalCostPerHour), used to share the allowed burn rate. Status
    written before the marginal figures existed falls back to the allocated ones.
    """

    namespace: str
    name: str
    labels: Mapping[str, str]
    budget_ref: str | None
    rate_per_hour: Decimal
    need_per_hour: Decimal


def member_from_body(body: Mapping[str, Any]) -> Member:
    """A Member from an InferenceDeployment's raw body (missing figures count as zero)."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    cost, last = status.get("cost") or {}, status.get("lastDecision") or {}
    rate = _decimal(cost.get("marginalPerHour") or cost.get("perHour"))
    need = _decimal(last.get("marginalCostPerHour") or last.get("costPerHour"), default=rate)
    return Member(
        namespace=meta.get("namespace") or "default",
        name=meta["name"],
        labels=dict(meta.get("labels") or {}),
        budget_ref=(spec.get("budgetRef") or {}).get("name"),
        rate_per_hour=rate,
        need_per_hour=need,
    )


def _decimal(value: object, default: Decimal = Decimal(0)) -> Decimal:
    try:
        return to_decimal(str(value)) if value is not None else default
    except ArithmeticError:
        return default


def members_of(budget: CostBudget, candidates: Sequence[Member]) -> list[Member]:
    """Deployments of the budget's namespace its selector matches or whose budgetRef names it."""
    ns = budget.metadata.namespace or "default"
    return [
        m
        for m in candidates
        if m.namespace == ns
        and (m.budget_ref == budget.metadata.name or budget.spec.selector.matches(dict(m.labels)))
    ]


@dataclass
class BudgetBook:
    """Budget state of the whole process: each budget's ledger and the allowances it sets.

    One per operator (on the `Runtime`): the CostBudget timers write allowances, and every
    InferenceDeployment tick reads its own within the same process, whichever object's
    handler runs.
    """

    ledgers: dict[str, Ledger] = field(default_factory=dict)  # by budget uid
    allowances: dict[str, dict[Key, BudgetConstraint]] = field(default_factory=dict)

    def allowance(self, key: Key) -> BudgetConstraint | None:
        """The tightest allowed burn rate any Enforce budget sets for this deployment."""
        found = [a[key] for a in self.allowances.values() if key in a]
        return min(found, key=lambda c: c.allowed_per_hour) if found else None


@dataclass
class BudgetTickResult:
    """The ledger to keep, the status to write, Events to post and the allowances to apply."""

    ledger: Ledger
    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    new_alerts: tuple[float, ...] = ()
    allowances: dict[Key, BudgetConstraint] = field(default_factory=dict)


_MESSAGES = {
    BudgetState.WITHIN_BUDGET: "forecast {forecast} is within the limit {limit}",
    BudgetState.AT_RISK: "forecast {forecast} exceeds the limit {limit} (spent {spent})",
    BudgetState.EXCEEDED: "spent {spent} has reached the limit {limit}",
}


def _enforced(budget: CostBudget, burn: Decimal, members: int) -> Cond:
    """Whether the budget constrains decisions, and which side gives way in a conflict."""
    spec = budget.spec
    if spec.enforcement != Enforcement.ENFORCE:
        return Cond(ENFORCED, False, "Advisory", "the budget reports only; decisions ignore it")
    wins = "the SLO floor" if spec.on_conflict == OnConflict.PREFER_SLO else "the limit"
    return Cond(
        ENFORCED,
        True,
        spec.on_conflict.value,
        f"the allowed burn rate is shared among {members} deployment(s) burning "
        f"{format_money(burn, 2)}/h; in a conflict {wins} wins",
    )


def budget_tick(
    budget: CostBudget,
    members: Sequence[Member],
    ledger: Ledger | None,
    previous_status: Mapping[str, Any],
    now: datetime,
) -> BudgetTickResult:
    """Accrue the members' cost since the checkpoint, then forecast, alert and allocate.

    `ledger` is the in-memory ledger from the previous tick (None after a restart: the one
    checkpointed in status is used). Allowances are set only under Enforcement Enforce.
    """
    spec = budget.spec
    limit = to_decimal(spec.limit.amount)
    if ledger is None:
        ledger = ledger_from_status(budget.status, spec.period, now)
    spend = {m.name: DeploymentSpend(m.rate_per_hour, m.labels) for m in members}
    ledger = accrue(ledger, now, spec.period, spend, tuple(spec.attribution_labels))
    burn = sum((m.rate_per_hour for m in members), Decimal(0))
    v = view(ledger, limit, spec.period, now, burn, tuple(spec.alert_thresholds))
    ledger = replace(ledger, alerts_fired=ledger.alerts_fired + v.new_alerts)
    figures = {
        "spent": format_money(v.spent, 2),
        "forecast": format_money(v.forecast, 2),
        "limit": f"{format_money(limit, 2)} {spec.limit.currency}",
    }
    status = status_fields(ledger, v).to_wire()
    wanted = [
        Cond(state.value, v.state == state, state.value, _MESSAGES[state].format(**figures))
        for state in BudgetState
    ]
    wanted.append(_enforced(budget, burn, len(members)))
    gen = budget.metadata.generation
    status["conditions"] = conditions(
        wanted, list(previous_status.get("conditions") or []), gen, now
    )
    status["observedGeneration"] = gen
    result = BudgetTickResult(ledger, status, new_alerts=v.new_alerts)
    for threshold in v.new_alerts:
        result.events.append(
            (
                "Warning" if threshold >= 1 else "Normal",
                "BudgetThresholdCrossed",
                f"spent {figures['spent']} is {threshold:.0%} or more of the limit "
                f"{figures['limit']} this period",
            )
        )
    if spec.enforcement == Enforcement.ENFORCE:
        needs = {m.name: m.need_per_hour for m in members}
        allowed = allowed_burn_rates(limit, ledger.spent, v.hours_left, needs)
        for m in members:
            result.allowances[(m.namespace, m.name)] = BudgetConstraint(
                float(allowed[m.name]), spec.on_conflict
            )
    return result
