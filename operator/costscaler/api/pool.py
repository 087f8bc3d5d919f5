"""CapacityPool: one class of capacity (an accelerator on a pricing model), cluster-scoped."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from costscaler.api.common import (
    ApiModel,
    CapexMoney,
    Condition,
    HourlyMoney,
    Money,
    ObjectMeta,
    Rule,
    Toleration,
)


class CapacityType(StrEnum):
    """How the capacity is paid for and whether it can be taken away."""

    ON_DEMAND = "OnDemand"
    SPOT = "Spot"
    RESERVED = "Reserved"
    ON_PREM = "OnPrem"


OWNED = (CapacityType.RESERVED, CapacityType.ON_PREM)
CLOUD_PRICED = (CapacityType.ON_DEMAND, CapacityType.SPOT)


class Accelerator(ApiModel):
    """The accelerators each node of the pool carries."""

    type: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$",
        description="Accelerator model, e.g. L4, A10G, A100-40GB, H100-80GB. InferenceDeployment "
        "capacity profiles are matched on this name.",
    )
    count_per_node: int = Field(default=1, ge=1, le=64, description="Accelerators per node.")
    memory_gib: float | None = Field(
        default=None,
        alias="memoryGiB",
        gt=0,
        le=1024,
        description="Memory of one accelerator, GiB.",
    )


class Price(ApiModel):
    """Cloud price of one node."""

    hourly: HourlyMoney = Field(
        description="Price of one node per hour, in the budget's currency (below 10,000,000)."
    )


class Ownership(ApiModel):
    """Owned or reserved hardware: the effective hourly cost is derived from these figures.

    $/h per node = purchasePrice / amortizationMonths / 730
                 + powerWatts / 1000 x pue x electricityPerKWh
                 + operationsPerMonth / 730 + operationsPerNodeHour
    (the allocated TCO, for chargeback). Decisions pay only what serving adds, as the rest is
    paid whether used or not: powerWatts / 1000 x pue x electricityPerKWh + operationsPerNodeHour.
    """

    purchase_price: CapexMoney = Field(description="Purchase price of one node (capex).")
    amortization_months: int = Field(
        ge=1,
        le=120,
        description="Months over which the purchase is written off (36 to 72 typical).",
    )
    power_watts: float = Field(
        ge=0, le=100000, description="Average power draw of one node, watts (board + host)."
    )
    pue: float = Field(
        default=1.5, ge=1.0, le=3.0, description="Power usage effectiveness of the site (1.0-3.0)."
    )
    electricity_per_kwh: HourlyMoney = Field(
        alias="electricityPerKWh", description="Electricity price per kWh."
    )
    operations_per_month: HourlyMoney = Field(
        default="0",
        description="Operations per node per month: support, space, staff share. Paid whether "
        "the node serves or not: in the allocated TCO, not in decisions.",
    )
    operations_per_node_hour: HourlyMoney = Field(
        default="0",
        description="Operations paid only for the hours a node serves (per-use support, "
        "licences), per node-hour. With energy, the marginal cost decisions pay.",
    )


class Commitment(ApiModel):
    """A reservation: nodes paid for the whole term whether used or not (Reserved pools)."""

    count: int = Field(
        ge=1, le=100000, description="Nodes reserved. The pool holds at most this many nodes."
    )
    term_months: int = Field(
        ge=1, le=120, description="Length of the commitment in months (12 or 36 typical)."
    )


class Interruption(ApiModel):
    """How often the provider takes capacity back (spot)."""

    rate_per_hour: float = Field(
        default=0.0,
        ge=0,
        le=100,
        description="Prior interruption hazard per running instance-hour (measured GPU spot: "
        "0.2-0.7). The operator updates it from losses it observes.",
    )
    notice_seconds: int = Field(
        default=120, ge=0, le=3600, description="Warning before an interruption (AWS 120, GCP 30)."
    )
    burst_share: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Prior share (0-1) of the hazard that comes as bursts reclaiming the pool "
        "at once; the rest is independent per instance. Unset: 0.6, the share of lost "
        "instances lost with another of the same zone within 300 s in real GPU spot traces "
        "(AWS p3.2xlarge, 4 instances per zone, 3 zones). The operator updates it from losses "
        "it observes together.",
    )


class ColdStart(ApiModel):
    """How long new capacity takes before pods can be scheduled on it."""

    node_seconds: int = Field(
        default=90,
        ge=0,
        le=7200,
        description="A new node to schedulable with its accelerators advertised, seconds.",
    )


class Placement(ApiModel):
    """Where pods for this pool go: merged into each per-pool Deployment's pod template."""

    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the pool's nodes carry."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=32, description="Tolerations for the pool's taints."
    )

    def taints(self) -> list[dict[str, str]]:
        """The taints the tolerations exist for, as a node or NodePool carries them (a
        toleration without a key names no taint)."""
        taints = []
        for tol in self.tolerations:
            if not tol.key:
                continue
            taint = {"key": tol.key, "effect": tol.effect or "NoSchedule"}
            if tol.operator != "Exists" and tol.value:
                taint["value"] = tol.value
            taints.append(taint)
        return taints


class PoolLimits(ApiModel):
    """Quotas on the pool."""

    max_nodes: int | None = Field(
        default=None, ge=0, le=100000, description="At most this many nodes; unset is unlimited."
    )


class NodePoolMode(StrEnum):
    """Who owns the Karpenter NodePool that launches the pool's nodes."""

    MANAGED = "Managed"
    REFERENCE = "Reference"


DURATION_PATTERN = r"^([0-9]+(s|m|h))+$"
BUDGET_PATTERN = r"^((100|[0-9]{1,2})%|[0-9]+)$"


class NodeClassRef(ApiModel):
    """The provider's node class a Managed NodePool launches with (AMI, subnets, roles)."""

    group: str = Field(
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="API group of the node class, e.g. karpenter.k8s.aws (EC2NodeClass) or "
        "karpenter.kwok.sh (KWOKNodeClass, the local cluster).",
    )
    kind: str = Field(
        max_length=63,
        pattern=r"^[A-Z][A-Za-z0-9]*$",
        description="Kind of the node class, e.g. EC2NodeClass.",
    )
    name: str = Field(
        min_length=1, max_length=253, description="Name of the node class, e.g. default."
    )


class NodePoolSettings(ApiModel):
    """The Karpenter NodePool behind this pool. Managed: costscaler creates and updates a
    NodePool named `name` (default: the CapacityPool's name) and owns it: its requirements are
    node.kubernetes.io/instance-type In [instanceType], karpenter.sh/capacity-type In
    [on-demand or spot, from capacityType], topology.kubernetes.io/zone In zones (when set)
    and every placement.nodeSelector entry (In [value]); its template labels carry
    costscaler.dev/pool=<pool>; its taints are the placement tolerations that name a key
    (effect NoSchedule when unset); limits.nodes is limits.maxNodes; disruption consolidates
    empty or underused nodes after consolidateAfter, at most disruptionBudget nodes at once.
    Deleting the CapacityPool drains its replicas, then deletes the NodePool. Reference: names
    an existing NodePool that costscaler reads (status, nodes) and never writes. Unset: the
    pool is the nodes that match its placement, as they are."""

    mode: NodePoolMode = Field(
        description="Managed (costscaler owns the NodePool) or Reference (read-only)."
    )
    name: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        max_length=63,
        description="NodePool name. Reference: required, the existing NodePool. Managed: "
        "defaults to the CapacityPool's name.",
    )
    node_class_ref: NodeClassRef | None = Field(
        default=None, description="Managed only, required: the node class to launch with."
    )
    zones: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Managed: zones the nodes may launch in (topology.kubernetes.io/zone); "
        "empty allows every zone the provider offers.",
    )
    consolidate_after: str = Field(
        default="30s",
        pattern=DURATION_PATTERN,
        max_length=16,
        description="Managed: how long a node stays empty or underused before Karpenter "
        "consolidates it, e.g. 30s or 5m.",
    )
    disruption_budget: str = Field(
        default="10%",
        pattern=BUDGET_PATTERN,
        max_length=4,
        description="Managed: nodes Karpenter may disrupt at once, a count or a percentage "
        "(disruption.budgets[0].nodes).",
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.mode != 'Reference' || has(self.name)",
            message="name is required when mode is Reference: the existing NodePool to read",
            check=lambda m: m.mode != NodePoolMode.REFERENCE or m.name is not None,
            field_path=".name",
        ),
        Rule(
            cel="(self.mode == 'Managed') == has(self.nodeClassRef)",
            message="nodeClassRef is required when mode is Managed, and must be omitted when "
            "mode is Reference",
            check=lambda m: (m.mode == NodePoolMode.MANAGED) == (m.node_class_ref is not None),
            field_path=".nodeClassRef",
        ),
    )


class CapacityPoolSpec(ApiModel):
    """A class of capacity: accelerator, pricing model, interruption risk, cold start, placement."""

    accelerator: Accelerator = Field(description="The accelerators on each node.")
    instance_type: str | None = Field(
        default=None, max_length=63, description="Cloud instance type, e.g. g6.xlarge."
    )
    capacity_type: CapacityType = Field(
        description="OnDemand, Spot (set price), Reserved or OnPrem (set ownership)."
    )
    price: Price | None = Field(default=None, description="Cloud price; for OnDemand and Spot.")
    ownership: Ownership | None = Field(
        default=None, description="Ownership costs; for Reserved and OnPrem."
    )
    commitment: Commitment | None = Field(
        default=None, description="The reservation (node count and term); Reserved only."
    )
    interruption: Interruption = Field(
        default_factory=Interruption, description="Interruption risk; Spot only."
    )
    cold_start: ColdStart = Field(default_factory=ColdStart, description="Node cold start.")
    placement: Placement = Field(default_factory=Placement, description="Pod placement.")
    limits: PoolLimits = Field(default_factory=PoolLimits, description="Quotas.")
    node_pool: NodePoolSettings | None = Field(
        default=None,
        description="The Karpenter NodePool that launches the pool's nodes (Managed or "
        "Reference); unset: the pool is the existing nodes matching its placement.",
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="(self.capacityType in ['Reserved', 'OnPrem']) == has(self.ownership)",
            message="ownership is required when capacityType is Reserved or OnPrem, and must be "
            "omitted otherwise",
            check=lambda m: (m.capacity_type in OWNED) == (m.ownership is not None),
            field_path=".ownership",
        ),
        Rule(
            cel="(self.capacityType in ['OnDemand', 'Spot']) == has(self.price)",
            message="price is required when capacityType is OnDemand or Spot, and must be "
            "omitted otherwise",
            check=lambda m: (m.capacity_type in CLOUD_PRICED) == (m.price is not None),
            field_path=".price",
        ),
        Rule(
            cel="(self.capacityType == 'Reserved') == has(self.commitment)",
            message="commitment is required when capacityType is Reserved, and must be omitted "
            "otherwise",
            check=lambda m: (
                (m.capacity_type == CapacityType.RESERVED) == (m.commitment is not None)
            ),
            field_path=".commitment",
        ),
        Rule(
            cel="self.capacityType == 'Spot' || !has(self.interruption) || "
            "self.interruption.ratePerHour == 0.0",
            message="interruption.ratePerHour must be 0 unless capacityType is Spot",
            check=lambda m: (
                m.capacity_type == CapacityType.SPOT or m.interruption.rate_per_hour == 0
            ),
            field_path=".interruption.ratePerHour",
        ),
        Rule(
            cel="!has(self.nodePool) || self.nodePool.mode != 'Managed' || "
            "(has(self.instanceType) && self.capacityType in ['OnDemand', 'Spot'])",
            message="a Managed nodePool needs instanceType and capacityType OnDemand or Spot "
            "(owned nodes are not launched): set instanceType, or use mode Reference",
            check=lambda m: (
                m.node_pool is None
                or m.node_pool.mode != NodePoolMode.MANAGED
                or (m.instance_type is not None and m.capacity_type in CLOUD_PRICED)
            ),
            field_path=".nodePool.mode",
        ),
    )


class CapacityPoolStatus(ApiModel):
    """What the operator sees of the pool in the cluster."""

    observed_generation: int | None = Field(default=None, description="Generation last seen.")
    nodes: int | None = Field(default=None, ge=0, description="Nodes matching the placement.")
    allocatable_accelerators: int | None = Field(
        default=None, ge=0, description="Accelerators allocatable on those nodes."
    )
    effective_hourly_cost: Money | None = Field(
        default=None,
        description="Allocated cost of one node per hour: the price, or the ownership TCO "
        "(capex included), for chargeback.",
    )
    marginal_hourly_cost: Money | None = Field(
        default=None,
        description="Marginal cost of one node per hour, what decisions pay: the price, or for "
        "OnPrem and Reserved energy and per-use operations (capex is paid whether used or not).",
    )
    node_pool: str | None = Field(
        default=None,
        max_length=63,
        description="The Karpenter NodePool behind the pool (spec.nodePool), when the node "
        "layer is on; condition NodePoolReady says whether it is written (Managed) or found "
        "(Reference) and launches nodes.",
    )
    warm_nodes: int | None = Field(
        default=None,
        ge=0,
        description="Warm spare nodes kept launched and empty (a CapacityBuffer), sized over "
        "every deployment on the pool: kept while a spare costs less than the SLO misses its "
        "node cold start would cause.",
    )
    warm_hourly_cost: Money | None = Field(
        default=None, description="What the warm spare nodes cost per hour (marginal)."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Ready, NodePoolReady (with spec.nodePool) and other conditions.",
    )


class CapacityPool(ApiModel):
    """A class of capacity that InferenceDeployments can place replicas on."""

    api_version: Literal["costscaler.dev/v1alpha1"] = "costscaler.dev/v1alpha1"
    kind: Literal["CapacityPool"] = "CapacityPool"
    metadata: ObjectMeta
    spec: CapacityPoolSpec
    status: CapacityPoolStatus | None = None

    @property
    def name(self) -> str:
        """The pool's name."""
        return self.metadata.name
