"""Status of an InferenceDeployment, written once per tick: conditions, replicas, cost, decision.

Conditions follow the Kubernetes API conventions: a CamelCase reason, a message for people,
`observedGeneration`, and a `lastTransitionTime` that moves only when the status flips.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from costscaler.api.common import Condition, ConditionStatus
from costscaler.api.money import format_money
from costscaler.core.cost import HOURS_PER_MONTH as HOURS_PER_MONTH  # one, re-exported

READY = "Ready"
SLO_MET = "SLOMet"
WITHIN_BUDGET = "WithinBudget"
METRICS_AVAILABLE = "MetricsAvailable"


@dataclass(frozen=True)
class Cond:
    """A condition to set: type, status, reason and message."""

    type: str
    status: bool | None
    reason: str
    message: str = ""


def _status_of(value: bool | None) -> ConditionStatus:
    if value is None:
        return ConditionStatus.UNKNOWN
    return ConditionStatus.TRUE if value else ConditionStatus.FALSE


def conditions(
    wanted: list[Cond], previous: list[dict[str, Any]], generation: int | None, now: datetime
) -> list[dict[str, Any]]:
    """Wire conditions, keeping each one's lastTransitionTime unless its status changed."""
    before = {c.get("type"): c for c in previous}
    out = []
    for cond in wanted:
        status = _status_of(cond.status)
        prior = before.get(cond.type)
        moved = prior is None or prior.get("status") != status.value
        since = now if moved or not prior else datetime.fromisoformat(prior["lastTransitionTime"])
        out.append(
            Condition(
                type=cond.type,
                status=status,
                reason=cond.reason,
                message=cond.message[:2000],
                last_transition_time=since,
                observed_generation=generation,
            ).to_wire()
        )
    return out


def money(value: float) -> str:
    """An amount for status: a decimal string with 4 places."""
    return format_money(value)


def pool_counts(replicas: dict[str, int]) -> list[dict[str, Any]]:
    """`[{pool, replicas}]` in pool-name order (stable status, no spurious diffs)."""
    return [{"pool": p, "replicas": n} for p, n in sorted(replicas.items())]


def slo_state(slo_met: bool | None, risk: float, attainment_target: float) -> str:
    """Met, AtRisk (met now but the plan's shortfall risk exceeds the allowed misses), Missed
    or Unknown (no usable latency)."""
    if slo_met is None:
        return "Unknown"
    if not slo_met:
        return "Missed"
    return "AtRisk" if risk > 1 - attainment_target else "Met"


def replace_patch(old: Any, new: Any) -> Any:
    """A JSON merge patch turning `old` into `new`: keys that disappeared become null.

    kopf applies status as a merge patch, which would otherwise keep stale engine-state keys.
    """
    if not isinstance(new, dict) or not isinstance(old, dict):
        return new
    patch: dict[str, Any] = {k: None for k in old if k not in new}
    for key, value in new.items():
        patch[key] = replace_patch(old.get(key), value)
    return patch


def _essence(status: Mapping[str, Any]) -> tuple[Any, ...]:
    last = status.get("lastDecision") or {}
    conds = [
        (c.get("type"), c.get("status"), c.get("reason")) for c in status.get("conditions", [])
    ]
    return (
        last.get("replicas"),
        last.get("reason"),
        conds,
        status.get("replicas"),
        status.get("sloState"),
        status.get("budgetState"),
        status.get("observedGeneration"),
    )


def status_due(old: Mapping[str, Any], new: Mapping[str, Any], now: datetime, every: float) -> bool:
    """Write now when the decision, a condition or the replicas changed, else every `every` s.

    Load, cost and engine clocks move every tick; writing them every tick for a thousand
    deployments is most of the API server's load, and nothing acts on them between refreshes.
    """
    last = (old.get("lastDecision") or {}).get("time")
    if last is None or _essence(old) != _essence(new):
        return True
    return (now - datetime.fromisoformat(last)).total_seconds() >= every
