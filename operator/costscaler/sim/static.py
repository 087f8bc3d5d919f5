"""Static provisioning: a fixed replica count sized for the trace's peak, as a planner would.

The peak is the highest arrival rate over any `peak_window_s` window (1 minute by default:
per-second Poisson noise is absorbed by the queue, a minute-long surge is not). Static is
told the trace up front; it asks for its count at step 0 and never changes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from costscaler.sim.policy import ClusterView, one_pool


def peak_rate(arrivals: NDArray[np.float64], dt: float, window_s: float = 60.0) -> float:
    """Highest mean arrival rate (req/s) over any window of `window_s` seconds."""
    steps = max(1, min(arrivals.size, round(window_s / dt)))
    cum = np.concatenate(([0.0], np.cumsum(arrivals)))
    return float((cum[steps:] - cum[:-steps]).max() / (steps * dt)) if arrivals.size else 0.0


@dataclass
class Static:
    """`replicas` on one pool for the whole run."""

    pool: int
    replicas: int
    name: str = "static"
    interval_s: float = math.inf

    @staticmethod
    def for_peak(pool: int, capacity_rps: float, peak_rps: float, min_replicas: int) -> Static:
        """Enough replicas of rated capacity for the peak rate."""
        return Static(pool, max(min_replicas, 1, math.ceil(peak_rps / capacity_rps - 1e-9)))

    def initial(self, view: ClusterView) -> list[int]:
        """The fixed count, asked for at once."""
        return one_pool(view.pools, self.pool, self.replicas)

    def decide(self, view: ClusterView) -> list[int]:
        """The same fixed count."""
        return one_pool(view.pools, self.pool, self.replicas)
