"""What the pools can deliver this tick, in the planner's terms (`core.stock` has the rules).

`deliverable` caps a pool that is out of stock (the cluster said so: `stock.backoff`) at the
replicas it has placed, or stalled (`stock.stalled`) at those it has ready, so the plan moves
its share to the next pools in merit order; `held_elsewhere` does the same to the hold on
bad data, where no plan is made. `blip_hold` answers a control-plane-wide readiness blip
with a hold. `annotate` names stock-outs and a replicas.min beyond the pools' quotas in the
reason and message, so neither hides behind CostOptimal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from costscaler.core import stock, tokens
from costscaler.core.explain import held
from costscaler.core.risk import IntArray
from costscaler.core.types import Decision, EngineState, FloatArray, Observations, Reason

if TYPE_CHECKING:
    from costscaler.core.engine import Planner

# Reasons a shortfall of supply may replace: the ones that would say all is well. Budget,
# spot-limit and SLO reasons keep precedence; the message carries the shortfall either way.
_REPLACEABLE = frozenset((Reason.COST_OPTIMAL, Reason.KEEP_ALIVE))


def per_pool(pl: Planner, arrays: Mapping[str, FloatArray], n: int, start: int = 0) -> FloatArray:
    """Samples `start:n` of a per-pool series as rows in the planner's pool order (0 where a
    pool has none)."""
    out = np.zeros((len(pl.names), n - start))
    for name, arr in arrays.items():
        i = pl.index.get(name)
        if i is not None:
            out[i] = arr[start:]
    return out


def unplaced(pl: Planner, obs: Observations) -> dict[str, int]:
    """The latest sample's unfulfillable replicas per pool (NaN and negatives count as 0)."""
    out = {}
    for name, arr in obs.unfulfillable.items():
        if name in pl.index and arr.size:
            value = float(arr[-1])
            out[name] = int(value) if math.isfinite(value) and value > 0 else 0
    return out


def deliverable(
    pl: Planner, obs: Observations, ready: IntArray, now: float, state: EngineState
) -> IntArray:
    """Per-pool maxima: a stalled pool's capped at what it has ready, an out-of-stock pool's
    at what it has placed (`placed`), and a pool on probation (retried after a stock-out,
    `stock.probing`) at one more than that: a retry probes with one replica a tick rather
    than bet the pool's whole share, and the rest of a scale-up, on capacity that may not
    be there."""
    out = stock.out_of_stock(state.stockouts, now)
    probe = stock.probing(state.stockouts, now)
    capped = np.array([n in out or n in probe for n in pl.names], dtype=np.bool_)
    extra = np.array([n in probe for n in pl.names], dtype=np.int64)
    cap = np.where(capped, placed(pl, obs, ready) + extra, ready)
    window = obs.times >= now - pl.settings.window_s
    index = pl.index
    # Nothing warmed in the window: nothing can have stalled (and the scan is skipped).
    if any(name in index and (arr[window] > 0).any() for name, arr in obs.warming.items()):
        capped |= stock.stalled(
            obs.times[window],
            per_pool(pl, obs.ready, obs.times.size)[:, window],
            per_pool(pl, obs.warming, obs.times.size)[:, window],
            pl.cold_start_s,
        )
    return np.where(capped, np.minimum(pl.max_replicas, cap), pl.max_replicas)


def merit_capacity(pl: Planner, obs: Observations) -> FloatArray:
    """Req/s of one replica of each pool as the engine plans on it, for the merit order of
    a hold: at the request mix of the window's usable samples for pools with a token
    profile, as declared for the others (`core.tokens`; calibration scales every pool
    alike, so it never changes the order)."""
    return tokens.capacity(pl.capacity, pl.prefill_tps, pl.decode_tps, tokens.observed_mix(obs))


def placed(pl: Planner, obs: Observations, ready: IntArray) -> IntArray:
    """Per pool, replicas ready or on their way: the latest warming ones less those the
    cluster cannot place. Cutting replicas already placed (a node launched, a model loading)
    would pay their cold start again on another pool; a stock-out stops only new ones."""
    n = obs.times.size
    warming = np.nan_to_num(per_pool(pl, obs.warming, n)[:, -1], nan=0.0)
    stuck = np.array([unplaced(pl, obs).get(name, 0) for name in pl.names], dtype=np.float64)
    return ready + np.maximum(warming - stuck, 0.0).astype(np.int64)


def held_elsewhere(
    pl: Planner, obs: Observations, cur: IntArray, state: EngineState, now: float, why: str
) -> Decision:
    """The hold on bad data (`explain.held`), except for replicas a pool cannot place.

    Holding them would hold nothing that serves, and with no pod running there may never be
    metrics: a pool out of stock keeps its ready replicas and the rest move to the other
    pools (on-demand first, best $/req/s at `merit_capacity` first, within their maxima), the
    total unchanged; it keeps its ready replicas and those on their way (`placed`).
    """
    state = replace(state, stockouts=stock.backoff(state.stockouts, unplaced(pl, obs), now))
    out = stock.out_of_stock(state.stockouts, now)
    capacity = merit_capacity(pl, obs)
    base = cur.copy()
    if out:
        capped = np.array([n in out for n in pl.names], dtype=np.bool_)
        latest = np.nan_to_num(per_pool(pl, obs.ready, obs.times.size)[:, -1], nan=0.0)
        ready: IntArray = np.maximum(latest, 0.0).astype(np.int64)
        keep = np.where(capped, np.minimum(base, placed(pl, obs, ready)), base)
        moved, base = int((base - keep).sum()), keep
        for i in np.lexsort((pl.price / capacity, pl.spot)):
            room = 0 if capped[i] else int(pl.max_replicas[i] - base[i])
            base[i] += max(0, min(moved, room))
            moved -= max(0, min(moved, room))
    d = held(pl, base, state, why, capacity)
    _, message, names, short = annotate(pl, state, now, Reason(d.reason), d.message)
    return replace(d, message=message, out_of_stock=names, quota_shortfall=short)


def blip_hold(pl: Planner, obs: Observations, cur: IntArray, state: EngineState) -> Decision | None:
    """A hold when the latest sample is a readiness blip (`stock.blip`), else None.

    The blip's samples are marked consumed for the learners (the calibrator and the spot
    hazards), so replicas that only looked lost are never counted as interruptions.
    """
    n = obs.times.size
    if n < 2 or len(pl.names) < 2:
        return None
    ready, warming = per_pool(pl, obs.ready, n), per_pool(pl, obs.warming, n)
    if not stock.blip(obs.times, ready, warming, pl.spot):
        return None
    last = float(obs.times[-1])
    seen = replace(
        state,
        hazard_until=max(state.hazard_until, last),
        calibrated_until=max(state.calibrated_until, last),
    )
    d = held(pl, cur, seen, "readiness blip", merit_capacity(pl, obs))
    plan = ", ".join(f"{v} on {k}" for k, v in d.replicas.items() if v > 0) or "no replicas"
    return replace(
        d,
        reason=Reason.CLUSTER_NOT_READY,
        message=(
            f"Holding {plan}: ready replicas fell in every pool at once "
            f"({int(ready[:, -1].sum())} ready now), which is the control plane or the nodes' "
            "readiness, not a lack of capacity. No pool is marked stalled and no spot loss is "
            "learned until readiness returns."
        ),
        metrics_available=True,
    )


def annotate(
    pl: Planner, state: EngineState, now: float, reason: Reason, message: str
) -> tuple[Reason, str, tuple[str, ...], int]:
    """The reason and message with supply shortfalls named, the pools out of stock, and the
    replicas replicas.min asks past the pools' maxima together."""
    short = max(0, pl.settings.replicas_min - int(pl.max_replicas.sum()))
    out = tuple(n for n in pl.names if n in stock.out_of_stock(state.stockouts, now))
    if out:
        retry = ", ".join(
            f"{n} retried in {state.stockouts[n][0] - now:.0f} s "
            f"(back-off {state.stockouts[n][1]:.0f} s)"
            for n in out
        )
        message += (
            f" Out of stock (replicas the cluster cannot place): {retry}; each is held at "
            "its ready replicas and its share goes to the next pools in merit order."
        )
        if reason in _REPLACEABLE:
            reason = Reason.POOL_OUT_OF_STOCK
    if short:
        quota = int(pl.max_replicas.sum())
        message += (
            f" replicas.min {pl.settings.replicas_min} is more than the eligible pools' "
            f"maxima hold together ({quota}): {short} replicas cannot run; raise the pools' "
            "maxReplicas or limits.maxNodes, add pools, or lower replicas.min."
        )
        if reason in _REPLACEABLE | {Reason.POOL_OUT_OF_STOCK, Reason.SLO_AT_RISK}:
            reason = Reason.MIN_BEYOND_QUOTA
    return reason, message, out, short
