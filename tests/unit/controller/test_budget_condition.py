"""The WithinBudget condition of an InferenceDeployment under an Enforce CostBudget."""

from __future__ import annotations

import asyncio

import pytest
from test_controller_tick import GOOD, NOW, RecordingKube, infd
from test_controller_tick import pools as pools  # the fixture, re-exported

from costscaler.api import OnConflict
from costscaler.controller.history import History
from costscaler.controller.tick import run_tick
from costscaler.controller.tick_input import TickInput
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
        # Under the unbudgeted plan's $2.91/h (1 spot + 2 on-demand L4 at 3 req/s).
        (BudgetConstraint(2.5, OnConflict.PREFER_BUDGET), "False", "BudgetLimited", "AtRisk"),
        # replicas.min alone costs more than $0/h: the one decision allowed over the rate
        (BudgetConstraint(0.0, OnConflict.PREFER_BUDGET), "False", "BudgetBelowMinimum", "AtRisk"),
        (BudgetConstraint(0.0, OnConflict.PREFER_SLO), "False", "BudgetExceededForSLO", "AtRisk"),
    ],
    ids=["none", "ample", "tight-prefer-budget", "exhausted-prefer-budget", "exhausted-prefer-slo"],
)
def test_within_budget_condition(pools, budget, status, reason, state) -> None:
    conds, full = _conditions(pools, budget)
    cond = conds["WithinBudget"]
    assert (cond["status"], cond["reason"]) == (status, reason)
    assert full["budgetState"] == state
    if budget is not None and budget.allowed_per_hour == 0:
        assert "$0.00/h" in cond["message"]  # the numbers are in the message
    if budget is not None and budget.on_conflict == OnConflict.PREFER_BUDGET:
        # PreferBudget holds the rate unless the replica minimum alone costs more
        within = float(full["cost"]["perHour"]) <= budget.allowed_per_hour + 1e-9
        assert within or reason == "BudgetBelowMinimum"
