"""InferenceDeployment: one model service, its SLO, eligible pools and cost model."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from costscaler.api.common import (
    ApiModel,
    Condition,
    Money,
    Name,
    ObjectMeta,
    Rule,
)
from costscaler.api.podtemplate import PodTemplate


class Mode(StrEnum):
    """Enforce applies decisions; Recommend only records them in status (shadow mode)."""

    ENFORCE = "Enforce"
    RECOMMEND = "Recommend"


class MetricsPreset(StrEnum):
    """Which model server's metric names the built-in queries use."""

    VLLM = "vllm"
    SGLANG = "sglang"
    TGI = "tgi"
    TRITON = "triton"
    GENERIC = "generic"


# Presets whose server exports a time-to-first-token histogram (TGI has none), and an
# inter-token latency one (TGI's is each request's mean time per output token).
TTFT_PRESETS = (MetricsPreset.VLLM, MetricsPreset.SGLANG)
ITL_PRESETS = (MetricsPreset.VLLM, MetricsPreset.SGLANG, MetricsPreset.TGI)


class TargetRef(ApiModel):
    """An existing Deployment to scale instead of owning one per pool."""

    api_version: Literal["apps/v1"] = Field(default="apps/v1", description="apps/v1.")
    kind: Literal["Deployment"] = Field(default="Deployment", description="Deployment.")
    name: Name = Field(description="Name of the Deployment in the same namespace.")


class LatencySLO(ApiModel):
    """The latency objective: this quantile of end-to-end latency under a threshold."""

    quantile: float = Field(
        default=0.95, gt=0, lt=1, description="Latency quantile, e.g. 0.95 for p95."
    )
    threshold_seconds: float = Field(
        gt=0, le=3600, description="Latency threshold at that quantile, seconds."
    )


# A whole number of minutes, hours or days ("30m", "24h", "7d"): the units an SLO period is
# stated in. CEL computes the seconds the same way (`window_seconds`) for the bound rules.
WINDOW_PATTERN = r"^[1-9][0-9]{0,5}[mhd]$"
WINDOW_MAX_SECONDS = 90 * 86400
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}


def window_seconds(window: str) -> int:
    """Seconds in an SLO window written as `WINDOW_PATTERN` allows ("7d" -> 604800)."""
    return int(window[:-1]) * _UNIT_SECONDS[window[-1]]


def _window_cel(path: str) -> str:
    """CEL for the seconds of the window string at `path` (mirrors `window_seconds`)."""
    unit = f"({path}.endsWith('d') ? 86400 : ({path}.endsWith('h') ? 3600 : 60))"
    return f"int({path}.substring(0, size({path}) - 1)) * {unit}"


class TokenLatencySLO(ApiModel):
    """A per-token latency objective of an LLM server: this quantile under a threshold."""

    quantile: float = Field(
        default=0.95, gt=0, lt=1, description="Latency quantile, e.g. 0.95 for p95."
    )
    threshold_seconds: float = Field(
        gt=0, le=600, description="Latency threshold at that quantile, seconds."
    )


class SLO(ApiModel):
    """The service level objective the autoscaler must meet at the lowest cost.

    Every objective stated must hold: end-to-end latency always, and time to first token and
    inter-token latency when given.
    """

    latency: LatencySLO = Field(description="Latency objective.")
    ttft: TokenLatencySLO | None = Field(
        default=None,
        description="Time to first token (queueing and prefill) objective, e.g. p95 under 1 s. "
        "Read from the model server's TTFT histogram (presets vllm, sglang) or "
        "spec.metrics.ttft.",
    )
    itl: TokenLatencySLO | None = Field(
        default=None,
        description="Inter-token latency (time per output token after the first, TPOT) "
        "objective, e.g. p95 under 0.05 s. Read from the model server's histogram (presets "
        "vllm, sglang, tgi) or spec.metrics.itl.",
    )
    attainment: float = Field(
        default=0.99,
        gt=0,
        le=1,
        description="Target share of requests within the latency threshold; a floor on the "
        "demand quantile provisioned for.",
    )
    window: str = Field(
        default="7d",
        pattern=WINDOW_PATTERN,
        max_length=7,
        description="Rolling period the attainment is measured over, e.g. 7d, 24h or 30m "
        "(at least forecast.windowSeconds, at most 90d): each tick's target follows from the "
        "error budget this period has left.",
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=f"{_window_cel('self.window')} <= {WINDOW_MAX_SECONDS}",
            message="window must be at most 90d: write e.g. 30d",
            check=lambda m: window_seconds(m.window) <= WINDOW_MAX_SECONDS,
            field_path=".window",
        ),
    )


class TokenRange(ApiModel):
    """A range of tokens per request, both ends included."""

    min: int = Field(default=0, ge=0, le=10_000_000, description="Fewest tokens.")
    max: int = Field(ge=1, le=10_000_000, description="Most tokens.")

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.min <= self.max",
            message="min must be less than or equal to max",
            check=lambda m: m.min <= m.max,
            field_path=".min",
        ),
    )


class RequestSize(ApiModel):
    """A request-size bucket: requests whose prompt and output token counts fall in these
    ranges (Melange, arXiv 2404.14527, profiles GPUs per such bucket)."""

    name: Name = Field(description="Bucket name, referenced by workload.capacity[].buckets.")
    input_tokens: TokenRange = Field(description="Prompt (input) tokens per request.")
    output_tokens: TokenRange = Field(description="Generated (output) tokens per request.")
    share: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Share of requests of this size (weights, normalised over the sizes), "
        "planned on while no request rate per size is observed. Set on every size or none.",
    )


class BucketCapacity(ApiModel):
    """What one replica serves within the SLO of requests of one size only."""

    size: Name = Field(description="Name of a workload.requestSizes entry.")
    requests_per_second: float | None = Field(
        default=None,
        gt=0,
        le=1e6,
        description="Requests/s of this size one replica serves while meeting every SLO. "
        "Unset: derived from the entry's token profile at the size's middle, "
        "1 / (input / prefillTokensPerSecond + output / decodeTokensPerSecond).",
    )


class CapacityProfile(ApiModel):
    """What one replica serves within the SLO on one accelerator type.

    `requestsPerSecond` is the capacity at the workload's usual request mix. An LLM server
    may add a token profile (prefill and decode tokens/s, the KV-cache bound on concurrent
    sequences) and the capacity per request-size bucket.
    """

    accelerator: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$",
        max_length=63,
        description="Accelerator type, matching a CapacityPool's spec.accelerator.type.",
    )
    requests_per_second: float = Field(
        gt=0, le=1e6, description="Requests/s one replica serves while meeting the latency SLO."
    )
    tokens_per_second: float | None = Field(
        default=None, gt=0, le=1e8, description="Output tokens/s one replica serves at the SLO."
    )
    accelerators_per_replica: int = Field(
        default=1, ge=1, le=64, description="Accelerators one replica uses (tensor parallelism)."
    )
    base_latency_seconds: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="End-to-end latency of one request on an idle replica, seconds; below "
        "slo.latency.thresholdSeconds. Unset: half the threshold (the engine's latency model).",
    )
    prefill_tokens_per_second: float | None = Field(
        default=None,
        gt=0,
        le=1e8,
        description="Prompt tokens/s one replica prefills on an idle server (a prompt of N "
        "tokens takes N / this seconds before its first token). Token profile.",
    )
    decode_tokens_per_second: float | None = Field(
        default=None,
        gt=0,
        le=1e8,
        description="Output tokens/s one replica generates, summed over the batch, at the "
        "largest batch that meets the inter-token latency SLO. Token profile.",
    )
    max_concurrent_sequences: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Sequences one replica holds at once: the KV-cache bound. Token profile.",
    )
    buckets: list[BucketCapacity] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="Capacity per request-size bucket (workload.requestSizes); a bucket left "
        "out cannot be served on this accelerator.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["size"]},
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.prefillTokensPerSecond) == has(self.decodeTokensPerSecond)",
            message="a token profile needs both prefillTokensPerSecond and decodeTokensPerSecond",
            check=lambda m: (
                (m.prefill_tokens_per_second is None) == (m.decode_tokens_per_second is None)
            ),
        ),
        Rule(
            cel="!has(self.maxConcurrentSequences) || has(self.decodeTokensPerSecond)",
            message="maxConcurrentSequences belongs to a token profile: set "
            "prefillTokensPerSecond and decodeTokensPerSecond too",
            check=lambda m: (
                m.max_concurrent_sequences is None or m.decode_tokens_per_second is not None
            ),
            field_path=".maxConcurrentSequences",
        ),
        Rule(
            cel="!has(self.buckets) || has(self.prefillTokensPerSecond) || "
            "self.buckets.all(b, has(b.requestsPerSecond))",
            message="buckets[].requestsPerSecond is required without a token profile to "
            "derive it from: set it, or prefillTokensPerSecond and decodeTokensPerSecond",
            check=lambda m: (
                m.buckets is None
                or m.prefill_tokens_per_second is not None
                or all(b.requests_per_second is not None for b in m.buckets)
            ),
            field_path=".buckets",
        ),
    )


def _ttft_misses(spec: InferenceDeploymentSpec) -> list[str]:
    """Each bucket whose smallest prompt cannot prefill within the TTFT threshold on an idle
    replica, as `<accelerator> bucket <name>: <N> input tokens at <P> tokens/s take <s> s`."""
    ttft, sizes = spec.slo.ttft, {s.name: s for s in spec.workload.request_sizes or []}
    found = []
    for c in spec.workload.capacity:
        if ttft is None or c.prefill_tokens_per_second is None:
            continue
        for b in c.buckets or []:
            size = sizes.get(b.size)
            took = size.input_tokens.min / c.prefill_tokens_per_second if size else 0.0
            if size and took > ttft.threshold_seconds:
                found.append(
                    f"{c.accelerator} bucket {size.name}: {size.input_tokens.min} input tokens "
                    f"at {_num(c.prefill_tokens_per_second)} tokens/s take {_num(took)} s"
                )
    return found


def _slowest_prefill(spec: InferenceDeploymentSpec) -> float:
    """The longest time, on an idle replica, to prefill the smallest prompt of a request size
    an accelerator serves (its bucket's inputTokens.min / its prefillTokensPerSecond), s; 0
    without request sizes or token profiles."""
    sizes = {s.name: s for s in spec.workload.request_sizes or []}
    return max(
        (
            sizes[b.size].input_tokens.min / c.prefill_tokens_per_second
            for c in spec.workload.capacity
            if c.prefill_tokens_per_second is not None
            for b in c.buckets or []
            if b.size in sizes
        ),
        default=0.0,
    )


def _num(x: float) -> str:
    """A number as CEL's string() writes a double (shortest round trip, no trailing .0), so
    the Python and the API server messages read the same."""
    return repr(float(x)).removesuffix(".0")


class Workload(ApiModel):
    """How the model behaves: load time and capacity per accelerator."""

    model_load_seconds: int = Field(
        default=60,
        ge=0,
        le=7200,
        description="Pod start to serving: image pull and weight load, seconds.",
    )
    capacity: list[CapacityProfile] = Field(
        min_length=1,
        max_length=32,
        description="Per-replica capacity on each accelerator type the model can run on.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["accelerator"],
        },
    )
    mean_output_tokens: float | None = Field(
        default=None, gt=0, le=1e6, description="Mean output tokens per request (for $/1M tokens)."
    )
    request_sizes: list[RequestSize] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="Request-size buckets (prompt and output token ranges) that "
        "capacity[].buckets give a capacity for. Buckets must not overlap.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.capacity.all(c, !has(c.buckets) || (has(self.requestSizes) && "
            "c.buckets.all(b, self.requestSizes.exists(s, s.name == b.size))))",
            message="capacity[].buckets[].size must name an entry of workload.requestSizes",
            check=lambda m: all(
                c.buckets is None
                or (
                    m.request_sizes is not None
                    and all(any(s.name == b.size for s in m.request_sizes) for b in c.buckets)
                )
                for c in m.capacity
            ),
            field_path=".capacity",
        ),
        Rule(
            cel="!has(self.requestSizes) || self.capacity.all(c, has(c.buckets))",
            message="with requestSizes, every capacity entry lists its buckets (leave out the "
            "sizes an accelerator cannot serve)",
            check=lambda m: (
                m.request_sizes is None or all(c.buckets is not None for c in m.capacity)
            ),
            field_path=".capacity",
        ),
        Rule(
            cel="!has(self.requestSizes) || self.requestSizes.all(s, self.capacity.exists(c, "
            "has(c.buckets) && c.buckets.exists(b, b.size == s.name)))",
            message="every requestSizes entry needs a capacity on at least one accelerator "
            "(capacity[].buckets)",
            check=lambda m: (
                m.request_sizes is None
                or all(
                    any(c.buckets and any(b.size == s.name for b in c.buckets) for c in m.capacity)
                    for s in m.request_sizes
                )
            ),
            field_path=".requestSizes",
        ),
        Rule(
            cel="!has(self.requestSizes) || self.requestSizes.all(a, self.requestSizes.all(b, "
            "a.name == b.name || a.inputTokens.max < b.inputTokens.min || "
            "b.inputTokens.max < a.inputTokens.min || a.outputTokens.max < b.outputTokens.min "
            "|| b.outputTokens.max < a.outputTokens.min))",
            message="requestSizes must not overlap: a request falls in one bucket",
            check=lambda m: (
                m.request_sizes is None
                or all(
                    a.name == b.name or _disjoint(a, b)
                    for a in m.request_sizes
                    for b in m.request_sizes
                )
            ),
            field_path=".requestSizes",
        ),
        Rule(
            cel="!has(self.requestSizes) || self.requestSizes.all(s, has(s.share)) || "
            "self.requestSizes.all(s, !has(s.share))",
            message="set requestSizes[].share on every size or on none",
            check=lambda m: (
                m.request_sizes is None or len({s.share is None for s in m.request_sizes}) == 1
            ),
            field_path=".requestSizes",
        ),
    )

    def profile_for(self, accelerator: str) -> CapacityProfile | None:
        """The capacity profile for an accelerator type, or None when the model cannot run there."""
        return next((p for p in self.capacity if p.accelerator == accelerator), None)


def _disjoint(a: RequestSize, b: RequestSize) -> bool:
    """True when no request can fall in both buckets."""
    return (
        a.input_tokens.max < b.input_tokens.min
        or b.input_tokens.max < a.input_tokens.min
        or a.output_tokens.max < b.output_tokens.min
        or b.output_tokens.max < a.output_tokens.min
    )


class Metrics(ApiModel):
    """Where load and latency come from: a preset, or explicit PromQL."""

    preset: MetricsPreset = Field(
        default=MetricsPreset.VLLM,
        description="vllm, sglang, tgi, triton or generic (set the queries).",
    )
    request_rate: str | None = Field(
        default=None, max_length=4096, description="PromQL for requests/s, overriding the preset."
    )
    latency: str | None = Field(
        default=None,
        max_length=4096,
        description="PromQL for the SLO latency quantile in seconds, overriding the preset.",
    )
    token_rate: str | None = Field(
        default=None, max_length=4096, description="PromQL for output tokens/s (optional)."
    )
    ttft: str | None = Field(
        default=None,
        max_length=4096,
        description="PromQL for the spec.slo.ttft quantile of time to first token in seconds, "
        "overriding the preset.",
    )
    itl: str | None = Field(
        default=None,
        max_length=4096,
        description="PromQL for the spec.slo.itl quantile of inter-token latency in seconds, "
        "overriding the preset.",
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.preset != 'generic' || (has(self.requestRate) && has(self.latency))",
            message="preset generic needs explicit requestRate and latency queries",
            check=lambda m: (
                m.preset != MetricsPreset.GENERIC
                or (m.request_rate is not None and m.latency is not None)
            ),
        ),
    )


class PoolRef(ApiModel):
    """An eligible CapacityPool and this deployment's quota on it."""

    name: Name = Field(description="Name of a CapacityPool.")
    max_replicas: int | None = Field(
        default=None, ge=0, le=10000, description="At most this many replicas on this pool."
    )


class Spot(ApiModel):
    """Limits on interruptible capacity."""

    max_fraction: float = Field(
        default=0.5, ge=0, le=1, description="At most this share of replicas on Spot pools."
    )
    min_on_demand_replicas: int = Field(
        default=0, ge=0, le=10000, description="At least this many replicas on non-Spot pools."
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.maxFraction >= 0.0 && self.maxFraction <= 1.0",
            message="maxFraction must be within [0, 1]",
            check=lambda m: 0 <= m.max_fraction <= 1,
            field_path=".maxFraction",
        ),
    )


class Replicas(ApiModel):
    """Bounds on the total replicas across pools."""

    min: int = Field(default=1, ge=0, le=10000, description="Fewest replicas in total.")
    max: int = Field(default=10, ge=1, le=10000, description="Most replicas in total.")
    scale_to_zero: bool = Field(
        default=False, description="Allow zero replicas when idle (needs min 0)."
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.min <= self.max",
            message="min must be less than or equal to max",
            check=lambda m: m.min <= m.max,
            field_path=".min",
        ),
        Rule(
            cel="self.scaleToZero || self.min >= 1",
            message="min 0 needs scaleToZero: true",
            check=lambda m: m.scale_to_zero or m.min >= 1,
            field_path=".min",
        ),
    )


class FixedCost(ApiModel):
    """A fixed monthly cost of the service (licence, on-call, monitoring)."""

    name: str = Field(min_length=1, max_length=63, description="What the cost is for.")
    amount: Money = Field(description="Amount per month.")


class Egress(ApiModel):
    """Network egress priced per GB."""

    price_per_gb: Money = Field(
        default="0", alias="pricePerGB", description="Price per GB of egress."
    )
    gb_per_thousand_requests: float = Field(
        default=0.0, ge=0, le=1e6, description="GB sent per 1,000 requests."
    )


class CostModel(ApiModel):
    """Costs beyond accelerators, and what missing the SLO costs the business."""

    slo_miss_cost_per_hour: Money = Field(
        default="10",
        description="Cost of one hour with the SLO missed; weighs risk against spend.",
    )
    fixed_monthly: list[FixedCost] = Field(
        default_factory=list,
        max_length=32,
        description="Fixed monthly items.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    egress: Egress = Field(default_factory=Egress, description="Egress costs.")
    storage_monthly: Money = Field(default="0", description="Storage (weights, images) per month.")


class Forecast(ApiModel):
    """How demand is forecast over the cold-start horizon."""

    window_seconds: int = Field(
        default=3600, ge=60, le=7 * 86400, description="Observation window used, seconds."
    )
    daily_seasonality: bool = Field(
        default=False, description="Model a daily cycle (needs a window of days)."
    )


class BudgetRef(ApiModel):
    """The CostBudget this deployment's spend counts against."""

    name: Name = Field(description="Name of a CostBudget in the same namespace.")


# The smallest prompt of every bucket an accelerator serves must prefill within the TTFT
# threshold on an idle replica: if it cannot, no request of that bucket meets the TTFT SLO, and
# the bucket's declared capacity within the SLO is a contradiction. (The bucket's largest
# prompt may miss it while the quantile still holds, so that is no error.)
_TTFT_CEL = (
    "self.workload.capacity.all(c, !has(c.prefillTokensPerSecond) || !has(c.buckets) || "
    "c.buckets.all(b, self.workload.requestSizes.all(s, s.name != b.size || "
    "double(s.inputTokens.min) / c.prefillTokensPerSecond <= self.slo.ttft.thresholdSeconds)))"
)
# The message names the threshold and the two sides of the prefill time: the largest smallest
# prompt of a bucket and the slowest prefill. (The exact accelerator and bucket would take nested
# loops, over the API server's cost budget for a message; `costscaler validate` names them.)
_TTFT_MESSAGE_CEL = (
    "'spec.slo.ttft.thresholdSeconds %s s is below the unloaded prefill time of a "
    "request-size bucket on an accelerator that serves it (requestSizes[].inputTokens.min / "
    "capacity[].prefillTokensPerSecond, here up to %s tokens at down to %s tokens/s); raise "
    "the threshold or leave the bucket out of that accelerator'.format(["
    "self.slo.ttft.thresholdSeconds, self.workload.requestSizes.map(s, s.inputTokens.min).max(), "
    "self.workload.capacity.filter(c, has(c.prefillTokensPerSecond)).map(c, "
    "c.prefillTokensPerSecond).min()])"
)


def _ttft_message(spec: InferenceDeploymentSpec) -> str:
    """The TTFT rule's message as `_TTFT_MESSAGE_CEL` writes it, then the exact offenders."""
    assert spec.slo.ttft is not None  # the rule fails only with a TTFT objective
    sizes = spec.workload.request_sizes or []
    prefills = [c.prefill_tokens_per_second for c in spec.workload.capacity]
    largest = max(s.input_tokens.min for s in sizes)
    slowest = min(p for p in prefills if p is not None)
    return (
        f"spec.slo.ttft.thresholdSeconds {_num(spec.slo.ttft.threshold_seconds)} s is below the "
        "unloaded prefill time of a request-size bucket on an accelerator that serves it "
        "(requestSizes[].inputTokens.min / capacity[].prefillTokensPerSecond, here up to "
        f"{largest} tokens at down to {_num(slowest)} tokens/s); raise the threshold or leave "
        f"the bucket out of that accelerator: {'; '.join(_ttft_misses(spec))}"
    )


class InferenceDeploymentSpec(ApiModel):
    """A model service: what to run, its SLO, where it may run and what it costs."""

    mode: Mode = Field(
        default=Mode.RECOMMEND,
        description="Enforce applies decisions; Recommend only records them (the safe start).",
    )
    template: PodTemplate | None = Field(
        default=None,
        description="Pod template (a PodTemplateSpec subset) of the model server; the operator "
        "owns one Deployment per eligible pool, named <name>-<pool>. Exclusive with targetRef.",
    )
    target_ref: TargetRef | None = Field(
        default=None,
        description="Scale this existing Deployment instead (exactly one pool). Exclusive with "
        "template.",
    )
    slo: SLO = Field(description="Latency objective.")
    workload: Workload = Field(description="Model load time and capacity per accelerator.")
    metrics: Metrics = Field(default_factory=Metrics, description="Prometheus queries.")
    pools: list[PoolRef] = Field(
        min_length=1,
        max_length=32,
        description="Eligible CapacityPools.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    spot: Spot = Field(default_factory=Spot, description="Spot limits.")
    replicas: Replicas = Field(default_factory=Replicas, description="Replica bounds.")
    cost_model: CostModel = Field(default_factory=CostModel, description="Costs and SLO value.")
    forecast: Forecast = Field(default_factory=Forecast, description="Forecast settings.")
    budget_ref: BudgetRef | None = Field(default=None, description="CostBudget to count against.")

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=f"{_window_cel('self.slo.window')} >= self.forecast.windowSeconds",
            message="slo.window must be at least forecast.windowSeconds: lengthen the window "
            "(e.g. 7d) or shorten the forecast window",
            check=lambda m: window_seconds(m.slo.window) >= m.forecast.window_seconds,
            field_path=".slo.window",
        ),
        Rule(
            cel="has(self.template) != has(self.targetRef)",
            message="set exactly one of template or targetRef",
            check=lambda m: (m.template is None) != (m.target_ref is None),
        ),
        Rule(
            cel="!has(self.targetRef) || size(self.pools) == 1",
            message="targetRef scales one Deployment: list exactly one pool",
            check=lambda m: m.target_ref is None or len(m.pools) == 1,
            field_path=".pools",
        ),
        Rule(
            cel="self.workload.capacity.all(c, !has(c.baseLatencySeconds) || "
            "c.baseLatencySeconds < self.slo.latency.thresholdSeconds)",
            message="workload.capacity[].baseLatencySeconds must be below "
            "slo.latency.thresholdSeconds (a replica that is already slower when idle meets "
            "the SLO at no load): lower it or raise the threshold",
            check=lambda m: all(
                c.base_latency_seconds is None
                or c.base_latency_seconds < m.slo.latency.threshold_seconds
                for c in m.workload.capacity
            ),
            field_path=".workload.capacity",
        ),
        Rule(
            cel="self.spot.minOnDemandReplicas <= self.replicas.max",
            message="spot.minOnDemandReplicas must be less than or equal to replicas.max",
            check=lambda m: m.spot.min_on_demand_replicas <= m.replicas.max,
            field_path=".spot.minOnDemandReplicas",
        ),
        Rule(
            cel="self.pools.all(p, !has(p.maxReplicas) || p.maxReplicas <= self.replicas.max)",
            message="pools[].maxReplicas must be less than or equal to replicas.max",
            check=lambda m: all(
                p.max_replicas is None or p.max_replicas <= m.replicas.max for p in m.pools
            ),
            field_path=".pools",
        ),
        Rule(
            cel="!has(self.slo.ttft) || has(self.metrics.ttft) || "
            "self.metrics.preset in ['vllm', 'sglang']",
            message="slo.ttft needs a time-to-first-token series: use preset vllm or sglang "
            "(tgi and triton export none), or set metrics.ttft",
            check=lambda m: (
                m.slo.ttft is None or m.metrics.ttft is not None or m.metrics.preset in TTFT_PRESETS
            ),
            field_path=".slo.ttft",
        ),
        Rule(
            cel="!has(self.slo.itl) || has(self.metrics.itl) || "
            "self.metrics.preset in ['vllm', 'sglang', 'tgi']",
            message="slo.itl needs an inter-token latency series: use preset vllm, sglang or "
            "tgi, or set metrics.itl",
            check=lambda m: (
                m.slo.itl is None or m.metrics.itl is not None or m.metrics.preset in ITL_PRESETS
            ),
            field_path=".slo.itl",
        ),
        Rule(
            cel=f"!has(self.slo.ttft) || !has(self.workload.requestSizes) || {_TTFT_CEL}",
            message="spec.slo.ttft.thresholdSeconds is below the unloaded prefill time of a "
            "request-size bucket (its smallest prompt / prefillTokensPerSecond)",
            message_expression=_TTFT_MESSAGE_CEL,
            check=lambda m: (
                m.slo.ttft is None or _slowest_prefill(m) <= m.slo.ttft.threshold_seconds
            ),
            explain=_ttft_message,
            field_path=".slo.ttft.thresholdSeconds",
        ),
    )

    @field_validator("pools")
    @classmethod
    def _pool_names_unique(cls, value: list[PoolRef]) -> list[PoolRef]:
        if len({p.name for p in value}) != len(value):
            raise ValueError("pool names must be unique")
        return value


class PoolReplicas(ApiModel):
    """Replicas of one pool: what the operator asked for and what is there."""

    pool: str = Field(description="CapacityPool name.")
    desired: int = Field(default=0, ge=0, description="Replicas requested.")
    ready: int = Field(default=0, ge=0, description="Replicas serving.")
    warming: int = Field(default=0, ge=0, description="Replicas starting (paid, not serving).")
    warm_nodes: int | None = Field(
        default=None,
        ge=0,
        description="Warm spare nodes the pool keeps launched and empty now (pools with "
        "spec.nodePool), shared by every deployment on it: a replica placed there pays the "
        "model load only. Their cost is on the CapacityPool's status.warmHourlyCost.",
    )
    free_slots: int | None = Field(
        default=None,
        ge=0,
        description="Replicas of this deployment that fit on the free accelerators of the "
        "pool's Ready nodes now (pools with spec.nodePool; warm spare nodes included): the "
        "decision prices their start at the model load, the rest at node cold start too.",
    )


class ObservedLoad(ApiModel):
    """The last good observation from Prometheus."""

    time: str | None = Field(default=None, description="When it was taken (RFC 3339).")
    request_rate: float | None = Field(default=None, description="Requests/s.")
    latency_seconds: float | None = Field(default=None, description="SLO-quantile latency, s.")
    token_rate: float | None = Field(default=None, description="Output tokens/s.")
    ttft_seconds: float | None = Field(
        default=None, description="spec.slo.ttft quantile of TTFT, s."
    )
    itl_seconds: float | None = Field(default=None, description="spec.slo.itl quantile of ITL, s.")
    queue_depth: float | None = Field(default=None, description="Requests waiting, all pools.")
    kv_cache_usage: float | None = Field(
        default=None, description="KV-cache use of the fullest pool (0-1)."
    )
    prompt_token_rate: float | None = Field(default=None, description="Input tokens/s.")


class CostSummary(ApiModel):
    """Cost views of the current allocation and recent load."""

    per_hour: Money | None = Field(
        default=None,
        description="Allocated cost per hour, for chargeback: owned and reserved capacity at "
        "its full TCO (capex included).",
    )
    marginal_per_hour: Money | None = Field(
        default=None,
        description="Marginal cost per hour, what the decision pays: owned and reserved "
        "capacity at energy and per-use operations (its capex is paid whether used or not).",
    )
    projected_monthly: Money | None = Field(default=None, description="Per hour x 730.")
    per_1k_requests: Money | None = Field(
        default=None, alias="per1kRequests", description="Cost per 1,000 requests."
    )
    per_million_tokens: Money | None = Field(default=None, description="Cost per 1M output tokens.")
    per_million_input_tokens: Money | None = Field(
        default=None,
        description="Cost per 1M input (prompt) tokens: the cost per hour's prefill share "
        "over the input tokens served (OpenCost's inference cost view).",
    )
    per_million_output_tokens: Money | None = Field(
        default=None,
        description="Cost per 1M output tokens: the cost per hour's decode share over the "
        "output tokens served (OpenCost's inference cost view).",
    )
    idle_accelerator_hours: float | None = Field(
        default=None, ge=0, description="Accelerator-hours paid but not needed, this period."
    )


class PoolCount(ApiModel):
    """A replica count on one pool."""

    pool: str = Field(description="CapacityPool name.")
    replicas: int = Field(ge=0, description="Replicas.")


class AlternativeRecord(ApiModel):
    """A plan the engine weighed, with its cost and risk."""

    name: str = Field(description="chosen, cheapest-on-demand, max-spot, current, ...")
    replicas: list[PoolCount] = Field(default_factory=list, description="Replicas per pool.")
    cost_per_hour: Money = Field(description="Allocated cost per hour (full TCO).")
    marginal_cost_per_hour: Money | None = Field(
        default=None, description="Marginal cost per hour, what the plan would pay."
    )
    slo_risk: float | None = Field(
        default=None, ge=0, le=1, description="Probability capacity falls short; unset if unknown."
    )


class DecisionRecord(ApiModel):
    """The last decision, explained."""

    time: str = Field(description="When it was made (RFC 3339).")
    reason: str = Field(description="CamelCase reason.")
    message: str = Field(default="", description="Why, for people.")
    replicas: list[PoolCount] = Field(default_factory=list, description="Chosen replicas.")
    cost_per_hour: Money = Field(
        description="Allocated cost per hour of the chosen plan (full TCO, for chargeback)."
    )
    marginal_cost_per_hour: Money | None = Field(
        default=None,
        description="Marginal cost per hour of the chosen plan: what the decision pays, the "
        "figure plans are compared and budgets held by.",
    )
    slo_risk: float | None = Field(
        default=None, ge=0, le=1, description="SLO risk of the chosen plan; unset if unknown."
    )
    alternatives: list[AlternativeRecord] = Field(
        default_factory=list, description="Plans weighed, with cost and risk."
    )


class ErrorBudgetStatus(ApiModel):
    """The SLO window so far: requests, attainment, the error budget left and its burn rate."""

    window: str = Field(description="The rolling SLO window the counts cover (spec.slo.window).")
    good_requests: float = Field(ge=0, description="Requests within the latency threshold.")
    total_requests: float = Field(ge=0, description="All requests in the window so far.")
    attainment: float | None = Field(
        default=None, ge=0, le=1, description="Good over total; unset without requests."
    )
    remaining: float | None = Field(
        default=None,
        le=1,
        description="Share of the window's allowed bad requests not yet spent: 1 none spent, "
        "0 at the target, negative past it.",
    )
    burn_rate: float | None = Field(
        default=None,
        ge=0,
        description="Bad share over the allowed one (1 - attainment target): 1 spends the "
        "budget exactly as fast as the SLO allows.",
    )
    attainment_target: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="The attainment the last decision sized for, moved from spec.slo.attainment "
        "by the budget left.",
    )


class InferenceDeploymentStatus(ApiModel):
    """What the operator observed and decided."""

    observed_generation: int | None = Field(default=None, description="Generation last acted on.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, SLOMet, WithinBudget, MetricsAvailable.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    replicas: list[PoolReplicas] = Field(default_factory=list, description="Replicas per pool.")
    total_replicas: int | None = Field(default=None, ge=0, description="Replicas in all pools.")
    slo_state: str | None = Field(default=None, description="Met, AtRisk, Missed or Unknown.")
    budget_state: str | None = Field(
        default=None, description="WithinBudget, AtRisk, Exceeded or NoBudget."
    )
    error_budget: ErrorBudgetStatus | None = Field(
        default=None,
        description="The SLO window so far (from the latency histogram); unset while unknown.",
    )
    observed: ObservedLoad | None = Field(default=None, description="Last good observation.")
    cost: CostSummary | None = Field(default=None, description="Cost views.")
    last_decision: DecisionRecord | None = Field(default=None, description="Last decision.")
    engine_state: dict[str, Any] | None = Field(
        default=None,
        description="Engine state kept across operator restarts (keep-alive clocks, calibration).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class InferenceDeployment(ApiModel):
    """A model service that costscaler scales across pools at the lowest total cost."""

    api_version: Literal["costscaler.dev/v1alpha1"] = "costscaler.dev/v1alpha1"
    kind: Literal["InferenceDeployment"] = "InferenceDeployment"
    metadata: ObjectMeta
    spec: InferenceDeploymentSpec
    status: InferenceDeploymentStatus | None = None

    # Checked at the root: the name becomes the children's costscaler.dev/deployment label,
    # whose value holds 63 characters (a longer name made every child write fail with 422).
    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="size(self.metadata.name) <= 63",
            message="metadata.name must be at most 63 characters: it becomes the "
            "costscaler.dev/deployment label of the child Deployments and their pods",
            check=lambda m: len(m.metadata.name) <= 63,
        ),
    )
