"""Types shared by every costscaler resource: the base model, money, conditions, selectors.

Cross-field rules are declared once, as `Rule`s on a model: the CRD generator emits them as
CEL `x-kubernetes-validations` for the API server, and the same model validates them in Python
for the CLI and the operator, so `kubectl apply` and `costscaler validate` agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, to_jsonable_python

GROUP = "costscaler.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

MONEY_PATTERN = r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,6})?$"
Money = Annotated[
    str,
    Field(
        pattern=MONEY_PATTERN,
        max_length=19,
        description='An amount of money as a decimal string, e.g. "0.8050" (never a float).',
        examples=["0.8050"],
    ),
]


def _money_pattern(digits: int) -> str:
    return rf"^(0|[1-9][0-9]{{0,{digits - 1}}})(\.[0-9]{{1,6}})?$"


# Inputs are bounded so that what the engine computes from them (per hour across 10,000
# replicas, per month) stays within the status pattern's 12 digits. A node-hour costs at most a
# few hundred dollars (p5e.48xlarge about $110 in 2025), but yen or rupee prices run 100-150x
# higher: seven digits allow for them; a node's capex is 10^5 to 10^8 in any currency.
HourlyMoney = Annotated[
    str,
    Field(
        pattern=_money_pattern(7),
        max_length=14,
        description='An amount of money below 10,000,000 as a decimal string, e.g. "0.8050".',
    ),
]
CapexMoney = Annotated[
    str,
    Field(
        pattern=_money_pattern(10),
        max_length=17,
        description='An amount of money below 10^10 as a decimal string, e.g. "250000".',
    ),
]
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=63)]


@dataclass(frozen=True)
class Rule:
    """A cross-field rule: CEL for the API server and the same check in Python.

    `check` receives the validated model and returns True when the object is valid.
    `field_path` (e.g. ".max") points the error at a field, as the API server reports it.
    A message that must name the offending values has both forms: `message_expression`, CEL
    building it for the API server, and `explain`, the same text built in Python (`message`
    stays the static fallback the API server shows if the expression fails).
    """

    cel: str
    message: str
    check: Callable[[Any], bool]
    field_path: str | None = None
    message_expression: str | None = None
    explain: Callable[[Any], str] | None = None


def _cel(rule: Rule) -> dict[str, str]:
    entry = {"rule": rule.cel, "message": rule.message}
    if rule.message_expression:
        entry["messageExpression"] = rule.message_expression
    if rule.field_path:
        entry["fieldPath"] = rule.field_path
    return entry


class ApiModel(BaseModel):
    """Base of every API type: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=False,
    )
    rules: ClassVar[tuple[Rule, ...]] = ()

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Attach this model's rules as CEL validations (the CRD generator keeps them)."""
        schema = handler.resolve_ref_schema(handler(core_schema))
        # Pydantic leaves factory defaults out of the schema; the API server needs them so
        # that CEL rules can rely on defaulted objects and lists being present.
        for name, field in cls.model_fields.items():
            prop = schema.get("properties", {}).get(field.alias or name)
            if field.default_factory is not None and prop is not None:
                default = field.get_default(call_default_factory=True, validated_data={})
                prop["default"] = to_jsonable_python(default, by_alias=True)
        if cls.rules:
            schema["x-kubernetes-validations"] = [_cel(rule) for rule in cls.rules]
        return schema

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        for rule in type(self).rules:
            if not rule.check(self):
                raise ValueError(rule.explain(self) if rule.explain else rule.message)
        return self

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase keys, unset optionals left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ConditionStatus(StrEnum):
    """Kubernetes condition status."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """A Kubernetes-style condition: the latest observation of one aspect of the object."""

    type: str = Field(description="CamelCase condition type, e.g. Ready or WithinBudget.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        default="",
        pattern=r"^([A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?)?$",
        max_length=1024,
        description="CamelCase reason for the last transition, for machines.",
    )
    message: str = Field(default="", max_length=32768, description="Why, for people.")
    last_transition_time: datetime | None = Field(
        default=None, description="When the status last changed (RFC 3339)."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this condition was set from."
    )


class ObjectMeta(BaseModel):
    """The part of Kubernetes ObjectMeta costscaler reads; other fields pass through."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None
    uid: str | None = None


class LabelSelectorRequirement(ApiModel):
    """A label selector requirement: key, operator and values."""

    key: str = Field(min_length=1, max_length=317, description="The label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="In, NotIn, Exists or DoesNotExist."
    )
    values: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Values for In and NotIn; empty for Exists and DoesNotExist.",
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="(self.operator in ['In', 'NotIn']) == (size(self.values) > 0)",
            message="values must be non-empty for In and NotIn and empty for Exists and "
            "DoesNotExist",
            check=lambda m: (m.operator in ("In", "NotIn")) == bool(m.values),
            field_path=".values",
        ),
    )


class LabelSelector(ApiModel):
    """A Kubernetes label selector; an empty selector matches everything."""

    match_labels: dict[str, str] = Field(
        default_factory=dict, description="Labels that must all be present with these values."
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=32, description="Requirements that must all hold."
    )

    def matches(self, labels: dict[str, str]) -> bool:
        """True when `labels` satisfy every label and expression of this selector."""
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for req in self.match_expressions:
            present = req.key in labels
            value = labels.get(req.key)
            ok = {
                "In": present and value in req.values,
                "NotIn": not present or value not in req.values,
                "Exists": present,
                "DoesNotExist": not present,
            }[req.operator]
            if not ok:
                return False
        return True


class Toleration(ApiModel):
    """A Kubernetes toleration, merged into the pods placed on a pool."""

    key: str | None = Field(default=None, max_length=317, description="Taint key to tolerate.")
    operator: Literal["Exists", "Equal"] = Field(
        default="Equal", description="Equal (key and value match) or Exists (any value)."
    )
    value: str | None = Field(default=None, max_length=63, description="Taint value for Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to tolerate; empty tolerates all effects."
    )
    toleration_seconds: int | None = Field(
        default=None, ge=0, description="For NoExecute: how long the pod stays after the taint."
    )
