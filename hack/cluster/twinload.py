"""The load twin's arithmetic: one InferenceDeployment's trace stepped against its ready pods.

No I/O here. The queue and latency come from `costscaler.sim.service` (the simulator's model,
imported, never copied), combined exactly as the simulator's replay does: one FIFO queue in
front of all ready replicas (the Service load-balances), capacity the sum of their rated
requests/s, service time the capacity-weighted mean of their profiles. Each step's started
requests, latency histogram and tokens are shared among the ready pods by their capacity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from costscaler.api import InferenceDeployment
from costscaler.sim import service
from costscaler.sim.traces import Trace

# vLLM's own bucket bounds for vllm:e2e_request_latency_seconds (seconds).
LATENCY_EDGES_S = np.array(
    [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
     120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0]
)  # fmt: skip


@dataclass
class PodCounters:
    """What one pod's vLLM would export: counters only grow while the pod lives."""

    success: float = 0.0
    tokens: float = 0.0
    latency_count: float = 0.0
    latency_sum: float = 0.0
    buckets: NDArray[np.float64] = field(default_factory=lambda: np.zeros(LATENCY_EDGES_S.size))
    running: float = 0.0
    waiting: float = 0.0


@dataclass(frozen=True)
class ReadyPod:
    """A pod that is Running and past its model load, with its profile's figures."""

    key: str
    capacity_rps: float
    service_s: float


class DeploymentLoad:
    """Replays one trace for one InferenceDeployment, one step of `trace.dt` seconds at a time."""

    def __init__(self, spec: InferenceDeployment, trace: Trace) -> None:
        self.trace = trace
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
        """The trace is over and every request has started."""
        return self.step >= self.trace.steps and self.backlog <= 1e-9

    def advance(self, ready: list[ReadyPod], counters: dict[str, PodCounters]) -> None:
        """Run one step with these ready pods, adding each pod's share to its counters."""
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
