"""CostBudget: a spending ceiling per period over a set of InferenceDeployments."""

from __future__ import annotations

import itertools
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from costscaler.api.common import (
    ApiModel,
    Condition,
    LabelSelector,
    Money,
    ObjectMeta,
    Rule,
)


class Period(StrEnum):
    """Budget period; boundaries are in UTC (weeks start on Monday)."""

    DAILY = "Daily"
    WEEKLY = "Weekly"
    MONTHLY = "Monthly"


class Enforcement(StrEnum):
    """Advisory only reports; Enforce passes an allowed burn rate to the engine."""

    ADVISORY = "Advisory"
    ENFORCE = "Enforce"


class OnConflict(StrEnum):
    """Which gives way when the SLO and the budget cannot both hold."""

    PREFER_SLO = "PreferSLO"
    PREFER_BUDGET = "PreferBudget"


class Limit(ApiModel):
    """The ceiling for one period."""

    amount: Money = Field(description="Most that may be spent in one period.")
    currency: str = Field(
        default="USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code; pools' prices use it."
    )


Threshold = Annotated[float, Field(gt=0, le=2)]
LabelKey = Annotated[
    str, Field(pattern=r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", max_length=317)
]


def _ascending(values: list[float]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


class CostBudgetSpec(ApiModel):
    """A ceiling per period over the InferenceDeployments the selector matches."""

    period: Period = Field(default=Period.MONTHLY, description="Daily, Weekly or Monthly (UTC).")
    limit: Limit = Field(description="The ceiling.")
    selector: LabelSelector = Field(
        default_factory=LabelSelector,
        description="InferenceDeployments in this namespace that count; empty matches all.",
    )
    enforcement: Enforcement = Field(
        default=Enforcement.ADVISORY, description="Advisory reports; Enforce constrains decisions."
    )
    on_conflict: OnConflict = Field(
        default=OnConflict.PREFER_SLO,
        description="PreferSLO keeps the SLO floor; PreferBudget keeps the ceiling.",
    )
    alert_thresholds: list[Threshold] = Field(
        default_factory=lambda: [0.5, 0.8, 1.0],
        max_length=10,
        description="Shares of the limit (ascending, in (0, 2]) that raise an Event once per "
        "period when forecast or spend crosses them.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    attribution_labels: list[LabelKey] = Field(
        default_factory=list,
        max_length=10,
        description="InferenceDeployment labels to break spend down by (team, cost-center).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.alertThresholds.isSorted()",
            message="alertThresholds must be ascending",
            check=lambda m: _ascending(m.alert_thresholds),
            field_path=".alertThresholds",
        ),
    )


class SpendLine(ApiModel):
    """Spend of one deployment this period."""

    name: str = Field(description="InferenceDeployment name.")
    spent: Money = Field(description="Spent this period.")


class LabelSpendLine(ApiModel):
    """Spend of the deployments carrying one label value this period."""

    label: str = Field(description="Attribution label key.")
    value: str = Field(description="Label value ('' when unset).")
    spent: Money = Field(description="Spent this period.")


class CostBudgetStatus(ApiModel):
    """Accrued spend, forecast and alerts: checkpointed so restarts lose at most one tick."""

    observed_generation: int | None = Field(default=None, description="Generation last seen.")
    period_start: str | None = Field(default=None, description="Start of this period (RFC 3339).")
    last_accrual_time: str | None = Field(
        default=None, description="Time spend was accrued up to (RFC 3339)."
    )
    spent: Money | None = Field(default=None, description="Spent this period.")
    previous_spent: Money | None = Field(
        default=None, description="Spent in the previous period (final)."
    )
    forecast: Money | None = Field(default=None, description="Projected spend for the period.")
    burn_rate_per_hour: Money | None = Field(default=None, description="Current spend per hour.")
    state: str | None = Field(default=None, description="WithinBudget, AtRisk or Exceeded.")
    by_deployment: list[SpendLine] = Field(default_factory=list, description="Per deployment.")
    by_label: list[LabelSpendLine] = Field(default_factory=list, description="Per label value.")
    alerts_fired: list[float] = Field(
        default_factory=list, description="Thresholds already alerted this period."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="WithinBudget, AtRisk, Exceeded.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class CostBudget(ApiModel):
    """A spending ceiling that budget owners set in a manifest."""

    api_version: Literal["costscaler.dev/v1alpha1"] = "costscaler.dev/v1alpha1"
    kind: Literal["CostBudget"] = "CostBudget"
    metadata: ObjectMeta
    spec: CostBudgetSpec
    status: CostBudgetStatus | None = None
