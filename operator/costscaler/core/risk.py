"""The violating share of a plan: the expected share of requests over the latency threshold.

Units: capacity and demand in req/s, shares and probabilities dimensionless, times in s.

Demand. The forecast (`core.forecast`) gives the level now, the point at the horizon H and
a weighted sample of errors e_g at H plus a kernel spread bw. Between now and H demand is
sampled at lead times tau_j H (tau = 1/3, 2/3, 1), the spread growing like a random walk's:

    D_jgz = level + (point - level) tau_j + (e_g + z bw) sqrt(tau_j),

z over three Gauss-Hermite nodes (0, +-sqrt 3; weights 2/3, 1/6, 1/6) for the kernel. Each
sample weighs its bin's mass x its node's weight x D (requests, not instants: a busy
minute has more requests to miss), normalised so the weights times D sum to 1.

Capacity. A plan x (replicas per pool) has per-pool capacity c_i (calibrated req/s per
replica, `core.latency`'s rated rate: where the replica just meets the SLO; it saturates at
h_i c_i, h_i = `latency.headroom` > 1). Spot losses, each lasting a replacement's cold
start T (the probability of a loss x T is the share of time capacity is missing):

- independent losses: a share `indep_loss_i` of pool i's replicas is down at any time, so
  its replicas serve c_i (1 - indep_loss_i) on average;
- bursts: pool i is down whole for a share `burst_prob_i` of the time. Scenarios: no burst,
  exactly one pool's burst, and (conservatively) every spot pool down for the rest of the
  probability of two or more. A scenario s leaves capacity C_s(x) = sum_i x_i c_is.

Violating share. Least-outstanding routing spreads demand D over the C_s serving so that
every replica runs at rated utilisation D / C_s, and pool i's replicas miss the threshold on
a share v_i(D / (C_s h_i)) of their requests (`core.latency`, v_i on lambda / mu). Pool i
serves x_i c_is / C_s of them:

    V(x) = sum_s w_s sum_i (x_i c_is / C_s) T_i(1 / C_s),
    T_i(r) = sum_jgz omega_jgz D_jgz v_i(min(D_jgz r / h_i, 1)),

T_i tabulated on a grid of r = 1 / C from 0 to max_i h_i / min D (past it every sample
saturates every pool: T = 1) and interpolated linearly (the model optimised is that
interpolant; non-decreasing in r because v_i is). A scenario with no capacity misses every request.
The grid is uniform (`TABLE` points) up to the knee min(top, `SPAN` / max D) and
again uniform (`TAIL` more points) from there to the top. A single uniform grid would put
its first point past 1 / C of every plan worth weighing once one sample nears 0 (a forecast
band reaching down to no demand, as on a start from nothing): the interpolant between
T(0) = 0 and that point then grows like 1 / C and charges every plan, however large, a
violating share no replica count removes. Capacities below max D / SPAN are far short of
the demand, so their coarse tail decides nothing a plan near the demand would.
`overflow(x)` = sum_s w_s sum omega (D - C_s)+, the share of requests beyond rated
capacity, ranks plans that all miss (V = 1) by how far they fall short.

Bounds (`core.exact`): every scenario's capacity is at most C(x) = C_0(x), r_s >= 1 / C(x),
each T_i is non-decreasing in r and the pool shares within a scenario sum to 1, so

    V(x) >= min_i T_i(1 / C(x)) =: Vlow(C(x))   and   overflow(x) >= overflow at C(x),

functions of the plan's capacity alone (the pointwise minimum of the tables, interpolated,
is at most each interpolant, so Vlow computed from it is still a lower bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from costscaler.core import latency
from costscaler.core.forecast import DemandForecast
from costscaler.core.sizes import MixCapacity
from costscaler.core.tokens import TokenLatency
from costscaler.core.types import FloatArray

IntArray = NDArray[np.int64]

LEADS = np.array([1.0 / 3.0, 2.0 / 3.0, 1.0])
_NODES = np.array([-math.sqrt(3.0), 0.0, math.sqrt(3.0)])
_NODE_W = np.array([1.0 / 6.0, 2.0 / 3.0, 1.0 / 6.0])
TABLE = 129  # points of the r = 1 / C grid up to its knee
TAIL = 32  # points past the knee, to the top
SPAN = 8.0  # the knee's capacity is at least the largest demand sample over this
MIN_RPS = 1e-9  # a demand sample below this is no demand (its inverse would overflow)


@dataclass(frozen=True)
class RiskModel:
    """Per-pool capacity, spot losses and latency models, and the demand forecast.

    `capacity` (req/s per replica, calibrated), `indep_loss` and `burst_prob` (shares of
    time, 0 for pools that cannot be interrupted), `base_latency_s` (idle latency per pool,
    s), `threshold_s` (the SLO's latency threshold, s), `quantile` (the latency quantile the
    SLO holds under it, which places each pool's saturation: `core.latency`); `tokens`: the
    TTFT and ITL models when the SLO states them (`core.tokens`: each pool's curve is then
    the largest share; the token models saturate at c_i, so it is 1 past it). `mix`: the
    request-size-aware capacity (`core.sizes`) when the workload has request sizes: a
    plan's capacity in each scenario is then C(x) of its replicas serving there, and
    `capacity` is each pool's alone at the part of the mix it serves (its latency curve's).
    """

    capacity: FloatArray
    indep_loss: FloatArray
    burst_prob: FloatArray
    demand: DemandForecast
    base_latency_s: FloatArray
    threshold_s: float
    tokens: TokenLatency | None = None
    quantile: float = latency.DEFAULT_QUANTILE
    mix: MixCapacity | None = None

    @cached_property
    def headroom(self) -> FloatArray:
        """h_i: pool i's saturation over its rated capacity (`latency.headroom`)."""
        return np.array(
            [
                latency.headroom(float(c), float(b), self.threshold_s, self.quantile)
                for c, b in zip(self.capacity, self.base_latency_s, strict=True)
            ]
        )

    @cached_property
    def effective(self) -> FloatArray:
        """Req/s a replica serves on average in the no-burst scenario: c_i (1 - indep_loss_i)."""
        return np.asarray(self.capacity * (1.0 - self.indep_loss), dtype=np.float64)

    @cached_property
    def bound_effective(self) -> FloatArray:
        """Req/s per replica whose sum over a plan bounds its no-burst capacity from above
        (`core.exact`): `effective`, or with request sizes the additive bound of C(x)."""
        if self.mix is None:
            return self.effective
        return np.asarray(self.mix.bound * (1.0 - self.indep_loss), dtype=np.float64)

    @cached_property
    def bound_scenarios(self) -> FloatArray:
        """Per-pool capacity bound per scenario (N, S): `scenarios`' with `bound_effective`."""
        if self.mix is None:
            return self.scenarios[1]
        up = self.scenarios[1] > 0
        return np.asarray(np.where(up, self.bound_effective[:, None], 0.0), dtype=np.float64)

    @cached_property
    def scenarios(self) -> tuple[FloatArray, FloatArray]:
        """(weights (S,), per-pool capacity per scenario (N, S)): no burst, each spot pool's
        burst alone, two or more (every bursting pool down)."""
        b = self.burst_prob
        idx = np.flatnonzero(b > 0)
        none = float(np.prod(1.0 - b[idx]))
        single = none * b[idx] / (1.0 - b[idx])
        weights = np.concatenate(([none], single, [max(0.0, 1.0 - none - float(single.sum()))]))
        cap = np.repeat(self.effective[:, None], idx.size + 2, axis=1)
        cap[idx, 1 + np.arange(idx.size)] = 0.0
        cap[idx, -1] = 0.0
        if idx.size == 0:  # no bursts: one scenario
            return np.ones(1), cap[:, :1].copy()
        return weights, cap

    @cached_property
    def samples(self) -> tuple[FloatArray, FloatArray]:
        """(demand samples D (req/s), request weights omega with sum omega D = 1); empty
        when no demand is expected."""
        d = self.demand
        tau = LEADS[:, None, None]
        e = (d.samples - d.point)[None, :, None] + d.bandwidth * _NODES[None, None, :]
        demand = d.level + (d.point - d.level) * tau + e * np.sqrt(tau)
        demand = np.maximum(demand, 0.0).ravel()
        mass = (d.weights[None, :, None] * _NODE_W[None, None, :] / LEADS.size).repeat(
            LEADS.size, axis=0
        )
        w = mass.ravel() * demand
        keep = (w > 0) & (demand > MIN_RPS)
        total = float(w[keep].sum())
        if total <= 0:
            return np.zeros(0), np.zeros(0)
        return demand[keep], mass.ravel()[keep] / total

    @cached_property
    def _knots(self) -> FloatArray:
        """The grid of r = 1 / C the tables are on: `TABLE` points from 0 to the knee, then
        `TAIL` to the top, max h / min D (none when the knee is the top; see the module)."""
        demand, _ = self.samples
        if demand.size == 0:
            return np.linspace(0.0, 1.0, TABLE)
        top = float(self.headroom.max()) / float(demand.min())
        knee = min(top, SPAN / float(demand.max()))
        fine = np.linspace(0.0, knee, TABLE)
        if knee >= top:
            return fine
        return np.concatenate((fine, np.linspace(knee, top, TAIL + 1)[1:]))

    @cached_property
    def _grid(self) -> tuple[float, FloatArray]:
        """(top r, per-pool tables T_i (N, knots)) on `_knots` (see the module)."""
        demand, omega = self.samples
        n = self.capacity.size
        r = self._knots
        top = float(r[-1])
        if demand.size == 0:
            return top, np.zeros((n, r.size))
        h = self.headroom
        weight = omega * demand
        past = r >= top
        tables = np.empty((n, r.size))
        done: dict[tuple[float, ...], FloatArray] = {}
        for i in range(n):
            key: tuple[float, ...] = (float(self.capacity[i]), float(self.base_latency_s[i]))
            if self.tokens is not None:
                key += (float(i),)  # the token models differ per pool: no sharing
            row = done.get(key)
            if row is None:
                # The curve's index of every (sample, knot), min(D r / h, 1) (GRID - 1), and
                # the curve read between its points as v[lo] + (v[lo + 1] - v[lo]) frac; the
                # last point's step is 0, so an index at the curve's end needs no clamp.
                u = np.multiply.outer(demand, r * ((latency.GRID - 1) / h[i]))
                np.minimum(u, latency.GRID - 1, out=u)
                whole = np.floor(u)  # u >= 0: its integer part
                u -= whole
                lo = whole.astype(np.int64)
                v = self._curve(i)
                step = np.append(np.diff(v), 0.0)
                u *= step.take(lo)
                u += v.take(lo)
                row = weight @ u
                row[past] = 1.0  # every sample saturates every pool at the top: exactly 1
                done[key] = row
            tables[i] = row
        return top, tables

    def _curve(self, i: int) -> FloatArray:
        """Pool `i`'s latency curve: end to end, or with the token objectives stated."""
        c, b = float(self.capacity[i]), float(self.base_latency_s[i])
        if self.tokens is None:
            return latency.curve(c, b, self.threshold_s, self.quantile)
        return self.tokens.curve(i, c, b, self.threshold_s, self.quantile)

    @cached_property
    def _low_table(self) -> FloatArray:
        return np.asarray(self._grid[1].min(axis=0), dtype=np.float64)

    def _interp(self, tables: FloatArray, capacity: FloatArray) -> FloatArray:
        """Tables (rows) at r = 1 / capacity; shape (rows, *capacity.shape). 1 where the
        capacity is 0 or the grid ends."""
        knots = self._knots
        knee, top = float(knots[TABLE - 1]), float(knots[-1])
        with np.errstate(divide="ignore"):
            r = np.where(capacity > 0, 1.0 / np.maximum(capacity, 1e-300), np.inf)
        pos = np.minimum(r / knee, 1.0) * (TABLE - 1)
        if top > knee:  # past the knee: the tail's own uniform spacing
            past = np.clip((r - knee) / (top - knee), 0.0, 1.0) * TAIL
            pos = np.where(r > knee, TABLE - 1 + past, pos)
        lo = np.minimum(pos.astype(np.int64), knots.size - 2)
        frac = pos - lo
        out = tables.take(lo, axis=1) * (1.0 - frac) + tables.take(lo + 1, axis=1) * frac
        return np.asarray(out, dtype=np.float64)

    def low(self, capacity: FloatArray) -> FloatArray:
        """Vlow(C): a lower bound on V of any plan whose no-burst capacity is C (module)."""
        c = np.asarray(capacity, dtype=np.float64)
        if self.samples[0].size == 0:
            return np.zeros_like(c)
        return np.asarray(self._interp(self._low_table[None, :], c)[0], dtype=np.float64)

    def capacity_for(self, share: float) -> float:
        """The least capacity (req/s, on the table's grid) at which Vlow is at most `share`:
        no plan with less meets it (inf when no capacity does; 0 without demand)."""
        if self.samples[0].size == 0:
            return 0.0
        ok = np.flatnonzero(self._low_table <= share)
        if ok.size == 0 or ok[-1] == 0:
            return math.inf
        return float(1.0 / self._knots[ok[-1]])

    def overflow_at(self, capacity: FloatArray) -> FloatArray:
        """Share of requests beyond `capacity` (req/s), sum omega (D - C)+, any shape: from
        the samples sorted and their suffix sums, sum_{D > C} omega D - C sum_{D > C} omega."""
        c = np.asarray(capacity, dtype=np.float64)
        demand, _, mass_above, load_above = self._sorted
        if demand.size == 0:
            return np.zeros_like(c)
        k = np.searchsorted(demand, c, side="right")
        out = load_above[k] - c * mass_above[k]
        return np.asarray(np.maximum(out, 0.0), dtype=np.float64)

    @cached_property
    def _sorted(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Samples ascending, their weights, and suffix sums of omega and omega D (with a
        trailing 0)."""
        demand, omega = self.samples
        order = np.argsort(demand, kind="stable")
        d, w = demand[order], omega[order]
        mass = np.concatenate((np.cumsum(w[::-1])[::-1], [0.0]))
        load = np.concatenate((np.cumsum((w * d)[::-1])[::-1], [0.0]))
        return d, w, mass, load

    def evaluate(self, plans: IntArray) -> tuple[FloatArray, FloatArray]:
        """(V, overflow) of each plan (rows: plans, columns: pools)."""
        x = np.asarray(plans, dtype=np.float64)
        if self.samples[0].size == 0:
            zero = np.zeros(x.shape[0])
            return zero, zero.copy()
        weights, cap = self.scenarios
        _, tables = self._grid
        if self.mix is None:
            total = x @ cap  # (P, S)
            t = self._interp(tables, total)  # (N, P, S)
            served = np.einsum("pi,is,ips->ps", x, cap, t)
        else:
            total, served = self._by_size(x, cap, tables)
        share = np.where(total > 0, served / np.where(total > 0, total, 1.0), 1.0)
        v = np.minimum(share, 1.0) @ weights
        return np.asarray(v, dtype=np.float64), self.overflow_at(total) @ weights

    def _by_size(
        self, x: FloatArray, cap: FloatArray, tables: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """(C_s(x), sum_i part_i T_i(1 / C_s)) per plan and scenario with request sizes: the
        replicas serving in scenario s (those of pools up, times 1 - indep_loss) routed by
        size (`core.sizes`), each pool weighted by its part of C_s."""
        assert self.mix is not None
        up = cap / self.capacity[:, None]  # (N, S): 1 - indep_loss where up, else 0
        total, part = self.mix.attributed(x[:, None, :] * up.T[None, :, :])  # (P, S), (P, S, N)
        t = self._interp(tables, total)  # (N, P, S)
        return total, np.einsum("psi,ips->ps", part, t)

    def of(self, plans: IntArray) -> FloatArray:
        """V for each plan."""
        return self.evaluate(plans)[0]

    def marginal(self, plan: IntArray) -> FloatArray:
        """V one replica of each pool removes at `plan` (0 for a pool it holds none of): what
        the last replica of pool i is worth against the demand forecast (the keep-alive's
        buy price, `core.keepalive`)."""
        n = plan.size
        less = plan[None, :] - np.eye(n, dtype=np.int64)
        v = self.of(np.vstack((plan[None, :], np.maximum(less, 0))))
        return np.asarray(np.where(plan > 0, np.maximum(v[1:] - v[0], 0.0), 0.0))
