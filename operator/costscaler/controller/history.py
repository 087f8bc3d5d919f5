"""The observation window of one deployment: one sample per tick, turned into `Observations`.

Samples live in memory for `forecast.windowSeconds`, as numpy rows; after a restart the window
is backfilled from Prometheus (`backfill`, one batched range query per metric), so the first
decision already sees a full window. A tick whose reading is unusable adds a NaN sample, which
the engine treats as bad data and answers by holding the allocation.

The window keeps only what the engine reads, at the precision it reads it (docs/metrics.md,
"Memory"): times and rates stay float64, since any rounding could move a forecast or a
calibrator comparison; the optional signals get a column the first time they carry a number
(before that the engine sees None, as it would for a column of NaN), and TTFT and ITL only
while the deployment states those objectives, the only case the engine reads them in;
replica counts are integers, kept in the narrowest integer type that holds them. The token,
prompt, queue and KV-cache signals are read only near the newest sample (the request mix over
`core.tokens.MIX_WINDOW_S`, the latest rates, the queue's growth since the previous sample), so
only their samples of that span are kept; older rows read as NaN.
"""

from __future__ import annotations

import numpy as np

from costscaler.adapters.backfill import Past
from costscaler.adapters.children import ChildState
from costscaler.adapters.prometheus import Reading
from costscaler.core import Observations
from costscaler.core.tokens import MIX_WINDOW_S

TIME, RATE, LATENCY = range(3)
# The optional signals, each an Observations array, None while the window holds none of it.
TTFT, ITL = "ttft", "itl"  # a column over the whole window: the calibration reads its span
# Kept for the newest rows only (`History.recent`), in this order.
TOKENS, PROMPT, QUEUE, KV_CACHE = "token_rate", "prompt_token_rate", "queue_depth", "kv_cache_usage"
RECENT = (TOKENS, PROMPT, QUEUE, KV_CACHE)
READY, WARMING, UNFULFILLABLE, INTERRUPTED = range(4)
_COUNTS = np.int16  # widened (`_fit`) the first time a count does not fit


def _or_nan(value: float | None) -> float:
    return np.nan if value is None else float(value)


class History:
    """A bounded window of samples for one deployment: rows oldest first."""

    def __init__(self, window_seconds: float, interval_seconds: float = 15.0) -> None:
        self.window = window_seconds
        rows = int(window_seconds // max(interval_seconds, 1.0)) + 2
        self.load = np.full((rows, 3), np.nan)  # time, rate, latency
        self.signals: dict[str, np.ndarray] = {}  # TTFT, ITL: created by the first finite value
        # RECENT's samples of the window's last len(recent) rows: those within MIX_WINDOW_S of
        # the newest, and at least the two the queue's growth compares.
        self.recent = np.full((0, len(RECENT)), np.nan)
        # Per RECENT signal, the window row of its newest finite sample older than `recent`
        # (-1: none), so that a signal reads as reported while the window holds a number of it.
        self.older = np.full(len(RECENT), -1, dtype=np.int32)
        # Per pool: ready, warming, unfulfillable, interrupted replicas.
        self.replicas = np.zeros((rows, 0, 4), dtype=_COUNTS)
        self.pools: list[str] = []
        self.n = 0

    @property
    def newest(self) -> float:
        """The time (epoch s) of the newest sample; -inf when there is none."""
        return float(self.load[self.n - 1, TIME]) if self.n else -np.inf

    def _column(self, pool: str) -> int:
        if pool not in self.pools:
            self.pools.append(pool)
            extra = np.zeros((self.replicas.shape[0], 1, 4), dtype=self.replicas.dtype)
            self.replicas = np.concatenate([self.replicas, extra], axis=1)
        return self.pools.index(pool)

    def _fit(self, counts: tuple[int, ...]) -> None:
        """Widen the replica counts' type when one of `counts` does not fit it."""
        info = np.iinfo(self.replicas.dtype)
        if min(counts) < info.min or max(counts) > info.max:
            self.replicas = self.replicas.astype(np.int64)

    def _signal(self, name: str, row: int, value: float) -> None:
        """Store one optional signal's sample; a column exists once one is finite."""
        found = self.signals.get(name)
        if found is None:
            if not np.isfinite(value):
                return  # the column would hold nothing but NaN: the engine sees None either way
            found = self.signals[name] = np.full(self.load.shape[0], np.nan)
        found[row] = value

    def add(
        self,
        now: float,
        reading: Reading,
        children: list[ChildState],
        ttft: bool = True,
        itl: bool = True,
    ) -> None:
        """Append this tick's sample (NaN load when the reading is unusable); drop old ones.

        `ttft`, `itl`: whether the deployment states those objectives; their latencies are
        kept only then (the engine reads them for nothing else, `core.tokens.slowest`)."""
        retried = bool(self.n) and self.load[self.n - 1, TIME] >= now
        if retried:
            self.n -= 1  # the same tick again (a retried handler): replace, not repeat
        if self.n == self.load.shape[0]:
            self._drop(1)
        usable = reading.problem is None
        row = self.load[self.n]
        row[TIME] = now
        row[RATE] = _or_nan(reading.request_rate if usable else None)
        row[LATENCY] = _or_nan(reading.latency_seconds if usable else None)
        for name, stated, value in (
            (TTFT, ttft, reading.ttft_seconds),
            (ITL, itl, reading.itl_seconds),
        ):
            if stated:
                self._signal(name, self.n, _or_nan(value if usable else None))
            else:
                self.signals.pop(name, None)
        values = (reading.token_rate, reading.prompt_token_rate, reading.queue_depth)
        sample = [_or_nan(v if usable else None) for v in (*values, reading.kv_cache_usage)]
        if retried:
            self.recent[-1] = sample
        else:
            self.recent = np.concatenate([self.recent, [sample]])
        row[RATE] += self._queue_growth(now)
        self.replicas[self.n] = 0
        for c in children:
            col = self._column(c.pool)  # may grow the array: index it afterwards
            counts = (c.ready, c.warming, c.unfulfillable, c.interrupted)
            self._fit(counts)
            self.replicas[self.n, col] = counts
        self.n += 1
        old = int(np.searchsorted(self.load[: self.n, TIME], now - self.window, side="left"))
        self._drop(old)
        self._trim_recent()

    def _queue_growth(self, now: float) -> float:
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
        queue = self.recent[-2:, RECENT.index(QUEUE)]
        grown = (queue[-1] - queue[0]) / (now - self.load[self.n - 1, TIME])
        return float(grown) if np.isfinite(grown) and grown > 0 else 0.0

    def _trim_recent(self) -> None:
        """Keep RECENT's samples within MIX_WINDOW_S of the newest (two at least), noting
        per signal the row of the newest finite sample let go."""
        n = self.n
        first = int(np.searchsorted(self.load[:n, TIME], self.load[n - 1, TIME] - MIX_WINDOW_S))
        first = min(first, n - 2) if n >= 2 else 0
        cut = self.recent.shape[0] - (n - first)  # rows of `recent` before window row `first`
        if cut <= 0:
            return
        gone = np.isfinite(self.recent[:cut])
        for i in np.flatnonzero(gone.any(axis=0)):
            self.older[i] = first - cut + int(np.flatnonzero(gone[:, i])[-1])
        self.recent = self.recent[cut:].copy()  # a copy: a view would keep the old rows

    def backfill(self, past: Past, children: list[ChildState]) -> int:
        """Start an empty window from Prometheus's past (`adapters.backfill`); returns the rows.

        Prometheus knows the load, not the allocation: past rows take the replicas ready now,
        and none warming (a warming count frozen in the past would read as a stalled pool).
        """
        if self.n:
            return 0
        rows = min(past.times.size, self.load.shape[0] - 1)  # leave room for this tick's row
        start = past.times.size - rows
        for column, values in ((TIME, past.times), (RATE, past.rate), (LATENCY, past.latency)):
            self.load[:rows, column] = values[start:]
        # Of the LLM signals only the output token rate is backfilled.
        self.recent = np.full((rows, len(RECENT)), np.nan)
        self.recent[:, RECENT.index(TOKENS)] = past.tokens[start:]
        for c in children:
            col = self._column(c.pool)
            self._fit((c.ready,))
            self.replicas[:rows, col] = (c.ready, 0, 0, 0)
        self.n = rows
        if rows:
            self._trim_recent()
        return rows

    def _drop(self, k: int) -> None:
        if k <= 0:
            return
        self.load[: self.n - k] = self.load[k : self.n]
        self.replicas[: self.n - k] = self.replicas[k : self.n]
        for column in self.signals.values():
            column[: self.n - k] = column[k : self.n]
        self.n -= k
        self.older = np.where(self.older >= k, self.older - k, -1).astype(np.int32)
        if self.recent.shape[0] > self.n:
            self.recent = self.recent[self.recent.shape[0] - self.n :].copy()

    def observations(self, has_tokens: bool) -> Observations:
        """The window as the engine's arrays (ready, warming, spot losses and unplaceable
        replicas per pool). Spot losses are the nodes lost while they held replicas
        (`controller.interruptions`), not drops in ready replicas: a crash, a readiness flap or
        a scale-down is no interruption."""
        n, load, reps = self.n, self.load[: self.n], self.replicas[: self.n]
        signals = {name: _column(column[:n]) for name, column in self.signals.items()}
        recent = {name: self._recent(i) for i, name in enumerate(RECENT)}
        tokens = None
        if has_tokens:  # stated or reported: the engine reads a NaN as "not measured"
            found = recent[TOKENS]
            tokens = np.full(n, np.nan) if found is None else found

        def per_pool(kind: int) -> dict[str, np.ndarray]:
            return {p: reps[:, i, kind].astype(float) for i, p in enumerate(self.pools)}

        return Observations(
            times=load[:, TIME].copy(),
            request_rate=load[:, RATE].copy(),
            latency=load[:, LATENCY].copy(),
            token_rate=tokens,
            ready=per_pool(READY),
            warming=per_pool(WARMING),
            lost=per_pool(INTERRUPTED),
            unfulfillable=per_pool(UNFULFILLABLE),
            ttft=signals.get(TTFT),
            itl=signals.get(ITL),
            queue_depth=recent[QUEUE],
            kv_cache_usage=recent[KV_CACHE],
            prompt_token_rate=recent[PROMPT],
        )

    def _recent(self, i: int) -> np.ndarray | None:
        """RECENT[i] over the window, NaN before its kept rows; None when the window holds
        no number of it."""
        kept = self.recent[:, i]
        if self.older[i] < 0 and not np.isfinite(kept).any():
            return None
        full = np.full(self.n, np.nan)
        full[self.n - kept.size :] = kept
        return full


def _column(values: np.ndarray) -> np.ndarray | None:
    """A copy of one signal's column, or None when the window holds none of it."""
    return values.copy() if np.isfinite(values).any() else None
