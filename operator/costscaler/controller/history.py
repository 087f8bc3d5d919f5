"""The observation window of one deployment: one sample per tick, turned into `Observations`.

Samples live in memory for `forecast.windowSeconds`; after a restart the window refills from
the next ticks (the engine forecasts from what it has). A tick whose reading is unusable adds
a NaN sample, which the engine treats as bad data and answers by holding the allocation.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from costscaler.adapters.children import ChildState
from costscaler.adapters.prometheus import Reading
from costscaler.core import Observations


@dataclass(frozen=True)
class Sample:
    """One tick's observation: time (s), load, latency and replicas per pool."""

    time: float
    rate: float
    latency: float
    tokens: float
    ready: dict[str, int]
    warming: dict[str, int]
    desired: dict[str, int]


class History:
    """A bounded window of samples for one deployment."""

    def __init__(self, window_seconds: float) -> None:
        self.window = window_seconds
        self.samples: deque[Sample] = deque()

    def add(self, now: float, reading: Reading, children: list[ChildState]) -> None:
        """Append this tick's sample (NaN load when the reading is unusable); drop old ones."""
        usable = reading.problem is None
        rate = reading.request_rate if usable else None
        latency = reading.latency_seconds if usable else None
        tokens = reading.token_rate if usable else None
        sample = Sample(
            time=now,
            rate=math.nan if rate is None else rate,
            latency=math.nan if latency is None else latency,
            tokens=math.nan if tokens is None else tokens,
            ready={c.pool: c.ready for c in children},
            warming={c.pool: c.warming for c in children},
            desired={c.pool: c.desired for c in children},
        )
        if self.samples and self.samples[-1].time >= now:
            self.samples.pop()  # the same tick again (a retried handler): replace, not repeat
        self.samples.append(sample)
        while self.samples and self.samples[0].time < now - self.window:
            self.samples.popleft()

    def observations(self, has_tokens: bool) -> Observations:
        """The window as the engine's arrays (ready, warming and spot losses per pool)."""
        s = list(self.samples)
        pools = sorted({p for x in s for p in x.desired})
        ready = {p: np.array([x.ready.get(p, 0) for x in s], dtype=float) for p in pools}
        warming = {p: np.array([x.warming.get(p, 0) for x in s], dtype=float) for p in pools}
        return Observations(
            times=np.array([x.time for x in s]),
            request_rate=np.array([x.rate for x in s]),
            latency=np.array([x.latency for x in s]),
            token_rate=np.array([x.tokens for x in s]) if has_tokens else None,
            ready=ready,
            warming=warming,
            lost={p: _losses(s, p) for p in pools},
        )


def _losses(samples: list[Sample], pool: str) -> np.ndarray:
    """Ready replicas that vanished while the asked count did not fall: interruptions."""
    out = np.zeros(len(samples))
    for i in range(1, len(samples)):
        before, after = samples[i - 1], samples[i]
        if after.desired.get(pool, 0) >= before.desired.get(pool, 0):
            out[i] = max(0, before.ready.get(pool, 0) - after.ready.get(pool, 0))
    return out
