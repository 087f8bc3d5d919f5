"""Budget accrual is exact, rolls over at UTC period boundaries and never counts twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from costscaler.api.budget import Period
from costscaler.core.accrual import DeploymentSpend, Ledger, accrue, open_ledger
from costscaler.core.periods import period_bounds

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LLAMA = DeploymentSpend(Decimal("3.22"), {"team": "ml", "cost-center": "cc1"})
RESNET = DeploymentSpend(Decimal("0.805"), {"team": "vision"})


@pytest.mark.parametrize(
    ("period", "at", "start", "end"),
    [
        (Period.DAILY, T0, datetime(2026, 11, 23), datetime(2026, 11, 24)),
        (Period.WEEKLY, T0, datetime(2026, 11, 23), datetime(2026, 11, 30)),  # a Monday
        (
            Period.WEEKLY,
            datetime(2026, 11, 29, 23, 59, tzinfo=UTC),
            datetime(2026, 11, 23),
            datetime(2026, 11, 30),
        ),
        (Period.MONTHLY, T0, datetime(2026, 11, 1), datetime(2026, 12, 1)),
        (
            Period.MONTHLY,
            datetime(2026, 12, 31, 23, tzinfo=UTC),
            datetime(2026, 12, 1),
            datetime(2027, 1, 1),
        ),
        (
            Period.MONTHLY,
            datetime(2028, 2, 29, 5, tzinfo=UTC),
            datetime(2028, 2, 1),
            datetime(2028, 3, 1),
        ),
    ],
    ids=["daily", "weekly-monday", "weekly-sunday-night", "monthly", "december", "leap-february"],
)
def test_period_bounds(period: Period, at: datetime, start: datetime, end: datetime) -> None:
    assert period_bounds(period, at) == (start.replace(tzinfo=UTC), end.replace(tzinfo=UTC))


def test_period_bounds_converts_other_timezones_to_utc() -> None:
    tokyo = datetime(2026, 12, 1, 5, tzinfo=UTC).astimezone(
        datetime.now(UTC).astimezone().tzinfo or UTC
    )
    assert period_bounds(Period.MONTHLY, tokyo)[0] == datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        period_bounds(Period.DAILY, datetime(2026, 1, 1))


def _cents(amount: Decimal) -> Decimal:
    """Exact to a trillionth of a dollar: the ledger rounds only at Decimal's 28 digits."""
    return amount.quantize(Decimal("1e-12"))


def test_accrual_over_ticks_is_exact() -> None:
    ledger = open_ledger(Period.MONTHLY, T0)
    spend = {"llama": LLAMA, "resnet": RESNET}
    for tick in range(1, 241):  # one hour of 15 s ticks
        ledger = accrue(
            ledger,
            T0 + timedelta(seconds=15 * tick),
            Period.MONTHLY,
            spend,
            ("team", "cost-center"),
        )
    assert _cents(ledger.spent) == Decimal("4.025")
    assert {k: _cents(v) for k, v in ledger.by_deployment.items()} == {
        "llama": Decimal("3.22"),
        "resnet": Decimal("0.805"),
    }
    assert _cents(ledger.by_label[("team", "ml")]) == Decimal("3.22")
    assert _cents(ledger.by_label[("cost-center", "")]) == Decimal("0.805")


def test_a_replayed_or_older_tick_counts_nothing() -> None:
    ledger = accrue(
        open_ledger(Period.DAILY, T0), T0 + timedelta(hours=1), Period.DAILY, {"llama": LLAMA}
    )
    assert accrue(ledger, T0 + timedelta(hours=1), Period.DAILY, {"llama": LLAMA}) == ledger
    assert accrue(ledger, T0 + timedelta(minutes=5), Period.DAILY, {"llama": LLAMA}) == ledger


def test_restart_from_checkpoint_equals_uninterrupted_run() -> None:
    spend = {"llama": LLAMA}
    times = [T0 + timedelta(seconds=15 * i) for i in range(1, 100)]
    straight = open_ledger(Period.DAILY, T0)
    for t in times:
        straight = accrue(straight, t, Period.DAILY, spend)
    # The operator dies after tick 40 (its checkpoint is in status) and tick 41 is lost.
    restarted = open_ledger(Period.DAILY, T0)
    for t in times[:40]:
        restarted = accrue(restarted, t, Period.DAILY, spend)
    checkpoint = Ledger(**restarted.__dict__)
    for t in [times[39], *times[41:]]:  # the last checkpointed tick is replayed, 41 skipped
        checkpoint = accrue(checkpoint, t, Period.DAILY, spend)
    assert _cents(checkpoint.spent) == _cents(straight.spent)


def test_rollover_splits_the_interval_at_the_boundary() -> None:
    before = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    ledger = open_ledger(Period.MONTHLY, before)
    ledger = accrue(ledger, before + timedelta(hours=3), Period.MONTHLY, {"llama": LLAMA})
    assert ledger.period_start == datetime(2026, 12, 1, tzinfo=UTC)
    assert ledger.previous_spent == Decimal("3.22")
    assert _cents(ledger.spent) == Decimal("6.44")
    assert ledger.alerts_fired == ()


def test_rollover_across_several_periods() -> None:
    ledger = open_ledger(Period.DAILY, T0)
    ledger = accrue(ledger, T0 + timedelta(days=2, hours=1), Period.DAILY, {"r": RESNET})
    assert ledger.period_start == datetime(2026, 11, 25, tzinfo=UTC)
    assert _cents(ledger.previous_spent or Decimal(0)) == Decimal("0.805") * 24
    assert _cents(ledger.spent) == Decimal("0.805") * 13


@given(
    st.lists(st.integers(min_value=1, max_value=3600), min_size=1, max_size=50),
    st.decimals(min_value=0, max_value=1000, places=4),
)
def test_accrual_equals_rate_times_elapsed(steps: list[int], rate: Decimal) -> None:
    ledger = open_ledger(Period.MONTHLY, T0)
    now = T0
    for step in steps:
        now += timedelta(seconds=step)
        ledger = accrue(ledger, now, Period.MONTHLY, {"d": DeploymentSpend(rate)})
    hours = Decimal(sum(steps)) / 3600
    assert _cents(ledger.spent) == _cents(rate * hours)
