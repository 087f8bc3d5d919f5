"""The cost model's formulas, one table row per case."""

from __future__ import annotations

import math

import pytest

from costscaler.core import cost


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param((200000, 36, 8000, 1.4, 0.09, 1100), 10.1252, id="dgx-h100-example"),
        pytest.param((0, 36, 0, 1.5, 0.09, 0), 0.0, id="free-and-unpowered"),
        pytest.param((73000, 100, 0, 1.0, 0.0, 0), 1.0, id="capex-only"),
        pytest.param((0, 12, 1000, 1.0, 0.1, 0), 0.1, id="energy-only-1kW"),
        pytest.param((0, 12, 1000, 2.0, 0.1, 730), 1.2, id="pue-and-operations"),
    ],
)
def test_ownership_hourly(args: tuple[float, int, float, float, float, float], expected: float):
    assert cost.ownership_hourly(*args) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    ("node", "per_replica", "per_node", "expected"),
    [
        pytest.param(32.77, 1, 8, 4.09625, id="p4d-one-gpu-replica"),
        pytest.param(32.77, 8, 8, 32.77, id="whole-node"),
        pytest.param(0.805, 1, 1, 0.805, id="single-gpu-node"),
        pytest.param(32.77, 3, 8, 16.385, id="two-fit-the-unused-gpus-paid"),
    ],
)
def test_replica_hourly(node: float, per_replica: int, per_node: int, expected: float):
    assert cost.replica_hourly(node, per_replica, per_node) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("rate", "gb", "price", "expected"),
    [
        pytest.param(0.0, 0.005, 0.09, 0.0, id="zero-load"),
        pytest.param(10.0, 0.005, 0.09, 10 * 3.6 * 0.005 * 0.09, id="ten-rps"),
        pytest.param(-1.0, 1.0, 1.0, 0.0, id="negative-rate-is-zero"),
    ],
)
def test_egress_hourly(rate: float, gb: float, price: float, expected: float):
    assert cost.egress_hourly(rate, gb, price) == pytest.approx(expected)


def test_fixed_hourly_is_monthly_over_730_hours():
    assert cost.fixed_hourly(620.0, 25.0) == pytest.approx(645 / 730)


@pytest.mark.parametrize(
    ("per_hour", "rate", "expected"),
    [
        pytest.param(3.6, 1.0, 1.0, id="one-rps-3.6-per-hour"),
        pytest.param(7.2, 2.0, 1.0, id="two-rps"),
        pytest.param(1.0, 0.0, math.nan, id="zero-load-is-nan"),
        pytest.param(1.0, math.nan, math.nan, id="nan-load-is-nan"),
    ],
)
def test_cost_per_thousand_requests(per_hour: float, rate: float, expected: float):
    got = cost.cost_per_thousand_requests(per_hour, rate)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("per_hour", "tokens", "expected"),
    [
        pytest.param(3.6, 1000.0, 1.0, id="1k-tokens-per-s"),
        pytest.param(3.6, 0.0, math.nan, id="no-tokens"),
    ],
)
def test_cost_per_million_tokens(per_hour: float, tokens: float, expected: float):
    got = cost.cost_per_million_tokens(per_hour, tokens)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("provisioned", "needed", "seconds", "expected"),
    [
        pytest.param(4, 1.5, 3600, 2.5, id="half-used"),
        pytest.param(2, 3, 3600, 0.0, id="short-is-not-idle"),
        pytest.param(8, 0, 900, 2.0, id="zero-load-quarter-hour"),
    ],
)
def test_idle_accelerator_hours(provisioned: float, needed: float, seconds: float, expected: float):
    assert cost.idle_accelerator_hours(provisioned, needed, seconds) == pytest.approx(expected)
