"""What a budget's ledger means: forecast, state, alerts to fire, and the burn rate allowed.

Pure functions over a `Ledger` (see accrual.py) and the budget spec; the operator writes their
results into the CostBudget's status, conditions, Events and metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from costscaler.api.budget import Period
from costscaler.core.accrual import ZERO, Ledger
from costscaler.core.periods import hours_between, period_bounds


class BudgetState(StrEnum):
    """Where spend stands against the limit (each is also a condition type)."""

    WITHIN_BUDGET = "WithinBudget"
    AT_RISK = "AtRisk"
    EXCEEDED = "Exceeded"


@dataclass(frozen=True)
class BudgetView:
    """The figures status shows for one budget at one time."""

    spent: Decimal
    forecast: Decimal
    burn_rate_per_hour: Decimal
    state: BudgetState
    hours_left: float
    new_alerts: tuple[float, ...]


def view(
    ledger: Ledger,
    limit: Decimal,
    period: Period,
    now: datetime,
    burn_rate_per_hour: Decimal,
    thresholds: tuple[float, ...],
) -> BudgetView:
    """Forecast = spent + burn rate x hours left in the period; state; thresholds newly crossed.

    Thresholds alert on actual spend (a share of the limit), once per period: those already in
    `ledger.alerts_fired` are not returned again. AtRisk means the forecast exceeds the limit
    while the spend does not yet.
    """
    _, end = period_bounds(period, ledger.period_start)
    hours_left = max(0.0, hours_between(now, end))
    forecast = ledger.spent + burn_rate_per_hour * Decimal(str(hours_left))
    if ledger.spent >= limit:
        state = BudgetState.EXCEEDED
    elif forecast > limit:
        state = BudgetState.AT_RISK
    else:
        state = BudgetState.WITHIN_BUDGET
    share = ledger.spent / limit if limit > 0 else Decimal("Infinity")
    fired = set(ledger.alerts_fired)
    new = tuple(t for t in thresholds if t not in fired and share >= Decimal(str(t)))
    return BudgetView(ledger.spent, forecast, burn_rate_per_hour, state, hours_left, new)


def allowed_burn_rates(
    limit: Decimal, spent: Decimal, hours_left: float, need_per_hour: Mapping[str, Decimal]
) -> dict[str, Decimal]:
    """Split the burn rate the budget still allows among its deployments, by need ($/h).

    allowed total = (limit - spent) / hours left; deployment i gets total x need_i / sum(need).
    Sharing in proportion to need keeps every deployment's relative headroom equal, so no
    service is starved to let another overspend. Needs are the unconstrained plans' $/h; when
    none needs anything, each gets an equal share. An exhausted budget allows 0.
    """
    if not need_per_hour:
        return {}
    remaining = max(ZERO, limit - spent)
    if hours_left <= 0:
        return dict.fromkeys(need_per_hour, ZERO)
    total = remaining / Decimal(str(hours_left))
    needs = {name: max(ZERO, need) for name, need in need_per_hour.items()}
    whole = sum(needs.values(), ZERO)
    if whole == 0:
        share = total / len(needs)
        return dict.fromkeys(needs, share)
    return {name: total * need / whole for name, need in needs.items()}
