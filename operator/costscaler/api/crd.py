"""Render the API models as apiextensions.k8s.io/v1 CustomResourceDefinitions.

Pydantic emits JSON Schema 2020-12; the API server wants a structural OpenAPI v3 schema, so
`structural` inlines `$defs`, turns `anyOf [X, null]` into X with `nullable: true`, rewrites
numeric exclusive bounds into OpenAPI's boolean form, turns `const` into a one-value enum,
drops `title`, `examples` and `additionalProperties: false` (the API server prunes or, with
strict field validation, rejects unknown fields itself), keeps free-form objects only where
the model marks them with `x-kubernetes-preserve-unknown-fields`, and writes an object's
default as its fields' defaults (the API server validates defaults against CEL as written).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from costscaler.api.budget import CostBudget, CostBudgetSpec, CostBudgetStatus
from costscaler.api.common import GROUP, VERSION, ApiModel
from costscaler.api.deployment import (
    InferenceDeployment,
    InferenceDeploymentSpec,
    InferenceDeploymentStatus,
)
from costscaler.api.pool import CapacityPool, CapacityPoolSpec, CapacityPoolStatus

_DROP = {"title", "examples", "$defs"}


@dataclass(frozen=True)
class Kind:
    """What a CRD needs beyond the schema: names, scope and printer columns."""

    model: type[BaseModel]
    spec: type[BaseModel]
    status: type[BaseModel]
    plural: str
    short_name: str
    namespaced: bool
    columns: tuple[tuple[str, str, str], ...]  # (name, type, jsonPath)


_AGE = ("Age", "date", ".metadata.creationTimestamp")
KINDS: tuple[Kind, ...] = (
    Kind(
        CapacityPool,
        CapacityPoolSpec,
        CapacityPoolStatus,
        "capacitypools",
        "cpool",
        False,
        (
            ("Accelerator", "string", ".spec.accelerator.type"),
            ("Capacity Type", "string", ".spec.capacityType"),
            ("$/h", "string", ".status.effectiveHourlyCost"),
            ("Nodes", "integer", ".status.nodes"),
            _AGE,
        ),
    ),
    Kind(
        InferenceDeployment,
        InferenceDeploymentSpec,
        InferenceDeploymentStatus,
        "inferencedeployments",
        "infd",
        True,
        (
            ("Mode", "string", ".spec.mode"),
            ("Replicas", "integer", ".status.totalReplicas"),
            ("$/h", "string", ".status.cost.perHour"),
            ("Budget", "string", ".status.budgetState"),
            ("SLO", "string", ".status.sloState"),
            _AGE,
        ),
    ),
    Kind(
        CostBudget,
        CostBudgetSpec,
        CostBudgetStatus,
        "costbudgets",
        "cbudget",
        True,
        (
            ("Period", "string", ".spec.period"),
            ("Limit", "string", ".spec.limit.amount"),
            ("Spent", "string", ".status.spent"),
            ("Forecast", "string", ".status.forecast"),
            _AGE,
        ),
    ),
)


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**_resolve(target, defs), **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    return {k: _resolve(v, defs) for k, v in node.items()}


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    options = node.get("anyOf")
    if not options:
        return node
    rest = [o for o in options if o.get("type") != "null"]
    if len(rest) != 1 or len(rest) == len(options):
        raise ValueError(f"cannot make a structural schema from anyOf {options}")
    merged = {**rest[0], **{k: v for k, v in node.items() if k != "anyOf"}, "nullable": True}
    if merged.get("default", 0) is None:
        del merged["default"]
    return merged


def _bounds(node: dict[str, Any]) -> dict[str, Any]:
    for key, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(key), int | float) and not isinstance(node[key], bool):
            node[plain] = node.pop(key)
            node[key] = True
    return node


def _clean(node: Any) -> Any:
    if isinstance(node, list):
        return [_clean(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = _bounds({k: v for k, v in _nullable(node).items() if k not in _DROP})
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.get("additionalProperties") in (False, True):
        del node["additionalProperties"]
    if node.get("x-kubernetes-preserve-unknown-fields"):
        node["type"] = "object"
    props = node.get("properties")
    cleaned = {k: _clean(v) for k, v in node.items() if k != "properties"}
    if props is not None:
        cleaned["properties"] = {name: _clean(sub) for name, sub in props.items()}
        if isinstance(cleaned.get("default"), dict):
            # The API server checks an object's default against the object's CEL rules without
            # filling in nested defaults first, so the default spells out its fields' defaults.
            cleaned["default"] = {
                name: sub["default"]
                for name, sub in cleaned["properties"].items()
                if "default" in sub
            }
    return cleaned


def structural(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a model, as a CRD version's schema wants it."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return dict(_clean(_resolve(schema, schema.get("$defs", {}))))


def render(kind: Kind) -> dict[str, Any]:
    """One CustomResourceDefinition as a dict, ready to dump as YAML."""
    name = kind.model.__name__
    schema: dict[str, Any] = {
        "type": "object",
        "description": (kind.model.__doc__ or name).strip(),
        "properties": {
            "apiVersion": {"type": "string", "description": "costscaler.dev/v1alpha1"},
            "kind": {"type": "string", "description": name},
            "metadata": {"type": "object"},
            "spec": structural(kind.spec),
            "status": structural(kind.status),
        },
        "required": ["spec"],
    }
    rules = kind.model.rules if issubclass(kind.model, ApiModel) else ()
    if rules:  # rules on the object itself, e.g. on metadata.name (the one field CEL sees there)
        schema["x-kubernetes-validations"] = [{"rule": r.cel, "message": r.message} for r in rules]
    columns = [{"name": n, "type": t, "jsonPath": p} for n, t, p in kind.columns]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": name,
                "listKind": f"{name}List",
                "plural": kind.plural,
                "singular": name.lower(),
                "shortNames": [kind.short_name],
                "categories": ["costscaler"],
            },
            "scope": "Namespaced" if kind.namespaced else "Cluster",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def render_all() -> dict[str, dict[str, Any]]:
    """Every CRD keyed by its file name (`<group>_<plural>.yaml`)."""
    return {f"{GROUP}_{kind.plural}.yaml": render(kind) for kind in KINDS}
