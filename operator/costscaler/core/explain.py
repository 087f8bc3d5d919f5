"""Reasons, messages and the alternatives a decision weighed; the hold on bad data."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from costscaler.api.budget import OnConflict
from costscaler.core import allocate, allowance, billing, fill, nodes
from costscaler.core.allocate import Plan, Problem
from costscaler.core.forecast import DemandForecast
from costscaler.core.risk import IntArray
from costscaler.core.types import (
    Alternative,
    BudgetConstraint,
    Decision,
    EngineState,
    FloatArray,
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
    plan covering the demand at the attainment quantile, the maximum-spot plan (`most_spot`,
    from `fill.max_spot`) and the current allocation."""
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
    out = []
    for k, (name, plan) in enumerate(zip(names, plans, strict=True)):
        allocated, marginal = billing.costs(pl, plan, float(spend[k]), fixed, prob.price)
        replicas = dict(zip(pl.names, plan.tolist(), strict=True))
        out.append(Alternative(name, replicas, allocated, float(risk[k]), marginal))
    return tuple(out)


def _rps(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _allocation(pl: Planner, replicas: IntArray) -> str:
    parts = [f"{int(v)} on {n}" for n, v in zip(pl.names, replicas, strict=True) if v > 0]
    return ", ".join(parts) or "no replicas"


BUDGET_REASONS = frozenset(
    (Reason.BUDGET_LIMITED, Reason.BUDGET_EXCEEDED, Reason.BUDGET_BELOW_MINIMUM)
)


def explain(
    pl: Planner,
    prob: Problem,
    demand: DemandForecast,
    q: float,
    chosen: Plan,
    target: Plan,
    bound: tuple[bool, int],
    fixed: float,
    budget: BudgetConstraint | None,
) -> tuple[Reason, str]:
    """The reason (CamelCase) and a one-paragraph message for people.

    `bound`: whether the budget bound the plan, and the replicas held past it when the
    budget released some of them, else 0 (`core.holds.hold`). Precedence: the budget, the
    spot share relaxed, the SLO at risk, keep-alive, cost-optimal; the message still notes a
    relaxed share or an SLO at risk.
    """
    head = (
        f"Demand {_rps(demand.level)} req/s now, {_rps(demand.quantile(q))} req/s at the "
        f"{q:.1%} quantile in {pl.horizon_s:.0f} s: {_allocation(pl, chosen.replicas)} "
        f"for {_priced(pl, prob, chosen, fixed)}, expected attainment "
        f"{1.0 - chosen.risk:.2%} ({chosen.risk:.2%} of requests over the latency threshold)."
    )
    at_risk = chosen.risk > prob.risk_floor + 1e-9
    relaxed = _relaxed(prob, chosen.replicas)
    risk_note = (
        f" Even this plan, the best within the bounds, misses the SLO attainment target of "
        f"{pl.settings.attainment:.2%}: raise replicas.max or pool limits."
    )
    if budget is not None:
        found = _budget(prob, chosen, target, bound, fixed, budget, head)
        if found is not None:
            return found[0], found[1] + (f" {relaxed}" if relaxed else "")
    if relaxed:
        return Reason.SPOT_LIMIT_RELAXED, f"{head} {relaxed}" + (risk_note if at_risk else "")
    if at_risk:
        return Reason.SLO_AT_RISK, head + risk_note + _share_binds(prob, chosen.replicas)
    if (chosen.replicas > target.replicas).any():
        return Reason.KEEP_ALIVE, (
            f"{head} Idle replicas are kept until holding them costs more than starting them "
            f"again ({_allocation(pl, target.replicas)} would do now)."
        )
    return Reason.COST_OPTIMAL, head


def _relaxed(prob: Problem, plan: IntArray) -> str:
    """What the plan owes to on-demand quota past the spot limits, with the numbers ("" when
    it is within them)."""
    if not prob.spot_relaxed:
        return ""
    total, f = int(plan.sum()), prob.spot_max_fraction
    spot = int(plan @ prob.spot_count)
    share = math.floor(f * total + 1e-9)
    if spot <= share:
        return ""
    od_cap = prob.on_demand_capacity
    most = math.floor(od_cap / (1.0 - f) + 1e-9)
    return (
        f"Spot limits relaxed: replicas.min {prob.total_min} is more than {od_cap} on-demand "
        f"replicas (the on-demand pools' maxima) carry at spot.maxFraction {f:.0%} ({most} "
        f"replicas at most), so on-demand is full and spot holds {spot} of {total} "
        f"replicas, {spot - share} past its share of {share}: raise the on-demand pools' "
        "maxima or spot.maxFraction."
    )


def _share_binds(prob: Problem, plan: IntArray) -> str:
    """Why the total stops where it does when the spot share caps it ("" otherwise): the
    on-demand pools are full and spot is at its share, so spot.maxFraction f holds the total
    to on-demand capacity / (1 - f). (Demand does not relax the limits; replicas.min does.)"""
    f = prob.spot_max_fraction
    if not prob.spot_limits or f >= 1.0:
        return ""
    total, spot = int(plan.sum()), int(plan @ prob.spot_count)
    if total - spot < prob.on_demand_capacity or spot < math.floor(f * total + 1e-9):
        return ""
    return (
        f" spot.maxFraction {f:.0%} with {prob.on_demand_capacity} on-demand replicas at "
        f"most holds the total to {total}: raise the on-demand pools' maxima or "
        "spot.maxFraction."
    )


def _budget(
    prob: Problem,
    chosen: Plan,
    target: Plan,
    bound: tuple[bool, int],
    fixed: float,
    budget: BudgetConstraint,
    head: str,
) -> tuple[Reason, str] | None:
    """The budget's reason and message, or None when the budget changed nothing."""
    allowed = budget.allowed_per_hour
    spend = chosen.spend + fixed
    over = spend - allowed
    limited, trimmed = bound
    if over > 1e-6 and budget.on_conflict == OnConflict.PREFER_SLO:
        whys = []
        if target.spend + fixed > allowed + 1e-6:
            whys.append(f"the plan that meets the SLO costs ${target.spend + fixed:.2f}/h")
        if (chosen.replicas > target.replicas).any():
            whys.append("ready replicas kept serving while the plan's new ones warm")
        why = f" ({'; '.join(whys)})" if whys else ""
        return Reason.BUDGET_EXCEEDED, (
            f"{head} That is ${over:.2f}/h over the budget's ${allowed:.2f}/h{why}; "
            f"onConflict {budget.on_conflict} keeps the SLO."
        )
    if over > 1e-6:  # PreferBudget: only the cheapest plan within the bounds is past it
        least = float(allowance.cheapest(prob) @ prob.price) + fixed
        return Reason.BUDGET_BELOW_MINIMUM, (
            f"{head} The cheapest plan within the replica bounds (replicas.min "
            f"{prob.total_min}, minOnDemandReplicas {prob.min_on_demand}, the spot share) "
            f"costs ${least:.2f}/h, above the budget's ${allowed:.2f}/h: lower replicas.min "
            "or raise the budget."
        )
    if not (limited or trimmed):
        return None
    note = (
        " The expected attainment is below the SLO target."
        if chosen.risk > prob.risk_floor + 1e-9
        else ""
    )
    if trimmed:
        kept = int(np.maximum(chosen.replicas - target.replicas, 0).sum())
        note += (
            f" Of {trimmed} replicas held past the plan (idle ones to their break-even, ready "
            f"ones while new ones warm), the allowance it leaves keeps {kept}, cheapest per "
            "req/s first."
        )
    return Reason.BUDGET_LIMITED, f"{head} Held to the budget's ${allowed:.2f}/h.{note}"


def _priced(pl: Planner, prob: Problem, plan: Plan, fixed: float) -> str:
    """`$M/h` the plan pays (whole nodes, `core.billing`), with ` marginal ($A/h allocated
    TCO)` when owned or reserved replicas make its allocated cost differ."""
    allocated, marginal = billing.costs(pl, plan.replicas, plan.spend, fixed, prob.price)
    if allocated - marginal < 0.005:
        return f"${marginal:.2f}/h"
    return f"${marginal:.2f}/h marginal (${allocated:.2f}/h allocated TCO)"


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


def held(
    pl: Planner, cur: IntArray, state: EngineState, why: str, capacity: FloatArray
) -> Decision:
    """Hold the current allocation (or the last one decided) on bad data: never scale down.

    Bounds still hold: a pool above its maximum, or a total above replicas.max, is trimmed
    (worst $/req/s first); a total below replicas.min is raised (on-demand, best $/req/s
    first); and a spot share above spot.maxFraction, or on-demand replicas below
    minOnDemandReplicas, is restored with on-demand replicas (`_rebalance`). $/req/s is per
    `capacity`, a replica's req/s in each pool as the engine plans on it (at the request
    mix for pools with a token profile, `core.tokens`).
    """
    base = cur.copy()
    if base.sum() == 0:
        base = np.array([state.last_replicas.get(n, 0) for n in pl.names], dtype=np.int64)
    base = np.minimum(np.maximum(base, 0), pl.max_replicas)
    # Raise to the minimum on-demand first, so the spot limits hold too.
    order = np.lexsort((pl.price / capacity, pl.spot))
    for i in order[::-1]:
        base[i] -= min(int(base[i]), max(0, int(base.sum()) - pl.settings.replicas_max))
    for i in order:
        short = pl.settings.replicas_min - int(base.sum())
        base[i] += max(0, min(short, int(pl.max_replicas[i] - base[i])))
    base = _rebalance(pl, base, order)
    replicas = {n: int(v) for n, v in zip(pl.names, base, strict=True)}
    fixed = pl.settings.fixed_per_hour
    spend, marginal = billing.costs(pl, base, float(base @ pl.price), fixed, pl.price)
    return Decision(
        replicas=replicas,
        cost_per_hour=spend,
        marginal_cost_per_hour=marginal,
        nodes=dict(zip(pl.names, nodes.counts(base, pl.per_node).tolist(), strict=True)),
        slo_risk=math.nan,
        reason=Reason.METRICS_UNAVAILABLE,
        message=f"Holding {_allocation(pl, base)}: {why}. No scale-down until metrics return.",
        alternatives=(Alternative("current", replicas, spend, math.nan, marginal),),
        state=state,
        horizon_s=pl.horizon_s,
        metrics_available=False,
    )
