"""Money stays a decimal string in the API; conversion is exact and never negative."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from costscaler.api.common import MONEY_PATTERN
from costscaler.api.money import format_money, to_decimal, to_float


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [
        pytest.param(1.23456, 4, "1.2346", id="rounds"),
        pytest.param(0.00005, 4, "0.0000", id="half-even-down"),
        pytest.param(Decimal("10.125"), 2, "10.12", id="half-even-decimal"),
        pytest.param(-0.5, 4, "0.0000", id="negative-clamped"),
        pytest.param(float("nan"), 2, "0.00", id="nan"),
        pytest.param(float("inf"), 2, "999999999999.99", id="inf-is-the-ceiling"),
        pytest.param(1e20, 4, "999999999999.9999", id="above-the-pattern"),
        pytest.param(Decimal("999999999999.99999"), 4, "999999999999.9999", id="rounds-past"),
        pytest.param(0, 0, "0", id="zero"),
    ],
)
def test_format_money(value: float | Decimal, places: int, expected: str) -> None:
    assert format_money(value, places) == expected


def test_every_formatted_amount_fits_the_status_pattern() -> None:
    # A status patch breaking the pattern is refused whole (issue 18: a pool priced
    # 999999999999.999999 left the deployment without status, with a traceback every tick).
    for value in (0.0, 1e-9, 1.5, 1e11, 1e12, 1e15, 7.3e17, float("inf")):
        assert re.fullmatch(MONEY_PATTERN, format_money(value)), value


def test_parse_is_exact() -> None:
    assert to_decimal("32.7700") == Decimal("32.77")
    assert to_float("0.8050") == pytest.approx(0.805)
