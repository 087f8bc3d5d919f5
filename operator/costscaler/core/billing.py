"""What a plan costs in the views: the marginal $/h the decision pays and the allocated $/h.

Decisions price owned and reserved capacity at the margin (energy and per-use operations:
capex and reservations are paid whether used or not), so the engine's spend is the
marginal cost. Chargeback views charge the full ownership cost (TCO) of what a deployment
uses; the difference is the sunk share of its owned and reserved replicas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from costscaler.core.risk import IntArray

if TYPE_CHECKING:
    from costscaler.core.engine import Planner


def costs(pl: Planner, replicas: IntArray, spend: float, fixed: float) -> tuple[float, float]:
    """(allocated, marginal) $/h of `replicas`, whose decision spend is `spend` ($/h).

    marginal  = spend + fixed
    allocated = marginal + sum_i replicas_i x (allocated_i - marginal_i)   [$/h per replica]

    Only owned and reserved pools differ (cloud pools add exactly 0, so their figures are
    the engine's to the bit); they cannot be interrupted, so spend carries no spot markup
    on them.
    """
    marginal = spend + fixed
    sunk = float(replicas @ (pl.allocated - pl.price))
    return marginal + sunk, marginal
