"""Small pools and traces for the simulator's tests (imported by them, not a test)."""

from __future__ import annotations

import dataclasses

import numpy as np

from costscaler.sim.pools import PoolModel
from costscaler.sim.traces import Trace

ON_DEMAND = PoolModel(
    name="od",
    spot=False,
    replica_cost_per_hour=3.6,  # $0.001 per replica-second: totals are easy to check
    capacity_rps=10.0,
    service_s=0.5,
    accelerators_per_replica=1,
    replicas_per_node=1,
    node_cold_s=0.0,
    load_s=0.0,
    interruption_rate_per_hour=0.0,
    notice_s=0.0,
    max_replicas=None,
)


def pool(**changes: object) -> PoolModel:
    """The on-demand test pool with some fields changed."""
    return dataclasses.replace(ON_DEMAND, **changes)  # type: ignore[arg-type]


def trace(arrivals: list[float] | np.ndarray, tokens: np.ndarray | None = None) -> Trace:
    """A trace of 1-s steps with the given arrivals per step."""
    return Trace("test", 1.0, 0.0, np.asarray(arrivals, dtype=np.float64), tokens)
