"""The service and queueing model: arrivals, ready capacity and a carried backlog -> latency.

One model for every consumer: the trace-replay twin (`sim.run`) runs it over a whole trace
chunk by chunk, and the load twin in `hack/cluster/` (which serves vLLM-style metrics per pod
for the e2e tests and the demo) imports it and advances it step by step in real time. Do not
copy it: both must see the same latency for the same load.

The model is a fluid FIFO queue in front of all ready replicas (the Service load-balances).
In step t (length `dt` s) `a_t` requests arrive spread evenly over the step and the ready
replicas start up to `mu_t dt` of them (`mu_t`: the sum of their rated requests/s at the
SLO). The backlog follows Lindley's recursion `b_t = max(0, b_{t-1} + a_t - mu_t dt)`,
computed for many steps at once with Reich's formula `b_t = X_t - min(-b_0, min_{k<=t} X_k)`
(`X_t`: cumulative sum of `a - mu dt`).

Latency is measured when a request starts service, as a server reports it: with cumulative
arrivals `A` and cumulative starts `D` at step boundaries, the requests started in step t are
numbers (D_t, D_{t+1}], starting evenly over the step; number x arrived at A^{-1}(x). Its
wait is start - arrival, linear between the step's first and last start; its latency is the
wait plus the service time `s` (the unloaded end-to-end latency). Only the past is used, so
the step-by-step use gets the same numbers as the whole-trace replay.

Capacity per replica is the profile's requests/s *at the SLO*, so queueing inside a replica
at that load is already in `s`; this queue is the excess over rated capacity, which is what
makes latency blow up when an autoscaler is late. Requests still waiting at the end of a run
never started: callers count them as missing the SLO.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
FIELDS = ("served", "backlog", "wait_first_s", "wait_last_s", "met")  # ServiceResult's arrays


@dataclass(frozen=True)
class ServiceResult:
    """What the queue did in each step of a run of steps.

    `served`: requests that started service; `backlog`: requests waiting at the end of the
    step; `wait_first_s` / `wait_last_s`: queueing wait of the first and last request started
    (linear in between; 0 when none started); `met`: started requests whose latency
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
    """Requests started and end-of-step backlog for every step (Reich's formula).

    `arrivals` requests per step, `capacity_rps` ready capacity in requests/s per step (or one
    value), `dt` step length in s, `backlog0` requests waiting before the first step.
    """
    a = np.asarray(arrivals, dtype=np.float64)
    c = np.broadcast_to(np.asarray(capacity_rps, dtype=np.float64) * dt, a.shape)
    x = np.cumsum(a - c)
    floor = np.minimum(np.minimum.accumulate(x), -backlog0) if x.size else x
    backlog = np.maximum(x - floor, 0.0)
    before = np.concatenate(([backlog0], backlog[:-1]))
    return before + a - backlog, backlog


def arrival_time(
    arrived: FloatArray, number: ArrayLike, dt: float = 1.0, after: bool = False
) -> FloatArray:
    """When request `number` arrived (s), from cumulative arrivals `arrived` at step boundaries.

    Arrivals are spread evenly within a step; number 0 (nothing yet) maps to time 0. With
    `after`, the time of the request just after `number` (the first one a step starts).
    """
    x = np.asarray(number, dtype=np.float64)
    side: Literal["left", "right"] = "right" if after else "left"
    i = np.clip(np.searchsorted(arrived, x, side=side), 1, arrived.size - 1)
    lo, hi = arrived[i - 1], arrived[i]
    frac = np.divide(x - lo, hi - lo, out=np.ones_like(x), where=hi > lo)
    return np.where(x <= arrived[0], 0.0, (i - 1 + np.clip(frac, 0, 1)) * dt)


def linear_share(first: ArrayLike, last: ArrayLike, limit: ArrayLike) -> FloatArray:
    """Share of u in [0, 1] with first + (last - first) u <= limit (elementwise)."""
    w0 = np.asarray(first, dtype=np.float64)
    w1 = np.asarray(last, dtype=np.float64)
    lim = np.asarray(limit, dtype=np.float64)
    slope = np.broadcast_to(w1 - w0, np.broadcast(w0, w1, lim).shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        cut = np.clip((lim - w0) / np.where(slope != 0, slope, 1.0), 0.0, 1.0)
    flat = (w0 <= lim).astype(np.float64)
    return np.where(slope > 0, cut, np.where(slope < 0, 1.0 - cut, flat))


def replay(
    arrived: FloatArray,
    start: int,
    capacity_rps: ArrayLike,
    service_s: ArrayLike,
    threshold_s: float,
    dt: float = 1.0,
    started0: float = 0.0,
) -> ServiceResult:
    """Run the queue over steps [start, start + len(capacity_rps)).

    `arrived`: cumulative arrivals at step boundaries (arrived[0] = 0), at least up to the
    last step's end; `started0`: requests started before `start` (the previous call's total).
    Feed chunk after chunk, or one step at a time in real time. `service_s`: service time
    (one value or one per step); `threshold_s`: the SLO latency threshold.
    """
    mu = np.atleast_1d(np.asarray(capacity_rps, dtype=np.float64))
    stop = start + mu.size
    arrivals = np.diff(arrived[start : stop + 1])
    backlog0 = max(0.0, float(arrived[start]) - started0)
    if backlog0 == 0 and bool((arrivals <= mu * dt).all()):
        return _calm(arrivals, service_s, threshold_s)
    served, backlog = backlog_path(arrivals, mu, dt, backlog0)
    # Starts so far = arrivals so far - waiting, never more than have arrived: a running sum
    # of `served` can drift a hair past an arrival count, and where arrivals pause that
    # hair would date the last start to a later arrival (a wait of 0 instead of the gap).
    started = np.concatenate(([arrived[start] - backlog0], arrived[start + 1 : stop + 1] - backlog))
    clock = np.arange(start, stop + 1) * dt
    first = np.maximum(clock[:-1] - arrival_time(arrived, started[:-1], dt, after=True), 0.0)
    last = np.maximum(clock[1:] - arrival_time(arrived, started[1:], dt), 0.0)
    first, last = np.where(served > 0, first, 0.0), np.where(served > 0, last, 0.0)
    met = served * linear_share(first, last, threshold_s - np.asarray(service_s, np.float64))
    return ServiceResult(served, backlog, first, last, met)


def _calm(arrivals: FloatArray, service_s: ArrayLike, threshold_s: float) -> ServiceResult:
    """`replay` of steps that start empty and whose capacity covers each step's arrivals.

    Nobody waits, so every request starts in the step it arrives: the general path gives the
    same numbers (zero backlog and waits, served = arrivals) with far less work, which is
    what most ticks of a replay are.
    """
    ok = np.broadcast_to(threshold_s - np.asarray(service_s, np.float64) >= 0, arrivals.shape)
    zero = np.zeros_like(arrivals)
    return ServiceResult(arrivals, zero, zero.copy(), zero.copy(), arrivals * ok)


def latency_buckets(result: ServiceResult, service_s: ArrayLike, edges_s: ArrayLike) -> FloatArray:
    """Cumulative latency histogram of each step's started requests, like Prometheus `le`.

    Returns shape (steps, len(edges_s)): requests with latency <= each edge (latency = wait +
    `service_s`, one value or one per step). Sum over steps for a run; the load twin adds one
    row per step to its `..._bucket` counters.
    """
    edges = np.asarray(edges_s, dtype=np.float64)[None, :]
    s = np.asarray(service_s, dtype=np.float64)
    limit = edges - (s[:, None] if s.ndim else s)
    share = linear_share(result.wait_first_s[:, None], result.wait_last_s[:, None], limit)
    return np.asarray(result.served[:, None] * share, dtype=np.float64)


def latency_histogram(
    result: ServiceResult, service_s: ArrayLike, edges_s: ArrayLike
) -> FloatArray:
    """Cumulative latency histogram of all requests started in `result`'s steps (`le` counts).

    The sum over steps of `latency_buckets`, with a fast path: in a step where nobody waited,
    every request's latency is the service time, so only queueing steps need the full share.
    """
    edges = np.asarray(edges_s, dtype=np.float64)
    s = np.broadcast_to(np.asarray(service_s, dtype=np.float64), result.served.shape)
    calm = (result.wait_first_s <= 0) & (result.wait_last_s <= 0)
    index = np.searchsorted(edges, s[calm], side="left")
    counts = np.cumsum(np.bincount(index, result.served[calm], edges.size + 1)[: edges.size])
    busy = np.flatnonzero(~calm)
    for lo in range(0, busy.size, 20_000):  # bounded memory: steps x edges at a time
        rows = busy[lo : lo + 20_000]
        part = ServiceResult(*(np.asarray(getattr(result, f))[rows] for f in FIELDS))
        counts = counts + latency_buckets(part, s[rows], edges).sum(axis=0)
    return np.asarray(counts, dtype=np.float64)


def latency_rank(
    result: ServiceResult, service_s: ArrayLike, edges_s: ArrayLike, rank: float
) -> int:
    """Index of the first edge with at least `rank` requests at or under it (or len(edges_s)).

    The edge `np.searchsorted(latency_histogram(...), rank)` finds, by bisection: only the
    edges it visits are counted over the queueing steps, so one quantile of a long run costs
    a few passes instead of one per edge.
    """
    edges = np.asarray(edges_s, dtype=np.float64)
    s = np.broadcast_to(np.asarray(service_s, dtype=np.float64), result.served.shape)
    calm = (result.wait_first_s <= 0) & (result.wait_last_s <= 0)
    index = np.searchsorted(edges, s[calm], side="left")
    counts = np.cumsum(np.bincount(index, result.served[calm], edges.size + 1)[: edges.size])
    busy = ~calm
    served, first, last = result.served[busy], result.wait_first_s[busy], result.wait_last_s[busy]
    lo, hi, s_busy = 0, edges.size, s[busy]
    while lo < hi:
        mid = (lo + hi) // 2
        within = float((served * linear_share(first, last, edges[mid] - s_busy)).sum())
        if counts[mid] + within >= rank:
            hi = mid
        else:
            lo = mid + 1
    return lo


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
