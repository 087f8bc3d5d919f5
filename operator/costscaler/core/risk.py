"""SLO risk of a plan: P(capacity < demand at the horizon), spot losses within it counted.

Demand D at the horizon is the forecast's kernel-smoothed sample (`core.forecast`). Capacity
C = sum_i replicas_i x capacity_i, minus what spot loses before replacements can be ready:

- independent losses: each spot replica is lost with probability `indep_loss_i`; their sum L
  is approximated as normal (mean m, variance v) and folded into the kernel's spread;
- bursts: with probability `burst_prob_i` the provider reclaims the whole pool i at once.
  Scenarios: no burst, exactly one pool's burst, and (conservatively) every spot pool lost
  for the remaining probability of two or more bursts. Pools are independent of each other,
  so spreading spot across pools lowers the risk of the burst scenarios.

risk = sum_s w_s x mean_g [D_g > 0] x r_s(D_g),  sd = sqrt(bw^2 + v),
  r_0 = Phi((D_g + m - C) / sd)  (no burst: the chance that capacity falls short),
  r_s = max(r_0, late_s + drain_s)  for a burst, 0 where it leaves no overload:
  late_s  = [1 - g C'_s / (D_g - C'_s)]+   the share of the outage whose requests are late,
  drain_s = [(D_g - C'_s - g C) / (C - D_g)]+   the backlog's drain after it (1 if C <= D_g),
with C = capacity after the expected independent losses, C'_s = C - B_s what the burst of
scenario s leaves, and g = `grace` = latency threshold L / outage T (a replacement's cold
start). Evaluated for a batch of plans at once in C (`_kernels.c`: a few pools, ten demand
samples, where numpy calls cost more than the sums).

Why: a burst scenario's weight is the chance of a burst within T, i.e. the share of time a
pool is down, so its term is the share of that time in which requests miss. A backlog grows
at D - C' and a request waits backlog / C', so requests are late from L C' / (D - C') into
the outage; once the pool is back the backlog (D - C') T drains at C - D, late until it is
under L C. Counted as P(C' < D), as before, a burst that overloads by one request/s weighed
like one that takes every replica: once one pool's burst chance passed the SLO floor every
plan such a burst leaves short was infeasible at once and the plan flipped (a 25 % cost
cliff at 0.26/h, issue #14). This term is 0 for an overload the outage cannot turn into
late requests and grows with the capacity a burst takes, so the risk, and the cost of the
plan that meets the floor, are continuous in the hazard. (The plain expected overflow,
(D - C')+ / D, is smooth too, but without load shedding a backlog makes every request late,
not only the overflow: in the simulator it let attainment under bursts fall to 0.96.) A
burst term is never below the no-burst one, so `core.exact`'s bound (every term >= Phi of
the no-burst argument) still holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from costscaler.core import _kernels
from costscaler.core.forecast import DemandForecast
from costscaler.core.types import FloatArray

IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class RiskModel:
    """Per-pool loss model and the demand forecast; `of(plans)` evaluates the risk of each.

    `capacity` (req/s per replica), `indep_loss` and `burst_prob` (probabilities within the
    horizon, 0 for pools that cannot be interrupted).
    """

    capacity: FloatArray
    indep_loss: FloatArray
    burst_prob: FloatArray
    demand: DemandForecast
    # Latency threshold over a burst's outage (the replacement's cold start): the share of
    # the outage a backlog takes to make requests late, per unit of overload (0: at once).
    grace: float = 0.0

    @cached_property
    def _scenarios(self) -> tuple[FloatArray, list[list[float]], list[float]]:
        """Scenario weights (no burst, each pool's burst, two or more); per pool, a replica's
        capacity shift in each scenario (expected independent losses plus what the scenario's
        bursts take, negated: plans @ shift = m + B_s); each replica's contribution to the
        variance of independent losses. Plain Python over a handful of pools, where numpy's
        per-call cost would dominate; the same numbers as the array formulas, to the bit
        (tests/unit/core/test_kernels.py)."""
        burst, cap = self.burst_prob.tolist(), self.capacity.tolist()
        loss = self.indep_loss.tolist()
        idx = [i for i, b in enumerate(burst) if b > 0]
        none = 1.0
        for i in idx:
            none *= 1.0 - burst[i]
        single = [none * burst[i] / (1.0 - burst[i]) for i in idx]
        # numpy's sum to the bit: sequential below 8 terms, pairwise from 8.
        total = sum(single) if len(single) < 8 else float(np.sum(single))
        weights = np.array([none, *single, max(0.0, 1.0 - none - total)])
        column = {i: k for k, i in enumerate(idx, start=1)}
        shift = []
        for i, (c, f) in enumerate(zip(cap, loss, strict=True)):
            kept, gone = c * (f - 1.0), c * (1.0 + (f - 1.0))
            row = [kept] * (len(idx) + 2)
            if i in column:  # its own burst, and two or more: every spot pool lost
                row[column[i]] = row[-1] = gone
            shift.append(row)
        variance = [c * c * (f * (1.0 - f)) for c, f in zip(cap, loss, strict=True)]
        return weights, shift, variance

    def columns(
        self, price: FloatArray, surviving: FloatArray, current: FloatArray, start: FloatArray
    ) -> FloatArray:
        """Per-pool rows as `_kernels` takes them: price, variance, surviving capacity,
        current replicas, warm-up cost, then the scenarios' capacity shifts."""
        _, shift, variance = self._scenarios
        rows = zip(
            price.tolist(),
            variance,
            surviving.tolist(),
            current.tolist(),
            start.tolist(),
            shift,
            strict=True,
        )
        return np.array([[p, v, s, c, t, *sh] for p, v, s, c, t, sh in rows], dtype=np.float64)

    @cached_property
    def _risk_columns(self) -> FloatArray:
        zero = np.zeros(self.capacity.size)
        return self.columns(zero, zero, zero, zero)

    def evaluate(
        self,
        plans: IntArray,
        columns: FloatArray,
        floor_demand: float = 0.0,
        risk_floor: float = 1.0,
        slo_miss_cost: float = 0.0,
        floor_weight: float = 0.0,
        budget: float = math.inf,
        budget_weight: float = 0.0,
        warm: bool = False,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(spend, risk, objective) of each plan (rows: plans, columns: pools), compiled
        (`_kernels.c`), from per-pool `columns` (`columns`); the objective's terms are
        `allocate.evaluate`'s, and without them it is the spend."""
        x = np.ascontiguousarray(plans, dtype=np.int64)
        weights, d = self._scenarios[0], self.demand
        out = _kernels.evaluate(
            x,
            columns,
            d.samples,
            d.weights,
            weights,
            x.shape[0],
            x.shape[1],
            weights.size,
            d.weights.size,
            d.bandwidth,
            floor_demand,
            risk_floor,
            slo_miss_cost,
            floor_weight,
            budget,
            budget_weight,
            warm,
            self.grace,
        )
        spend, risk, obj = np.frombuffer(out, dtype=np.float64).reshape(3, -1)
        return spend, risk, obj

    def of(self, plans: IntArray) -> FloatArray:
        """P(capacity < demand) for each plan (rows: plans, columns: pools)."""
        return self.evaluate(plans, self._risk_columns)[1]

    def marginal(self, plan: IntArray) -> FloatArray:
        """Risk one replica of each pool removes at `plan`'s capacity (no spot losses counted).

        P(D > C - capacity_i) - P(D > C): what the last replica of pool i held in `plan` is
        worth against the demand forecast (the keep-alive's buy price).
        """
        total = float(plan @ self.capacity)
        ex = self.demand.exceedance(np.concatenate(([total], total - self.capacity)))
        return np.asarray(np.maximum(ex[1:] - ex[0], 0.0), dtype=np.float64)
