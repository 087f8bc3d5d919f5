"""Budget accrual: integrate each deployment's cost into a CostBudget's ledger, exactly once.

The ledger is the checkpoint a CostBudget keeps in its status. Accrual is idempotent by
timestamps: a tick integrates cost only over (accruedUntil, now], so running a tick twice, or
replaying one after an operator restart, never counts an interval twice; a restart loses at
most the tick that was running (its interval is accrued by the next tick, at the rates then
observed). An interval that crosses a period boundary is split: the part before it closes the
old period (kept as `previous_spent`), the rest opens the new one.

Money is Decimal here, and time is counted in whole microseconds, because the ledger is what a
budget owner reconciles against a bill: float rounding would drift over a month of 15-second
ticks. The only rounding left is Decimal's 28 significant digits per tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from costscaler.api.budget import Period
from costscaler.core.periods import period_bounds

ZERO = Decimal(0)
_MICROSECOND = timedelta(microseconds=1)
_MICROS_PER_HOUR = Decimal(3_600_000_000)


@dataclass(frozen=True)
class DeploymentSpend:
    """One deployment's cost rate over the last tick and its attribution labels.

    `rate_per_hour` is replicas (ready and warming) x effective pool $/h, plus fixed monthly,
    egress and storage items pro-rated per hour ($/h).
    """

    rate_per_hour: Decimal
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Ledger:
    """Spend of one budget in its current period; the checkpoint stored in status."""

    period_start: datetime
    accrued_until: datetime
    spent: Decimal = ZERO
    by_deployment: Mapping[str, Decimal] = field(default_factory=dict)
    by_label: Mapping[tuple[str, str], Decimal] = field(default_factory=dict)
    alerts_fired: tuple[float, ...] = ()
    previous_spent: Decimal | None = None


def open_ledger(period: Period, now: datetime) -> Ledger:
    """A new ledger for the period holding `now`, accrued up to `now` (nothing spent yet)."""
    start, _ = period_bounds(period, now)
    return Ledger(period_start=start, accrued_until=now)


def _integrate(
    ledger: Ledger,
    until: datetime,
    spend: Mapping[str, DeploymentSpend],
    attribution_labels: tuple[str, ...],
) -> Ledger:
    hours = Decimal((until - ledger.accrued_until) // _MICROSECOND) / _MICROS_PER_HOUR
    by_dep: dict[str, Decimal] = dict(ledger.by_deployment)
    by_label: dict[tuple[str, str], Decimal] = dict(ledger.by_label)
    total = ledger.spent
    for name in sorted(spend):
        amount = spend[name].rate_per_hour * hours
        total += amount
        by_dep[name] = by_dep.get(name, ZERO) + amount
        for key in attribution_labels:
            slot = (key, spend[name].labels.get(key, ""))
            by_label[slot] = by_label.get(slot, ZERO) + amount
    return replace(
        ledger, accrued_until=until, spent=total, by_deployment=by_dep, by_label=by_label
    )


def accrue(
    ledger: Ledger,
    now: datetime,
    period: Period,
    spend: Mapping[str, DeploymentSpend],
    attribution_labels: tuple[str, ...] = (),
) -> Ledger:
    """Integrate `spend` rates over (ledger.accrued_until, now]; roll periods over as needed.

    A `now` at or before `accrued_until` (a replayed or duplicate tick) returns the ledger
    unchanged. Rates are held constant over the interval: the operator samples them every tick.
    """
    while now > ledger.accrued_until:
        _, end = period_bounds(period, ledger.period_start)
        if now < end:
            return _integrate(ledger, now, spend, attribution_labels)
        closed = _integrate(ledger, end, spend, attribution_labels)
        ledger = Ledger(period_start=end, accrued_until=end, previous_spent=closed.spent)
    return ledger
