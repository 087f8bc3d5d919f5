"""What a decision holds past its plan: idle replicas to their break-even (keep-alive), ready
ones while the plan's new ones warm (make-before-break), and under PreferBudget only what the
budget's allowance pays for (`core.allowance`). Each hold stays within every hard bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from costscaler.api.budget import OnConflict
from costscaler.core import allocate, allowance, keepalive
from costscaler.core.allocate import Plan, Problem
from costscaler.core.risk import IntArray
from costscaler.core.types import BudgetConstraint, EngineState

if TYPE_CHECKING:
    from costscaler.core.engine import Planner


def hold(
    pl: Planner,
    prob: Problem,
    target: Plan,
    cur: IntArray,
    ready: IntArray,
    state: EngineState,
    now: float,
    limited: bool,
    budget: BudgetConstraint | None,
    fixed: float,
) -> tuple[IntArray, dict[str, tuple[float, ...]], int]:
    """The plan with the replicas held past it (keep-alive, make-before-break), the keep-alive
    clocks, and how many replicas it would hold past the plan when the budget released some
    of them (PreferBudget: `core.allowance`), else 0."""
    prefer_budget = budget is not None and budget.on_conflict == OnConflict.PREFER_BUDGET
    # Past the rate under PreferSLO, idle replicas are not worth more overspend.
    kept, clocks = keep(pl, prob, target, cur, state, now, limited and not prefer_budget)
    final = _make_before_break(pl, prob, kept, cur, ready, target.replicas)
    if budget is None or not prefer_budget:
        return final, clocks, 0
    out = allowance.admit(prob, target.replicas, final, budget.allowed_per_hour - fixed)
    if np.array_equal(out, final):
        return final, clocks, 0
    wanted = int(np.maximum(final - target.replicas, 0).sum())
    return out, allowance.clocks_kept(pl.names, clocks, target.replicas, kept, out), wanted


def _make_before_break(
    pl: Planner, prob: Problem, final: IntArray, cur: IntArray, ready: IntArray, target: IntArray
) -> IntArray:
    """`keepalive.make_before_break` within the hard bounds.

    When serving replicas and the plan's new ones do not fit together (replicas.max), the
    new ones wait (worst merit first) rather than the serving ones go: the move then rolls,
    a few replicas at a time, as the ones started become ready, instead of emptying a pool
    a cold start before its replacement serves.
    """
    merit = prob.merit
    kept = keepalive.make_before_break(final, cur, ready, target, prob.risk.capacity, merit)
    for i in merit[::-1].tolist():
        if allocate.fits(prob, kept):
            return kept
        while kept[i] > cur[i] and not allocate.fits(prob, kept):
            kept[i] -= 1
    return kept if allocate.fits(prob, kept) else final


def keep(
    pl: Planner,
    prob: Problem,
    target: Plan,
    cur: IntArray,
    state: EngineState,
    now: float,
    limited: bool,
) -> tuple[IntArray, dict[str, tuple[float, ...]]]:
    """Target plus surplus held within break-even; holds that break a bound are released."""
    if limited:  # a plan already past the budget pays for no idle replicas
        return target.replicas, {}
    if (cur <= target.replicas).all():  # no surplus: every clock stops
        return target.replicas, {}
    capped = np.minimum(cur, prob.max_replicas)
    hold_s = keepalive.hold_seconds(
        pl.cold_start_s, prob.price, prob.slo_miss_cost, prob.risk.marginal(capped)
    )
    final, clocks = keepalive.apply(
        pl.names, target.replicas, capped, state.idle_since, now, hold_s
    )
    for i in prob.merit[::-1]:  # release the worst merit first
        if allocate.fits(prob, final):
            break
        final[i] = target.replicas[i]
        clocks.pop(pl.names[i], None)
    if not allocate.fits(prob, final):
        return target.replicas, {}
    return final, clocks
