"""A CostBudget tick: accrual, conditions, once-per-period alerts and Enforce allowances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from costscaler.api import CostBudget, load_kind
from costscaler.api.budget import Enforcement, OnConflict
from costscaler.controller.budget_tick import Member, budget_tick, member_from_body, members_of

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)  # 12 h left in November


def _budget(amount: str = "100", **spec: Any) -> CostBudget:
    budget = load_kind(EXAMPLES, CostBudget)[0].model_copy(deep=True)
    budget.spec.limit.amount = amount
    for key, value in spec.items():
        setattr(budget.spec, key, value)
    return budget


def _member(name: str, rate: str, team: str = "ml-platform", need: str | None = None) -> Member:
    return Member("default", name, {"team": team}, None, Decimal(rate), Decimal(need or rate))


def _conds(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def test_members_are_selected_by_labels_or_budget_ref() -> None:
    budget = _budget()
    candidates = [
        _member("a", "1"),
        _member("b", "1", team="search"),
        Member("default", "c", {}, "team-ml", Decimal(1), Decimal(1)),
        Member("other", "d", {"team": "ml-platform"}, None, Decimal(1), Decimal(1)),
    ]
    assert [m.name for m in members_of(budget, candidates)] == ["a", "c"]


def test_member_from_a_raw_body_reads_status_figures() -> None:
    body = {
        "metadata": {"name": "llama", "namespace": "ml", "labels": {"team": "x"}},
        "spec": {"budgetRef": {"name": "b"}},
        "status": {"cost": {"perHour": "3.2000"}, "lastDecision": {"costPerHour": "4.1"}},
    }
    m = member_from_body(body)
    assert (m.namespace, m.budget_ref, m.rate_per_hour, m.need_per_hour) == (
        "ml",
        "b",
        Decimal("3.2"),
        Decimal("4.1"),
    )
    bare = member_from_body({"metadata": {"name": "new"}})
    assert bare.rate_per_hour == 0 and bare.need_per_hour == 0 and bare.namespace == "default"


def test_ticks_accrue_and_alert_once() -> None:
    budget = _budget("100")
    members = [_member("llama", "30")]
    first = budget_tick(budget, members, None, {}, T0)
    assert first.status["spent"] == "0.000000"  # nothing before the first tick
    second = budget_tick(budget, members, first.ledger, first.status, T0 + timedelta(hours=1))
    assert Decimal(second.status["spent"]) == 30
    assert second.new_alerts == ()
    third = budget_tick(budget, members, second.ledger, second.status, T0 + timedelta(hours=2))
    assert third.new_alerts == (0.5,)
    assert [e[1] for e in third.events] == ["BudgetThresholdCrossed"]
    fourth = budget_tick(
        budget, members, third.ledger, third.status, T0 + timedelta(hours=2, seconds=15)
    )
    assert fourth.new_alerts == () and fourth.events == []
    assert _conds(fourth.status) == {
        "WithinBudget": "False",
        "AtRisk": "True",
        "Exceeded": "False",
        "Enforced": "True",
    }


def test_restart_uses_the_checkpoint_in_status() -> None:
    budget = _budget("100")
    members = [_member("llama", "10")]
    first = budget_tick(budget, members, None, {}, T0)
    second = budget_tick(budget, members, first.ledger, first.status, T0 + timedelta(hours=1))
    budget.status = (
        type(budget).model_validate({**budget.to_wire(), "status": second.status}).status
    )
    restarted = budget_tick(budget, members, None, second.status, T0 + timedelta(hours=2))
    assert Decimal(restarted.status["spent"]) == 20


@pytest.mark.parametrize(
    ("enforcement", "conflict", "expected"),
    [
        (Enforcement.ENFORCE, OnConflict.PREFER_BUDGET, {"a": 3.0, "b": 1.0}),
        (Enforcement.ADVISORY, OnConflict.PREFER_SLO, {}),
    ],
    ids=["enforce", "advisory"],
)
def test_allowances_share_what_is_left_by_need(
    enforcement: Enforcement, conflict: OnConflict, expected: dict[str, float]
) -> None:
    budget = _budget("48", enforcement=enforcement, on_conflict=conflict)  # 48 $ over 12 h
    members = [_member("a", "1", need="6"), _member("b", "1", need="2")]
    result = budget_tick(budget, members, None, {}, T0)
    got = {k[1]: v.allowed_per_hour for k, v in result.allowances.items()}
    assert got == pytest.approx(expected)
    assert all(v.on_conflict == conflict for v in result.allowances.values())
    enforced = next(c for c in result.status["conditions"] if c["type"] == "Enforced")
    assert enforced["reason"] == (conflict.value if expected else "Advisory")


def test_a_member_accrues_the_marginal_cost_when_status_has_it() -> None:
    body = {
        "metadata": {"name": "d", "namespace": "ns"},
        "status": {
            "cost": {"perHour": "5.77", "marginalPerHour": "1.90"},
            "lastDecision": {"costPerHour": "6.00", "marginalCostPerHour": "2.00"},
        },
    }
    m = member_from_body(body)
    assert (m.rate_per_hour, m.need_per_hour) == (Decimal("1.90"), Decimal("2.00"))
    old = member_from_body({**body, "status": {"cost": {"perHour": "5.77"}}})
    assert (old.rate_per_hour, old.need_per_hour) == (Decimal("5.77"), Decimal("5.77"))
