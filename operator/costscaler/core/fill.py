"""Plans built replica by replica: the local search's starts and two of the alternatives.

Each fills a demand (req/s) with whole replicas in a given pool order, within the pools'
maxima, replicas.max, the spot share and the on-demand floor, counting a spot replica at its
expected surviving capacity (`Problem.surviving`). Plain Python on lists: a handful of pools,
where numpy's per-call cost would exceed the arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from costscaler.core.allocate import Problem
from costscaler.core.capacity import replicas_needed
from costscaler.core.risk import IntArray


def fill(p: Problem, demand_rps: float, order: NDArray[np.intp], use_spot: bool = True) -> IntArray:
    """Fill `demand_rps` of expected surviving capacity in merit `order`, within the bounds:
    the on-demand floor first, then each pool in turn the replicas that close the gap (twice:
    a second pass uses spot room the on-demand pass opened), then the replica minimum. A pool
    adds at most its room: its maximum, replicas.max, and for spot the share's room."""
    f, idx = _Filler(p), order.tolist()
    want = p.on_demand_floor if p.spot_limits else 0
    for i in idx:
        if not f.spot[i]:
            want -= f.add(i, want)
    for _ in range(2):
        for i in idx:
            if f.rps >= demand_rps - 1e-9:
                break
            if use_spot or not f.spot[i]:
                f.add(i, f.need(i, demand_rps))
    for i in idx:  # the (reachable) replica minimum, best merit first
        if f.total >= p.reachable_min:
            break
        if use_spot or not f.spot[i]:
            f.add(i, p.reachable_min - f.total)
    return np.array(f.x, dtype=np.int64)


class _Filler:
    """A plan grown replica by replica within the bounds and the spot share."""

    def __init__(self, p: Problem) -> None:
        self.eff, self.spot, self.cap = p.as_lists
        self.x = [0] * len(self.eff)
        self.total = self.nspot = 0
        self.rps = 0.0
        self.total_max = p.total_max
        self.fraction = p.spot_max_fraction
        self.limits = p.spot_limits and p.spot_max_fraction < 1.0

    def spot_room(self) -> int:
        """Spot replicas that can be added now without breaking spot.maxFraction."""
        if not self.limits:
            return 1 << 40
        f = self.fraction
        return max(0, math.floor((f * self.total - self.nspot) / (1.0 - f) + 1e-9))

    def add(self, i: int, want: int) -> int:
        """Add up to `want` replicas to pool i within its max, replicas.max and the spot room;
        returns how many."""
        if want <= 0:
            return 0
        room = min(self.cap[i] - self.x[i], self.total_max - self.total)
        k = max(0, min(want, room, self.spot_room() if self.spot[i] else room))
        self.x[i] += k
        self.total += k
        self.nspot += k if self.spot[i] else 0
        self.rps += k * self.eff[i]
        return k

    def need(self, i: int, demand: float) -> int:
        """Replicas of pool i that close the gap to `demand` (at least 1 while a gap is left;
        `capacity.replicas_needed`, capped where `add` caps it anyway)."""
        gap = demand - self.rps
        if gap <= 1e-9:
            return 0
        per = self.eff[i]
        if not per > 0:
            raise ValueError("capacity_rps x scale must be > 0")
        want = gap / per - 1e-9
        if want > 4e18:  # past any bound (a near-zero capacity): `add` caps it at the room
            return 1 << 62
        return max(1, math.ceil(want)) if want > 0 else 1


def max_spot(p: Problem, demand_rps: float, order: NDArray[np.intp]) -> IntArray:
    """The fewest replicas covering `demand_rps` with as much spot as spot.maxFraction allows.

    For a total T the plan puts floor(maxFraction x T) on spot pools (keeping the on-demand
    floor) and the rest on-demand, each in merit order up to the pools' maxima; its capacity
    grows with T, so T is found by bisection.
    """
    idx = order.tolist()
    eff, is_spot, caps = p.as_lists
    spot = [i for i in idx if is_spot[i]]
    other = [i for i in idx if not is_spot[i]]
    limits, fraction, floor_ = p.spot_limits, p.spot_max_fraction, p.on_demand_floor

    def build(total: int) -> tuple[list[int], float]:
        """The plan of `total` replicas and its capacity (req/s). Maxima are never negative
        (pool limits are validated, caps are replica counts): once a pass's count is used
        up, its pools left get none."""
        x = [0] * len(caps)
        rps = 0.0
        share = math.floor(fraction * total + 1e-9) if limits else total
        count = min(share, total - (min(floor_, total) if limits else 0))
        for pools in (spot, other):  # spot up to its share, then on-demand for the rest
            for i in pools:
                if count <= 0:
                    break
                k = x[i] = caps[i] if caps[i] < count else count
                count -= k
                rps += k * eff[i]
            count = total - sum(x)
        return x, rps

    lo, hi = p.reachable_min, p.total_max
    while lo < hi:
        mid = (lo + hi) // 2
        if build(mid)[1] >= demand_rps - 1e-9:
            hi = mid
        else:
            lo = mid + 1
    return np.array(build(lo)[0], dtype=np.int64)


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
    the demand's gap (with `use_spot`), then the replica minimum. `fill` and `max_spot` know
    only the strict limits, or none.
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
