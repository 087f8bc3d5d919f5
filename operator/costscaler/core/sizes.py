"""Request-size-aware capacity (issue 17, Melange): what a plan serves of a mix of request sizes.

Units: req/s; shares dimensionless.

A deployment with `workload.requestSizes` states each accelerator's capacity per bucket,
c_gb req/s of requests of size b alone on one replica of type g (0: g cannot serve b), and
the mix is the share s_b of requests of each size (observed, else declared). A plan with x_g
replicas of each type serves the mix at rate

    C(x) = max lambda  s.t.  sum_g f_gb = lambda s_b  (each size is served),
                             sum_b f_gb / c_gb <= x_g   (each type's replica-seconds),

f_gb >= 0 the req/s of size b routed to type g: every size goes where it is served best, as
Melange's integer program routes it (arXiv 2404.14527: short prompts on small GPUs, long on
large ones). C is what the engine plans on in place of sum_g x_g c_g (`core.risk`).

Closed form. By LP duality C(x) = min { y . x : y >= 0, phi(y) >= 1 }, phi(y) = sum_b s_b
min_{g serves b} y_g / c_gb, and the minimum is at an extreme point of that set. At an
extreme point y with support S, the types in S are joined by ties y_g / c_gb = y_h / c_hb
(both least for a size b no type outside S serves) that form a spanning tree of S: each
tree fixes y up to scale, and phi fixes the scale. So with Y the (K, G) candidates of every
support and labelled tree (`directions`, once per planner; those whose ties are not least
are no extreme point and are left out), C(x) = min_k Y_k . x, one matrix product for a
whole batch of plans. Every candidate is feasible for the dual, so each Y_k . x >= C(x): the
minimum is C exactly, and any single Y_k is an additive upper bound on C, which is what
the branch and bound needs (`MixCapacity.bound`, `core.exact`). Pools of one accelerator
type (spot and on-demand, zones) share their type's column.

Shares of V. A plan's requests are spread so that every replica runs at the same utilisation
D / C(x) (the routing scaled down), and pool i's weight in the violating share is
x_i Y*_i / C(x) with Y* the minimising candidate: its replica-seconds priced at the dual
prices of the sizes it serves, which sum to 1 over the pools (Euler: C(x) = Y* . x). With
one size this is x_i c_i / C, the model without sizes.

Sizes no eligible pool serves are left out of the mix (their share renormalised over the
others): no allocation can serve them, so they cannot change which one is best.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from costscaler.core.types import FloatArray, Observations

MIX_WINDOW_S = 120.0  # seconds of samples the size mix is measured over (as `core.tokens`)
MAX_CANDIDATES = 1_000_000  # labelled trees enumerated at most (accelerator types x sizes)
_TIE = 1e-9  # relative tolerance of a tie between two types' y / c for one size


@dataclass(frozen=True)
class Directions:
    """The dual's candidate extreme points up to scale, per pool: `y` (K, N), `rates` the
    per-pool capacity per size (N, B; 0 where a pool cannot serve it)."""

    y: FloatArray
    rates: FloatArray


def directions(rates: FloatArray) -> Directions:
    """The candidates of `C(x)`'s closed form (module) for per-pool capacities per size
    `rates` (N, B): every support S of accelerator types and labelled spanning tree of S
    whose ties are least for their size. Raises ValueError when the enumeration would pass
    `MAX_CANDIDATES` (too many accelerator types times sizes)."""
    rates = np.asarray(rates, dtype=np.float64)
    rows = [tuple(r) for r in rates.tolist()]
    kinds = list(dict.fromkeys(rows))  # accelerator types: pools with one row
    c = np.array(kinds, dtype=np.float64)  # (G, B)
    g_count, b_count = c.shape
    serves = c > 0
    work = sum(
        math.comb(g_count, k) * k ** max(k - 2, 0) * b_count ** (k - 1)
        for k in range(1, g_count + 1)
    )
    if work > MAX_CANDIDATES:
        raise ValueError(
            f"request-size allocation over {g_count} accelerator types with distinct bucket "
            f"capacities and {b_count} request sizes is too large to solve each tick: use "
            "fewer workload.requestSizes or give accelerators equal capacities per bucket"
        )
    found: list[FloatArray] = []
    for k in range(1, g_count + 1):
        for support in itertools.combinations(range(g_count), k):
            inside = np.zeros(g_count, dtype=np.bool_)
            inside[list(support)] = True
            # Sizes some type outside the support serves cost nothing there (its y is 0).
            outside = np.asarray((serves & ~inside[:, None]).any(axis=0), dtype=np.bool_)
            within = np.asarray(serves[inside].any(axis=0), dtype=np.bool_)
            usable = serves & (within & ~outside)[None, :]
            if not usable.any():
                continue
            for tree in _trees(list(support)):
                y = _labelled(c, usable, support[0], tree)
                if y.size:
                    found.append(y)
    if not found:
        return Directions(np.zeros((0, rates.shape[0])), rates)
    y = np.vstack(found)
    y /= y.max(axis=1, keepdims=True)
    # One row per candidate: rows equal to 9 significant digits are one (scale-free, so a
    # coordinate far below the largest is never taken for 0).
    with np.errstate(divide="ignore"):
        keys = np.where(y > 0, np.round(np.log(np.where(y > 0, y, 1.0)), 9), -np.inf)
    y = y[np.sort(np.unique(keys, axis=0, return_index=True)[1])]
    kind = np.array([kinds.index(r) for r in rows], dtype=np.int64)
    return Directions(np.ascontiguousarray(y[:, kind]), rates)


def _trees(nodes: list[int]) -> list[list[tuple[int, int]]]:
    """Every spanning tree of the complete graph on `nodes`, as (parent, child) edges from
    `nodes[0]` outwards (Prufer sequences)."""
    k = len(nodes)
    if k == 1:
        return [[]]
    out = []
    for seq in itertools.product(range(k), repeat=k - 2):
        degree = [1] * k
        for v in seq:
            degree[v] += 1
        edges = []
        for v in seq:
            leaf = degree.index(1)
            edges.append((v, leaf))
            degree[leaf] -= 1
            degree[v] -= 1
        u, w = (i for i in range(k) if degree[i] == 1)
        edges.append((u, w))
        out.append(_rooted(edges, k, nodes))
    return out


def _rooted(edges: list[tuple[int, int]], k: int, nodes: list[int]) -> list[tuple[int, int]]:
    """Undirected tree `edges` on 0..k-1 as (parent, child) pairs of `nodes`, breadth first
    from node 0."""
    near: dict[int, list[int]] = {i: [] for i in range(k)}
    for a, b in edges:
        near[a].append(b)
        near[b].append(a)
    seen, queue, out = {0}, [0], []
    while queue:
        a = queue.pop(0)
        for b in near[a]:
            if b not in seen:
                seen.add(b)
                queue.append(b)
                out.append((nodes[a], nodes[b]))
    return out


def _labelled(
    c: FloatArray, usable: NDArray[np.bool_], root: int, tree: list[tuple[int, int]]
) -> FloatArray:
    """The y (rows) of every labelling of `tree`'s edges (from `root`) by a size both ends
    serve (among `usable`), kept when each edge's tie is the least y / c for its size."""
    g_count = c.shape[0]
    y = np.zeros((1, g_count))
    y[0, root] = 1.0
    labels = np.zeros((1, 0), dtype=np.int64)
    for parent, child in tree:
        options = np.flatnonzero(usable[parent] & usable[child])
        if options.size == 0:
            return np.zeros((0, g_count))
        n = y.shape[0]
        y = np.repeat(y, options.size, axis=0)
        labels = np.repeat(labels, options.size, axis=0)
        pick = np.tile(options, n)
        y[:, child] = y[:, parent] * c[child, pick] / c[parent, pick]
        labels = np.column_stack((labels, pick))
    # Least y / c per size over the types in the support that serve it.
    inside = y > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(
            usable[None, :, :] & inside[:, :, None],
            y[:, :, None] / np.where(c > 0, c, 1.0)[None, :, :],
            np.inf,
        )
    least = ratio.min(axis=1)  # (K, B)
    ok = np.ones(y.shape[0], dtype=np.bool_)
    for e, (parent, _) in enumerate(tree):
        b = labels[:, e]
        at = ratio[np.arange(y.shape[0]), parent, b]
        ok &= at <= least[np.arange(y.shape[0]), b] * (1.0 + _TIE)
    return y[ok]


@dataclass(frozen=True)
class MixCapacity:
    """`C(x)` for one tick: `y` (K, N) the dual candidates scaled to phi = 1 (req/s per
    replica), `single` (N,) each pool's capacity at the part of the mix it serves (the rate
    its latency curve is drawn at: `core.risk`), `bound` (N,) one candidate, an additive
    upper bound: C(x) <= bound . x for every plan; `rates` (N, B) the calibrated req/s per
    size and `share` (B,) the mix they were taken at."""

    y: FloatArray
    single: FloatArray
    bound: FloatArray
    rates: FloatArray
    share: FloatArray

    def cheapest(self, price: FloatArray, allowed: NDArray[np.bool_]) -> FloatArray | None:
        """The least-$/h fractional replicas of the `allowed` pools serving 1 req/s of the
        mix: Melange's program relaxed, whose optimum routes each size whole to the pool
        with the least price / c_ib (the cost is sum_b f_ib price_i / c_ib, linear in each
        size's routing). C is homogeneous, so r x this rounded up serves r req/s: a start
        for the branch and bound (`step.start_plans`). None when a size of the mix has no
        allowed pool that serves it."""
        out = np.zeros(self.rates.shape[0])
        for b in np.flatnonzero(self.share > 0):
            ok = allowed & (self.rates[:, b] > 0)
            if not ok.any():
                return None
            per = np.where(ok, price / np.where(ok, self.rates[:, b], 1.0), np.inf)
            i = int(np.argmin(per))
            out[i] += self.share[b] / self.rates[i, b]
        return out

    def capacity(self, plans: FloatArray) -> FloatArray:
        """C(x) of each plan (rows: plans, columns: pools; replica counts may be fractional)."""
        x = np.asarray(plans, dtype=np.float64)
        return np.asarray((x @ self.y.T).min(axis=1), dtype=np.float64)

    def attributed(self, plans: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(C(x) per plan, each pool's part x_i Y*_i): plans (..., N) give (...) and
        (..., N); the parts sum to C(x)."""
        x = np.asarray(plans, dtype=np.float64)
        k = np.argmin(x @ self.y.T, axis=-1)
        part = x * self.y[k]
        return np.asarray(part.sum(axis=-1), dtype=np.float64), np.asarray(part)

    def take(self, pools: Sequence[int]) -> MixCapacity:
        """The columns of `pools` (pools merged into one: they share a column)."""
        idx = list(pools)
        return MixCapacity(
            self.y[:, idx], self.single[idx], self.bound[idx], self.rates[idx], self.share
        )


def mix_capacity(found: Directions, shares: FloatArray, scale: float = 1.0) -> MixCapacity | None:
    """`MixCapacity` at the size `shares` (B,), capacities multiplied by the calibrator's
    `scale`; None when no share is positive on a size an eligible pool serves."""
    rates = found.rates * scale
    served = (rates > 0).any(axis=0)
    s = np.where(served, np.maximum(np.asarray(shares, dtype=np.float64), 0.0), 0.0)
    if not s.sum() > 0 or found.y.shape[0] == 0:
        return None
    s = s / s.sum()
    # A size with under 1e-12 of the requests changes no plan; left in, its share would
    # only overflow phi's scale (a denormal share of a size served by one type alone).
    s = np.where(s >= 1e-12, s, 0.0)
    s = s / s.sum()
    with np.errstate(divide="ignore"):
        inv = np.where(rates > 0, 1.0 / np.where(rates > 0, rates, 1.0), np.inf)
    # phi(y) = sum_b s_b min_i y_i / c_ib; pools of one type share a column, so the minimum
    # over pools is the one over types.
    served_by = rates > 0
    per = found.y[:, :, None] * np.where(served_by, inv, 0.0)[None, :, :]
    ratio = np.where(served_by[None, :, :], per, np.inf)
    least = ratio.min(axis=1)  # finite wherever s > 0: some pool serves the size
    phi = np.where(s[None, :] > 0, least, 0.0) @ s
    keep = phi > 0
    if not keep.any():
        return None
    y = found.y[keep] / phi[keep, None]
    # Alone, a pool serves the sizes it can in their mix: 1 / sum_b s'_b / c_ib.
    mine = np.where(rates > 0, s[None, :], 0.0)
    part = mine.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        alone = part / np.where(rates > 0, mine * inv, 0.0).sum(axis=1)
    single = np.where(part > 0, alone, np.min(rates[rates > 0]) * 1e-6)
    bound = y[int(np.argmin((y / single[None, :]).max(axis=1)))]
    return MixCapacity(
        np.ascontiguousarray(y),
        np.asarray(single, dtype=np.float64),
        np.asarray(bound),
        np.asarray(rates, dtype=np.float64),
        s,
    )


def observed_shares(
    obs: Observations, names: Sequence[str], window_s: float = MIX_WINDOW_S
) -> FloatArray | None:
    """Each size's share of requests over the last `window_s` seconds: its summed request
    rate over all sizes' (`Observations.request_size_rate`, samples where every size is
    finite and non-negative), None without the series or without requests."""
    rates: Mapping[str, FloatArray] = obs.request_size_rate
    if not names or obs.times.size == 0 or any(n not in rates for n in names):
        return None
    recent = obs.times >= obs.times[-1] - window_s
    rows = np.vstack([np.asarray(rates[n], dtype=np.float64)[recent] for n in names])
    ok = np.isfinite(rows).all(axis=0) & (rows >= 0).all(axis=0)
    total = rows[:, ok].sum(axis=1)
    if not total.sum() > 0:
        return None
    return np.asarray(total / total.sum(), dtype=np.float64)


def shares(
    obs: Observations, names: Sequence[str], declared: Sequence[float] | None
) -> FloatArray | None:
    """The size mix a tick plans on: observed (`observed_shares`), else the declared
    `workload.requestSizes[].share`, else None (no size-aware allocation)."""
    seen = observed_shares(obs, names)
    if seen is not None:
        return seen
    if declared is None:
        return None
    d = np.asarray(declared, dtype=np.float64)
    return d / d.sum() if d.sum() > 0 else None


def note(names: Sequence[str], share: FloatArray, observed: bool, served_rps: float) -> str:
    """The decision message's sentence on the size mix the plan was sized for."""
    mix = ", ".join(f"{n} {float(v):.0%}" for n, v in zip(names, share, strict=True))
    source = (
        "observed over the last 2 minutes" if observed else "as declared (requestSizes[].share)"
    )
    return (
        f" Request sizes {source}: {mix}; the plan serves {served_rps:.3g} req/s of this mix "
        "with each size on the accelerators that serve it best."
    )
