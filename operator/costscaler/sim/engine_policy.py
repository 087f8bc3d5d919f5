"""The `costscaler` policy: the operator's own decision, `core.decide`, driven by the twin.

It keeps the same observation window the controller keeps (one sample per tick: the request
rate and the SLO-quantile latency over the last `rate_window_s`, a minute as the controller's
default PromQL range, so bursts shorter than that are averaged away; ready and warming
replicas, spot losses and unplaceable replicas per pool, for `forecast.windowSeconds`) and
carries the engine state from one decision to the next, so a replayed decision is the
deployed decision. The error budget reads the replay's own counts over `spec.slo.window`:
requests measured within the latency threshold and all requests measured, as the
controller reads them from the SLO histogram (unknown in a metrics outage). With requests
served one by one, the LLM server's signals too, over the same rate window: the prompt token
rate, and TTFT and ITL at the quantiles the SLO states (only those it states, as the
controller keeps them), so the engine's token mix and token-latency models run as deployed.
`costscaler-single` is the same engine offered only the cheapest on-demand pool.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from costscaler.api import CapacityPool, InferenceDeploymentSpec
from costscaler.api.deployment import window_seconds
from costscaler.api.money import to_float
from costscaler.core import EngineState, Observations
from costscaler.core.cost import fixed_hourly
from costscaler.core.engine import decide
from costscaler.sim.budget import BudgetMeter, SimBudget
from costscaler.sim.policy import ClusterView

RATE_WINDOW_S = 60.0  # the controller's default PromQL rate() range
_POOLS = 7  # the buffer's first per-pool row


@dataclass
class CostScaler:
    """`core.decide` every `interval_s` (the controller's default tick) on `pool_names`."""

    spec: InferenceDeploymentSpec
    pools: list[CapacityPool]
    pool_names: list[str]
    name: str = "costscaler"
    interval_s: float = 15.0
    budget: SimBudget | None = None
    rate_window_s: float = RATE_WINDOW_S

    def __post_init__(self) -> None:
        allowed = set(self.pool_names)
        refs = [r for r in self.spec.pools if r.name in allowed]
        self._spec = self.spec.model_copy(update={"pools": refs})
        self._state: EngineState | None = None
        self._keep = max(1, math.ceil(self.spec.forecast.window_seconds / self.interval_s))
        self._lost = [0] * len(self.pool_names)
        # The window as columns, oldest first: time, rate, latency, tokens, prompt tokens,
        # TTFT, ITL, then ready, warming, lost and unplaced per pool. Twice the window long,
        # so it shifts rarely.
        self._buf = np.full((_POOLS + 4 * len(self.pool_names), 2 * self._keep), np.nan)
        self._server = False  # whether the view has an LLM server's metrics
        self._filled = 0
        self._meter = BudgetMeter(self.budget) if self.budget else None
        self._cols: list[int] = []  # view.pools index of each of pool_names, found once

    def _columns(self, view: ClusterView) -> list[int]:
        if not self._cols:
            index = {p.name: i for i, p in enumerate(view.pools)}
            self._cols = [index[n] for n in self.pool_names]
        return self._cols

    @staticmethod
    def _replicas(chosen: Mapping[str, int], view: ClusterView) -> list[int]:
        return [int(chosen.get(p.name, 0)) for p in view.pools]

    def initial(self, view: ClusterView) -> list[int]:
        """Holds the running replicas: the controller decides at its first tick, with data.

        A budget accrues the held allocation until then: whole nodes at their marginal $/h
        plus the fixed items, as a decision's `marginal_cost_per_hour` counts them.
        """
        if self._meter:
            nodes = sum(
                -(-n // p.replicas_per_node)
                * p.replicas_per_node
                * (
                    p.replica_cost_per_hour
                    if p.marginal_cost_per_hour is None
                    else p.marginal_cost_per_hour
                )
                for n, p in zip(view.desired, view.pools, strict=True)
            )
            cm = self.spec.cost_model
            fixed = sum(to_float(item.amount) for item in cm.fixed_monthly)
            self._meter.applied(nodes + fixed_hourly(fixed, to_float(cm.storage_monthly)))
        return list(view.desired)

    def _sample(self, view: ClusterView) -> None:
        cols = self._columns(view)
        lost = [view.lost[i] - self._lost[k] for k, i in enumerate(cols)]
        self._lost = [view.lost[i] for i in cols]
        window = self.rate_window_s
        tokens = view.token_rate(window)
        rate = view.rate(window)
        latency = view.latency_quantile(self.spec.slo.latency.quantile, window)
        if math.isnan(latency) and rate > 0:
            latency = window  # load but nothing started for a whole window
        slo = self.spec.slo
        prompt = view.prompt_token_rate(window)
        ttft = None if slo.ttft is None else view.token_latency("ttft", slo.ttft.quantile, window)
        itl = None if slo.itl is None else view.token_latency("itl", slo.itl.quantile, window)
        self._server = view.server is not None
        if self._filled == self._buf.shape[1]:
            self._buf[:, : self._keep] = self._buf[:, self._keep :]
            self._filled = self._keep
        self._buf[:, self._filled] = (
            view.now_s,
            rate,
            latency,
            math.nan if tokens is None else tokens,
            *(math.nan if v is None else v for v in (prompt, ttft, itl)),
            *(view.ready[i] for i in cols),
            *(view.warming[i] for i in cols),
            *lost,
            *(view.unplaced[i] if view.unplaced else 0 for i in cols),
        )
        self._filled += 1

    def observations(
        self, has_tokens: bool, slo: tuple[float, float] | None = None
    ) -> Observations:
        """The window as the engine takes it; `slo`: good and total requests since the start
        of the rolling SLO window, for the error budget (None: unknown)."""
        data = self._buf[:, max(0, self._filled - self._keep) : self._filled]
        n = len(self.pool_names)
        rows = [data[_POOLS + k * n : _POOLS + (k + 1) * n] for k in range(4)]
        per_pool = [dict(zip(self.pool_names, r, strict=True)) for r in rows]
        latency = np.where(data[1] > 0, data[2], np.nan)
        return Observations(
            times=data[0],
            request_rate=data[1],
            latency=latency,
            token_rate=data[3] if has_tokens else None,
            ready=per_pool[0],
            warming=per_pool[1],
            lost=per_pool[2],
            unfulfillable=per_pool[3],
            slo_good=None if slo is None else slo[0],
            slo_total=None if slo is None else slo[1],
            prompt_token_rate=data[4] if self._server else None,
            ttft=data[5] if self._server and self.spec.slo.ttft else None,
            itl=data[6] if self._server and self.spec.slo.itl else None,
        )

    def decide(self, view: ClusterView) -> list[int]:
        """One controller tick: sample, decide, keep the engine state."""
        self._sample(view)
        desired = view.desired
        current = {n: desired[i] for n, i in zip(self.pool_names, self._columns(view), strict=True)}
        window = float(window_seconds(self.spec.slo.window))
        obs = self.observations(view.cum_tokens is not None, view.slo_counts(window))
        budget = self._meter.allowance(view.now_s) if self._meter else None
        decision = decide(
            self._spec,
            self.pools,
            obs,
            current,
            view.now_s,
            self._state,
            budget=budget,
            alternatives=False,  # a replay reads replicas, cost and state only
        )
        self._state = decision.state
        if self._meter:
            self._meter.applied(decision.marginal_cost_per_hour)  # budgets hold marginal
        return self._replicas(decision.replicas, view)
