"""The ledger survives a round trip through CostBudget status (an operator restart)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from costscaler.api.budget import CostBudgetStatus, Period
from costscaler.core.accrual import DeploymentSpend, accrue, open_ledger
from costscaler.core.budget_status import ledger_from_status, status_fields
from costscaler.core.budget_view import view

T0 = datetime(2026, 11, 23, 12, tzinfo=UTC)


def _tick(ledger, now):  # type: ignore[no-untyped-def]
    spend = {"llama": DeploymentSpend(Decimal("3.22"), {"team": "ml"})}
    return accrue(ledger, now, Period.MONTHLY, spend, ("team",))


def test_round_trip_through_status_keeps_the_figures() -> None:
    ledger = _tick(open_ledger(Period.MONTHLY, T0), T0 + timedelta(hours=5))
    v = view(ledger, Decimal(20), Period.MONTHLY, T0, Decimal("3.22"), (0.5, 0.8))
    status = CostBudgetStatus.model_validate(status_fields(ledger, v).to_wire())
    assert status.spent == "16.100000"
    assert status.alerts_fired == [0.5, 0.8]
    restored = ledger_from_status(status, Period.MONTHLY, T0 + timedelta(hours=6))
    assert restored.spent == Decimal("16.1")
    assert restored.accrued_until == T0 + timedelta(hours=5)
    assert restored.by_label == {("team", "ml"): Decimal("16.1")}
    assert restored.alerts_fired == (0.5, 0.8)
    # The next tick after the restart accrues only the hour since the checkpoint.
    assert _tick(restored, T0 + timedelta(hours=6)).spent == Decimal("19.32")


def test_no_or_foreign_checkpoint_opens_a_new_ledger() -> None:
    assert ledger_from_status(None, Period.DAILY, T0).spent == 0
    weekly = CostBudgetStatus(
        period_start="2026-11-23T00:00:00+00:00",
        last_accrual_time="2026-11-23T10:00:00+00:00",
        spent="5",
    )
    assert ledger_from_status(weekly, Period.WEEKLY, T0).spent == Decimal(5)
    # The spec changed to Monthly: Nov 23 is no month start, so the old figure cannot be split.
    fresh = ledger_from_status(weekly, Period.MONTHLY, T0)
    assert fresh.spent == 0 and fresh.period_start == datetime(2026, 11, 1, tzinfo=UTC)
