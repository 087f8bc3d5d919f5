"""The oracle: a proven lower bound on the cost of serving a trace at a given SLO attainment.

It knows the whole future and chooses, per block of G steps and per pool, the average ready
replicas N and paid replicas H, and how many requests Z starting service in the block meet
the latency threshold. It minimises sum_p price_p x sum_b H_pb x (block hours) subject to
constraints that every schedule of the twin satisfies, so no policy can cost less at the
same attainment (a linear-programming relaxation, solved exactly by HiGHS):

1. H_pb >= N_pb: a serving replica is paid.
2. Cold starts: a replica ready at step t + c was requested by step t and is paid from then,
   so held_t >= ready_{t+c} for any c up to the pool's cold start (node + model load; load
   alone when one node holds several replicas). With c = kG (k = cold // G whole blocks):
   H_pb >= (g_{b+k} / G) N_{p,b+k} (g: block lengths; the last block may be short).
3. Z_b <= block seconds x sum_p mu_p N_pb: requests start no faster than ready capacity.
4. Met starts up to block b are at most the arrivals up to its end (nothing starts before
   it arrives); met starts from block b on arrived at most w steps before it (w: the wait
   budget threshold - fastest service time, plus one step for the fluid model's rounding).
5. sum_b Z_b >= attainment x requests.
6. With `spot` limits (bounding costscaler, which obeys them): paid spot replicas at most
   `maxFraction` of all paid replicas, paid on-demand ones at least `minOnDemandReplicas`
   (block averages of per-step limits; a replacement started on a spot notice briefly
   exceeds the share, and only costs more).
Relaxations only make the bound lower: spot interruptions are ignored (a lost replica only
removes capacity; its replacement is paid again), as are zero-capacity stretches of a spot
trace and queueing inside a block. Quotas hold as in the twin.
The bound is exact up to these relaxations when G = 1 (traces up to `max_blocks` steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from costscaler.sim.pools import PoolModel


@dataclass(frozen=True)
class SpotLimits:
    """The deployment's spot limits: share of paid replicas on spot, on-demand floor."""

    max_fraction: float
    min_on_demand_replicas: int


@dataclass(frozen=True)
class OracleBound:
    """The bound: replica cost ($) and the schedule that reaches it (per block, per pool)."""

    replica_cost: float
    block_steps: int
    ready: NDArray[np.float64]
    held: NDArray[np.float64]
    met: NDArray[np.float64]
    feasible: bool


class _Rows:
    """Sparse constraint rows, accumulated as (row, column, value) triplets."""

    def __init__(self) -> None:
        self.r: list[NDArray[np.int64]] = []
        self.c: list[NDArray[np.int64]] = []
        self.v: list[NDArray[np.float64]] = []
        self.rhs: list[NDArray[np.float64]] = []
        self.n = 0

    def add(
        self, terms: list[tuple[NDArray[np.int64], NDArray[np.float64]]], rhs: NDArray[np.float64]
    ) -> None:
        """Add len(rhs) rows: row i has terms[j] = (columns, coefficients), entry i of each."""
        rows = np.arange(self.n, self.n + rhs.size)
        for cols, vals in terms:
            self.r.append(rows)
            self.c.append(cols)
            self.v.append(np.broadcast_to(vals, rhs.shape).astype(np.float64))
        self.rhs.append(rhs)
        self.n += rhs.size

    def matrix(self, columns: int) -> tuple[coo_matrix, NDArray[np.float64]]:
        """The rows as a sparse matrix and right-hand side."""
        data = (np.concatenate(self.v), (np.concatenate(self.r), np.concatenate(self.c)))
        return coo_matrix(data, shape=(self.n, columns)), np.concatenate(self.rhs)


def _cold_steps(pool: PoolModel, dt: float) -> int:
    node = pool.node_cold_s if pool.replicas_per_node == 1 else 0.0
    return math.ceil(pool.load_s / dt - 1e-9) + math.ceil(node / dt - 1e-9)


def lower_bound(
    arrivals: NDArray[np.float64],
    dt: float,
    pools: list[PoolModel],
    threshold_s: float,
    attainment: float,
    max_blocks: int = 3000,
    spot: SpotLimits | None = None,
) -> OracleBound:
    """Minimum replica cost ($) of any schedule meeting `attainment` on `arrivals` (see module).

    `spot`: the deployment's spot limits, for bounding a policy that obeys them (costscaler);
    None for policies that do not know about spot (and pools without spot).
    """
    steps, n_pools = arrivals.size, len(pools)
    g = max(1, math.ceil(steps / max_blocks))
    nb = math.ceil(steps / g)
    length = np.minimum(g, steps - np.arange(nb) * g).astype(np.float64)
    cum = np.concatenate(([0.0], np.cumsum(arrivals)))
    total = float(cum[-1])
    budget = threshold_s - min(p.service_s for p in pools)
    if budget < 0 and attainment * total > 0:
        return OracleBound(math.inf, g, np.zeros((0, 0)), np.zeros((0, 0)), np.zeros(0), False)
    w = math.ceil(max(budget, 0.0) / dt) + 1
    blocks = np.arange(nb)

    def n_col(p: int) -> NDArray[np.int64]:
        return p * nb + blocks

    def h_col(p: int) -> NDArray[np.int64]:
        return (n_pools + p) * nb + blocks

    z_col, s_col = 2 * n_pools * nb + blocks, (2 * n_pools + 1) * nb + blocks
    ncols = (2 * n_pools + 2) * nb
    ub, eq = _Rows(), _Rows()
    cap_terms = []
    for p, pool in enumerate(pools):
        ub.add([(n_col(p), np.ones(nb)), (h_col(p), -np.ones(nb))], np.zeros(nb))
        k = _cold_steps(pool, dt) // g
        if 0 < k < nb:
            src = blocks[: nb - k]
            ub.add(
                [(n_col(p)[src + k], length[src + k] / g), (h_col(p)[src], -np.ones(src.size))],
                np.zeros(src.size),
            )
        cap_terms.append((n_col(p), -pool.capacity_rps * length * dt))
    ub.add([(z_col, np.ones(nb)), *cap_terms], np.zeros(nb))
    prev = np.concatenate(([s_col[0]], s_col[:-1]))
    eq.add(
        [(s_col[1:], np.ones(nb - 1)), (prev[1:], -np.ones(nb - 1)), (z_col[1:], -np.ones(nb - 1))],
        np.zeros(nb - 1),
    )
    eq.add([(s_col[:1], np.ones(1)), (z_col[:1], -np.ones(1))], np.zeros(1))
    tail = blocks[1:]
    earliest = cum[np.maximum(0, tail * g - w)]
    ub.add(
        [
            (np.full(tail.size, s_col[-1]), np.ones(tail.size)),
            (s_col[tail - 1], -np.ones(tail.size)),
        ],
        total - earliest,
    )
    ub.add([(s_col[-1:], -np.ones(1))], np.array([-attainment * total]))
    if spot is not None and any(p.spot for p in pools):
        share = [
            (h_col(p), np.full(nb, (1 - spot.max_fraction) if m.spot else -spot.max_fraction))
            for p, m in enumerate(pools)
        ]
        ub.add(share, np.zeros(nb))
        firm = [(h_col(p), -np.ones(nb)) for p, m in enumerate(pools) if not m.spot]
        ub.add(firm, np.full(nb, -float(spot.min_on_demand_replicas)))
    bounds: list[tuple[float, float | None]] = [(0.0, None)] * ncols
    for p, pool in enumerate(pools):
        if pool.max_replicas is not None and not pool.spot:
            for c in n_col(p):
                bounds[c] = (0.0, float(pool.max_replicas))
    ends = cum[np.minimum(steps, (blocks + 1) * g)]
    for b, c in enumerate(s_col):
        bounds[c] = (0.0, float(ends[b]))
    cost = np.zeros(ncols)
    for p, pool in enumerate(pools):
        cost[h_col(p)] = pool.replica_cost_per_hour * length * dt / 3600.0
    a_ub, b_ub = ub.matrix(ncols)
    a_eq, b_eq = eq.matrix(ncols)
    res = linprog(cost, a_ub.tocsr(), b_ub, a_eq.tocsr(), b_eq, bounds=bounds, method="highs")
    if res.status != 0:
        return OracleBound(math.inf, g, np.zeros((0, 0)), np.zeros((0, 0)), np.zeros(0), False)
    x = res.x
    ready = np.stack([x[n_col(p)] for p in range(n_pools)])
    held = np.stack([x[h_col(p)] for p in range(n_pools)])
    return OracleBound(float(res.fun), g, ready, held, x[z_col], True)


def idle_accelerator_hours(bound: OracleBound, pools: list[PoolModel], dt: float) -> float:
    """Accelerator-hours the bound's schedule pays for beyond what its met requests use."""
    if not bound.feasible:
        return math.nan
    acc = np.array([p.accelerators_per_replica for p in pools], dtype=np.float64)
    mu = np.array([p.capacity_rps for p in pools])
    block_h = bound.block_steps * dt / 3600
    cap = mu @ bound.ready
    per_request = np.divide(acc @ bound.ready, cap, out=np.zeros_like(cap), where=cap > 0)
    return float((acc @ bound.held).sum() * block_h - (bound.met * per_request).sum() / 3600)
