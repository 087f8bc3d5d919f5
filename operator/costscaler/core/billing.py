"""What a plan costs in the views: the marginal $/h the decision pays and the allocated $/h.

Decisions price owned and reserved capacity at the margin (energy and per-use operations:
capex and reservations are paid whether used or not), so the engine's spend is the
marginal cost. Chargeback views charge the full ownership cost (TCO) of what a deployment
uses; the difference is the sunk share of its owned and reserved replicas. Both count whole
nodes: a node's empty replica slots are paid with it (`core.nodes`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from costscaler.core import nodes
from costscaler.core.risk import IntArray
from costscaler.core.types import FloatArray

if TYPE_CHECKING:
    from costscaler.core.engine import Planner


def costs(
    pl: Planner, replicas: IntArray, spend: float, fixed: float, price: FloatArray | None = None
) -> tuple[float, float]:
    """(allocated, marginal) $/h of `replicas`, whose per-replica decision spend is `spend`.

    marginal  = spend + sum_i empty_i x price_i + fixed
    allocated = marginal + sum_i (replicas_i + empty_i) x (allocated_i - marginal_i)

    `empty_i` are the slots the plan's nodes hold beyond its replicas (`nodes.empty`), priced
    at `price` ($/h per replica, the problem's, spot markup included; the planner's when
    None). Only owned and reserved pools have allocated_i != marginal_i (cloud pools add
    exactly 0, so with one replica per node their figures are the engine's to the bit); they
    cannot be interrupted, so their prices carry no spot markup.
    """
    slots = nodes.empty(replicas, pl.per_node)
    marginal = spend + float(slots @ (pl.price if price is None else price)) + fixed
    sunk = float((replicas + slots) @ (pl.allocated - pl.price))
    return marginal + sunk, marginal
