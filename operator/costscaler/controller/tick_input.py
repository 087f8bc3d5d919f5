"""What one InferenceDeployment tick sees, in a module of its own.

`tick` runs a tick and `record` writes its status from the same input; both import this
module, so neither imports the other for the type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from costscaler.adapters.children import ChildState
from costscaler.adapters.prometheus import Reading
from costscaler.api import CapacityPool, InferenceDeployment
from costscaler.controller.history import History
from costscaler.core import BudgetConstraint


@dataclass
class TickInput:
    """What one tick sees: the object, the pools, its children, the reading and its past."""

    infd: InferenceDeployment
    pools: Mapping[str, CapacityPool]
    children: list[ChildState]
    reading: Reading
    history: History
    status: Mapping[str, Any]
    now: datetime
    budget: BudgetConstraint | None = None  # what an Enforce CostBudget allows (budgets.py)
    # Ready nodes matching each pool's placement (`pools.pool_status`); None: not known yet.
    schedulable: Mapping[str, int] | None = None
    # Warm spare nodes each pool with a NodePool holds now (the pool timer's count).
    warm_nodes: Mapping[str, int] | None = None
    # Accelerators free on each Ready node of each pool with a NodePool (the pool timer's).
    free_accelerators: Mapping[str, tuple[int, ...]] | None = None
