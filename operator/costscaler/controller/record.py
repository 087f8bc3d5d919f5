"""What a tick records: the status (conditions, replicas, cost, lastDecision) and the Event text."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from costscaler.controller.shortfall import capacity_conditions
from costscaler.controller.status import (
    HOURS_PER_MONTH,
    METRICS_AVAILABLE,
    READY,
    SLO_MET,
    WITHIN_BUDGET,
    Cond,
    conditions,
    money,
    pool_counts,
    replace_patch,
    slo_state,
)
from costscaler.core import Decision, errorbudget
from costscaler.core.cost import (
    cost_per_million_input_output,
    cost_per_million_tokens,
    cost_per_thousand_requests,
)
from costscaler.core.pools import pool_views, token_capacity

if TYPE_CHECKING:
    from costscaler.controller.tick_input import TickInput


def describe_change(
    current: Mapping[str, int], target: Mapping[str, int], status: Mapping[str, Any], d: Decision
) -> str:
    """`pool a->b, ...; $x/h -> $y/h (+z); risk r: <engine message>` for the Event."""
    moves = ", ".join(
        f"{p} {current.get(p, 0)}->{n}" for p, n in sorted(target.items()) if current.get(p, 0) != n
    )
    before = (status.get("cost") or {}).get("perHour")
    cost = f"${d.cost_per_hour:.4f}/h"
    if before is not None:
        delta = d.cost_per_hour - float(before)
        cost = f"${float(before):.4f}/h -> {cost} ({delta:+.4f})"
    risk = "unknown" if math.isnan(d.slo_risk) else f"{d.slo_risk:.3f}"
    return f"{moves or 'no change'}; {cost}; SLO risk {risk}: {d.message}"


def _conditions(
    t: TickInput, d: Decision, missing: list[str], target: Mapping[str, int]
) -> tuple[list[Cond], bool | None]:
    r, slo = t.reading, t.infd.spec.slo
    desired = sum(c.desired for c in t.children)
    ready = sum(c.ready for c in t.children)
    if missing:
        ready_c = Cond(READY, False, "PoolNotFound", f"CapacityPools not found: {missing}")
    elif ready < desired:
        ready_c = Cond(READY, False, "ReplicasStarting", f"{ready} of {desired} replicas ready")
    else:
        ready_c = Cond(READY, True, "ReplicasReady", f"{ready} of {desired} replicas ready")
    if r.problem:
        metrics = Cond(METRICS_AVAILABLE, False, r.problem, r.message + "; holding replicas")
    else:
        metrics = Cond(METRICS_AVAILABLE, True, "MetricsFresh", "Prometheus readings usable")
    met: bool | None = None
    checks = [
        ("latency", slo.latency.quantile, slo.latency.threshold_seconds, r.latency_seconds,
         r.attainment),
    ]  # fmt: skip
    for name, stated, seconds, share in (
        ("TTFT", slo.ttft, r.ttft_seconds, r.ttft_attainment),
        ("ITL", slo.itl, r.itl_seconds, r.itl_attainment),
    ):
        if stated is not None:
            checks.append((name, stated.quantile, stated.threshold_seconds, seconds, share))
    texts = []
    for name, quantile, threshold, seconds, share in checks:
        if r.problem or (share is None and seconds is None):
            continue  # not measured: no requests, or no usable series
        # Every stated objective must hold: the share within its threshold against the
        # attainment when the histogram gives it, else its quantile against the threshold.
        ok = share >= slo.attainment if share is not None else (seconds or 0.0) <= threshold
        met = ok if met is None else met and ok
        text = f"p{quantile * 100:g} {name} {seconds} s"
        texts.append(text + (f", {share:.4f} within {threshold} s" if share is not None else ""))
    if met is None:
        slo_c = Cond(SLO_MET, None, "NoLatencyData", "no requests or no usable latency")
    else:
        slo_c = Cond(SLO_MET, met, "WithinSLO" if met else "SLOMissed", "; ".join(texts))
    supply = capacity_conditions(d, target, t.schedulable)
    return [ready_c, slo_c, _budget_condition(t, d), metrics, *supply], met


def _budget_condition(t: TickInput, d: Decision) -> Cond:
    """WithinBudget: whether an Enforce CostBudget's allowed burn rate shaped the plan.

    When it did, the engine's message carries the numbers (the plan's $/h, the allowance, and
    whether the SLO floor or the ceiling won under onConflict, or that the replica minimum
    alone breaks the budget).
    """
    if t.budget is None:
        ref = t.infd.spec.budget_ref
        where = f" (budgetRef {ref.name} is Advisory or has no status yet)" if ref else ""
        return Cond(WITHIN_BUDGET, True, "NoBudget", f"no Enforce CostBudget applies{where}")
    if d.budget_limited:
        return Cond(WITHIN_BUDGET, False, d.reason, d.message)
    return Cond(
        WITHIN_BUDGET,
        True,
        "WithinBudget",
        f"the plan's ${_paid(d.marginal_cost_per_hour, d.cost_per_hour):.2f}/h is within the "
        f"${t.budget.allowed_per_hour:.2f}/h the budget allows",
    )


def _paid(marginal: float, allocated: float) -> float:
    """The marginal $/h, or the allocated one where no marginal figure was priced (they are
    the same for cloud capacity)."""
    return marginal if math.isfinite(marginal) else allocated


def _priced(allocated: float, marginal: float) -> dict[str, str]:
    """costPerHour, the allocated $/h (owned and reserved capacity at full TCO, for
    chargeback), and marginalCostPerHour, what the plan pays (their capex is paid anyway),
    when it was priced."""
    out = {"costPerHour": money(allocated)}
    if math.isfinite(marginal):
        out["marginalCostPerHour"] = money(marginal)
    return out


def _risk(value: float) -> float | None:
    """A probability for status; None (unknown) when the engine could not price the risk."""
    return None if math.isnan(value) else round(min(1.0, max(0.0, value)), 6)


def _current_cost(d: Decision) -> tuple[float, float]:
    """Allocated and marginal $/h of the allocation requested now (the engine prices it as
    the "current" plan)."""
    current = next((a for a in d.alternatives if a.name == "current"), None)
    if current is None:
        return d.cost_per_hour, d.marginal_cost_per_hour
    return current.cost_per_hour, current.marginal_cost_per_hour


def error_budget(t: TickInput, d: Decision) -> dict[str, Any] | None:
    """`status.errorBudget`: the SLO window's counts, attainment, budget left and burn rate
    (`core.errorbudget`), and the target the decision sized for; None while the counts are
    unknown (no histogram, its query failed, or no series yet). The budget left is the
    decision's, of the full window's allowance (a young window's start-up spends a share of
    it); a hold, which forecasts no rate, shows it over the requests so far."""
    slo, r = t.infd.spec.slo, t.reading
    known = errorbudget.counts(r.slo_good, r.slo_total)
    if known is None:
        return None
    so_far = errorbudget.spent(slo.attainment, *known)
    out: dict[str, Any] = {
        "window": slo.window,
        "goodRequests": round(known[0], 3),
        "totalRequests": round(known[1], 3),
        "attainment": _ratio(so_far.attainment),
        "remaining": _ratio(so_far.left if d.error_budget_left is None else d.error_budget_left),
        "burnRate": _ratio(so_far.burn_rate),
        "attainmentTarget": _ratio(d.attainment_target),
    }
    return {k: v for k, v in out.items() if v is not None}


def _ratio(value: float | None) -> float | None:
    """A share or rate for status, to 6 places; None when unknown or not finite (a target of
    1 burns at an infinite rate with one bad request: left unset rather than written)."""
    return None if value is None or not math.isfinite(value) else round(value, 6)


def _requested(t: TickInput) -> dict[str, int]:
    """Replicas asked of each pool now (what runs in Recommend mode)."""
    return {c.pool: c.desired for c in t.children}


def _token_costs(t: TickInput, running: float, replicas: Mapping[str, int]) -> dict[str, str]:
    """perMillionInputTokens and perMillionOutputTokens of what runs, when the server reports
    both token rates (`cost.cost_per_million_input_output`)."""
    r = t.reading
    if r.problem or r.prompt_token_rate is None or r.token_rate is None:
        return {}
    views = pool_views(t.infd.spec, list(t.pools.values()))
    prefill, decode = token_capacity(views, replicas)
    per_input, per_output = cost_per_million_input_output(
        running, r.prompt_token_rate, r.token_rate, prefill, decode
    )
    if not (math.isfinite(per_input) and math.isfinite(per_output)):
        return {}
    return {"perMillionInputTokens": money(per_input), "perMillionOutputTokens": money(per_output)}


def status_for(
    t: TickInput, d: Decision, target: dict[str, int], missing: list[str], enforce: bool
) -> dict[str, Any]:
    """The full status of this tick (camelCase, as the API server stores it)."""
    conds, met = _conditions(t, d, missing, target)
    by_pool = {c.pool: c for c in t.children}
    replicas = [
        {
            "pool": p,
            "desired": by_pool[p].desired if p in by_pool else 0,
            "ready": by_pool[p].ready if p in by_pool else 0,
            "warming": by_pool[p].warming if p in by_pool else 0,
        }
        | ({"warmNodes": t.warm_nodes[p]} if t.warm_nodes and p in t.warm_nodes else {})
        | ({"freeSlots": d.free_slots[p]} if p in d.free_slots else {})
        for p in sorted(set(target) | set(by_pool))
    ]
    r, rate = t.reading, t.reading.request_rate
    # What runs, not what is recommended: in Enforce the children now follow the decision; in
    # Recommend they keep the current allocation. CostBudgets accrue the marginal figure
    # (what decisions pay); perHour is the allocated one, for chargeback.
    running, marginal = (d.cost_per_hour, d.marginal_cost_per_hour) if enforce else _current_cost(d)
    cost: dict[str, Any] = {
        "perHour": money(running),
        "marginalPerHour": money(_paid(marginal, running)),
        "projectedMonthly": money(running * HOURS_PER_MONTH),
    }
    # core.cost gives NaN without traffic (no rate, zero, negative or NaN): then no figure.
    per_1k = cost_per_thousand_requests(running, rate or 0.0)
    if math.isfinite(per_1k):
        cost["per1kRequests"] = money(per_1k)
    per_1m = cost_per_million_tokens(running, r.token_rate or 0.0)
    if math.isfinite(per_1m):
        cost["perMillionTokens"] = money(per_1m)
    cost.update(_token_costs(t, running, target if enforce else _requested(t)))
    status: dict[str, Any] = {
        "observedGeneration": t.infd.metadata.generation,
        "conditions": conditions(
            conds, list(t.status.get("conditions") or []), t.infd.metadata.generation, t.now
        ),
        "replicas": replicas,
        "totalReplicas": sum(c.desired for c in t.children),
        "sloState": slo_state(met, d.slo_risk, t.infd.spec.slo.attainment),
        "budgetState": "NoBudget"
        if t.budget is None
        else ("AtRisk" if d.budget_limited else "WithinBudget"),
        "cost": cost,
        "lastDecision": {
            "time": t.now.isoformat(),
            "reason": d.reason,
            "message": d.message[:2000],
            "replicas": pool_counts(target),
            **_priced(d.cost_per_hour, d.marginal_cost_per_hour),
            "sloRisk": _risk(d.slo_risk),
            "alternatives": [
                {
                    "name": a.name,
                    "replicas": pool_counts(dict(a.replicas)),
                    **_priced(a.cost_per_hour, a.marginal_cost_per_hour),
                    "sloRisk": _risk(a.slo_risk),
                }
                for a in d.alternatives
            ],
        },
        "engineState": replace_patch(t.status.get("engineState"), d.state.to_dict()),
    }
    # Status is merge-patched: null removes a window gone unknown, and keys gone from it.
    status["errorBudget"] = replace_patch(t.status.get("errorBudget"), error_budget(t, d))
    if not r.problem:
        status["observed"] = {
            "time": t.now.isoformat(),
            "requestRate": rate,
            "latencySeconds": r.latency_seconds,
            "tokenRate": r.token_rate,
            "ttftSeconds": r.ttft_seconds,
            "itlSeconds": r.itl_seconds,
            "queueDepth": r.queue_depth,
            "kvCacheUsage": r.kv_cache_usage,
            "promptTokenRate": r.prompt_token_rate,
        }
    if not enforce:
        status["lastDecision"]["message"] = "Recommend mode, not applied. " + d.message[:1900]
    return status
