"""kopf handlers: a thin shell over `tick.run_tick`, the adapters and the watch-fed indexes.

`indexes` keeps what a tick reads current without a GET; `deployment_handlers` ensures the
children and decides every interval; `pool_handlers` writes each CapacityPool's status from
the Nodes. CostBudgets have their own module, `budgets`.
"""

from __future__ import annotations

import kopf

from costscaler.controller.deployment_handlers import register_deployment_handlers
from costscaler.controller.indexes import register_indexes
from costscaler.controller.pool_handlers import register_pool_handlers
from costscaler.controller.settings import Settings


def register(reg: kopf.OperatorRegistry, settings: Settings) -> None:
    """Register every InferenceDeployment and CapacityPool handler in `reg`."""
    register_indexes(reg, settings)
    register_deployment_handlers(reg, settings)
    register_pool_handlers(reg, settings)
