"""Map a budget's Ledger to and from CostBudget status, where it survives operator restarts."""

from __future__ import annotations

from datetime import datetime

from costscaler.api.budget import CostBudgetStatus, LabelSpendLine, Period, SpendLine
from costscaler.api.money import format_money, to_decimal
from costscaler.core.accrual import Ledger, open_ledger
from costscaler.core.budget_view import BudgetView
from costscaler.core.periods import period_bounds

# Status keeps six decimals (the API's money pattern): a millionth of a dollar per checkpoint.
PLACES = 6


def ledger_from_status(status: CostBudgetStatus | None, period: Period, now: datetime) -> Ledger:
    """The ledger checkpointed in status, or a new one when there is none or it is unreadable.

    A checkpoint from a period that no longer matches the spec (the period was edited) starts
    over at `now`: spend accrued under another period cannot be split honestly.
    """
    if status is None or not status.period_start or not status.last_accrual_time:
        return open_ledger(period, now)
    start = datetime.fromisoformat(status.period_start)
    until = datetime.fromisoformat(status.last_accrual_time)
    if period_bounds(period, start)[0] != start or until < start:
        return open_ledger(period, now)
    return Ledger(
        period_start=start,
        accrued_until=until,
        spent=to_decimal(status.spent or "0"),
        by_deployment={line.name: to_decimal(line.spent) for line in status.by_deployment},
        by_label={(line.label, line.value): to_decimal(line.spent) for line in status.by_label},
        alerts_fired=tuple(status.alerts_fired),
        previous_spent=to_decimal(status.previous_spent) if status.previous_spent else None,
    )


def status_fields(ledger: Ledger, view: BudgetView) -> CostBudgetStatus:
    """The status fields a tick writes; the caller adds conditions and observedGeneration."""
    return CostBudgetStatus(
        period_start=ledger.period_start.isoformat(),
        last_accrual_time=ledger.accrued_until.isoformat(),
        spent=format_money(ledger.spent, PLACES),
        previous_spent=(
            format_money(ledger.previous_spent, PLACES)
            if ledger.previous_spent is not None
            else None
        ),
        forecast=format_money(view.forecast, PLACES),
        burn_rate_per_hour=format_money(view.burn_rate_per_hour, PLACES),
        state=view.state.value,
        by_deployment=[
            SpendLine(name=name, spent=format_money(amount, PLACES))
            for name, amount in sorted(ledger.by_deployment.items())
        ],
        by_label=[
            LabelSpendLine(label=label, value=value, spent=format_money(amount, PLACES))
            for (label, value), amount in sorted(ledger.by_label.items())
        ],
        alerts_fired=sorted(set(ledger.alerts_fired) | set(view.new_alerts)),
    )
