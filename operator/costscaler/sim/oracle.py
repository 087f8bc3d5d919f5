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
It bounds replays with the fluid model only: with per-request serving (`sim.batching`) a
replica's capacity comes from its accelerator and the requests' tokens, not from `mu_p`, so
a policy can beat it there (docs/benchmark.md, "Not a bound under --serving batching").
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


@dataclass(frozen=True)
class _Grid:
    """The LP's layout: G steps per block, nb blocks, and each variable group's columns."""

    g: int
    nb: int
    pools: int
    length: NDArray[np.float64]

    def n(self, p: int) -> NDArray[np.int64]:
        """Columns of pool p's average ready replicas per block."""
        return p * self.nb + np.arange(self.nb)

    def h(self, p: int) -> NDArray[np.int64]:
        """Columns of pool p's average paid replicas per block."""
        return (self.pools + p) * self.nb + np.arange(self.nb)

    def z(self) -> NDArray[np.int64]:
        """Columns of met requests starting service per block."""
        return 2 * self.pools * self.nb + np.arange(self.nb)

    def s(self) -> NDArray[np.int64]:
        """Columns of met requests started up to the end of each block (running sum of z)."""
        return (2 * self.pools + 1) * self.nb + np.arange(self.nb)

    @property
    def columns(self) -> int:
        """Number of variables."""
        return (2 * self.pools + 2) * self.nb


def _capacity_rows(grid: _Grid, pools: list[PoolModel], dt: float, ub: _Rows) -> None:
    """Constraints 1-3: paid >= ready, cold starts, starts <= ready capacity."""
    nb, blocks = grid.nb, np.arange(grid.nb)
    cap_terms = []
    for p, pool in enumerate(pools):
        ub.add([(grid.n(p), np.ones(nb)), (grid.h(p), -np.ones(nb))], np.zeros(nb))
        k = _cold_steps(pool, dt) // grid.g
        if 0 < k < nb:
            src = blocks[: nb - k]
            ready_later = (grid.n(p)[src + k], grid.length[src + k] / grid.g)
            ub.add([ready_later, (grid.h(p)[src], -np.ones(src.size))], np.zeros(src.size))
        cap_terms.append((grid.n(p), -pool.capacity_rps * grid.length * dt))
    ub.add([(grid.z(), np.ones(nb)), *cap_terms], np.zeros(nb))


def _service_rows(
    grid: _Grid, cum: NDArray[np.float64], w: int, attainment: float, ub: _Rows, eq: _Rows
) -> None:
    """Constraints 4-5: s is the running sum of z; met starts arrived at most w steps before."""
    nb, z, s = grid.nb, grid.z(), grid.s()
    total = float(cum[-1])
    ones = np.ones(nb - 1)
    eq.add([(s[1:], ones), (s[:-1], -ones), (z[1:], -ones)], np.zeros(nb - 1))
    eq.add([(s[:1], np.ones(1)), (z[:1], -np.ones(1))], np.zeros(1))
    tail = np.arange(1, nb)
    earliest = cum[np.maximum(0, tail * grid.g - w)]
    ub.add([(np.full(tail.size, s[-1]), ones), (s[tail - 1], -ones)], total - earliest)
    ub.add([(s[-1:], -np.ones(1))], np.array([-attainment * total]))


def _spot_rows(grid: _Grid, pools: list[PoolModel], spot: SpotLimits, ub: _Rows) -> None:
    """Constraint 6: spot share of paid replicas and the on-demand floor."""
    nb = grid.nb
    share = [
        (grid.h(p), np.full(nb, (1 - spot.max_fraction) if m.spot else -spot.max_fraction))
        for p, m in enumerate(pools)
    ]
    ub.add(share, np.zeros(nb))
    firm = [(grid.h(p), -np.ones(nb)) for p, m in enumerate(pools) if not m.spot]
    ub.add(firm, np.full(nb, -float(spot.min_on_demand_replicas)))


def _bounds(
    grid: _Grid, pools: list[PoolModel], cum: NDArray[np.float64], steps: int
) -> list[tuple[float, float | None]]:
    """Quotas on ready replicas of firm pools; met starts up to a block <= its arrivals."""
    bounds: list[tuple[float, float | None]] = [(0.0, None)] * grid.columns
    for p, pool in enumerate(pools):
        if pool.max_replicas is not None and not pool.spot:
            for c in grid.n(p):
                bounds[c] = (0.0, float(pool.max_replicas))
    ends = cum[np.minimum(steps, (np.arange(grid.nb) + 1) * grid.g)]
    for b, c in enumerate(grid.s()):
        bounds[c] = (0.0, float(ends[b]))
    return bounds


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
    steps = arrivals.size
    g = max(1, math.ceil(steps / max_blocks))
    nb = math.ceil(steps / g)
    grid = _Grid(g, nb, len(pools), np.minimum(g, steps - np.arange(nb) * g).astype(np.float64))
    cum = np.concatenate(([0.0], np.cumsum(arrivals)))
    infeasible = OracleBound(math.inf, g, np.zeros((0, 0)), np.zeros((0, 0)), np.zeros(0), False)
    budget = threshold_s - min(p.service_s for p in pools)
    if budget < 0 and attainment * cum[-1] > 0:
        return infeasible
    ub, eq = _Rows(), _Rows()
    _capacity_rows(grid, pools, dt, ub)
    _service_rows(grid, cum, math.ceil(max(budget, 0.0) / dt) + 1, attainment, ub, eq)
    if spot is not None and any(p.spot for p in pools):
        _spot_rows(grid, pools, spot, ub)
    cost = np.zeros(grid.columns)
    for p, pool in enumerate(pools):
        cost[grid.h(p)] = pool.replica_cost_per_hour * grid.length * dt / 3600.0
    a_ub, b_ub = ub.matrix(grid.columns)
    a_eq, b_eq = eq.matrix(grid.columns)
    bounds = _bounds(grid, pools, cum, steps)
    res = linprog(cost, a_ub.tocsr(), b_ub, a_eq.tocsr(), b_eq, bounds=bounds, method="highs")
    if res.status != 0:
        return infeasible
    ready = np.stack([res.x[grid.n(p)] for p in range(len(pools))])
    held = np.stack([res.x[grid.h(p)] for p in range(len(pools))])
    return OracleBound(float(res.fun), g, ready, held, res.x[grid.z()], True)


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
