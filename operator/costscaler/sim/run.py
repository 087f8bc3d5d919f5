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
from costscaler.sim.cluster import ClusterTwin, IntArray, SpotReplay
from costscaler.sim.policy import ClusterView, Policy
from costscaler.sim.pools import PoolModel
from costscaler.sim.service import FIELDS
from costscaler.sim.traces import Trace

# Latency bucket edges for the p99 (s): 5 % apart from 10 ms to an hour.
EDGES_S = np.append(0.01 * 1.05 ** np.arange(263), np.inf)


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
    scale_events: int | None
    p99_latency_s: float | None
    timeline: Timeline | None = None


class _Record:
    """Per-step arrays of one run; the queue is computed lazily, when a policy reads it.

    Replicas are recorded at every tick; the queue model runs only up to the step a policy
    asks about (latency, concurrency, attainment) and, at the end, over the rest in long
    vectorised stretches, so policies that only read arrivals (HPA, KEDA) cost no queueing
    work per tick.
    """

    def __init__(self, trace: Trace, pools: list[PoolModel], costs: Costs) -> None:
        n, zero = trace.steps, np.zeros(1)
        self.dt, self.threshold_s = trace.dt, costs.threshold_s
        self.mu = np.array([p.capacity_rps for p in pools])
        self.mu_s = self.mu * np.array([p.service_s for p in pools])
        self.arrived = np.concatenate((zero, np.cumsum(trace.arrivals)))
        self.cum_met = np.zeros(n + 1)
        tokens = trace.output_tokens
        self.cum_tokens = None if tokens is None else np.concatenate((zero, np.cumsum(tokens)))
        self.ready = np.zeros((len(pools), n), dtype=np.int64)
        self.held = np.zeros((len(pools), n), dtype=np.int64)
        self.capacity, self.service_s = np.zeros(n), np.zeros(n)
        self.queue = service.ServiceResult(*(np.zeros(n) for _ in FIELDS))
        self.started, self.done = 0.0, 0

    def view(self, twin: ClusterTwin, step: int) -> ClusterView:
        """What a policy sees at `step`."""
        ready, warming = twin.counts(step)
        return ClusterView(
            step,
            twin.dt,
            twin.pools,
            ready,
            warming,
            twin.desired,
            self.arrived,
            self.cum_met,
            self.cum_tokens,
            list(twin.lost),
            self.queue,
            self.service_s,
            self.sync,
        )

    def store(self, t: int, ready: IntArray, held: IntArray) -> None:
        """Record replicas for steps [t, t + ready's width)."""
        stop = t + ready.shape[1]
        self.ready[:, t:stop], self.held[:, t:stop] = ready, held

    def sync(self, upto: int) -> None:
        """Run the queue over the recorded steps before `upto` not yet served."""
        while self.done < upto:
            t, stop = self.done, min(upto, self.done + 100_000)
            ready = self.ready[:, t:stop]
            cap = self.mu @ ready
            svc = np.divide(self.mu_s @ ready, cap, out=np.zeros_like(cap), where=cap > 0)
            res = service.replay(self.arrived, t, cap, svc, self.threshold_s, self.dt, self.started)
            self.capacity[t:stop], self.service_s[t:stop] = cap, svc
            for f in FIELDS:
                getattr(self.queue, f)[t:stop] = getattr(res, f)
            self.cum_met[t + 1 : stop + 1] = self.cum_met[t] + np.cumsum(res.met)
            self.started += float(res.served.sum())
            self.done = stop


def p99(
    result: service.ServiceResult, service_s: NDArray[np.float64], requests: float
) -> float | None:
    """The 99th percentile latency (s) over all requests, to 5 %; None when out of range.

    Requests never started by the end of the run count as slower than any edge.
    """
    counts = service.latency_histogram(result, service_s, EDGES_S)
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
    n, dt = trace.steps, trace.dt
    twin = ClusterTwin(pools, n, dt, seed, dict(replays or {}))
    rec = _Record(trace, pools, costs)
    first = trace.arrivals[: max(1, round(60 / dt))]
    twin.start(policy.initial(rec.view(twin, 0), float(first.sum() / (first.size * dt))))
    interval = max(1, round(policy.interval_s / dt)) if math.isfinite(policy.interval_s) else n
    for t in range(0, n, interval):
        if t > 0:
            twin.set_desired(t, policy.decide(rec.view(twin, t)))
        rec.store(t, *twin.advance(t, min(n, t + interval)))
    rec.sync(n)
    return _outcome(policy.name, trace, pools, costs, twin.scale_events, rec, keep_timeline)


def _outcome(
    name: str,
    trace: Trace,
    pools: list[PoolModel],
    costs: Costs,
    scale_events: int,
    rec: _Record,
    keep_timeline: bool,
) -> Outcome:
    """Totals of a run: TCO, per-unit costs, attainment, idle accelerator-hours, p99."""
    ready, held, cap, svc, queue = rec.ready, rec.held, rec.capacity, rec.service_s, rec.queue
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
