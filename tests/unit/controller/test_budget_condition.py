"""The WithinBudget condition of an InferenceDeployment under an Enforce CostBudget."""

from __future__ import annotations

import asyncio

import pytest
from test_controller_tick import GOOD, NOW, RecordingKube, infd
from test_controller_tick import pools as pools  # the fixture, re-exported

from costscaler.api import OnConflict
from costscaler.controller.history import History
from costscaler.controller.tick import TickInput, run_tick
from costscaler.core import BudgetConstraint, decide


def _conditions(found, budget):  # type: ignore[no-untyped-def]
    t = TickInput(infd(), found, [], GOOD, History(3600), {}, NOW, budget)
    result = asyncio.run(run_tick(t, decide, RecordingKube()))
    return {c["type"]: c for c in result.status["conditions"]}, result.status


@pytest.mark.parametrize(
    ("budget", "status", "reason", "state"),
    [
        (None, "True", "NoBudget", "NoBudget"),
        (BudgetConstraint(1000.0, OnConflict.PREFER_SLO), "True", "WithinBudget", "WithinBudget"),
        (BudgetConstraint(0.0, OnConflict.PREFER_BUDGET), "False", "BudgetLimited", "AtRisk"),
        (BudgetConstraint(0.0, OnConflict.PREFER_SLO), "False", "BudgetExceededForSLO", "AtRisk"),
    ],
    ids=["none", "ample", "exhausted-prefer-budget", "exhausted-prefer-slo"],
)
def test_within_budget_condition(pools, budget, status, reason, state) -> None:
    conds, full = _conditions(pools, budget)
    cond = conds["WithinBudget"]
    assert (cond["status"], cond["reason"]) == (status, reason)
    assert full["budgetState"] == state
    if budget is not None and budget.allowed_per_hour == 0:
        assert "$0.00/h" in cond["message"]  # the numbers are in the message
