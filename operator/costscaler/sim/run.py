"""Replay one trace through one policy on the cluster twin, and total what it cost.

The loop advances from one policy tick to the next: the policy decides on what it can see
now, the twin turns the decision into replicas per step, and the queue model serves the
arrivals of the whole stretch at once. Per-step cost is the paid replicas' $/h; fixed monthly
items and egress are added so totals are TCO, the same terms for every policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from costscaler.sim import service
from costscaler.sim.cluster import ClusterTwin, SpotReplay
from costscaler.sim.policy import ClusterView, Policy
from costscaler.sim.pools import PoolModel
from costscaler.sim.traces import Trace

# Latency bucket edges for the p99 (s): 5 % apart from 10 ms to an hour.
EDGES_S = np.append(0.01 * 1.05 ** np.arange(263), np.inf)
FIELDS = ("served", "backlog", "wait_first_s", "wait_last_s", "met")


@dataclass(frozen=True)
class Costs:
    """The deployment's cost terms besides replicas, and the latency threshold (s)."""

    threshold_s: float
    fixed_per_hour: float = 0.0
    egress_per_request: float = 0.0
    mean_output_tokens: float | None = None


@dataclass(frozen=True)
class Timeline:
    """Per-step series of a run, for plots: replicas per pool and cost so far ($)."""

    ready: NDArray[np.int64]
    held: NDArray[np.int64]
    cumulative_cost: NDArray[np.float64]


@dataclass(frozen=True)
class Outcome:
    """What one policy did to one trace (units in the names; None where undefined)."""

    policy: str
    total_cost: float
    replica_cost: float
    cost_per_1k_requests: float | None
    cost_per_million_tokens: float | None
    slo_attainment: float
    requests: float
    idle_accelerator_hours: float
    scale_events: int
    p99_latency_s: float | None
    timeline: Timeline | None = None


def _view(
    twin: ClusterTwin, step: int, backlog: float, cum: list[NDArray[np.float64]]
) -> ClusterView:
    ready, warming = twin.counts(step)
    tokens = cum[2] if cum[2].size else None
    return ClusterView(
        step, twin.dt, twin.pools, ready, warming, twin.desired, backlog, cum[0], cum[1], tokens
    )


def p99(
    result: service.ServiceResult, service_s: NDArray[np.float64], requests: float
) -> float | None:
    """The 99th percentile latency (s) over all requests, to 5 %; None when out of range.

    Requests never started by the end of the run count as slower than any edge.
    """
    counts = np.zeros(EDGES_S.size)
    for lo in range(0, service_s.size, 50_000):
        part = service.ServiceResult(
            *(np.asarray(getattr(result, f))[lo : lo + 50_000] for f in FIELDS)
        )
        counts += service.latency_buckets(part, service_s[lo : lo + 50_000], EDGES_S).sum(axis=0)
    if requests <= 0:
        return None
    i = int(np.searchsorted(counts, 0.99 * requests - 1e-9))
    return float(EDGES_S[i]) if i < EDGES_S.size and math.isfinite(EDGES_S[i]) else None


def simulate(
    trace: Trace,
    pools: list[PoolModel],
    policy: Policy,
    costs: Costs,
    *,
    seed: int = 0,
    replays: dict[int, SpotReplay] | None = None,
    keep_timeline: bool = False,
) -> Outcome:
    """Replay `trace` through `policy` on `pools`; deterministic for a given `seed`."""
    n, dt, arrivals = trace.steps, trace.dt, trace.arrivals
    twin = ClusterTwin(pools, n, dt, seed, dict(replays or {}))
    mu = np.array([p.capacity_rps for p in pools])
    mu_s = mu * np.array([p.service_s for p in pools])
    zero = np.zeros(1)
    tokens = trace.output_tokens
    cum = [
        np.concatenate((zero, np.cumsum(arrivals))),
        np.zeros(n + 1),
        np.concatenate((zero, np.cumsum(tokens))) if tokens is not None else np.zeros(0),
    ]
    ready_all = np.zeros((len(pools), n), dtype=np.int64)
    held_all = np.zeros((len(pools), n), dtype=np.int64)
    cap_all, svc_all = np.zeros(n), np.zeros(n)
    queue = {f: np.zeros(n) for f in FIELDS}
    first = arrivals[: max(1, round(60 / dt))]
    twin.start(policy.initial(_view(twin, 0, 0.0, cum), float(first.sum() / (first.size * dt))))
    interval = max(1, round(policy.interval_s / dt)) if math.isfinite(policy.interval_s) else n
    started, backlog, t = 0.0, 0.0, 0
    while t < n:
        if t > 0:
            twin.set_desired(t, policy.decide(_view(twin, t, backlog, cum)))
        stop = min(n, t + interval)
        ready, held = twin.advance(t, stop)
        cap = mu @ ready
        svc = np.divide(mu_s @ ready, cap, out=np.zeros_like(cap), where=cap > 0)
        res = service.replay(cum[0], t, cap, svc, costs.threshold_s, dt, started)
        ready_all[:, t:stop], held_all[:, t:stop] = ready, held
        cap_all[t:stop], svc_all[t:stop] = cap, svc
        for f in FIELDS:
            queue[f][t:stop] = getattr(res, f)
        cum[1][t + 1 : stop + 1] = cum[1][t] + np.cumsum(res.met)
        started += float(res.served.sum())
        backlog, t = float(res.backlog[-1]), stop
    return _outcome(
        policy.name,
        trace,
        pools,
        costs,
        twin.scale_events,
        (ready_all, held_all, cap_all, svc_all),
        service.ServiceResult(*(queue[f] for f in FIELDS)),
        keep_timeline,
    )


def _outcome(
    name: str,
    trace: Trace,
    pools: list[PoolModel],
    costs: Costs,
    scale_events: int,
    steps: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]],
    queue: service.ServiceResult,
    keep_timeline: bool,
) -> Outcome:
    """Totals of a run: TCO, per-unit costs, attainment, idle accelerator-hours, p99."""
    ready, held, cap, svc = steps
    served = queue.served
    dt, requests = trace.dt, float(trace.arrivals.sum())
    price = np.array([p.replica_cost_per_hour for p in pools])
    acc = np.array([p.accelerators_per_replica for p in pools], dtype=np.float64)
    step_cost = (price @ held) * dt / 3600 + costs.fixed_per_hour * dt / 3600
    step_cost = step_cost + costs.egress_per_request * served
    replica_cost = float((price @ held).sum() * dt / 3600)
    total = float(step_cost.sum())
    busy = np.divide(served * (acc @ ready), cap, out=np.zeros_like(cap), where=cap > 0)
    idle = float(((acc @ held) * dt - busy).sum() / 3600)
    tokens = (
        float(trace.output_tokens.sum())
        if trace.output_tokens is not None
        else requests * costs.mean_output_tokens
        if costs.mean_output_tokens
        else None
    )
    timeline = Timeline(ready, held, np.cumsum(step_cost)) if keep_timeline else None
    return Outcome(
        policy=name,
        total_cost=total,
        replica_cost=replica_cost,
        cost_per_1k_requests=total / requests * 1000 if requests else None,
        cost_per_million_tokens=total / tokens * 1e6 if tokens else None,
        slo_attainment=float(queue.met.sum()) / requests if requests else 1.0,
        requests=requests,
        idle_accelerator_hours=idle,
        scale_events=scale_events,
        p99_latency_s=p99(queue, svc, requests),
        timeline=timeline,
    )
