"""Money is a decimal string in the API; these helpers convert at the edge of the engine."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

# The largest amount the API's money pattern holds (12 digits before the point). Inputs are
# bounded so that costs stay far below it; a figure divided by a tiny rate (per 1k requests at
# 0.0001 requests/s) can still exceed it, and a status patch that breaks the pattern is refused
# whole, so such a figure is written as this ceiling instead.
MONEY_MAX = Decimal("999999999999.999999")


def to_decimal(amount: str) -> Decimal:
    """Parse an API money string (already validated by pattern) exactly."""
    return Decimal(amount)


def to_float(amount: str) -> float:
    """Parse an API money string for the engine's float arithmetic ($)."""
    return float(Decimal(amount))


def format_money(value: float | int | Decimal, places: int = 4) -> str:
    """Format an amount for status and reports: a decimal string, never negative zero.

    Rounded half-even to `places` decimals; negative amounts (which the API never stores) are
    clamped to zero because money spent or forecast cannot be negative, and amounts above
    `MONEY_MAX` (infinity included) to `MONEY_MAX`, so the result always fits the pattern.
    """
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    quantum = Decimal(1).scaleb(-places)
    ceiling = MONEY_MAX.quantize(quantum, rounding=ROUND_DOWN)
    if amount.is_nan() or amount < 0:
        amount = Decimal(0)
    if amount > ceiling:  # compared before rounding too: Infinity cannot be quantized
        return str(ceiling)
    return str(min(amount.quantize(quantum, rounding=ROUND_HALF_EVEN), ceiling))
