"""Money is a decimal string in the API; these helpers convert at the edge of the engine."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal


def to_decimal(amount: str) -> Decimal:
    """Parse an API money string (already validated by pattern) exactly."""
    return Decimal(amount)


def to_float(amount: str) -> float:
    """Parse an API money string for the engine's float arithmetic ($)."""
    return float(Decimal(amount))


def format_money(value: float | int | Decimal, places: int = 4) -> str:
    """Format an amount for status and reports: a decimal string, never negative zero.

    Rounded half-even to `places` decimals; negative amounts (which the API never stores) are
    clamped to zero because money spent or forecast cannot be negative.
    """
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    if not amount.is_finite() or amount < 0:
        amount = Decimal(0)
    quantum = Decimal(1).scaleb(-places)
    return str(amount.quantize(quantum, rounding=ROUND_HALF_EVEN))
