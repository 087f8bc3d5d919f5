"""Builders for the engine's unit tests: pools, planners and observation windows."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from costscaler.core import Observations, Planner, PoolView, Settings

OD = PoolView("od", spot=False, replica_cost_per_hour=1.0, capacity_rps=2.0, cold_start_s=300.0)
SPOT_A = PoolView(
    "spot-a",
    spot=True,
    replica_cost_per_hour=0.4,
    capacity_rps=2.0,
    cold_start_s=300.0,
    interruption_rate_per_hour=0.3,
)
SPOT_B = PoolView(
    "spot-b",
    spot=True,
    replica_cost_per_hour=0.45,
    capacity_rps=2.0,
    cold_start_s=300.0,
    interruption_rate_per_hour=0.3,
)
BIG = PoolView("big", spot=False, replica_cost_per_hour=3.0, capacity_rps=8.0, cold_start_s=400.0)


def steady(
    rate: float,
    now: float = 3600.0,
    n: int = 240,
    dt: float = 15.0,
    ready: Mapping[str, float] | None = None,
    latency: float = 0.5,
) -> Observations:
    """A window of `n` samples every `dt` s ending at `now`, constant rate and replicas."""
    times = now - dt * np.arange(n)[::-1]
    return Observations(
        times=times,
        request_rate=np.full(n, float(rate)),
        latency=np.full(n, latency),
        ready={k: np.full(n, float(v)) for k, v in (ready or {}).items()},
    )


def planner(pools: list[PoolView] | None = None, **settings: object) -> Planner:
    """A planner over `pools` (default: on-demand + two spot pools) with Settings overrides."""
    base: dict[str, object] = {"latency_threshold_s": 10.0}
    base.update(settings)
    return Planner(pools or [OD, SPOT_A, SPOT_B], Settings(**base))  # type: ignore[arg-type]
