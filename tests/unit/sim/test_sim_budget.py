"""A CostBudget in the replay: Enforce with PreferBudget keeps spend at or under the limit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from costscaler.cli import main
from costscaler.sim.budget import BudgetMeter, SimBudget

REPO = Path(__file__).resolve().parents[3]
TRACE = REPO.parent / "shared" / "traces" / "azure-llm-2023-conv" / "trace.csv"


def _run(capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    args = ["simulate", "--trace", str(TRACE), "-f",
            str(REPO / "examples/deployments/llama-3-1-8b-vllm.yaml"), "-p",
            str(REPO / "examples/pools"), "--scale", "3", "--seed", "1", "--duration", "900",
            "--policy", "costscaler", "--serving", "fluid", "--json", *extra]  # fmt: skip
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)[0]


@pytest.mark.skipif(not TRACE.is_file(), reason="needs ../shared/traces beside the checkout")
def test_prefer_budget_stays_under_the_limit_and_prefer_slo_does_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    free = _run(capsys)
    limit = round(0.6 * free["total_cost"], 2)
    budget = _run(capsys, "--budget", str(limit), "--on-conflict", "PreferBudget")
    slo = _run(capsys, "--budget", str(limit), "--on-conflict", "PreferSLO")
    assert budget["total_cost"] <= limit
    assert slo["total_cost"] > limit  # the SLO floor wins over the ceiling
    # Not asserted: PreferSLO's realised attainment at or above PreferBudget's. Under
    # PreferSLO the engine holds its expected attainment at the floor; under PreferBudget
    # it buys the least expected violation the allowance pays for. The replay's realised
    # attainment falls short of both expectations (the common start's cold starts, and the
    # replay's truth differs from the engine's model), and then the order flips: 0.48 vs
    # 0.60 here, 0.87 vs 0.91 over 3,600 s at the same 0.6 share (open work, issue #13).


def test_meter_allows_what_is_left_over_the_time_left() -> None:
    meter = BudgetMeter(SimBudget(limit=10.0, period_s=7200))
    assert meter.allowance(0.0).allowed_per_hour == pytest.approx(5.0)
    meter.applied(4.0)  # 4 $/h for the first hour: 6 $ left for the last hour
    assert meter.allowance(3600.0).allowed_per_hour == pytest.approx(6.0)
    meter.applied(20.0)
    assert meter.allowance(7200.0).allowed_per_hour == 0.0  # period over
    assert meter.spent == pytest.approx(24.0)
