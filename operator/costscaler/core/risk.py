"""SLO risk of a plan: P(capacity < demand at the horizon), spot losses within it counted.

Demand D at the horizon is the forecast's kernel-smoothed sample (`core.forecast`). Capacity
C = sum_i replicas_i x capacity_i, minus what spot loses before replacements can be ready:

- independent losses: each spot replica is lost with probability `indep_loss_i`; their sum L
  is approximated as normal (mean m, variance v) and folded into the kernel's spread;
- bursts: with probability `burst_prob_i` the provider reclaims the whole pool i at once.
  Scenarios: no burst, exactly one pool's burst, and (conservatively) every spot pool lost
  for the remaining probability of two or more bursts. Pools are independent of each other,
  so spreading spot across pools lowers the risk of the burst scenarios.

risk = sum_s w_s x mean_g [D_g > 0] x Phi((D_g + m + B_s - C) / sqrt(bw^2 + v))
with B_s the capacity lost in scenario s, evaluated for a batch of plans at once in C
(`_kernels.c`: a few pools, ten demand samples, where numpy calls cost more than the sums).
"""

from __future__ import annotations

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

    @cached_property
    def _scenarios(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Scenario weights (no burst, each pool's burst, two or more); the matrix mapping a
        plan's replicas per pool to its capacity shift in each scenario (expected independent
        losses plus what the scenario's bursts take, negated: plans @ shift = m + B_s); each
        replica's contribution to the variance of independent losses; the kernel weights."""
        idx = np.flatnonzero(self.burst_prob > 0)
        q = self.burst_prob[idx]
        none = float(np.prod(1.0 - q))
        single = none * q / (1.0 - q)
        rest = max(0.0, 1.0 - none - float(single.sum()))
        weights = np.concatenate(([none], single, [rest]))
        lose = np.zeros((self.capacity.size, idx.size + 2))
        lose[idx, np.arange(1, idx.size + 1)] = 1.0
        lose[idx, -1] = 1.0  # two or more bursts: count every spot pool lost
        f = self.indep_loss
        shift = self.capacity[:, None] * (lose + (f - 1.0)[:, None])
        variance = self.capacity * self.capacity * (f * (1.0 - f))
        return weights, shift, variance, self.demand.weights

    def columns(
        self, price: FloatArray, surviving: FloatArray, current: FloatArray, start: FloatArray
    ) -> FloatArray:
        """Per-pool rows as `_kernels` takes them: price, variance, surviving capacity,
        current replicas, warm-up cost, then the scenarios' capacity shifts."""
        _, shift, variance, _ = self._scenarios
        table = np.column_stack((price, variance, surviving, current, start, shift))
        return np.ascontiguousarray(table, dtype=np.float64)

    @cached_property
    def _risk_columns(self) -> FloatArray:
        zero = np.zeros(self.capacity.size)
        return self.columns(zero, zero, zero, zero)

    def kernel_args(self) -> tuple[FloatArray, FloatArray, FloatArray, int, int, float]:
        """Demand samples, kernel weights, scenario weights, their counts and the bandwidth."""
        weights, _, _, kernel = self._scenarios
        d = self.demand
        return d.samples, kernel, weights, weights.size, kernel.size, d.bandwidth

    def of(self, plans: IntArray) -> FloatArray:
        """P(capacity < demand) for each plan (rows: plans, columns: pools), compiled."""
        x = np.ascontiguousarray(plans, dtype=np.int64)
        samples, kernel, weights, scenarios, g, bw = self.kernel_args()
        out = _kernels.risk(
            x,
            self._risk_columns,
            samples,
            kernel,
            weights,
            x.shape[0],
            x.shape[1],
            scenarios,
            g,
            bw,
        )
        return np.frombuffer(out, dtype=np.float64)

    def marginal(self, plan: IntArray) -> FloatArray:
        """Risk one replica of each pool removes at `plan`'s capacity (no spot losses counted).

        P(D > C - capacity_i) - P(D > C): what the last replica of pool i held in `plan` is
        worth against the demand forecast (the keep-alive's buy price).
        """
        total = float(plan @ self.capacity)
        ex = self.demand.exceedance(np.concatenate(([total], total - self.capacity)))
        return np.asarray(np.maximum(ex[1:] - ex[0], 0.0), dtype=np.float64)
