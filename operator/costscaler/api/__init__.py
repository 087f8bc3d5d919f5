"""The costscaler API (group costscaler.dev, v1alpha1): pydantic models are the source of truth.

The CRDs in crds/ are generated from these models (`costscaler crds`).
"""

from costscaler.api.budget import (
    CostBudget,
    CostBudgetSpec,
    CostBudgetStatus,
    Enforcement,
    OnConflict,
    Period,
)
from costscaler.api.common import API_VERSION, GROUP, VERSION, Condition, ConditionStatus
from costscaler.api.deployment import (
    CapacityProfile,
    InferenceDeployment,
    InferenceDeploymentSpec,
    InferenceDeploymentStatus,
    MetricsPreset,
    Mode,
)
from costscaler.api.loader import Resource, load_kind, load_manifests, parse_resource
from costscaler.api.pool import CapacityPool, CapacityPoolSpec, CapacityPoolStatus, CapacityType

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "CapacityPool",
    "CapacityPoolSpec",
    "CapacityPoolStatus",
    "CapacityProfile",
    "CapacityType",
    "Condition",
    "ConditionStatus",
    "CostBudget",
    "CostBudgetSpec",
    "CostBudgetStatus",
    "Enforcement",
    "InferenceDeployment",
    "InferenceDeploymentSpec",
    "InferenceDeploymentStatus",
    "MetricsPreset",
    "Mode",
    "OnConflict",
    "Period",
    "Resource",
    "load_kind",
    "load_manifests",
    "parse_resource",
]
