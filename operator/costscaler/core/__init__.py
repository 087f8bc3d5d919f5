"""The pure decision engine: cost, capacity, forecast and allocation across pools.

No I/O and no clock: time and observations are arguments, so the operator and the simulator
get the same decision for the same inputs. The entry point is
`decide(spec, pools, observations, current, now, state=None, budget=None) -> Decision`
(in `costscaler.core.engine`), with `spec` an `InferenceDeploymentSpec`, `pools` the
`CapacityPool` objects (those not listed in `spec.pools` are ignored), `current` the
replicas requested per pool name now, and `now` seconds on the observations' clock.
"""

from costscaler.core.engine import Planner, Settings, decide
from costscaler.core.pools import PoolView, missing_pools, pool_views
from costscaler.core.types import (
    Alternative,
    BudgetConstraint,
    Decision,
    EngineState,
    Observations,
    Reason,
)

__all__ = [
    "Alternative",
    "BudgetConstraint",
    "Decision",
    "EngineState",
    "Observations",
    "Planner",
    "PoolView",
    "Reason",
    "Settings",
    "decide",
    "missing_pools",
    "pool_views",
]
