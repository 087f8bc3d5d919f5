"""Reasons, messages and the alternatives a decision weighed; the hold on bad data."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from costscaler.core import allocate, fill
from costscaler.core.allocate import Plan, Problem
from costscaler.core.forecast import DemandForecast
from costscaler.core.risk import IntArray
from costscaler.core.types import (
    Alternative,
    BudgetConstraint,
    Decision,
    EngineState,
    Reason,
)

if TYPE_CHECKING:
    from costscaler.core.engine import Planner


def alternatives(
    pl: Planner,
    prob: Problem,
    most_spot: IntArray,
    chosen: Plan,
    target: Plan,
    cur: IntArray,
    fixed: float,
) -> tuple[Alternative, ...]:
    """The chosen plan, the plan before keep-alive (if different), the cheapest all-on-demand
    plan meeting the SLO floor, the maximum-spot plan (`most_spot`, from `fill.max_spot`)
    and the current allocation."""
    names, plans = ["chosen"], [chosen.replicas]
    if not np.array_equal(chosen.replicas, target.replicas):
        names.append("without-keep-alive")
        plans.append(target.replicas)
    if (~pl.spot).any():
        names.append("cheapest-on-demand")
        plans.append(fill.cheapest_on_demand(prob))
    if pl.spot.any():
        names.append("max-spot")
        plans.append(most_spot)
    names.append("current")
    plans.append(cur)
    spend, risk, _ = allocate.evaluate(prob, np.stack(plans))
    return tuple(
        Alternative(
            name,
            dict(zip(pl.names, plan.tolist(), strict=True)),
            float(spend[k]) + fixed,
            float(risk[k]),
        )
        for k, (name, plan) in enumerate(zip(names, plans, strict=True))
    )


def _rps(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _allocation(pl: Planner, replicas: IntArray) -> str:
    parts = [f"{int(v)} on {n}" for n, v in zip(pl.names, replicas, strict=True) if v > 0]
    return ", ".join(parts) or "no replicas"


def explain(
    pl: Planner,
    prob: Problem,
    demand: DemandForecast,
    q: float,
    chosen: Plan,
    target: Plan,
    limited: bool,
    fixed: float,
    budget: BudgetConstraint | None,
) -> tuple[Reason, str]:
    """The reason (CamelCase) and a one-paragraph message for people."""
    head = (
        f"Demand {_rps(demand.level)} req/s now, {_rps(demand.quantile(q))} req/s at the "
        f"{q:.1%} quantile in {pl.horizon_s:.0f} s: {_allocation(pl, chosen.replicas)} "
        f"for ${chosen.spend + fixed:.2f}/h, SLO risk {chosen.risk:.2%}."
    )
    if limited and budget is not None:
        return _budget(prob, chosen, fixed, budget, head)
    if chosen.risk > prob.risk_floor + 1e-9:
        return Reason.SLO_AT_RISK, (
            f"{head} Even this plan, the best within the bounds, misses the SLO attainment "
            f"target of {pl.settings.attainment:.2%}: raise replicas.max or pool limits."
        )
    if (chosen.replicas > target.replicas).any():
        return Reason.KEEP_ALIVE, (
            f"{head} Idle replicas are kept until holding them costs more than starting them "
            f"again ({_allocation(pl, target.replicas)} would do now)."
        )
    return Reason.COST_OPTIMAL, head


def _budget(
    prob: Problem, chosen: Plan, fixed: float, budget: BudgetConstraint, head: str
) -> tuple[Reason, str]:
    allowed = f"${budget.allowed_per_hour:.2f}/h"
    over = chosen.spend + fixed > budget.allowed_per_hour + 1e-6
    if over and prob.prefer_slo:
        return Reason.BUDGET_EXCEEDED, (
            f"{head} Meeting the SLO needs more than the budget's {allowed}; "
            f"onConflict {budget.on_conflict} keeps the SLO."
        )
    note = " The SLO risk is above its floor." if chosen.risk > prob.risk_floor + 1e-9 else ""
    if over:
        note += " The replica minimum alone costs more than the budget allows."
    return Reason.BUDGET_LIMITED, f"{head} Held to the budget's {allowed}.{note}"


def _rebalance(pl: Planner, base: IntArray, order: IntArray) -> IntArray:
    """Restore the spot limits without scaling any pool down: add on-demand replicas (best
    $/req/s first) while the spot share is too high or the on-demand floor unmet. Where no
    on-demand replica can be added (replicas.max, pool maxima), the spot limits yield until
    metrics return: a hold never releases a replica on data it cannot read."""
    s = pl.settings
    od = [int(i) for i in order if not pl.spot[i]]

    def broken() -> bool:
        total, n_spot = int(base.sum()), int(base[pl.spot].sum())
        od_floor = min(s.min_on_demand, total)
        return n_spot > math.floor(s.spot_max_fraction * total + 1e-9) or (
            total - n_spot < od_floor
        )

    while broken() and int(base.sum()) < s.replicas_max:
        room = [i for i in od if base[i] < pl.max_replicas[i]]
        if not room:
            break
        base[room[0]] += 1
    return base


def held(pl: Planner, cur: IntArray, state: EngineState, why: str) -> Decision:
    """Hold the current allocation (or the last one decided) on bad data: never scale down.

    Bounds still hold: a pool above its maximum, or a total above replicas.max, is trimmed
    (worst $/req/s first); a total below replicas.min is raised (on-demand, best $/req/s
    first); and a spot share above spot.maxFraction, or on-demand replicas below
    minOnDemandReplicas, is restored with on-demand replicas (`_rebalance`).
    """
    base = cur.copy()
    if base.sum() == 0:
        base = np.array([state.last_replicas.get(n, 0) for n in pl.names], dtype=np.int64)
    base = np.minimum(np.maximum(base, 0), pl.max_replicas)
    # Raise to the minimum on-demand first, so the spot limits hold too.
    order = np.lexsort((pl.price / pl.capacity, pl.spot))
    for i in order[::-1]:
        base[i] -= min(int(base[i]), max(0, int(base.sum()) - pl.settings.replicas_max))
    for i in order:
        short = pl.settings.replicas_min - int(base.sum())
        base[i] += max(0, min(short, int(pl.max_replicas[i] - base[i])))
    base = _rebalance(pl, base, order)
    replicas = {n: int(v) for n, v in zip(pl.names, base, strict=True)}
    spend = float(base @ pl.price) + pl.settings.fixed_per_hour
    return Decision(
        replicas=replicas,
        cost_per_hour=spend,
        slo_risk=math.nan,
        reason=Reason.METRICS_UNAVAILABLE,
        message=f"Holding {_allocation(pl, base)}: {why}. No scale-down until metrics return.",
        alternatives=(Alternative("current", replicas, spend, math.nan),),
        state=state,
        horizon_s=pl.horizon_s,
        metrics_available=False,
    )
