"""Replay one trace through one policy on the cluster twin, and total what it cost.

The loop advances from one policy tick to the next: the policy decides on what it can see
now, the twin turns the decision into replicas per step, and the queue model serves the
arrivals of the whole stretch at once. Per-step cost is the paid replicas' $/h; fixed monthly
items and egress are added so totals are TCO, the same terms for every policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from costscaler.sim import service
from costscaler.sim.cluster import ClusterTwin, SpotBursts, SpotReplay
from costscaler.sim.policy import VIEW_EDGES_S, ClusterView, Policy
from costscaler.sim.pools import PoolModel
from costscaler.sim.record import Record
from costscaler.sim.scenario import MANIFEST, Scenario
from costscaler.sim.serving import ServingRecord, ServingSetup
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
    """Per-step series of a run, for plots: replicas per pool and cost so far ($, from the
    end of the burn-in)."""

    ready: NDArray[np.int64]
    held: NDArray[np.int64]
    cumulative_cost: NDArray[np.float64]


QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Latencies:
    """Percentiles (s) of end-to-end latency, and with per-request serving of time to first
    token and mean inter-token latency; the shares of requests within the SLO's TTFT and ITL
    thresholds when it declares them. None where undefined (beyond the finished requests)."""

    p50_latency_s: float | None = None
    p95_latency_s: float | None = None
    p99_latency_s: float | None = None
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    ttft_p99_s: float | None = None
    itl_p50_s: float | None = None
    itl_p95_s: float | None = None
    itl_p99_s: float | None = None
    ttft_attainment: float | None = None
    itl_attainment: float | None = None


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
    # total_cost with owned and reserved nodes at their marginal cost (capex left out: paid
    # whether used or not); total_cost charges them at TCO, as chargeback does.
    marginal_cost: float | None = None
    latency: Latencies = Latencies()
    oracle_block_s: float | None = None  # the oracle's block length (s); None for a policy


def _view(
    rec: Record | ServingRecord, twin: ClusterTwin, step: int, scenario: Scenario
) -> ClusterView:
    """What a policy sees at `step` (metrics through the scenario's outages)."""
    ready, warming = twin.counts(step)
    outage, since_s = scenario.metrics_at(step * twin.dt)
    return ClusterView(
        step,
        twin.dt,
        twin.pools,
        ready,
        warming,
        twin.desired,
        rec.arrived,
        rec.cum_met,
        rec.cum_tokens,
        list(twin.lost),
        rec.completed,
        rec.in_system,
        rec.histogram,
        rec.sync,
        twin.unplaced(step),
        outage,
        min(step, math.ceil(since_s / twin.dt - 1e-9)),
        rec if isinstance(rec, ServingRecord) else None,
    )


def quantile(
    result: service.ServiceResult, service_s: NDArray[np.float64], requests: float, q: float
) -> float | None:
    """The latency (s) at quantile `q` over all requests, to 5 %; None when out of range.

    Requests never started by the end of the run count as slower than any edge.
    """
    if requests <= 0:
        return None
    i = service.latency_rank(result, service_s, EDGES_S, q * requests - 1e-9)
    return float(EDGES_S[i]) if i < EDGES_S.size and math.isfinite(EDGES_S[i]) else None


@dataclass(frozen=True)
class Start:
    """The allocation every policy of a comparison starts from, and whether it serves at once.

    `replicas[p]` per pool; `warm`: they serve from step 0 (an autoscaler taking over a
    running deployment); otherwise they are requested at step 0 and pay their cold start, as
    for a deployment launched when the trace begins. The same for every policy, so none gets
    a head start sized on the trace's first minute.
    """

    replicas: tuple[int, ...]
    warm: bool = True


def simulate(
    trace: Trace,
    pools: list[PoolModel],
    policy: Policy,
    costs: Costs,
    *,
    start: Start | None = None,
    seed: int = 0,
    replays: dict[int, SpotReplay] | None = None,
    bursts: SpotBursts | None = None,
    burn_in_s: float = 0.0,
    serving: ServingSetup | None = None,
    scenario: Scenario = MANIFEST,
    keep_timeline: bool = False,
) -> Outcome:
    """Replay `trace` through `policy` on `pools` from `start`; deterministic for a `seed`.

    The policy takes over `start` (None: nothing running) at step 0 without metrics
    (`Policy.initial`) and decides every `interval_s` after. `burn_in_s`: the first seconds
    are replayed but left out of every total (cost, attainment, requests, idle hours,
    events, latency).
    """
    n, dt = trace.steps, trace.dt
    start = start or Start(tuple(0 for _ in pools))
    if len(start.replicas) != len(pools):
        raise ValueError(f"start.replicas has {len(start.replicas)} pools, expected {len(pools)}")
    burn = burn_in_steps(burn_in_s, dt, n)
    bursts = bursts or SpotBursts()
    twin = ClusterTwin(pools, n, dt, seed, dict(replays or {}), bursts, scenario=scenario)
    err = scenario.capacity_error
    truth = [replace(p, capacity_rps=p.capacity_rps * err) for p in pools]
    rec: Record | ServingRecord = (
        Record(trace.arrivals, trace.output_tokens, truth, costs.threshold_s, dt, VIEW_EDGES_S)
        if serving is None
        else ServingRecord(
            trace,
            pools,
            replace(serving, hardware=tuple(h.slower(err) for h in serving.hardware)),
            costs.threshold_s,
            seed,
        )
    )
    twin.start(list(start.replicas), warm=start.warm)
    first = policy.initial(_view(rec, twin, 0, scenario))
    if first != twin.desired:
        twin.set_desired(0, first)
    events = 0
    interval = max(1, round(policy.interval_s / dt)) if math.isfinite(policy.interval_s) else n
    for t in range(0, n, interval):
        if t > 0:
            before = twin.scale_events
            twin.set_desired(t, policy.decide(_view(rec, twin, t, scenario)))
            events += twin.scale_events - before if t >= burn else 0
        rec.store(t, *twin.advance(t, min(n, t + interval)))
    rec.sync(n)
    return _outcome(policy.name, trace, pools, costs, events, rec, burn, keep_timeline)


def burn_in_steps(burn_in_s: float, dt: float, steps: int) -> int:
    """Steps left out of the totals for a burn-in of `burn_in_s` seconds (checked)."""
    burn = math.ceil(burn_in_s / dt - 1e-9)
    if burn_in_s < 0 or burn >= steps:
        raise ValueError(
            f"burn-in {burn_in_s} s must be >= 0 and shorter than the trace ({steps * dt} s)"
        )
    return burn


@dataclass(frozen=True)
class _Served:
    """What the serving model did after the burn-in, in the terms every outcome reports."""

    served: NDArray[np.float64]  # requests whose latency was measured, per step
    busy_s: NDArray[np.float64]  # accelerator-seconds at work, per step
    attainment: float
    latency: Latencies


def _fluid(rec: Record, burn: int, requests: float, acc: NDArray[np.float64]) -> _Served:
    """The fluid queue's figures (latency percentiles to 5 %, from its histogram)."""
    part = slice(burn, None)
    queue = service.ServiceResult(*(getattr(rec.queue, f)[part] for f in service.FIELDS))
    cap, svc = rec.capacity[part], rec.service_s[part]
    busy = np.divide(
        queue.served * (acc @ rec.ready[:, part]), cap, out=np.zeros_like(cap), where=cap > 0
    )
    quantiles = [quantile(queue, svc, requests, q) for q in QUANTILES]
    met = float(queue.met.sum()) / requests if requests else 1.0
    return _Served(queue.served, busy, met, Latencies(*quantiles))


def _batched(rec: ServingRecord, burn: int, requests: float, acc: NDArray[np.float64]) -> _Served:
    """The per-request model's figures: exact over the requests that arrived after the
    burn-in, those never finished counting as slower than any threshold. A request meets
    the SLO when it meets every objective stated (end to end, and TTFT and ITL if set)."""
    done = rec.finished(burn)
    setup = rec.setup
    served = np.diff(rec.cum_done)[burn:].astype(np.float64)
    busy = (acc @ rec.busy[:, burn:]) * rec.dt

    def share(values: NDArray[np.float64], limit: float | None) -> float | None:
        if limit is None:
            return None
        return float((values <= limit).sum()) / requests if requests else 1.0

    def pick(values: NDArray[np.float64]) -> tuple[float | None, float | None, float | None]:
        ordered = np.sort(values)

        def at(q: float) -> float | None:
            i = math.ceil(q * requests - 1e-9) - 1
            return float(ordered[max(0, i)]) if requests and i < ordered.size else None

        return at(0.5), at(0.95), at(0.99)

    met = float(setup.met(done, rec.threshold_s).sum()) / requests if requests else 1.0
    (p50, p95, p99), (t50, t95, t99), (i50, i95, i99) = (
        pick(done.e2e_s),
        pick(done.ttft_s),
        pick(done.itl_s),
    )
    latency = Latencies(
        p50,
        p95,
        p99,
        t50,
        t95,
        t99,
        i50,
        i95,
        i99,
        ttft_attainment=share(done.ttft_s, setup.ttft_s),
        itl_attainment=share(done.itl_s, setup.itl_s),
    )
    return _Served(served, busy, met, latency)


def _outcome(
    name: str,
    trace: Trace,
    pools: list[PoolModel],
    costs: Costs,
    scale_events: int,
    rec: Record | ServingRecord,
    burn: int,
    keep_timeline: bool,
) -> Outcome:
    """Totals of a run from step `burn` on: TCO, per-unit costs, attainment, idle
    accelerator-hours, latency percentiles."""
    part = slice(burn, None)
    held = rec.held[:, part]
    dt, requests = trace.dt, float(trace.arrivals[part].sum())
    acc = np.array([p.accelerators_per_replica for p in pools], dtype=np.float64)
    got = (
        _batched(rec, burn, requests, acc)
        if isinstance(rec, ServingRecord)
        else _fluid(rec, burn, requests, acc)
    )
    # Whole nodes bill from their first replica: replicas pack onto ceil(held / k) nodes.
    per_node = np.array([[p.replicas_per_node] for p in pools], dtype=np.int64)
    nodes = -(-held // per_node)
    node_price = np.array([p.replica_cost_per_hour * p.replicas_per_node for p in pools])
    step_cost = (node_price @ nodes) * dt / 3600 + costs.fixed_per_hour * dt / 3600
    step_cost = step_cost + costs.egress_per_request * got.served
    replica_cost = float((node_price @ nodes).sum() * dt / 3600)
    margin = [
        p.replica_cost_per_hour if p.marginal_cost_per_hour is None else p.marginal_cost_per_hour
        for p in pools
    ]
    node_margin = np.array(margin) * per_node[:, 0]
    marginal_replicas = float((node_margin @ nodes).sum() * dt / 3600)
    total = float(step_cost.sum())
    slots = nodes * per_node  # a paid node's empty slots idle their accelerators too
    idle = float(((acc @ slots) * dt - got.busy_s).sum() / 3600)
    tokens = (
        float(trace.output_tokens[part].sum())
        if trace.output_tokens is not None
        else requests * costs.mean_output_tokens
        if costs.mean_output_tokens
        else None
    )
    # The cost so far counts from the end of the burn-in, as the totals do.
    spent = np.concatenate((np.zeros(burn), np.cumsum(step_cost)))
    timeline = Timeline(rec.ready, rec.held, spent) if keep_timeline else None
    return Outcome(
        policy=name,
        total_cost=total,
        replica_cost=replica_cost,
        cost_per_1k_requests=total / requests * 1000 if requests else None,
        cost_per_million_tokens=total / tokens * 1e6 if tokens else None,
        slo_attainment=got.attainment,
        requests=requests,
        idle_accelerator_hours=idle,
        scale_events=scale_events,
        p99_latency_s=got.latency.p99_latency_s,
        timeline=timeline,
        marginal_cost=total - replica_cost + marginal_replicas,
        latency=got.latency,
    )
