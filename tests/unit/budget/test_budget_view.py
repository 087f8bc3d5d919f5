"""Budget forecast, state, once-per-period alerts and the burn rate allowed to each deployment."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from costscaler.api.budget import Period
from costscaler.core.accrual import Ledger
from costscaler.core.budget_view import BudgetState, allowed_burn_rates, view

NOW = datetime(2026, 11, 16, tzinfo=UTC)  # 15 days = 360 h left in November
START = datetime(2026, 11, 1, tzinfo=UTC)


def _ledger(spent: str, fired: tuple[float, ...] = ()) -> Ledger:
    return Ledger(START, NOW, Decimal(spent), alerts_fired=fired)


@pytest.mark.parametrize(
    ("spent", "rate", "state", "forecast"),
    [
        ("100", "1", BudgetState.WITHIN_BUDGET, Decimal("460")),
        ("900", "1", BudgetState.AT_RISK, Decimal("1260")),
        ("1000", "0", BudgetState.EXCEEDED, Decimal("1000")),
        ("0", "0", BudgetState.WITHIN_BUDGET, Decimal("0")),
    ],
    ids=["within", "at-risk", "exceeded", "idle"],
)
def test_state_and_forecast(spent: str, rate: str, state: BudgetState, forecast: Decimal) -> None:
    v = view(_ledger(spent), Decimal(1000), Period.MONTHLY, NOW, Decimal(rate), (0.5, 0.8, 1.0))
    assert v.state == state
    assert v.forecast == forecast
    assert v.hours_left == 360


def test_thresholds_fire_once_per_period() -> None:
    first = view(_ledger("850"), Decimal(1000), Period.MONTHLY, NOW, Decimal(0), (0.5, 0.8, 1.0))
    assert first.new_alerts == (0.5, 0.8)
    again = view(
        _ledger("870", fired=first.new_alerts),
        Decimal(1000),
        Period.MONTHLY,
        NOW,
        Decimal(0),
        (0.5, 0.8, 1.0),
    )
    assert again.new_alerts == ()
    over = view(
        _ledger("1000", fired=first.new_alerts),
        Decimal(1000),
        Period.MONTHLY,
        NOW,
        Decimal(0),
        (0.5, 0.8, 1.0),
    )
    assert over.new_alerts == (1.0,)


def test_zero_limit_is_exceeded_at_once() -> None:
    v = view(_ledger("0"), Decimal(0), Period.MONTHLY, NOW, Decimal(0), (0.5,))
    assert v.state == BudgetState.EXCEEDED and v.new_alerts == (0.5,)


@pytest.mark.parametrize(
    ("spent", "hours", "needs", "expected"),
    [
        ("0", 100.0, {"a": "3", "b": "1"}, {"a": Decimal("7.5"), "b": Decimal("2.5")}),
        ("1000", 100.0, {"a": "3"}, {"a": Decimal(0)}),
        ("1200", 100.0, {"a": "3"}, {"a": Decimal(0)}),
        ("0", 0.0, {"a": "3"}, {"a": Decimal(0)}),
        ("0", 100.0, {"a": "0", "b": "0"}, {"a": Decimal(5), "b": Decimal(5)}),
        ("0", 100.0, {}, {}),
    ],
    ids=["by-need", "exhausted", "overspent", "period-over", "no-need", "no-deployments"],
)
def test_allowed_burn_rates(
    spent: str, hours: float, needs: dict[str, str], expected: dict[str, Decimal]
) -> None:
    got = allowed_burn_rates(
        Decimal(1000), Decimal(spent), hours, {k: Decimal(v) for k, v in needs.items()}
    )
    assert got == expected


def test_allowed_rates_sum_to_what_is_left() -> None:
    ledger = replace(_ledger("400"))
    got = allowed_burn_rates(
        Decimal(1000), ledger.spent, 300.0, {"a": Decimal("0.7"), "b": Decimal("2.1")}
    )
    assert sum(got.values()) == Decimal(2)
