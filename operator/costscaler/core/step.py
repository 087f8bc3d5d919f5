"""One decision: validate, learn, forecast, optimise, keep alive, explain.

1. Bad latest sample (`core.validate`): hold the current allocation (never lower, raised only
   to the replica minimum), reason MetricsUnavailable, state untouched but for stock-outs
   (replicas a pool cannot place move to other pools: `core.supply.held_elsewhere`).
   A control-plane-wide readiness blip holds too (reason ClusterNotReady, `core.supply`).
2. Learn: the calibrator corrects per-replica capacity, the spot hazards absorb the losses
   observed (each sample is consumed once, so overlapping windows are safe).
3. Forecast demand at the horizon from the window (`core.forecast`).
4. Optimise (`core.allocate`), first without the budget, then within it if the plan breaks it.
5. Keep surplus replicas alive up to their break-even time (`core.keepalive`), and ready ones
   while the plan's new ones warm; under PreferBudget only as far as the allowance pays
   (`core.allowance`).
6. Price the alternatives and say why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from costscaler.api.budget import OnConflict
from costscaler.core import (
    allocate,
    allowance,
    billing,
    capacity,
    cost,
    errorbudget,
    exact,
    fill,
    hazard,
    holds,
    nodes,
    sizes,
    stock,
    supply,
    tokens,
    validate,
    warm,
)
from costscaler.core.allocate import Plan, Problem
from costscaler.core.explain import BUDGET_REASONS, alternatives, explain
from costscaler.core.forecast import DemandForecast, forecast
from costscaler.core.risk import IntArray, RiskModel
from costscaler.core.tokens import TokenMix
from costscaler.core.types import (
    BudgetConstraint,
    Decision,
    EngineState,
    FloatArray,
    Observations,
)

if TYPE_CHECKING:
    from costscaler.core.engine import Planner


def step(
    pl: Planner,
    obs: Observations,
    current: Mapping[str, int],
    now: float,
    state: EngineState,
    budget: BudgetConstraint | None,
    explain_plans: bool = True,
) -> Decision:
    """See the module docstring. Without `explain_plans` the alternatives are left out (a
    replay reads only the replicas, the cost and the state; they do not depend on them)."""
    cur = np.array([max(int(current.get(n, 0)), 0) for n in pl.names], dtype=np.int64)
    bad = validate.problem(obs, now)
    if bad is not None:
        return supply.held_elsewhere(pl, obs, cur, state, now, bad)
    blip = supply.blip_hold(pl, obs, cur, state)
    if blip is not None:
        return blip
    mix = tokens.observed_mix(obs)  # mean tokens per request (`core.tokens`)
    # The request-size mix (`core.sizes`): None without workload.requestSizes.
    size_share = None
    if pl.size_directions is not None:
        size_share = sizes.shares(obs, pl.settings.size_names, pl.settings.size_shares)
    state = learn(pl, obs, state, mix, size_share)
    # Stock-outs are facts: the pool is out from this tick (`core.stock`).
    unplaced = supply.unplaced(pl, obs)
    state = replace(state, stockouts=stock.backoff(state.stockouts, unplaced, now))
    window = obs.times >= now - pl.settings.window_s
    demand = forecast(
        obs.times[window], obs.request_rate[window], pl.horizon_s, pl.settings.daily_seasonality
    )
    # This tick's attainment target: the SLO's, moved by the window's error budget.
    slo = pl.settings
    attainment = errorbudget.attainment_target(
        slo.attainment, slo.slo_window_s, obs.slo_good, obs.slo_total, demand.point
    )
    ready = np.array([_latest(obs.ready, n) for n in pl.names], dtype=np.int64)
    free = nodes.free_slots(pl, obs)  # replicas that start at the model load alone
    maxima = supply.deliverable(pl, obs, ready, now, state)
    prob = problem(pl, state, demand, maxima, cur, attainment, mix, size_share)
    if free is not None:
        prob = replace(
            prob,
            free_slots=free,
            fast_start_cost=warm_up_cost(pl, demand, prob.risk.capacity, pl.load_s),
        )
    q = attainment  # the demand quantile reported and filled to by the starts
    starts = start_plans(pl, prob, demand.quantile(q), cur)
    fixed = pl.settings.fixed_per_hour + pl.settings.egress_per_rps_hour * demand.point
    prob, target, limited = optimise(prob, starts, fixed, budget)
    final, clocks, trimmed = holds.hold(pl, prob, target, cur, ready, state, now, budget, fixed)
    final = nodes.fill(prob, final, pl.per_node)  # a paid node's free slots serve too
    chosen = target if np.array_equal(final, target.replicas) else allocate.plan_of(prob, final)
    replicas = {n: int(v) for n, v in zip(pl.names, final, strict=True)}
    reason, message = explain(
        pl, prob, demand, q, chosen, target, (limited, trimmed), fixed, budget
    )
    reason, message, out, short = supply.annotate(pl, state, now, reason, message)
    message += nodes.slots_note(pl, obs, free, np.maximum(final - cur, 0))
    by_size = prob.risk.mix
    if by_size is not None and size_share is not None:
        seen = sizes.observed_shares(obs, slo.size_names) is not None
        served = float(by_size.capacity(final[None, :].astype(np.float64))[0])
        message += sizes.note(slo.size_names, size_share, seen, served)
    if not target.proven:
        message += (
            f" The exact search stopped at its budget of {exact.MAX_CHILDREN:,} candidate "
            "plans: this is the best plan it found, not proven optimal (the optimum's "
            f"objective is at most {100 * target.gap:.1f} % lower)."
        )
    spend, marginal = billing.costs(pl, final, chosen.spend, fixed, prob.price)
    output_rate = math.nan if obs.token_rate is None else float(obs.token_rate[-1])
    full = (
        None
        if obs.slo_total is None
        else errorbudget.expected(obs.slo_total, slo.slo_window_s, demand.point)
    )
    budget_so_far = errorbudget.spent(slo.attainment, obs.slo_good, obs.slo_total, full)
    # Warm spare nodes (`core.warm`): none while the budget binds the plan.
    need = warm.need(pl, prob, final, reason in BUDGET_REASONS)
    return Decision(
        replicas=replicas,
        cost_per_hour=spend,
        slo_risk=chosen.risk,
        optimum_proven=target.proven,
        optimum_gap=target.gap,
        expected_attainment=1.0 - chosen.risk,
        violating_share=chosen.risk,
        reason=reason,
        message=message,
        out_of_stock=out,
        quota_shortfall=short,
        alternatives=(
            alternatives(pl, prob, starts[0], chosen, target, cur, fixed) if explain_plans else ()
        ),
        state=replace(state, idle_since=clocks, last_replicas=replicas),
        quantile=q,
        demand_rps=demand.quantile(q),
        horizon_s=pl.horizon_s,
        budget_limited=reason in BUDGET_REASONS,
        spot_limit_relaxed=prob.spot_relaxed,
        cost_per_1k_requests=cost.cost_per_thousand_requests(spend, float(obs.request_rate[-1])),
        cost_per_million_tokens=cost.cost_per_million_tokens(spend, output_rate),
        idle_accelerators=idle_accelerators(pl, prob, final, float(obs.request_rate[-1])),
        marginal_cost_per_hour=marginal,
        nodes=dict(zip(pl.names, nodes.counts(final, pl.per_node).tolist(), strict=True)),
        free_slots={}
        if free is None
        else {n: int(free[pl.index[n]]) for n in obs.free_accelerators if n in pl.index},
        warm_nodes=warm.spares([need] if need else []),
        warm_need=need,
        attainment_target=attainment,
        error_budget_left=budget_so_far.left,
        burn_rate=budget_so_far.burn_rate,
    )


def _latest(series: Mapping[str, FloatArray], name: str) -> int:
    """The latest sample of a per-pool series (0 when the pool is missing or it is not finite)."""
    arr = series.get(name)
    if arr is None or arr.size == 0 or not math.isfinite(float(arr[-1])):
        return 0
    return max(int(arr[-1]), 0)


def idle_accelerators(pl: Planner, prob: Problem, plan: IntArray, rate_rps: float) -> float:
    """Accelerators of `plan` not needed at `rate_rps`: the plan's accelerators times the
    share of its capacity left unused (each replica's accelerators per req/s, on average),
    plus those of its nodes' empty replica slots (paid whole, `core.nodes`). With request
    sizes the plan's capacity is the size-aware routing's (`core.sizes`)."""
    used = float(plan @ pl.accelerators)
    mix = prob.risk.mix
    served = float(
        plan @ prob.risk.capacity
        if mix is None
        else mix.capacity(plan[None, :].astype(np.float64))[0]
    )
    needed = used * min(rate_rps / served, 1.0) if served > 0 else 0.0
    provisioned = used + float(nodes.empty(plan, pl.per_node) @ pl.accelerators)
    return cost.idle_accelerator_hours(provisioned, needed, 3600.0)  # per hour: a count


def optimise(
    prob: Problem,
    starts: list[IntArray],
    fixed: float,
    budget: BudgetConstraint | None,
) -> tuple[Problem, Plan, bool]:
    """The cost-optimal plan; if it breaks the budget's burn rate, the best plan within it.

    Returns the problem solved (with the budget when it bound), the plan (the exact optimum,
    `core.exact`) and whether the budget bound. `fixed` ($/h) is what the plan pays besides
    accelerators.
    """
    target = exact.optimum(prob, starts)
    limited = budget is not None and target.spend + fixed > budget.allowed_per_hour + 1e-9
    if budget is not None and limited:
        prefer_slo = budget.on_conflict == OnConflict.PREFER_SLO
        prob = replace(prob, budget=budget.allowed_per_hour - fixed, prefer_slo=prefer_slo)
        least = allowance.cheapest(prob)
        target = exact.optimum(prob, [*starts, target.replicas, least])
        cheapest = allocate.plan_of(prob, least)
        # PreferBudget: nothing above the allowance unless even the cheapest plan is.
        if not prefer_slo and target.spend > max(prob.budget, cheapest.spend) + 1e-9:
            target = cheapest
    return prob, target, limited


def learn(
    pl: Planner,
    obs: Observations,
    state: EngineState,
    mix: TokenMix | None = None,
    size_share: FloatArray | None = None,
) -> EngineState:
    """Fold the new samples into the capacity calibrator and the spot-hazard posteriors; the
    calibrator compares the load with the capacity at the request `mix` (of the ready
    replicas together at the size mix `size_share`, `core.sizes`), and the latency with
    every stated objective, TTFT and ITL included (`tokens.slowest`)."""
    n = obs.times.size
    # Both learners consume only samples after their `until` (and a few before, which the
    # calibrator compares with): work on that tail, not the whole window, each tick.
    seen = min(state.calibrated_until, state.hazard_until)
    start = max(int(np.searchsorted(obs.times, seen, side="right")) - capacity.DRAIN_LAG, 0)
    times = obs.times[start:]
    ready = supply.per_pool(pl, obs.ready, n, start)
    lost = supply.per_pool(pl, obs.lost, n, start)
    warming = supply.per_pool(pl, obs.warming, n, start)
    same = np.concatenate(([False], (ready[:, 1:] == ready[:, :-1]).all(axis=0)))
    steady = (same & (lost.sum(axis=0) == 0)).astype(np.float64)
    # With TTFT or ITL objectives, a sample meets the SLO when every objective does.
    cut = [(None if x is None else x[start:]) for x in (obs.ttft, obs.itl)]
    seen_s, threshold_s = tokens.slowest(
        obs.latency[start:],
        pl.settings.latency_threshold_s,
        [(cut[0], pl.settings.ttft), (cut[1], pl.settings.itl)],
    )
    scale, until = capacity.calibrate(
        state.capacity_scale,
        state.calibrated_until,
        times,
        obs.request_rate[start:],
        seen_s,
        serving(pl, mix, size_share, ready),
        steady,
        threshold_s,
    )
    spot = pl.spot_index
    running = ready[spot] + warming[spot]
    post = hazard.posteriors(
        state.hazard, pl.hazard_priors, times, running, lost[spot], state.hazard_until
    )
    burst = hazard.bursts(state.burst, pl.burst_priors, times, lost[spot], state.hazard_until)
    return replace(
        state,
        capacity_scale=scale,
        calibrated_until=until,
        hazard=post,
        burst=burst,
        hazard_until=max(state.hazard_until, float(obs.times[-1])),
    )


def problem(
    pl: Planner,
    state: EngineState,
    demand: DemandForecast,
    maxima: IntArray | None = None,
    cur: IntArray | None = None,
    attainment: float | None = None,
    mix: TokenMix | None = None,
    size_share: FloatArray | None = None,
) -> Problem:
    """The allocation problem with calibrated capacity, learned spot hazards and the
    `attainment` target (`core.errorbudget`; the SLO's by default); per-pool `maxima`
    (`supply.deliverable`; the pools' own by default) and, with the running replicas `cur`,
    the warm-up a replica started beyond them pays (`warm_up_cost`). With the request
    `mix`, pools with a token profile have their capacity at it and the TTFT and ITL
    objectives enter the latency model (`core.tokens`); with the request-size mix
    `size_share`, a plan's capacity is the size-aware routing's (`core.sizes`)."""
    rate = np.array(
        [
            hazard.rate(state.hazard[n]) if pl.spot[i] and n in state.hazard else 0.0
            for i, n in enumerate(pl.names)
        ]
    )
    exposure = rate * pl.cold_start_s / 3600.0  # expected losses per replica before replacement
    # The learned share of it that comes as whole-pool bursts (the prior before any loss).
    share = np.array(
        [
            hazard.burst_share(state.burst.get(n, pl.burst_priors[n])) if pl.spot[i] else 0.0
            for i, n in enumerate(pl.names)
        ]
    )
    s = pl.settings
    attainment = s.attainment if attainment is None else attainment
    capacity = per_replica(pl, mix) * state.capacity_scale
    by_size = None
    if pl.size_directions is not None and size_share is not None:
        by_size = sizes.mix_capacity(pl.size_directions, size_share, state.capacity_scale)
    if by_size is not None:
        capacity = by_size.single
    token_model = tokens.token_latency(
        pl.prefill_tps, pl.decode_tps, pl.kv_bound, mix, s.ttft, s.itl, s.attainment
    )
    return Problem(
        price=pl.price * (1.0 + exposure),
        spot=pl.spot,
        max_replicas=pl.max_replicas if maxima is None else maxima,
        total_min=s.replicas_min,
        total_max=s.replicas_max,
        spot_max_fraction=s.spot_max_fraction,
        min_on_demand=s.min_on_demand,
        slo_miss_cost=s.slo_miss_cost_per_hour,
        risk_floor=1.0 - attainment,
        risk=RiskModel(
            capacity=capacity,
            # A loss is out for a replacement's cold start: the share of time capacity misses.
            indep_loss=1.0 - np.exp(-(1.0 - share) * exposure),
            burst_prob=1.0 - np.exp(-share * exposure),
            demand=demand,
            base_latency_s=pl.base_latency_s,
            threshold_s=s.latency_threshold_s,
            tokens=token_model,
            quantile=s.latency_quantile,
            mix=by_size,
        ),
        floor_demand=demand.quantile(attainment),
        current=cur,
        start_cost=None if cur is None else warm_up_cost(pl, demand, capacity),
        per_node=pl.per_node,
    )


def per_replica(pl: Planner, mix: TokenMix | None) -> FloatArray:
    """Req/s one replica of each pool serves before calibration: at the request `mix` where
    the pool has a token profile, else as declared (`tokens.capacity`)."""
    return tokens.capacity(pl.capacity, pl.prefill_tps, pl.decode_tps, mix)


def serving(
    pl: Planner, mix: TokenMix | None, size_share: FloatArray | None, ready: FloatArray
) -> FloatArray:
    """Req/s the `ready` replicas (pools x samples) serve together before calibration: at
    the size mix when there is one (`core.sizes`), else the sum of `per_replica`."""
    if pl.size_directions is not None and size_share is not None:
        by_size = sizes.mix_capacity(pl.size_directions, size_share)
        if by_size is not None:
            return by_size.capacity(np.asarray(ready, dtype=np.float64).T)
    return np.asarray(per_replica(pl, mix) @ ready, dtype=np.float64)


def warm_up_cost(
    pl: Planner, demand: DemandForecast, capacity: FloatArray, wait_s: FloatArray | None = None
) -> FloatArray:
    """$/h a replica started now pays for its warm-up: price x cold start / lifetime (the
    time it waits, `wait_s`, in place of the cold start when given: a free slot's model load).

    The lifetime (s) is how long the demand that needs the replica is expected to last. With
    demand falling at the forecast's trend, one replica's worth of it (its capacity, req/s)
    is gone after capacity / -trend; with demand flat or rising, it lasts at least as long as
    the observation window has seen it (`forecast.windowSeconds`), which caps the lifetime. A
    replica never lives less than the horizon (the shortest time a plan governs).
    """
    falling = max(-demand.trend, 0.0)
    with np.errstate(divide="ignore"):
        life = np.where(falling > 0, capacity / max(falling, 1e-300), np.inf)
    life = np.clip(life, max(pl.horizon_s, 1.0), max(pl.settings.window_s, pl.horizon_s, 1.0))
    wait = pl.cold_start_s if wait_s is None else wait_s
    return np.asarray(pl.price * wait / life, dtype=np.float64)


def start_plans(pl: Planner, prob: Problem, demand_rps: float, cur: IntArray) -> list[IntArray]:
    """Where the search starts (the best is the branch and bound's first incumbent): the
    maximum-spot plan at `demand_rps` (first: the alternatives report it), then merit-order
    fills of all pools and of on-demand pools only, and maximum-spot plans, sized to the
    least capacity at which any pool's latency curve meets the SLO and a seventh more
    (`RiskModel.capacity_for`: the queueing slack a plan needs over demand), and the
    current allocation; with request sizes also the relaxed cheapest plans (all pools, and
    on-demand only) scaled to those capacities and rounded up (`MixCapacity.cheapest`: the
    fills above size pools by what each serves alone, far above what a mix of them serves).
    They change how fast the exact search is, not its result (but for the plan it returns
    when its budget runs out)."""
    merit = prob.merit
    if prob.spot_relaxed:  # the compiled starts would break the relaxed share
        most = fill.relaxed(prob, demand_rps, merit)
        least = fill.relaxed(prob, demand_rps, merit, use_spot=False)
        return [most, most.copy(), least, np.minimum(cur, prob.max_replicas)]
    plans = [fill.max_spot(prob, demand_rps, merit)]
    need = prob.risk.capacity_for(prob.risk_floor)
    for rps in (need, need * 8.0 / 7.0) if math.isfinite(need) else (demand_rps,):
        plans += [
            fill.max_spot(prob, rps, merit),
            fill.fill(prob, rps, merit),
            fill.fill(prob, rps, merit, use_spot=False),
        ]
    mix = prob.risk.mix
    if mix is not None:
        for allowed in (np.ones_like(prob.spot), ~prob.spot):
            unit = mix.cheapest(prob.price, allowed)
            if unit is None:
                continue
            for rps in (need, need * 8.0 / 7.0) if math.isfinite(need) else (demand_rps,):
                plans.append(np.minimum(np.ceil(rps * unit), prob.max_replicas).astype(np.int64))
                plans.append(_repaired(prob, mix, np.floor(rps * unit), rps, allowed))
    return [*plans, np.minimum(cur, prob.max_replicas)]


def _repaired(
    prob: Problem, mix: sizes.MixCapacity, floor: FloatArray, rps: float, allowed: NDArray[np.bool_]
) -> IntArray:
    """The relaxed plan rounded down, then the replica with the most C(x) per $/h added until
    C(x) reaches `rps`: rounding every pool up pays up to one replica of each type too many,
    and at a hundred replicas the search's budget may end before it sheds them."""
    x = np.minimum(floor, prob.max_replicas).astype(np.float64)
    room = allowed & (x < prob.max_replicas)
    for _ in range(4 * x.size + 8):  # each pass adds a replica; a few per pool close the gap
        have = float(mix.capacity(x[None, :])[0])
        if have >= rps or not room.any():
            break
        trial = x[None, :] + np.diag(room.astype(np.float64))[room]
        gain = (mix.capacity(trial) - have) / prob.price[room]
        x[np.flatnonzero(room)[int(np.argmax(gain))]] += 1.0
        room = allowed & (x < prob.max_replicas)
    return x.astype(np.int64)
