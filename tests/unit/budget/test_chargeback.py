"""Chargeback rows: spend from budgets (never double counted), forecast and unit costs."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from costscaler.api import CostBudget, InferenceDeployment, load_kind
from costscaler.api.budget import CostBudgetStatus, SpendLine
from costscaler.api.deployment import CostSummary, InferenceDeploymentStatus, ObservedLoad
from costscaler.core.chargeback import UNLABELLED, chargeback

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)  # 12 h left in November


def _dep(name: str, per_hour: str, rps: float, tps: float | None) -> InferenceDeployment:
    dep = next(d for d in load_kind(EXAMPLES, InferenceDeployment) if d.metadata.name == name)
    dep.status = InferenceDeploymentStatus(
        cost=CostSummary(per_hour=per_hour),
        observed=ObservedLoad(request_rate=rps, token_rate=tps),
    )
    return dep


def _budget(lines: dict[str, str], name: str = "team-ml") -> CostBudget:
    budget = load_kind(EXAMPLES, CostBudget)[0].model_copy(deep=True)
    budget.metadata.name = name
    budget.status = CostBudgetStatus(
        by_deployment=[SpendLine(name=n, spent=s) for n, s in lines.items()]
    )
    return budget


def test_rows_per_team() -> None:
    deps = [_dep("llama-3-1-8b", "3.6", 10.0, 2500.0), _dep("triton-resnet", "0.8", 0.0, None)]
    budgets = [_budget({"llama-3-1-8b": "100", "triton-resnet": "20"})]
    rows = chargeback(budgets, deps, "team", NOW)
    assert [r.group for r in rows] == ["ml-platform", "vision"]
    ml, vision = rows
    assert ml.spent == Decimal(100)
    assert ml.forecast == Decimal(100) + Decimal("3.6") * 12
    assert ml.cost_per_1k_requests == Decimal("0.1")  # 3.6 $/h over 36,000 requests/h
    assert ml.cost_per_million_tokens == Decimal("0.4")  # 3.6 $/h over 9M tokens/h
    assert vision.cost_per_1k_requests is None and vision.cost_per_million_tokens is None


def test_a_deployment_in_two_budgets_is_counted_once() -> None:
    deps = [_dep("llama-3-1-8b", "1", 1.0, None)]
    budgets = [_budget({"llama-3-1-8b": "100"}), _budget({"llama-3-1-8b": "60"}, "org-wide")]
    assert chargeback(budgets, deps, "team", NOW)[0].spent == Decimal(100)


@pytest.mark.parametrize(("by", "group"), [("cost-center", "cc-4711"), ("owner", UNLABELLED)])
def test_any_label_groups(by: str, group: str) -> None:
    rows = chargeback([], [_dep("llama-3-1-8b", "1", 1.0, None)], by, NOW)
    assert [r.group for r in rows] == [group]
    assert rows[0].spent == 0


def test_owned_capacity_shows_its_tco_and_forecasts_at_the_margin() -> None:
    # Issue 14: 5.77 $/h allocated (4 owned GPUs at TCO), 1.90 $/h paid at the margin.
    dep = _dep("llama-3-1-8b", "5.77", 6.0, None)
    assert dep.status is not None and dep.status.cost is not None
    dep.status.cost.marginal_per_hour = "1.9"
    (row,) = chargeback([_budget({"llama-3-1-8b": "10"})], [dep], "team", NOW)
    assert (row.cost_per_hour, row.marginal_cost_per_hour) == (Decimal("5.77"), Decimal("1.9"))
    assert row.forecast == Decimal(10) + Decimal("1.9") * 12  # budgets accrue the margin


def test_input_and_output_token_costs_add_up_over_the_deployments_reporting_them() -> None:
    # Issue 17: $/1M input and output tokens per group, from each deployment's status
    # figures weighted by the tokens it served; a deployment without them is left out.
    llama = _dep("llama-3-1-8b", "3.6", 4.0, 1000.0)
    assert llama.status is not None and llama.status.cost and llama.status.observed
    llama.status.cost.per_million_input_tokens = "0.1"  # 0.1 $ x 14.4 M/h = 1.44 $/h
    llama.status.cost.per_million_output_tokens = "0.6"  # 0.6 $ x 3.6 M/h = 2.16 $/h
    llama.status.observed.prompt_token_rate = 4000.0
    other = _dep("llama-3-1-8b", "1", 1.0, 500.0)  # no split in its status
    (row,) = chargeback([], [llama, other], "team", NOW)
    assert row.cost_per_million_input_tokens == Decimal("0.1")
    assert row.cost_per_million_output_tokens == Decimal("0.6")
    assert row.cost_per_million_tokens == Decimal("4.6") * Decimal(10**6) / Decimal(1500 * 3600)
