"""Plans built replica by replica: the local search's starts and two of the alternatives.

Each fills a demand (req/s) with whole replicas in a given pool order, within the pools'
maxima, replicas.max, the spot share and the on-demand floor, counting a spot replica at its
expected surviving capacity (`Problem.surviving`). The starts built every decision (`fill`,
`max_spot`) are compiled (`_kernels.c`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from costscaler.core import _kernels
from costscaler.core.allocate import Problem
from costscaler.core.capacity import replicas_needed
from costscaler.core.risk import IntArray


def fill(p: Problem, demand_rps: float, order: NDArray[np.intp], use_spot: bool = True) -> IntArray:
    """Fill `demand_rps` of expected surviving capacity in merit `order`, within the bounds:
    the on-demand floor first, then each pool in turn the replicas that close the gap (twice:
    a second pass uses spot room the on-demand pass opened), then the replica minimum. A pool
    adds at most its room: its maximum, replicas.max, and for spot the share's room."""
    return _start(p, demand_rps, order, 0 if use_spot else 1)


def max_spot(p: Problem, demand_rps: float, order: NDArray[np.intp]) -> IntArray:
    """The fewest replicas covering `demand_rps` with as much spot as spot.maxFraction allows.

    For a total T the plan puts floor(maxFraction x T) on spot pools (keeping the on-demand
    floor) and the rest on-demand, each in merit order up to the pools' maxima; its capacity
    grows with T, so T is found by bisection.
    """
    return _start(p, demand_rps, order, 2)


def _start(p: Problem, demand_rps: float, order: NDArray[np.intp], mode: int) -> IntArray:
    out = _kernels.start(
        p.surviving,
        p.maxima,
        np.ascontiguousarray(order, dtype=np.int64),
        p.spot_count,
        p.price.size,
        p.total_max,
        p.reachable_min,
        p.spot_limits,
        p.spot_max_fraction,
        p.on_demand_floor,
        demand_rps,
        mode,
    )
    return np.frombuffer(out, dtype=np.int64).copy()


def cheapest_on_demand(p: Problem) -> IntArray:
    """The cheapest plan on non-spot pools whose capacity covers the SLO floor's demand.

    With no spot, risk is P(D > C), so meeting the floor means C >= `floor_demand`: a covering
    problem. Fill it in merit order, then drop replicas from the dearest pools while the cover
    and the replica minimum still hold (the merit-order fill overshoots by up to a replica
    of every pool it touches). Plain Python: a handful of pools, once per decision.
    """
    eff, spot, caps = p.as_lists
    order = [i for i in p.merit.tolist() if not spot[i]]
    x = [0] * len(eff)
    total, rps = 0, 0.0

    def add(i: int, want: int) -> None:
        nonlocal total, rps
        k = max(0, min(want, caps[i] - x[i], p.total_max - total)) if want > 0 else 0
        x[i] += k
        total += k
        rps += k * eff[i]

    for i in order:
        gap = p.floor_demand - rps
        add(i, 0 if gap <= 1e-9 else max(1, replicas_needed(gap, eff[i])))
    cap = p.risk.capacity.tolist()
    for i in sorted(order, key=lambda i: -float(p.price[i])):
        while x[i] > 0 and total > p.reachable_min and rps - cap[i] >= p.floor_demand:
            x[i] -= 1
            total -= 1
            rps -= cap[i]
    for i in order:  # the (reachable) replica minimum, best merit first
        if total >= p.reachable_min:
            break
        add(i, p.reachable_min - total)
    return np.array(x, dtype=np.int64)


def relaxed(
    p: Problem, demand_rps: float, order: NDArray[np.intp], use_spot: bool = True
) -> IntArray:
    """A start when on-demand quota forces spot past its share (`Problem.spot_relaxed`).

    Every such plan holds each on-demand pool at its maximum (T - spot >= on-demand capacity
    is the relaxed share's only way past floor(f T)); spot pools then fill, in merit `order`,
    the demand's gap (with `use_spot`), then the replica minimum. The compiled starts know
    only the strict limits, or none. Plain Python: a handful of pools.
    """
    eff, spot, caps = p.as_lists
    x = [0 if s else c for s, c in zip(spot, caps, strict=True)]
    total, rps = sum(x), sum(k * e for k, e in zip(x, eff, strict=True))
    for i in order.tolist():
        if not spot[i]:
            continue
        want = replicas_needed(demand_rps - rps, eff[i]) if use_spot else 0
        k = max(0, min(max(want, p.reachable_min - total), caps[i], p.total_max - total))
        x[i] += k
        total += k
        rps += k * eff[i]
    return np.array(x, dtype=np.int64)
