"""The budget's allowance after the plan: what keep-alive and make-before-break may hold.

Under onConflict PreferBudget every decision's $/h stays at or under the allowed burn rate
A ($/h), keep-alive and make-before-break included. The optimiser's plan x* is within A
whenever any plan is (its budget term outranks money and the SLO floor, `core.allocate`).
The replicas held past it, h = final - x* (idle ones kept to their break-even, ready ones
kept while the plan's new replicas warm), then compete for what is left of the allowance,

    left = A - fixed - price . x*                                                     [$/h]

one replica at a time in merit order (cheapest $/h per req/s of surviving capacity first,
`Problem.merit`), each only while its price fits in `left` and the plan stays within every
hard bound. The only plan above A is the cheapest the hard bounds allow, when it alone
costs more (replicas.min, minOnDemandReplicas and the spot share: `cheapest`).

Under PreferSLO the SLO outranks A: the plan may pass it, and so may the ready replicas
the plan's new ones still need while they warm (they serve now); idle replicas kept to
their break-even compete for the allowance as above (they are a saving, not the SLO).
"""

from __future__ import annotations

import numpy as np

from costscaler.core import allocate
from costscaler.core.allocate import Problem
from costscaler.core.risk import IntArray

_EPS = 1e-9  # $/h: float noise in a sum of prices, far below a cent


def cheapest(p: Problem) -> IntArray:
    """The cheapest plan within every hard bound (by `p.price`, $/h).

    More replicas never cost less (prices are >= 0, and dropping one replica of a plan
    within the bounds, a spot one if it has any, leaves one within them), so the plan has
    T = the reachable replica minimum. Its only coupling is a cap on spot replicas, the
    share's (with the on-demand floor, T - floor; relaxed, at least T - on-demand capacity):
    taking the cheapest replicas one by one, skipping spot once the cap is reached, is then
    optimal (a matroid). Plain Python: a handful of pools.
    """
    total = p.reachable_min
    cap = total
    if p.spot_limits or p.spot_relaxed:
        share = int(np.floor(p.spot_max_fraction * total + 1e-9))
        if p.spot_relaxed:
            share = max(share, total - p.on_demand_capacity)
        cap = min(share, total - min(p.on_demand_floor, total))
    _, spot, caps = p.as_lists
    x = [0] * len(caps)
    left, spot_left = total, cap
    for i in np.argsort(p.price, kind="stable").tolist():
        k = min(caps[i], left, spot_left if spot[i] else left)
        x[i] = k
        left -= k
        spot_left -= k if spot[i] else 0
    return np.array(x, dtype=np.int64)


def admit(p: Problem, target: IntArray, final: IntArray, room: float) -> IntArray:
    """`target` plus the replicas `final` holds past it that `room` ($/h of accelerators)
    pays for, in merit order (see the module docstring). `target` must be within the bounds.

    A replica that would break a bound now (a spot one past the share before the on-demand
    one that makes room for it) is skipped and tried again on the next pass.
    """
    out = target.copy()
    price = p.price.tolist()
    left = room - float(target @ p.price)
    grew = True
    while grew:
        grew = False
        for i in p.merit.tolist():
            while out[i] < final[i] and price[i] <= left + _EPS:
                out[i] += 1
                if not allocate.fits(p, out):
                    out[i] -= 1
                    break
                left -= price[i]
                grew = True
    return out


def clocks_kept(
    names: tuple[str, ...],
    clocks: dict[str, tuple[float, ...]],
    target: IntArray,
    kept: IntArray,
    out: IntArray,
) -> dict[str, tuple[float, ...]]:
    """The keep-alive clocks of the idle replicas `out` still holds.

    `kept` is keep-alive's plan (its replicas past `target` each have a clock, oldest first);
    replicas the allowance released go first from those make-before-break restored (their
    clocks had run out), then from the oldest clocks.
    """
    left: dict[str, tuple[float, ...]] = {}
    for i, name in enumerate(names):
        held = max(min(int(out[i]), int(kept[i])) - int(target[i]), 0)
        own = clocks.get(name, ())
        if held > 0 and own:
            left[name] = own[len(own) - min(held, len(own)) :]
    return left
