"""The service and queueing model: arrivals, ready capacity and a carried backlog -> latency.

One model for every consumer: the trace-replay twin (`sim.cluster`) runs it over a whole
trace at once, and the load twin in `hack/cluster/` (which serves vLLM-style metrics per pod
for the e2e tests and the demo) imports it and advances it step by step in real time. Do not
copy it: both must see the same latency for the same load.

The model is a fluid FIFO queue in front of all ready replicas (the Service load-balances).
In a step of `dt` seconds, `a` requests arrive spread evenly over the step, the ready replicas
serve at `mu` requests/s (the sum of their capacities at the SLO), and `b` requests wait from
before. A request that arrives at fraction `u` of the step finds `q(u) = max(0, b + (a - mu dt) u)`
requests ahead and waits `q(u) / mu` seconds; its latency is that wait plus the service time
`s` (the unloaded end-to-end latency). Over the step the backlog evolves by Lindley's recursion
`b' = max(0, b + a - mu dt)`, computed for a whole trace at once with Reich's formula
`b_t = X_t - min(-b_0, min_{k<=t} X_k)` where `X_t` is the cumulative sum of `a - mu dt`.

Capacity per replica is the profile's requests/s *at the SLO*, so the queueing inside a replica
at that load is already in `s`; the queue here is the excess over rated capacity, which is what
makes latency blow up when an autoscaler is late. With `mu = 0` every arrival waits forever
(counts as missing the SLO) and joins the backlog that later capacity drains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ServiceResult:
    """What the queue did over a run of steps (arrays of one value per step).

    `served`: requests that finished waiting (started service) in the step; `backlog`: requests
    waiting at the end of the step; `wait_first_s` / `wait_last_s`: queueing wait of the step's
    first and last arrival (linear in between); `met`: arrivals of the step whose latency
    (wait + service) is within the threshold (fractional: the fluid share).
    """

    served: FloatArray
    backlog: FloatArray
    wait_first_s: FloatArray
    wait_last_s: FloatArray
    met: FloatArray


def backlog_path(
    arrivals: ArrayLike, capacity_rps: ArrayLike, dt: float = 1.0, backlog0: float = 0.0
) -> tuple[FloatArray, FloatArray]:
    """Served requests and end-of-step backlog for every step (Reich's formula, vectorised).

    `arrivals` requests per step, `capacity_rps` ready capacity in requests/s per step (or one
    value), `dt` step length in s, `backlog0` requests waiting before the first step.
    Returns `(served, backlog)`, both requests per step.
    """
    a = np.asarray(arrivals, dtype=np.float64)
    c = np.broadcast_to(np.asarray(capacity_rps, dtype=np.float64) * dt, a.shape)
    x = np.cumsum(a - c)
    floor = np.minimum(np.minimum.accumulate(x), -backlog0) if x.size else x
    backlog = np.maximum(x - floor, 0.0)
    before = np.concatenate(([backlog0], backlog[:-1]))
    served = before + a - backlog
    return served, backlog


def wait_ends(
    backlog_before: ArrayLike, arrivals: ArrayLike, capacity_rps: ArrayLike, dt: float = 1.0
) -> tuple[FloatArray, FloatArray]:
    """Queueing wait (s) of the first and the last arrival of each step.

    A request at fraction u of the step waits max(0, b + (a - mu dt) u) / mu; infinite when
    no capacity is ready (mu = 0) and something is ahead of it.
    """
    b = np.asarray(backlog_before, dtype=np.float64)
    a = np.asarray(arrivals, dtype=np.float64)
    mu = np.broadcast_to(np.asarray(capacity_rps, dtype=np.float64), np.broadcast(a, b).shape)
    last = np.maximum(b + a - mu * dt, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        first_w = np.where(mu > 0, b / np.where(mu > 0, mu, 1.0), np.where(b > 0, np.inf, 0.0))
        last_w = np.where(mu > 0, last / np.where(mu > 0, mu, 1.0), np.inf)
    return first_w, last_w


def share_within(
    backlog_before: ArrayLike,
    arrivals: ArrayLike,
    capacity_rps: ArrayLike,
    wait_budget_s: ArrayLike,
    dt: float = 1.0,
) -> FloatArray:
    """Share (0..1) of each step's arrivals that wait at most `wait_budget_s` seconds.

    The wait is linear in the arrival's position u in the step, so the share is the length of
    {u in [0, 1] : b + (a - mu dt) u <= budget * mu}. With mu = 0 nothing is within a finite
    budget; a negative budget (service time above the threshold) gives 0.
    """
    b = np.asarray(backlog_before, dtype=np.float64)
    a = np.asarray(arrivals, dtype=np.float64)
    mu = np.asarray(capacity_rps, dtype=np.float64)
    budget = np.asarray(wait_budget_s, dtype=np.float64)
    slope = np.broadcast_to(a - mu * dt, np.broadcast(a, b, mu, budget).shape)
    room = budget * mu - b
    with np.errstate(divide="ignore", invalid="ignore"):
        cut = np.clip(np.where(slope != 0, room / np.where(slope != 0, slope, 1.0), 0.0), 0, 1)
    share = np.where(slope > 0, cut, np.where(slope < 0, 1.0 - cut, (room >= 0).astype(float)))
    return np.where((mu > 0) & (budget >= 0), share, 0.0)


def replay(
    arrivals: ArrayLike,
    capacity_rps: ArrayLike,
    service_s: ArrayLike,
    threshold_s: float,
    dt: float = 1.0,
    backlog0: float = 0.0,
) -> ServiceResult:
    """Run the queue over many steps at once (the whole trace, or one chunk of it).

    Feed the last `backlog` of one call as `backlog0` of the next to advance chunk by chunk;
    a chunk of one step is the step-by-step use. `service_s` is the service time per request
    (one value or one per step), `threshold_s` the SLO latency threshold.
    """
    a = np.asarray(arrivals, dtype=np.float64)
    mu = np.broadcast_to(np.asarray(capacity_rps, dtype=np.float64), a.shape)
    served, backlog = backlog_path(a, mu, dt, backlog0)
    before = np.concatenate(([backlog0], backlog[:-1]))
    first_w, last_w = wait_ends(before, a, mu, dt)
    budget = threshold_s - np.asarray(service_s, dtype=np.float64)
    met = a * share_within(before, a, mu, budget, dt)
    return ServiceResult(served, backlog, first_w, last_w, met)


def latency_buckets(
    backlog_before: ArrayLike,
    arrivals: ArrayLike,
    capacity_rps: ArrayLike,
    service_s: ArrayLike,
    edges_s: ArrayLike,
    dt: float = 1.0,
) -> FloatArray:
    """Cumulative latency histogram of each step's arrivals, like Prometheus `le` buckets.

    Returns an array of shape (steps, len(edges_s)): arrivals with latency <= each edge
    (latency = wait + `service_s`, one value or one per step). Sum over steps for a run's
    histogram; the load twin adds one row per step to its `..._bucket` counters.
    """
    edges = np.asarray(edges_s, dtype=np.float64)[None, :]
    b = np.atleast_1d(np.asarray(backlog_before, dtype=np.float64))[:, None]
    a = np.atleast_1d(np.asarray(arrivals, dtype=np.float64))[:, None]
    mu = np.atleast_1d(np.asarray(capacity_rps, dtype=np.float64))[:, None]
    s = np.asarray(service_s, dtype=np.float64)
    budget = edges - (s[:, None] if s.ndim else s)
    return a * share_within(b, a, mu, budget, dt)


def in_flight(
    served: ArrayLike, backlog: ArrayLike, service_s: float, replicas: ArrayLike, dt: float = 1.0
) -> tuple[FloatArray, FloatArray]:
    """Requests running and waiting per ready replica (vLLM's num_requests_running / _waiting).

    Running follows Little's law (throughput x service time); the backlog is spread evenly over
    the ready replicas. With no replica ready both are 0 per replica (nothing to report on).
    """
    n = np.asarray(replicas, dtype=np.float64)
    running = np.asarray(served, dtype=np.float64) / dt * service_s
    waiting = np.asarray(backlog, dtype=np.float64)
    safe = np.where(n > 0, n, 1.0)
    return np.where(n > 0, running / safe, 0.0), np.where(n > 0, waiting / safe, 0.0)
