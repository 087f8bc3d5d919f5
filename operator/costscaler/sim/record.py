"""Per-step arrays of one run, with the queue computed ahead of the policy's ticks.

The twin records replicas at every tick; the queue model must be known up to the step a
policy reads (latency, concurrency, attainment). Running it tick by tick costs a few dozen
numpy calls on 15-step arrays, most of a replay's time outside the engine. So the queue runs
ahead: from the last verified step over a horizon, assuming the ready replicas stay as they
were last recorded. Ready replicas change only at scale events, warm-ups and interruptions,
so at most ticks the recorded replicas match the assumption and a read costs one comparison;
at the first step that differs, the queue is recomputed from there. The horizon doubles
while guesses hold and halves when they fail. Results equal a tick-by-tick replay up to
floating-point rounding (the backlog recursion is summed over longer stretches).

Window reads of the latency histogram keep one row per queueing step (latency is spread
over edges) in a ring, computed once per step instead of once per window that covers it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from costscaler.sim import service
from costscaler.sim.pools import PoolModel
from costscaler.sim.service import FIELDS, ServiceResult

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
PIECE = 100_000  # steps per vectorised queue call: bounded memory on long catch-ups
HORIZON = (32, 4096)  # steps the queue runs ahead of the last read: least and most
RING = 8192  # steps of latency-histogram rows kept; longer windows are summed directly
FILL = 256  # steps of rows computed at once when a window read finds some missing


class Record:
    """The run's per-step record: replicas, cumulative arrivals, and the queue."""

    def __init__(
        self,
        arrivals: FloatArray,
        tokens: FloatArray | None,
        pools: list[PoolModel],
        threshold_s: float,
        dt: float,
        edges_s: ArrayLike,
    ) -> None:
        n, zero = arrivals.size, np.zeros(1)
        self.dt, self.threshold_s = dt, threshold_s
        self.edges = np.asarray(edges_s, dtype=np.float64)
        self.mu = np.array([p.capacity_rps for p in pools])
        self.mu_s = self.mu * np.array([p.service_s for p in pools])
        self.arrived = np.concatenate((zero, np.cumsum(arrivals)))
        self.cum_tokens = None if tokens is None else np.concatenate((zero, np.cumsum(tokens)))
        self.ready = np.zeros((len(pools), n), dtype=np.int64)
        self.held = np.zeros((len(pools), n), dtype=np.int64)
        self.capacity, self.service_s = np.zeros(n), np.zeros(n)
        self.queue = ServiceResult(*(np.zeros(n) for _ in FIELDS))
        self.cum_met, self.cum_started = np.zeros(n + 1), np.zeros(n + 1)
        self.busy = np.zeros(n, dtype=bool)  # a started request had waited
        self.bucket = np.zeros(n, dtype=np.int64)  # edge bucket of the service time
        self.calm_served = np.zeros(n)  # served where nobody waited, else 0
        self.done = 0  # queue verified for steps [0, done)
        self.ahead = 0  # queue computed (on a guess from `done` on) up to here
        self.guess = np.zeros(len(pools), dtype=np.int64)
        self.horizon = HORIZON[0]
        self.rows = np.zeros((RING, self.edges.size))
        self.row_step = np.full(RING, -1, dtype=np.int64)

    def store(self, t: int, ready: IntArray, held: IntArray) -> None:
        """Record replicas for steps [t, t + ready's width)."""
        stop = t + ready.shape[1]
        self.ready[:, t:stop], self.held[:, t:stop] = ready, held

    def sync(self, upto: int) -> None:
        """Make the queue exact for steps before `upto` (all recorded)."""
        if upto <= self.done:
            return
        end = min(upto, self.ahead)
        differ = np.flatnonzero((self.ready[:, self.done : end] != self.guess[:, None]).any(0))
        if differ.size:
            self.done += int(differ[0])
            self.horizon = max(HORIZON[0], self.horizon // 2)
        else:
            self.done = end
            if end == self.ahead:
                self.horizon = min(HORIZON[1], 2 * self.horizon)
        if self.done < upto:
            self._run(upto)

    def _run(self, upto: int) -> None:
        """Queue from `done` to past `upto`: recorded replicas, then the last ones held."""
        n = self.capacity.size
        stop = min(n, max(upto, self.done + self.horizon))
        self.guess = self.ready[:, upto - 1].copy()
        ready = self.ready[:, self.done : stop].copy()
        ready[:, upto - self.done :] = self.guess[:, None]
        self.row_step[self.row_step >= self.done] = -1
        for t in range(self.done, stop, PIECE):
            self._piece(t, ready[:, t - self.done : t - self.done + PIECE])
        self.done, self.ahead = upto, stop

    def _piece(self, t: int, ready: IntArray) -> None:
        stop = t + ready.shape[1]
        cap = self.mu @ ready
        svc = np.divide(self.mu_s @ ready, cap, out=np.zeros_like(cap), where=cap > 0)
        res = service.replay(
            self.arrived, t, cap, svc, self.threshold_s, self.dt, float(self.cum_started[t])
        )
        self.capacity[t:stop], self.service_s[t:stop] = cap, svc
        for f in FIELDS:
            getattr(self.queue, f)[t:stop] = getattr(res, f)
        self.cum_met[t + 1 : stop + 1] = self.cum_met[t] + np.cumsum(res.met)
        self.cum_started[t + 1 : stop + 1] = self.arrived[t + 1 : stop + 1] - res.backlog
        busy = ~((res.wait_first_s <= 0) & (res.wait_last_s <= 0))
        self.busy[t:stop] = busy
        self.bucket[t:stop] = np.searchsorted(self.edges, svc, side="left")
        self.calm_served[t:stop] = np.where(busy, 0.0, res.served)

    def completed(self, lo: int, hi: int) -> float:
        """Requests that started service in steps [lo, hi) (synced)."""
        self.sync(hi)
        return float(self.queue.served[lo:hi].sum())

    def in_system(self, lo: int, hi: int) -> float:
        """Mean requests in service (Little's law) plus waiting over steps [lo, hi) (synced)."""
        if hi <= lo:
            return 0.0
        self.sync(hi)
        running = self.queue.served[lo:hi] / self.dt * self.service_s[lo:hi]
        return float((running + self.queue.backlog[lo:hi]).mean())

    def histogram(self, lo: int, hi: int) -> FloatArray:
        """Cumulative latency counts at `edges_s` of requests started in steps [lo, hi).

        The same numbers as `service.latency_histogram` over those steps: calm steps by
        bucket, queueing steps by their rows (kept in the ring, computed once).
        """
        self.sync(hi)
        size = self.edges.size
        calm = np.bincount(self.bucket[lo:hi], self.calm_served[lo:hi], size + 1)[:size]
        counts: FloatArray = np.cumsum(calm, dtype=np.float64)
        busy = np.flatnonzero(self.busy[lo:hi]) + lo
        if busy.size == 0:
            return counts
        if hi - lo > RING // 2:
            return np.asarray(counts + self._rows_of(busy).sum(axis=0), dtype=np.float64)
        slots = busy % RING
        missing = busy[self.row_step[slots] != busy]
        if missing.size:
            first = int(missing[0])
            # Rows past `hi` rest on the queue's guess and may be dropped: fill a little ahead.
            last = min(self.ahead, max(hi, first + FILL), first + RING // 2)
            fill = np.flatnonzero(self.busy[first:last]) + first
            self.rows[fill % RING] = self._rows_of(fill)
            self.row_step[fill % RING] = fill
        return np.asarray(counts + self.rows[slots].sum(axis=0), dtype=np.float64)

    def _rows_of(self, steps: IntArray) -> FloatArray:
        """Latency-histogram rows of `steps` (all queueing steps, computed already)."""
        part = ServiceResult(*(getattr(self.queue, f)[steps] for f in FIELDS))
        return service.latency_buckets(part, self.service_s[steps], self.edges)
