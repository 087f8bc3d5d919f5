"""A CostBudget in the replay: the limit over the replayed span, enforced as the operator does.

The operator accrues what runs (the cost of the allocation each decision applied) and hands
the engine the burn rate still allowed: what is left over the time left (core.budget_view).
`BudgetMeter` does the same inside the `costscaler` policies, so the simulator shows what
enforcing a budget costs in SLO attainment (PreferBudget) or what spend the SLO floor reaches
(PreferSLO).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from costscaler.api.budget import OnConflict
from costscaler.core import BudgetConstraint
from costscaler.core.budget_view import allowed_burn_rates


@dataclass(frozen=True)
class SimBudget:
    """A limit ($) over `period_s` seconds from the start of the replay."""

    limit: float
    period_s: float
    on_conflict: OnConflict = OnConflict.PREFER_BUDGET


@dataclass
class BudgetMeter:
    """Spend accrued at the applied plan's $/h between decisions, and the allowance it leaves."""

    budget: SimBudget
    spent: float = 0.0
    _rate: float = 0.0
    _since: float = 0.0

    def allowance(self, now_s: float) -> BudgetConstraint:
        """Accrue up to `now_s`; the burn rate ($/h) the rest of the period allows."""
        self.spent += self._rate * max(0.0, now_s - self._since) / 3600
        self._since = now_s
        hours_left = max(0.0, self.budget.period_s - now_s) / 3600
        allowed = allowed_burn_rates(
            Decimal(str(self.budget.limit)),
            Decimal(str(self.spent)),
            hours_left,
            {"d": Decimal(1)},
        )["d"]
        return BudgetConstraint(float(allowed), self.budget.on_conflict)

    def applied(self, cost_per_hour: float) -> None:
        """The $/h of the plan the policy just applied (accrued until the next decision)."""
        self._rate = cost_per_hour
