"""`decide`: the one entry point of the engine, and `Planner`, which precomputes per spec.

A `Planner` holds what does not change between ticks for one deployment (pool arrays, bounds,
prices, horizon); `Planner.decide` turns one window of observations into a `Decision`.
`decide(spec, pools, ...)` builds the planner (cached on the identity of its arguments, which
the engine treats as immutable) and calls it, so the operator and the simulator share a path.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from costscaler.api.deployment import InferenceDeploymentSpec, TokenLatencySLO, window_seconds
from costscaler.api.money import to_float
from costscaler.api.pool import CapacityPool
from costscaler.core import cost, hazard, latency, sizes, tokens
from costscaler.core.pools import PoolView, pool_views, token_capacity
from costscaler.core.step import step
from costscaler.core.tokens import TokenObjective
from costscaler.core.types import BudgetConstraint, Decision, EngineState, Observations

_CACHE_SIZE = 256


@dataclass(frozen=True)
class Settings:
    """The deployment's SLO, bounds and cost items as plain numbers (units in the names).

    Defaults are the API's, so tests and the simulator can state only what matters to them.
    """

    latency_threshold_s: float
    attainment: float = 0.99
    latency_quantile: float = latency.DEFAULT_QUANTILE
    slo_miss_cost_per_hour: float = 10.0
    fixed_per_hour: float = 0.0
    egress_per_rps_hour: float = 0.0
    replicas_min: int = 1
    replicas_max: int = 10
    spot_max_fraction: float = 0.5
    min_on_demand: int = 0
    window_s: float = 3600.0
    daily_seasonality: bool = False
    slo_window_s: float = 7 * 86400.0
    # The SLO's time-to-first-token and inter-token latency objectives (`core.tokens`).
    ttft: TokenObjective | None = None
    itl: TokenObjective | None = None
    # workload.requestSizes: names, and declared shares (None: not declared; `core.sizes`).
    size_names: tuple[str, ...] = ()
    size_shares: tuple[float, ...] | None = None

    @staticmethod
    def from_spec(spec: InferenceDeploymentSpec) -> Settings:
        """Read the spec (money strings become float $)."""
        cm = spec.cost_model
        return Settings(
            latency_threshold_s=spec.slo.latency.threshold_seconds,
            latency_quantile=spec.slo.latency.quantile,
            attainment=spec.slo.attainment,
            slo_miss_cost_per_hour=to_float(cm.slo_miss_cost_per_hour),
            fixed_per_hour=cost.fixed_hourly(
                sum(to_float(f.amount) for f in cm.fixed_monthly), to_float(cm.storage_monthly)
            ),
            egress_per_rps_hour=cost.egress_hourly(
                1.0, cm.egress.gb_per_thousand_requests, to_float(cm.egress.price_per_gb)
            ),
            replicas_min=spec.replicas.min,
            replicas_max=spec.replicas.max,
            spot_max_fraction=spec.spot.max_fraction,
            min_on_demand=spec.spot.min_on_demand_replicas,
            window_s=float(spec.forecast.window_seconds),
            daily_seasonality=spec.forecast.daily_seasonality,
            slo_window_s=float(window_seconds(spec.slo.window)),
            ttft=_objective(spec.slo.ttft),
            itl=_objective(spec.slo.itl),
            size_names=tuple(s.name for s in spec.workload.request_sizes or []),
            size_shares=_declared_shares(spec),
        )


def _declared_shares(spec: InferenceDeploymentSpec) -> tuple[float, ...] | None:
    """workload.requestSizes[].share in order, None unless every size states one."""
    sizes = spec.workload.request_sizes or []
    shares = [s.share for s in sizes]
    if not shares or any(x is None for x in shares):
        return None
    return tuple(float(x) for x in shares if x is not None)


def _objective(slo: TokenLatencySLO | None) -> TokenObjective | None:
    """A TTFT or ITL objective as plain numbers (None when the SLO states none)."""
    return None if slo is None else TokenObjective(slo.threshold_seconds, slo.quantile)


class Planner:
    """Decisions for one deployment over a fixed set of eligible pools."""

    def __init__(self, pools: Sequence[PoolView], settings: Settings) -> None:
        if not pools:
            raise ValueError("no eligible pools: list CapacityPools the workload can run on")
        self.pools = tuple(pools)
        self.settings = settings
        self.names = tuple(p.name for p in pools)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.capacity = np.array([p.capacity_rps for p in pools], dtype=np.float64)
        # Token profiles (`core.tokens`): NaN where a pool has none, inf where no KV bound.
        self.prefill_tps, self.decode_tps, self.kv_bound = tokens.profiles(pools)
        # Request sizes (`core.sizes`): the dual's candidates, once; None without sizes.
        self.size_directions: sizes.Directions | None = None
        if settings.size_names:
            rates = [p.bucket_rps for p in pools]
            if any(r is None or len(r) != len(settings.size_names) for r in rates):
                raise ValueError(
                    "request sizes: every pool needs a capacity per workload.requestSizes "
                    "entry (workload.capacity[].buckets)"
                )
            self.size_directions = sizes.directions(np.array(rates, dtype=np.float64))
        # Decisions compare marginal $/h (owned capacity's capex is sunk); views also show
        # the allocated $/h (`core.billing`).
        self.price = np.array([p.decision_cost_per_hour for p in pools], dtype=np.float64)
        self.allocated = np.array([p.replica_cost_per_hour for p in pools], dtype=np.float64)
        # Replicas one node holds: a node bills whole from its first replica (`core.nodes`).
        self.per_node = np.array([p.replicas_per_node for p in pools], dtype=np.int64)
        self.spot = np.array([p.spot for p in pools], dtype=np.bool_)
        self.spot_index = np.flatnonzero(self.spot)
        self.max_replicas = np.array(
            [settings.replicas_max if p.max_replicas is None else p.max_replicas for p in pools],
            dtype=np.int64,
        )
        self.cold_start_s = np.array([p.cold_start_s for p in pools], dtype=np.float64)
        # A replica on a free slot of a Ready node waits the model load alone (`core.nodes`).
        self.load_s = np.array(
            [max(p.cold_start_s - p.node_cold_start_s, 0.0) for p in pools], dtype=np.float64
        )
        self.accelerators = np.array([p.accelerators_per_replica for p in pools], dtype=np.int64)
        self.declared_hazard = np.array(
            [p.interruption_rate_per_hour if p.spot else 0.0 for p in pools], dtype=np.float64
        )
        # Each spot pool's prior on its hazard (`core.hazard.prior`), by name.
        self.hazard_priors = {
            self.names[i]: hazard.prior(float(self.declared_hazard[i])) for i in self.spot_index
        }
        # And on the share of it that comes in whole-pool bursts (`core.hazard.burst_prior`).
        default = hazard.DEFAULT_BURST_SHARE
        shares = [default if p.burst_share is None else p.burst_share for p in pools]
        self.burst_priors = {self.names[i]: hazard.burst_prior(shares[i]) for i in self.spot_index}
        # Idle latency per pool (`core.latency`); the threshold must leave room for queueing.
        base = [
            latency.default_base_latency(settings.latency_threshold_s)
            if p.base_latency_s is None
            else p.base_latency_s
            for p in pools
        ]
        for p, b in zip(pools, base, strict=True):
            if not b < settings.latency_threshold_s:
                raise ValueError(
                    f"pool {p.name}: base latency {b} s is not below the SLO threshold "
                    f"{settings.latency_threshold_s} s, so no load meets it: lower "
                    "workload.capacity[].baseLatencySeconds or raise slo.latency.thresholdSeconds"
                )
        self.base_latency_s = np.array(base, dtype=np.float64)
        # Capacity asked for now serves after the slowest eligible pool's cold start.
        self.horizon_s = float(self.cold_start_s.max())

    def __repr__(self) -> str:
        return f"Planner({list(self.pools)!r}, {self.settings!r})"

    @staticmethod
    def from_api(spec: InferenceDeploymentSpec, pools: Sequence[CapacityPool]) -> Planner:
        """Planner for an InferenceDeployment spec over the given CapacityPools."""
        return Planner(pool_views(spec, pools), Settings.from_spec(spec))

    def decide(
        self,
        observations: Observations,
        current: Mapping[str, int],
        now: float,
        state: EngineState | None = None,
        budget: BudgetConstraint | None = None,
        alternatives: bool = True,
    ) -> Decision:
        """One decision at time `now` (s); see `core.step.step` for how it is made. With
        `alternatives=False` the decision lists none (the simulator's replays)."""
        decision = step(
            self, observations, current, now, state or EngineState(), budget, alternatives
        )
        return token_costs(self.pools, observations, decision)


def token_costs(views: Sequence[PoolView], obs: Observations, decision: Decision) -> Decision:
    """The decision with its $/1M input and output tokens: its allocated $/h over the latest
    input and output token rates, split by the chosen replicas' token profiles
    (`cost.cost_per_million_input_output`)."""
    if obs.prompt_token_rate is None or obs.generation_token_rate is None:
        return decision
    prefill, decode = token_capacity(views, decision.replicas)
    per_input, per_output = cost.cost_per_million_input_output(
        decision.cost_per_hour,
        float(obs.prompt_token_rate[-1]),
        float(obs.generation_token_rate[-1]),
        prefill,
        decode,
    )
    return replace(
        decision,
        cost_per_million_input_tokens=per_input,
        cost_per_million_output_tokens=per_output,
    )


_planners: OrderedDict[tuple[int, ...], tuple[Planner, object, tuple[object, ...]]] = OrderedDict()


def planner_for(spec: InferenceDeploymentSpec, pools: Sequence[CapacityPool]) -> Planner:
    """The cached planner for these exact objects (keyed on identity; kept alive with them)."""
    key = (id(spec), *map(id, pools))
    hit = _planners.get(key)
    if hit is not None:
        _planners.move_to_end(key)
        return hit[0]
    planner = Planner.from_api(spec, pools)
    _planners[key] = (planner, spec, tuple(pools))
    if len(_planners) > _CACHE_SIZE:
        _planners.popitem(last=False)
    return planner


def decide(
    spec: InferenceDeploymentSpec,
    pools: Sequence[CapacityPool],
    observations: Observations,
    current: Mapping[str, int],
    now: float,
    state: EngineState | None = None,
    budget: BudgetConstraint | None = None,
    alternatives: bool = True,
) -> Decision:
    """Replicas per pool for `spec` at time `now` (s), with cost, risk, reason and alternatives.

    `pools`: CapacityPool objects (those not in `spec.pools`, or that cannot run the model, are
    ignored); `observations`: the window ending at the latest scrape; `current`: replicas
    requested per pool now; `state`: what the previous decision returned (None on the first
    call); `budget`: the burn rate a CostBudget allows, if any; `alternatives`: False leaves
    them out, for callers that read only replicas, cost and state (the simulator): pricing
    them is about a tenth of a decision. Pure and deterministic.
    """
    return planner_for(spec, pools).decide(observations, current, now, state, budget, alternatives)
