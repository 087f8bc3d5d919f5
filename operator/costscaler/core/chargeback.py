"""Chargeback: spend, forecast and unit costs per team (or any label) from live status.

Spend comes from the CostBudgets' accrued `byDeployment` lines (a deployment counted by two
budgets is taken once, at the larger figure, never summed); the burn rate and the observed
load come from each InferenceDeployment's status. Grouping is by any label of the
InferenceDeployments, so a report `--by cost-center` works even if no budget attributes by it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from costscaler.api.budget import CostBudget, Period
from costscaler.api.deployment import InferenceDeployment
from costscaler.api.money import to_decimal
from costscaler.core.periods import hours_between, period_bounds

UNLABELLED = "(none)"
ZERO = Decimal(0)


@dataclass
class ChargebackRow:
    """One group's figures: money in the budgets' currency, rates per hour."""

    group: str
    deployments: int = 0
    spent: Decimal = ZERO
    forecast: Decimal = ZERO
    cost_per_hour: Decimal = ZERO
    marginal_cost_per_hour: Decimal = ZERO
    request_rate: float = 0.0
    token_rate: float = 0.0
    # Deployments with input/output token costs in status: their $/h on each phase and the
    # tokens/s it was spread over.
    input_cost_per_hour: Decimal = ZERO
    output_cost_per_hour: Decimal = ZERO
    input_token_rate: float = 0.0
    output_token_rate: float = 0.0
    names: list[str] = field(default_factory=list)

    @property
    def cost_per_1k_requests(self) -> Decimal | None:
        """$ per 1,000 requests at the current rate and load; None without load."""
        if self.request_rate <= 0:
            return None
        return self.cost_per_hour / Decimal(str(self.request_rate * 3.6))

    @property
    def cost_per_million_tokens(self) -> Decimal | None:
        """$ per 1M output tokens at the current rate and load; None without tokens."""
        if self.token_rate <= 0:
            return None
        return self.cost_per_hour * Decimal(1_000_000) / Decimal(str(self.token_rate * 3600))

    @property
    def cost_per_million_input_tokens(self) -> Decimal | None:
        """$ per 1M input tokens over the deployments that report them; None without."""
        return _per_million(self.input_cost_per_hour, self.input_token_rate)

    @property
    def cost_per_million_output_tokens(self) -> Decimal | None:
        """$ per 1M output tokens over the deployments that report them; None without."""
        return _per_million(self.output_cost_per_hour, self.output_token_rate)


def _per_million(cost_per_hour: Decimal, token_rate: float) -> Decimal | None:
    if token_rate <= 0:
        return None
    return cost_per_hour * Decimal(1_000_000) / Decimal(str(token_rate * 3600))


def _phase(per_million: str | None, token_rate: float | None) -> tuple[Decimal, float] | None:
    """A deployment's ($/h, tokens/s) on one phase, back from its status figure."""
    if per_million is None or not token_rate or token_rate <= 0:
        return None
    return to_decimal(per_million) * Decimal(str(token_rate * 3600)) / Decimal(
        1_000_000
    ), token_rate


def _spent(budgets: Sequence[CostBudget]) -> dict[tuple[str, str], Decimal]:
    spent: dict[tuple[str, str], Decimal] = {}
    for budget in budgets:
        for line in budget.status.by_deployment if budget.status else []:
            key = (budget.metadata.namespace or "", line.name)
            spent[key] = max(spent.get(key, ZERO), to_decimal(line.spent))
    return spent


def _period(budgets: Sequence[CostBudget], dep: InferenceDeployment) -> Period:
    """The period of the budget the deployment names; Monthly when it names none."""
    ref = dep.spec.budget_ref.name if dep.spec.budget_ref else None
    for budget in budgets:
        if budget.metadata.name == ref and budget.metadata.namespace == dep.metadata.namespace:
            return budget.spec.period
    return Period.MONTHLY


def chargeback(
    budgets: Sequence[CostBudget],
    deployments: Sequence[InferenceDeployment],
    by: str,
    now: datetime,
) -> list[ChargebackRow]:
    """Rows per value of label `by`, sorted by spend (largest first).

    forecast = spent + current marginal $/h x hours left in the deployment's budget period:
    budgets accrue what decisions pay. `cost_per_hour` is the allocated cost (owned and
    reserved capacity at full TCO, for chargeback), `marginal_cost_per_hour` what is paid
    at the margin (their capex left out); they differ only on owned and reserved pools.
    """
    spent = _spent(budgets)
    rows: dict[str, ChargebackRow] = {}
    for dep in deployments:
        group = dep.metadata.labels.get(by, UNLABELLED)
        row = rows.setdefault(group, ChargebackRow(group))
        status = dep.status
        rate = (
            to_decimal(status.cost.per_hour)
            if status and status.cost and status.cost.per_hour
            else ZERO
        )
        marginal = (
            to_decimal(status.cost.marginal_per_hour)
            if status and status.cost and status.cost.marginal_per_hour
            else rate
        )
        hours = max(0.0, hours_between(now, period_bounds(_period(budgets, dep), now)[1]))
        dep_spent = spent.get((dep.metadata.namespace or "", dep.metadata.name), ZERO)
        row.deployments += 1
        row.names.append(f"{dep.metadata.namespace}/{dep.metadata.name}")
        row.spent += dep_spent
        row.forecast += dep_spent + marginal * Decimal(str(hours))
        row.cost_per_hour += rate
        row.marginal_cost_per_hour += marginal
        observed = status.observed if status else None
        row.request_rate += (observed.request_rate or 0.0) if observed else 0.0
        row.token_rate += (observed.token_rate or 0.0) if observed else 0.0
        costs = status.cost if status else None
        if costs and observed:
            found = _phase(costs.per_million_input_tokens, observed.prompt_token_rate)
            out = _phase(costs.per_million_output_tokens, observed.token_rate)
            if found and out:  # both or neither, so the two figures cover the same deployments
                row.input_cost_per_hour += found[0]
                row.input_token_rate += found[1]
                row.output_cost_per_hour += out[0]
                row.output_token_rate += out[1]
    return sorted(rows.values(), key=lambda r: (-r.spent, r.group))
