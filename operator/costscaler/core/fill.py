"""Plans built replica by replica: the local search's starts and two of the alternatives.

Each fills a demand (req/s) with whole replicas in a given pool order, within the pools'
maxima, replicas.max, the spot share and the on-demand floor, counting a spot replica at its
expected surviving capacity (`Problem.surviving`).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from costscaler.core import _kernels
from costscaler.core.allocate import Problem
from costscaler.core.capacity import replicas_needed
from costscaler.core.risk import IntArray


class _Filler:
    """Whole-replica filling on Python numbers (a few pools: faster than numpy scalars)."""

    def __init__(self, p: Problem) -> None:
        self.p = p
        self.eff, self.spot, self.cap = p.as_lists
        self.x = [0] * len(self.eff)
        self.total = self.nspot = 0
        self.rps = 0.0
        self.limits = p.spot_limits and p.spot_max_fraction < 1.0

    def spot_room(self) -> int:
        """Spot replicas that can be added now without breaking spot.maxFraction."""
        if not self.limits:
            return 1 << 40
        f = self.p.spot_max_fraction
        return max(0, math.floor((f * self.total - self.nspot) / (1.0 - f) + 1e-9))

    def add(self, i: int, want: int) -> int:
        """Add up to `want` replicas to pool i within its max, replicas.max and the spot room."""
        if want <= 0:
            return 0
        room = min(self.cap[i] - self.x[i], self.p.total_max - self.total)
        k = max(0, min(want, room, self.spot_room() if self.spot[i] else room))
        self.x[i] += k
        self.total += k
        self.nspot += k if self.spot[i] else 0
        self.rps += k * self.eff[i]
        return k

    def need(self, i: int, demand: float) -> int:
        """Replicas of pool i that close the gap to `demand` (at least 1 while a gap is left)."""
        gap = demand - self.rps
        return 0 if gap <= 1e-9 else max(1, replicas_needed(gap, self.eff[i]))

    def on_demand_floor(self, order: list[int]) -> None:
        want = self.p.on_demand_floor if self.p.spot_limits else 0
        for i in order:
            if not self.spot[i]:
                want -= self.add(i, want)

    def to_bounds(self, order: list[int], use_spot: bool) -> IntArray:
        """Raise the total to the (reachable) minimum, best merit first."""
        for i in order:
            if self.total >= self.p.reachable_min:
                break
            if use_spot or not self.spot[i]:
                self.add(i, self.p.reachable_min - self.total)
        return np.array(self.x, dtype=np.int64)


def fill(p: Problem, demand_rps: float, order: NDArray[np.intp], use_spot: bool = True) -> IntArray:
    """Fill `demand_rps` of expected surviving capacity in merit `order`, within the bounds."""
    f, idx = _Filler(p), order.tolist()
    f.on_demand_floor(idx)
    for _ in range(2):  # a second pass uses spot room the on-demand pass opened
        for i in idx:
            if f.rps >= demand_rps - 1e-9:
                break
            if use_spot or not f.spot[i]:
                f.add(i, f.need(i, demand_rps))
    return f.to_bounds(idx, use_spot)


def max_spot(p: Problem, demand_rps: float, order: NDArray[np.intp]) -> IntArray:
    """The fewest replicas covering `demand_rps` with as much spot as spot.maxFraction allows.

    For a total T the plan puts floor(maxFraction x T) on spot pools (keeping the on-demand
    floor) and the rest on-demand, each in merit order up to the pools' maxima; its capacity
    grows with T, so T is found by bisection.
    """
    # Compiled (`_kernels.c`): the bisection builds a plan per step, a Python loop each.
    out = _kernels.max_spot(
        p.surviving,
        p.maxima,
        np.ascontiguousarray(order, dtype=np.int64),
        p.spot_count,
        p.price.size,
        p.reachable_min,
        p.total_max,
        p.spot_limits,
        p.spot_max_fraction,
        p.on_demand_floor,
        demand_rps,
    )
    return np.frombuffer(out, dtype=np.int64).copy()


def cheapest_on_demand(p: Problem) -> IntArray:
    """The cheapest plan on non-spot pools whose capacity covers the SLO floor's demand.

    With no spot, risk is P(D > C), so meeting the floor means C >= `floor_demand`: a covering
    problem. Fill it in merit order, then drop replicas from the dearest pools while the cover
    and the replica minimum still hold (the merit-order fill overshoots by up to a replica
    of every pool it touches).
    """
    f = _Filler(p)
    order = [i for i in p.merit.tolist() if not f.spot[i]]
    for i in order:
        f.add(i, f.need(i, p.floor_demand))
    cap = p.risk.capacity.tolist()
    for i in sorted(order, key=lambda i: -float(p.price[i])):
        while f.x[i] > 0 and f.total > p.reachable_min and f.rps - cap[i] >= p.floor_demand:
            f.x[i] -= 1
            f.total -= 1
            f.rps -= cap[i]
    return f.to_bounds(order, use_spot=False)
