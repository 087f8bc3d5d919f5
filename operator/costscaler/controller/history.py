"""The observation window of one deployment: one sample per tick, turned into `Observations`.

Samples live in memory for `forecast.windowSeconds`, as numpy rows (a thousand deployments
with an hour of 15 s ticks hold ~20 MB, not the ~250 MB of per-sample objects); after a
restart the window is backfilled from Prometheus (`backfill`, one batched range query per
metric), so the first decision already sees a full window. A tick
whose reading is unusable adds a NaN sample, which the engine treats as bad data and answers
by holding the allocation.
"""

from __future__ import annotations

import numpy as np

from costscaler.adapters.backfill import Past
from costscaler.adapters.children import ChildState
from costscaler.adapters.prometheus import Reading
from costscaler.core import Observations

TIME, RATE, LATENCY, TOKENS, TTFT, ITL, QUEUE, KV_CACHE, PROMPT = range(9)
# The LLM signals: an Observations array each, None while the window holds none of it.
_SIGNALS = {TTFT: "ttft", ITL: "itl", QUEUE: "queue_depth", KV_CACHE: "kv_cache_usage"}
_SIGNALS[PROMPT] = "prompt_token_rate"
READY, WARMING, DESIRED, UNFULFILLABLE, INTERRUPTED = range(5)


def _or_nan(value: float | None) -> float:
    return np.nan if value is None else float(value)


class History:
    """A bounded window of samples for one deployment: rows oldest first."""

    def __init__(self, window_seconds: float, interval_seconds: float = 15.0) -> None:
        self.window = window_seconds
        rows = int(window_seconds // max(interval_seconds, 1.0)) + 2
        # time, rate, latency, tokens, then the LLM signals (NaN when not reported)
        self.load = np.full((rows, 9), np.nan)
        # Per pool: ready, warming, desired, unfulfillable, interrupted; float32 holds counts
        # exactly and halves the size.
        self.replicas = np.zeros((rows, 0, 5), dtype=np.float32)
        self.pools: list[str] = []
        self.n = 0

    @property
    def newest(self) -> float:
        """The time (epoch s) of the newest sample; -inf when there is none."""
        return float(self.load[self.n - 1, TIME]) if self.n else -np.inf

    def _column(self, pool: str) -> int:
        if pool not in self.pools:
            self.pools.append(pool)
            extra = np.zeros((self.replicas.shape[0], 1, 5), dtype=np.float32)
            self.replicas = np.concatenate([self.replicas, extra], axis=1)
        return self.pools.index(pool)

    def add(self, now: float, reading: Reading, children: list[ChildState]) -> None:
        """Append this tick's sample (NaN load when the reading is unusable); drop old ones."""
        if self.n and self.load[self.n - 1, TIME] >= now:
            self.n -= 1  # the same tick again (a retried handler): replace, not repeat
        if self.n == self.load.shape[0]:
            self._drop(1)
        usable = reading.problem is None
        row = self.load[self.n]
        row[TIME] = now
        row[RATE] = _or_nan(reading.request_rate if usable else None)
        row[LATENCY] = _or_nan(reading.latency_seconds if usable else None)
        row[TOKENS] = _or_nan(reading.token_rate if usable else None)
        signals = [reading.ttft_seconds, reading.itl_seconds, reading.queue_depth]
        signals += [reading.kv_cache_usage, reading.prompt_token_rate]
        row[TTFT:] = [_or_nan(v if usable else None) for v in signals]
        row[RATE] += self._queue_growth(row)
        self.replicas[self.n] = 0
        for c in children:
            col = self._column(c.pool)  # may grow the array: index it afterwards
            row = (c.ready, c.warming, c.desired, c.unfulfillable, c.interrupted)
            self.replicas[self.n, col] = row
        self.n += 1
        old = int(np.searchsorted(self.load[: self.n, TIME], now - self.window, side="left"))
        self._drop(old)

    def _queue_growth(self, row: np.ndarray) -> float:
        """Requests/s by which the waiting queue grew since the previous sample, when it did.

        The fast signal (issue 17): the request rate is of finished requests over the rate
        window (a minute), which a saturated server caps at what it serves, so a burst shows
        in it late and in part. Requests arrive at what finishes plus what queues up: while a
        queue grows, its growth per second is added to the rate the engine sizes for, and the
        next decision already provisions for it instead of waiting for the rate window. A
        draining queue adds nothing: the plan keeps what cleared it until the rate falls.
        """
        if self.n == 0:
            return 0.0
        before = self.load[self.n - 1]
        grown = (row[QUEUE] - before[QUEUE]) / (row[TIME] - before[TIME])
        return float(grown) if np.isfinite(grown) and grown > 0 else 0.0

    def backfill(self, past: Past, children: list[ChildState]) -> int:
        """Start an empty window from Prometheus's past (`adapters.backfill`); returns the rows.

        Prometheus knows the load, not the allocation: past rows take the replicas ready and
        asked now, and none warming (a warming count frozen in the past would read as a stalled
        pool).
        """
        if self.n:
            return 0
        rows = min(past.times.size, self.load.shape[0] - 1)  # leave room for this tick's row
        start = past.times.size - rows
        for column, values in ((TIME, past.times), (RATE, past.rate), (LATENCY, past.latency)):
            self.load[:rows, column] = values[start:]
        self.load[:rows, TOKENS] = past.tokens[start:]
        self.load[:rows, TTFT:] = np.nan  # not backfilled: only the latest ones are read
        for c in children:
            col = self._column(c.pool)
            self.replicas[:rows, col] = (c.ready, 0, c.desired, 0, 0)
        self.n = rows
        return rows

    def _drop(self, k: int) -> None:
        if k <= 0:
            return
        self.load[: self.n - k] = self.load[k : self.n]
        self.replicas[: self.n - k] = self.replicas[k : self.n]
        self.n -= k

    def observations(self, has_tokens: bool) -> Observations:
        """The window as the engine's arrays (ready, warming, spot losses and unplaceable
        replicas per pool). Spot losses are the nodes lost while they held replicas
        (`controller.interruptions`), not drops in ready replicas: a crash, a readiness flap or
        a scale-down is no interruption."""
        load, reps = self.load[: self.n], self.replicas[: self.n]
        signals = {name: _column(load, col) for col, name in _SIGNALS.items()}
        return Observations(
            times=load[:, TIME].copy(),
            request_rate=load[:, RATE].copy(),
            latency=load[:, LATENCY].copy(),
            token_rate=load[:, TOKENS].copy() if has_tokens else None,
            ready={p: reps[:, i, READY].astype(float) for i, p in enumerate(self.pools)},
            warming={p: reps[:, i, WARMING].astype(float) for i, p in enumerate(self.pools)},
            lost={p: reps[:, i, INTERRUPTED].astype(float) for i, p in enumerate(self.pools)},
            unfulfillable={
                p: reps[:, i, UNFULFILLABLE].astype(float) for i, p in enumerate(self.pools)
            },
            ttft=signals["ttft"],
            itl=signals["itl"],
            queue_depth=signals["queue_depth"],
            kv_cache_usage=signals["kv_cache_usage"],
            prompt_token_rate=signals["prompt_token_rate"],
        )


def _column(load: np.ndarray, col: int) -> np.ndarray | None:
    """A copy of one signal's column, or None when the window holds none of it."""
    return load[:, col].copy() if np.isfinite(load[:, col]).any() else None
