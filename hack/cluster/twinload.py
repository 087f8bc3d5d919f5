"""The load twin's arithmetic: one InferenceDeployment's trace stepped against its ready pods.

No I/O here. The serving model is the simulator's, imported, never copied, in either of its
two modes (`--serving` of `costscaler simulate`):

- `fluid` (the default, as in the bench): `costscaler.sim.service`, combined exactly as the
  simulator's replay does: one FIFO queue in front of all ready replicas (the Service
  load-balances), capacity the sum of their rated requests/s, service time the
  capacity-weighted mean of their profiles. Each step's started requests, latency histogram
  and tokens are shared among the ready pods by their capacity. It has no tokens per
  request, so it exports no time to first token or inter-token latency.
- `batching`: `costscaler.sim.batching`, requests one by one (the trace's own tokens, or
  seeded draws), routed to the least loaded ready pod, continuously batched on the pod's
  accelerator as `sim/accelerators.json` describes it (never the profile's declared
  capacity). Each pod's counters are exactly its own requests: end-to-end latency, time to
  first token, inter-token latency (each request's mean, once per token after the first, as
  vLLM observes every token), prompt and generation tokens, running and waiting requests and
  KV-cache use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from costscaler.api import InferenceDeployment
from costscaler.sim import service
from costscaler.sim.batching import Arrivals, Hardware, Serving, StepStats, hardware
from costscaler.sim.serving import TokenDraw, requests
from costscaler.sim.traces import Trace, load_accelerators

ServingMode = Literal["fluid", "batching"]
SERVING_MODES: tuple[ServingMode, ...] = ("fluid", "batching")
# The batching model's step (s): a twin tick of `tick x speed` trace seconds is served in
# steps no longer than this, the step the simulator replays traces at.
BATCHING_STEP_S = 1.0

# vLLM's own bucket bounds (seconds) for vllm:e2e_request_latency_seconds,
# vllm:time_to_first_token_seconds and vllm:inter_token_latency_seconds (v1 metrics).
LATENCY_EDGES_S = np.array(
    [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
     120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0]
)  # fmt: skip
TTFT_EDGES_S = np.array(
    [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
     10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0]
)  # fmt: skip
ITL_EDGES_S = np.array(
    [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
     10.0, 20.0, 40.0, 80.0]
)  # fmt: skip


@dataclass
class Histogram:
    """A cumulative Prometheus histogram: counts at or below each edge, total count and sum."""

    edges: NDArray[np.float64]
    buckets: NDArray[np.float64] = field(init=False)
    count: float = 0.0
    total: float = 0.0

    def __post_init__(self) -> None:
        self.buckets = np.zeros(self.edges.size)

    def observe(self, values: NDArray[np.float64], weights: NDArray[np.float64]) -> None:
        """Add `weights[i]` observations of `values[i]` each."""
        if values.size == 0:
            return
        order = np.argsort(values, kind="stable")
        cum = np.concatenate(([0.0], np.cumsum(weights[order])))
        self.buckets += cum[np.searchsorted(values[order], self.edges, side="right")]
        self.count += float(cum[-1])
        self.total += float(np.dot(values, weights))


@dataclass
class PodCounters:
    """What one pod's vLLM would export: counters only grow while the pod lives.

    `per_request` (batching mode): the pod also exports TTFT and inter-token latency
    histograms, prompt tokens and KV-cache use; `aborted` counts requests the client gave up
    on while they waited (vLLM's finished_reason "abort").
    """

    success: float = 0.0
    tokens: float = 0.0
    latency_count: float = 0.0
    latency_sum: float = 0.0
    buckets: NDArray[np.float64] = field(default_factory=lambda: np.zeros(LATENCY_EDGES_S.size))
    running: float = 0.0
    waiting: float = 0.0
    per_request: bool = False
    aborted: float = 0.0
    prompt_tokens: float = 0.0
    kv_cache_usage: float = 0.0
    ttft: Histogram = field(default_factory=lambda: Histogram(TTFT_EDGES_S))
    itl: Histogram = field(default_factory=lambda: Histogram(ITL_EDGES_S))


@dataclass(frozen=True)
class ReadyPod:
    """A pod that is Running and past its model load, with its profile's figures: rated
    capacity and service time (fluid mode), accelerator type and count (batching mode)."""

    key: str
    capacity_rps: float
    service_s: float
    accelerator: str = ""
    accelerators: int = 1


class DeploymentLoad:
    """Replays one trace for one InferenceDeployment, one step of `trace.dt` seconds at a time,
    with the `fluid` queue or, with `serving="batching"`, requests batched one by one."""

    def __init__(
        self,
        spec: InferenceDeployment,
        trace: Trace,
        serving: ServingMode = "fluid",
        seed: int = 0,
    ) -> None:
        if serving not in SERVING_MODES:
            raise ValueError(f"serving must be one of {', '.join(SERVING_MODES)}, got {serving!r}")
        self.trace = trace
        self.batched = _Batched(spec, trace, seed) if serving == "batching" else None
        self.threshold_s = spec.spec.slo.latency.threshold_seconds
        self.arrived = np.concatenate(([0.0], np.cumsum(trace.arrivals)))
        tokens = trace.output_tokens
        total = float(trace.arrivals.sum())
        if tokens is not None and total > 0:
            self.tokens_per_request = float(tokens.sum()) / total
        else:
            self.tokens_per_request = float(spec.spec.workload.mean_output_tokens or 0.0)
        self.step = 0
        self.started = 0.0
        self.backlog = 0.0

    @property
    def done(self) -> bool:
        """The trace is over and every request has started (batching: has finished)."""
        if self.batched is not None:
            return self.step >= self.trace.steps and self.batched.serving.in_system == 0
        return self.step >= self.trace.steps and self.backlog <= 1e-9

    def advance(self, ready: list[ReadyPod], counters: dict[str, PodCounters]) -> None:
        """Run one step with these ready pods, adding each pod's share to its counters."""
        if self.batched is not None:
            self.started, self.backlog = self.batched.advance(self.step, ready, counters)
            self.step += 1
            return
        if self.step + 1 >= self.arrived.size:
            # Past the trace's end nothing arrives; the backlog drains.
            self.arrived = np.append(self.arrived, self.arrived[-1])
        capacity = sum(p.capacity_rps for p in ready)
        svc = sum(p.capacity_rps * p.service_s for p in ready) / capacity if capacity else 0.0
        dt = self.trace.dt
        res = service.replay(
            self.arrived, self.step, [capacity], [svc], self.threshold_s, dt, self.started
        )
        served = float(res.served[0])
        buckets = service.latency_buckets(res, [svc], LATENCY_EDGES_S)[0]
        mean_latency = (float(res.wait_first_s[0]) + float(res.wait_last_s[0])) / 2 + svc
        running, waiting = service.in_flight(res.served, res.backlog, svc, [len(ready)], dt)
        for pod in ready:
            share = pod.capacity_rps / capacity
            c = counters[pod.key]
            c.success += served * share
            c.tokens += served * share * self.tokens_per_request
            c.latency_count += served * share
            c.latency_sum += served * share * mean_latency
            c.buckets = c.buckets + buckets * share
            c.running, c.waiting = float(running[0]), float(waiting[0])
        self.started += served
        self.backlog = float(res.backlog[0])
        self.step += 1


class _Batched:
    """The batching mode of one deployment's load: `sim.batching.Serving` over its ready pods,
    one replica slot per pod, served in steps of at most `BATCHING_STEP_S`."""

    def __init__(self, spec: InferenceDeployment, trace: Trace, seed: int) -> None:
        workload = spec.spec.workload
        draw = TokenDraw(mean_output=workload.mean_output_tokens or 250.0)
        self.t_s, self.inp, self.out = requests(trace, draw, seed)
        self.substeps = max(1, math.ceil(trace.dt / BATCHING_STEP_S - 1e-9))
        self.dt = trace.dt / self.substeps
        data = load_accelerators()
        self.pool_of: dict[tuple[str, int], int] = {}
        pools: list[Hardware] = []
        for profile in workload.capacity:
            key = (profile.accelerator, profile.accelerators_per_replica)
            if key in self.pool_of or profile.accelerator not in data["accelerators"]:
                continue
            self.pool_of[key] = len(pools)
            pools.append(hardware(data, *key))
        self.serving = Serving(pools, self.dt)
        self.slot_of: dict[str, int] = {}  # pod key -> replica slot
        self.finished = 0

    def _place(self, ready: list[ReadyPod]) -> dict[int, str]:
        """Replica slots for exactly these pods (gone pods' requests start over elsewhere)."""
        keys = {p.key for p in ready}
        gone = [slot for key, slot in self.slot_of.items() if key not in keys]
        new = [p for p in ready if p.key not in self.slot_of]
        pools = []
        for pod in new:
            pool = self.pool_of.get((pod.accelerator, pod.accelerators))
            if pool is None:
                raise ValueError(
                    f"pod {pod.key} runs on {pod.accelerators} x {pod.accelerator!r}, which has "
                    "no serving parameters: add its datasheet figures to sim/accelerators.json "
                    "or run the twin with --serving fluid"
                )
            pools.append(pool)
        slots = self.serving.reconfigure(gone, pools)
        self.slot_of = {k: s for k, s in self.slot_of.items() if k in keys}
        self.slot_of.update(zip((p.key for p in new), slots, strict=True))
        return {slot: key for key, slot in self.slot_of.items()}

    def advance(
        self, step: int, ready: list[ReadyPod], counters: dict[str, PodCounters]
    ) -> tuple[float, float]:
        """Serve trace step `step`; returns requests started (finished or running) and waiting."""
        pod_at = self._place(ready)
        for c in counters.values():
            c.per_request = True
        for sub in range(self.substeps):
            t = step * self.substeps + sub
            lo, hi = np.searchsorted(self.t_s, (t * self.dt, (t + 1) * self.dt))
            stats = self.serving.step(
                t, Arrivals(self.t_s[lo:hi], self.inp[lo:hi], self.out[lo:hi])
            )
            self._count(stats, (t + 1) * self.dt, pod_at, counters)
        running, waiting, kv = self.serving.per_slot()
        for slot, key in pod_at.items():
            c = counters[key]
            c.running, c.waiting = float(running[slot]), float(waiting[slot])
            c.kv_cache_usage = float(kv[slot])
        return float(self.finished + running.sum()), float(self.serving.in_system - running.sum())

    def _count(
        self,
        stats: StepStats,
        now_s: float,
        pod_at: dict[int, str],
        counters: dict[str, PodCounters],
    ) -> None:
        """Each finished request into its pod's counters. A request given up on counts as
        aborted at the time it waited; it has no first token."""
        fin = stats.finished
        self.finished += int(np.isfinite(fin.e2e_s).sum())
        for s, key in pod_at.items():
            mine = stats.slot == s
            if not mine.any():
                continue
            c = counters[key]
            e2e, ttft, itl = fin.e2e_s[mine], fin.ttft_s[mine], fin.itl_s[mine]
            inp, out = stats.input_tokens[mine], stats.output_tokens[mine]
            ok = np.isfinite(e2e)
            waited = np.where(ok, e2e, now_s - fin.arrival_s[mine])
            c.success += float(ok.sum())
            c.aborted += float((~ok).sum())
            c.latency_count += float(waited.size)
            c.latency_sum += float(waited.sum())
            c.buckets = c.buckets + np.searchsorted(np.sort(waited), LATENCY_EDGES_S, side="right")
            c.tokens += float(out[ok].sum())
            c.prompt_tokens += float(inp[ok].sum())
            c.ttft.observe(ttft[ok], np.ones(int(ok.sum())))
            c.itl.observe(itl[ok], (out - 1.0)[ok])
