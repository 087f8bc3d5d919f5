"""What a decision holds past its plan: idle replicas to their break-even (keep-alive), ready
ones while the plan's new ones warm (make-before-break); with a budget, only what its
allowance pays for, except the warm-up holds under PreferSLO (`hold`, `core.allowance`).
Each hold stays within every hard bound.
"""

from __future__ import annotations

import math
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
    budget: BudgetConstraint | None,
    fixed: float,
) -> tuple[IntArray, dict[str, tuple[float, ...]], int]:
    """The plan with the replicas held past it, the keep-alive clocks, and how many replicas
    it would hold past the plan when the budget released some of them, else 0.

    Past the allowance (`budget`, less `fixed` $/h), the held replicas compete for what is
    left of it (`core.allowance`). Under PreferBudget, all of them; under PreferSLO, the
    ready replicas the plan's new ones still need while they warm (make-before-break from
    the plan alone) stay whatever they cost, as the SLO now needs them: only the idle ones
    compete.
    """
    kept, clocks = keep(pl, prob, target, cur, state, now)
    final = _make_before_break(pl, prob, kept, cur, ready, target.replicas)
    room = math.inf if budget is None else budget.allowed_per_hour - fixed
    if float(final @ prob.price) <= room + 1e-9:
        return final, clocks, 0
    base = target.replicas
    if budget is not None and budget.on_conflict == OnConflict.PREFER_SLO:
        base = _make_before_break(pl, prob, base, cur, ready, target.replicas)
    out = allowance.admit(prob, base, final, room)
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
) -> tuple[IntArray, dict[str, tuple[float, ...]]]:
    """Target plus surplus held within break-even; holds that break a bound are released.
    (A budget then bounds them: `hold`.)"""
    if (cur <= target.replicas).all():  # no surplus: every clock stops
        return target.replicas, {}
    capped = np.minimum(cur, prob.max_replicas)
    hold_s = keepalive.hold_seconds(
        pl.cold_start_s, prob.price, prob.slo_miss_cost / prob.divisor, prob.risk.marginal(capped)
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
