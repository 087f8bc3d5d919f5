"""The engine's inputs and outputs: observations in, a `Decision` (and the state to keep) out.

Units are in the field names or the docstrings: seconds (s), requests per second (req/s),
dollars per hour ($/h). Every type is a frozen dataclass; `EngineState` round-trips through a
JSON-able dict because the operator keeps it in the InferenceDeployment's status.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from costscaler.api.budget import OnConflict

FloatArray = NDArray[np.float64]
STATE_VERSION = 1


class Reason(StrEnum):
    """Why the engine decided what it did (CamelCase: a condition reason and an Event reason)."""

    COST_OPTIMAL = "CostOptimal"
    KEEP_ALIVE = "KeepAlive"
    BUDGET_LIMITED = "BudgetLimited"
    BUDGET_EXCEEDED = "BudgetExceededForSLO"
    BUDGET_BELOW_MINIMUM = "BudgetBelowMinimum"
    SPOT_LIMIT_RELAXED = "SpotLimitRelaxed"
    SLO_AT_RISK = "SLOAtRisk"
    METRICS_UNAVAILABLE = "MetricsUnavailable"
    POOL_OUT_OF_STOCK = "PoolOutOfStock"
    CLUSTER_NOT_READY = "ClusterNotReady"
    MIN_BEYOND_QUOTA = "ReplicasMinBeyondQuota"


@dataclass(frozen=True)
class Observations:
    """A window of samples ending at the latest scrape, oldest first, one value per sample.

    `times` (s, same clock as `now`, increasing), `request_rate` (req/s), `latency` (the SLO
    quantile of end-to-end latency, s; NaN when not measured, e.g. no request finished in
    the scrape window), `token_rate` (output tokens/s, or None when the model
    server does not report it). Per pool name, arrays aligned with `times`: `ready` replicas
    serving, `warming` replicas started but not yet serving, and `lost` spot replicas
    interrupted since the previous sample; `unfulfillable` replicas the cluster cannot place
    (Pending past a grace period, or failed to launch: `core.stock`; only the latest sample
    is read). A pool missing from a mapping counts as zeros.
    `slo_good` and `slo_total`: requests within the SLO latency threshold and all requests
    since the start of the rolling SLO window (`spec.slo.window`), as counts; None when
    unknown (the error budget then leaves the attainment target at the SLO's,
    `core.errorbudget`).
    An LLM server's signals, aligned with `times`, each None when not reported: `ttft` and
    `itl` (the SLO quantiles of time to first token and inter-token latency, s, when the SLO
    states them; NaN when not measured), `queue_depth` (requests waiting, all pools),
    `kv_cache_usage` (the KV-cache use of the fullest pool, 0-1) and `prompt_token_rate`
    (input tokens/s); `generation_token_rate` is `token_rate` (output tokens/s). The engine
    reads these four only over the last `tokens.MIX_WINDOW_S` (the operator's window keeps no
    older samples of them: NaN there, `controller.history`).
    Missing samples are NaN: a NaN, infinite or negative rate or replica count in the latest
    sample is bad data (see `core.validate`); such samples are skipped elsewhere.
    `request_size_rate`: per `workload.requestSizes` name, req/s of requests of that size,
    aligned with `times` (empty when not reported: the declared shares hold, `core.sizes`).
    `free_accelerators`: node facts now, per pool with a NodePool: the accelerators free on
    each Ready node of it (warm spare nodes included). A new replica that fits on one pays
    the model load only (`core.nodes.free_slots`); pools absent have no node facts, and
    every new replica there pays the node cold start too.
    """

    times: FloatArray
    request_rate: FloatArray
    latency: FloatArray
    token_rate: FloatArray | None = None
    ready: Mapping[str, FloatArray] = field(default_factory=dict)
    warming: Mapping[str, FloatArray] = field(default_factory=dict)
    lost: Mapping[str, FloatArray] = field(default_factory=dict)
    unfulfillable: Mapping[str, FloatArray] = field(default_factory=dict)
    slo_good: float | None = None
    slo_total: float | None = None
    ttft: FloatArray | None = None
    itl: FloatArray | None = None
    queue_depth: FloatArray | None = None
    kv_cache_usage: FloatArray | None = None
    prompt_token_rate: FloatArray | None = None
    free_accelerators: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    request_size_rate: Mapping[str, FloatArray] = field(default_factory=dict)

    @property
    def generation_token_rate(self) -> FloatArray | None:
        """Output tokens/s: `token_rate` under the name that pairs with `prompt_token_rate`."""
        return self.token_rate

    @staticmethod
    def single(
        now: float,
        rate: float,
        latency: float = math.nan,
        ready: Mapping[str, float] | None = None,
    ) -> Observations:
        """One sample taken at `now` (what `costscaler plan --rate R` decides for)."""
        one = {k: np.array([float(v)]) for k, v in (ready or {}).items()}
        return Observations(
            times=np.array([float(now)]),
            request_rate=np.array([float(rate)]),
            latency=np.array([float(latency)]),
            ready=one,
        )


@dataclass(frozen=True)
class BudgetConstraint:
    """The burn rate a CostBudget allows this deployment now ($/h), and who wins a conflict.

    It is compared with `Decision.marginal_cost_per_hour`, what decisions pay: accelerators
    at their marginal price (owned and reserved capacity's capex is paid anyway and left
    out) plus fixed, storage and egress.

    PreferSLO keeps the plan that meets the SLO attainment floor even above the rate (and
    the ready replicas serving while its new ones warm), saying by how much; PreferBudget
    stays within the rate, keep-alive and make-before-break included, even if the SLO risk
    rises above the floor, unless the cheapest plan within the replica bounds alone costs
    more (reason BudgetBelowMinimum, `core.allowance`).
    """

    allowed_per_hour: float
    on_conflict: OnConflict = OnConflict.PREFER_SLO


@dataclass(frozen=True)
class Alternative:
    """A plan the engine weighed: replicas per pool, allocated $/h (`Decision.cost_per_hour`),
    its violating share (`Decision.violating_share`), and the marginal $/h the engine
    compared plans by."""

    name: str
    replicas: Mapping[str, int]
    cost_per_hour: float
    slo_risk: float
    marginal_cost_per_hour: float = math.nan


@dataclass(frozen=True)
class EngineState:
    """What the engine carries between calls (the operator stores `to_dict()` in status).

    `idle_since`: pool -> the times (s, oldest first) at which each of its surplus replicas
    stopped being needed (the ski-rental keep-alive clocks, `core.keepalive`).
    `capacity_scale`: the calibrator's multiplier on the declared per-replica capacity
    (1.0 = as declared). `calibrated_until`: time of the last sample the calibrator consumed
    (samples at or before it are not counted again).
    `hazard`: spot pool -> (losses, exposure instance-hours) of its Gamma posterior on the
    interruption rate, prior included. `hazard_until`: last sample folded into `hazard`.
    `burst`: spot pool -> (co-occurring losses, all losses) of its Beta posterior on the share
    of the hazard that comes in bursts, prior included (`core.hazard.bursts`; also up to
    `hazard_until`).
    `last_replicas`: the last allocation decided on good data, held when data goes bad.
    `stockouts`: pool -> (retry at (s), back-off (s)) of pools found out of stock
    (`core.stock.backoff`).
    """

    idle_since: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    capacity_scale: float = 1.0
    calibrated_until: float = -math.inf
    hazard: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    hazard_until: float = -math.inf
    burst: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    last_replicas: Mapping[str, int] = field(default_factory=dict)
    stockouts: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (infinite times become None)."""
        return {
            "version": STATE_VERSION,
            "idleSince": {k: list(v) for k, v in self.idle_since.items()},
            "capacityScale": self.capacity_scale,
            "calibratedUntil": _opt_time(self.calibrated_until),
            "hazard": {k: [a, b] for k, (a, b) in self.hazard.items()},
            "hazardUntil": _opt_time(self.hazard_until),
            "burst": {k: [a, b] for k, (a, b) in self.burst.items()},
            "lastReplicas": dict(self.last_replicas),
            "stockouts": {k: [a, b] for k, (a, b) in self.stockouts.items()},
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> EngineState:
        """Rebuild from `to_dict()` output; a malformed dict raises ValueError naming the key."""
        try:
            if data.get("version", STATE_VERSION) != STATE_VERSION:
                raise ValueError(f"version: expected {STATE_VERSION}, got {data.get('version')}")
            scale = float(data.get("capacityScale", 1.0))
            if not math.isfinite(scale) or scale <= 0:
                raise ValueError("capacityScale: must be a positive number")
            hazard = {
                str(k): (float(v[0]), float(v[1])) for k, v in dict(data.get("hazard", {})).items()
            }
            if any(not (a >= 0 and b > 0) for a, b in hazard.values()):
                raise ValueError("hazard: losses must be >= 0 and exposure > 0")
            burst = {
                str(k): (float(v[0]), float(v[1])) for k, v in dict(data.get("burst", {})).items()
            }
            if any(not (0 <= a <= b and b > 0) for a, b in burst.values()):
                raise ValueError("burst: co-occurring losses must be in [0, all losses], all > 0")
            stockouts = {
                str(k): (float(v[0]), float(v[1]))
                for k, v in dict(data.get("stockouts", {})).items()
            }
            if any(not (math.isfinite(a) and b > 0) for a, b in stockouts.values()):
                raise ValueError("stockouts: retry times must be finite, back-offs > 0")
            return EngineState(
                idle_since={str(k): _clocks(v) for k, v in dict(data.get("idleSince", {})).items()},
                capacity_scale=scale,
                calibrated_until=_time_or_inf(data.get("calibratedUntil")),
                hazard=hazard,
                hazard_until=_time_or_inf(data.get("hazardUntil")),
                burst=burst,
                last_replicas={
                    str(k): int(v) for k, v in dict(data.get("lastReplicas", {})).items()
                },
                stockouts=stockouts,
            )
        except (TypeError, KeyError, IndexError, AttributeError, ValueError) as exc:
            raise ValueError(f"engine state is malformed: {exc}") from None


def _clocks(value: Any) -> tuple[float, ...]:
    """Keep-alive clocks of a pool: a list of times, or one time (a pool's single clock, as
    state written by earlier versions holds it)."""
    if isinstance(value, int | float):
        return (float(value),)
    return tuple(sorted(float(t) for t in value))


def _opt_time(t: float) -> float | None:
    return t if math.isfinite(t) else None


def _time_or_inf(value: Any) -> float:
    return -math.inf if value is None else float(value)


@dataclass(frozen=True)
class WarmNodes:
    """Warm spare nodes kept on one pool (`core.warm`) and what they cost ($/h, marginal)."""

    nodes: int
    cost_per_hour: float


@dataclass(frozen=True)
class WarmNeed:
    """One deployment's use for warm spare nodes on a pool (`core.warm.need`).

    `tail`: P(it needs at least j extra nodes at the horizon), j = 1, 2, ...;
    `saves`: what the j-th spare saves of its plan's objective, $/h (the misses its node's
    replicas avoid over the node cold start, and that node's warm-up: `core.warm`);
    `node_cost_per_hour`: one node's marginal $/h; `room`: nodes the pool may still add.
    """

    pool: str
    tail: tuple[float, ...]
    saves: tuple[float, ...]
    node_cost_per_hour: float
    room: int


@dataclass(frozen=True)
class Decision:
    """One decision: what to run on each pool, what it costs, how risky it is, and why.

    `replicas`: pool -> replicas to request. `cost_per_hour` ($/h): the plan's allocated
    cost, for chargeback — replicas x effective $/replica-hour (cloud price, or ownership
    TCO share with capex) plus fixed, storage and egress items. `marginal_cost_per_hour`
    ($/h): what the decision pays, the figure plans are compared and budgets held by — owned
    and reserved capacity at energy and per-use operations only. Both pay whole nodes:
    `nodes` is pool -> nodes the replicas open (`core.nodes`). `violating_share`: the plan's
    expected share of requests over the SLO's latency threshold across the horizon, demand
    and spot losses integrated (`core.risk`); `expected_attainment` = 1 - that; `slo_risk`
    is the violating share too (the name status and metrics have always used).
    `optimum_proven`: False when the exact search stopped at its budget (`core.exact`) and
    the plan is the best it found; `optimum_gap`: then how far below the plan's objective
    the optimum's may lie, as a share of it (0 when proven). `reason` is CamelCase
    (a condition reason), `message` says why for people. `alternatives`: the plans weighed
    (chosen, cheapest-on-demand, max-spot, current, ...). `quantile`: demand quantile the plan
    was sized for; `demand_rps`: that demand at the horizon; `horizon_s`: the horizon;
    `metrics_available`: False when the engine held the allocation on bad data;
    `budget_limited`: True when the budget changed the plan or the plan is past it (the
    reason is then a budget one). `cost_per_1k_requests` and `cost_per_million_tokens` ($):
    the plan's cost per hour over the latest request and token rates (NaN without traffic
    or tokens). `cost_per_million_input_tokens` and `cost_per_million_output_tokens` ($): the
    plan's cost per hour split between prefill and decode and spread over the latest input and
    output token rates (`cost.cost_per_million_input_output`; NaN without both).
    `idle_accelerators`: accelerators of the plan that the latest request rate
    leaves idle (fractional; integrate over time with `cost.idle_accelerator_hours`).
    `spot_limit_relaxed`: True when on-demand quota is too small to carry replicas.min at
    spot.maxFraction, so spot may pass its share as far as that forces (`core.allocate`;
    reason SpotLimitRelaxed when the plan does).
    `free_slots`: per pool with node facts (`Observations.free_accelerators`), the
    replicas that fit on its Ready nodes now, which start at the model load alone.
    `out_of_stock`: pools the cluster reported unable to place replicas, held at what they
    have ready until their retry (`core.stock`). `quota_shortfall`: replicas.min minus what
    the eligible pools' maxima hold together (0 when they hold it; reason
    ReplicasMinBeyondQuota otherwise).
    `attainment_target`: the attainment this tick sized for, from the error budget of the SLO
    window (`core.errorbudget`; the SLO's own when the counts are unknown, NaN when the
    engine held without sizing). `error_budget_left`: share of the full window's allowed bad
    requests not yet spent (1 none spent, negative past the target; a window younger than
    its period is allowed the requests it will hold, `errorbudget.expected`); `burn_rate`: the
    window's bad share over the allowed one (1 = spending exactly as allowed); both None
    when the counts are unknown.
    """

    replicas: Mapping[str, int]
    cost_per_hour: float
    slo_risk: float
    reason: str
    message: str
    alternatives: tuple[Alternative, ...]
    state: EngineState
    quantile: float = math.nan
    demand_rps: float = math.nan
    horizon_s: float = 0.0
    metrics_available: bool = True
    budget_limited: bool = False
    spot_limit_relaxed: bool = False
    cost_per_1k_requests: float = math.nan
    cost_per_million_tokens: float = math.nan
    cost_per_million_input_tokens: float = math.nan
    cost_per_million_output_tokens: float = math.nan
    idle_accelerators: float = 0.0
    out_of_stock: tuple[str, ...] = ()
    quota_shortfall: int = 0
    marginal_cost_per_hour: float = math.nan
    nodes: Mapping[str, int] = field(default_factory=dict)
    attainment_target: float = math.nan
    error_budget_left: float | None = None
    burn_rate: float | None = None
    warm_nodes: Mapping[str, WarmNodes] = field(default_factory=dict)
    warm_need: WarmNeed | None = None
    expected_attainment: float = math.nan
    violating_share: float = math.nan
    optimum_proven: bool = True
    optimum_gap: float = 0.0
    free_slots: Mapping[str, int] = field(default_factory=dict)

    @property
    def total_replicas(self) -> int:
        """Replicas across all pools."""
        return sum(self.replicas.values())
