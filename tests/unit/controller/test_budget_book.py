"""A CostBudget's allowance reaches its members' decisions through kopf's per-object memos.

kopf gives every object's handlers a shallow copy of the operator's memo (`copy.copy` in its
inventory). These tests run the registered handlers the same way: the budget timer with one
copy, the InferenceDeployment timer with another. A book kept in a handler's own memo (the bug
of issue 18) leaves the deployment's `decide` without the budget.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import kopf
from prometheus_client import CollectorRegistry

from costscaler.adapters.prometheus import Reading, Target
from costscaler.adapters.promql import QuerySet
from costscaler.api import CostBudget, InferenceDeployment, load_kind, load_manifests
from costscaler.api.budget import OnConflict
from costscaler.controller import budgets, deployment_handlers
from costscaler.controller.app import build_registry
from costscaler.controller.budget_tick import member_from_body
from costscaler.controller.metrics import Health, OperatorMetrics
from costscaler.controller.runtime import Runtime
from costscaler.controller.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
NS, NAME = "default", "llama-3-1-8b"


class FakeCache:
    """The reading cache: one usable reading for everybody."""

    targets: Any = None

    async def get(self, key: Any) -> Reading:
        return Reading({"g6-xlarge-l4-ondemand": 2.0}, latency_seconds=5.0)


class FakeBackfill:
    targets: Any = None

    async def past(self, key: Any) -> None:
        return None

    def forget_all(self) -> None:
        pass

    def forget(self, key: Any) -> None:
        pass


class FakeKube:
    """Records writes instead of making them."""

    def __init__(self) -> None:
        self.status: dict[Any, Any] = {}

    async def apply_child(self, manifest: dict[str, Any], replicas: int | None) -> str:
        return "created"

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        pass

    async def delete(self, namespace: str, name: str) -> None:
        pass

    def write_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.status[(namespace, name)] = status


def _root_memo(settings: Settings) -> kopf.Memo:
    """The operator's memo after startup: the runtime (what `app.startup` puts there)."""
    memo = kopf.Memo()
    metrics = OperatorMetrics.create(CollectorRegistry())
    memo.runtime = Runtime(settings, FakeKube(), FakeCache(), metrics, Health(60), FakeBackfill())
    return memo


def _handlers(reg: kopf.OperatorRegistry) -> dict[str, Any]:
    return {str(h.id): h.fn for h in reg._spawning.get_all_handlers()}


def _deployment_body() -> dict[str, Any]:
    infd = load_kind(EXAMPLES, InferenceDeployment)[0]
    body = infd.model_dump(mode="json", by_alias=True, exclude_none=True)
    body["metadata"].update(namespace=NS, uid="0000-1111", generation=1)
    body["spec"]["pools"] = [{"name": "g6-xlarge-l4-ondemand"}]
    body["status"] = {"cost": {"perHour": "3.0000"}, "lastDecision": {"costPerHour": "3.0"}}
    return body


def _budget_body(on_conflict: OnConflict) -> dict[str, Any]:
    budget = load_kind(EXAMPLES, CostBudget)[0].model_copy(deep=True)
    budget.spec.on_conflict = on_conflict
    body = budget.model_dump(mode="json", by_alias=True, exclude_none=True)
    body["metadata"].update(namespace=NS, uid="budget-1", generation=1)
    return body


async def _budget_tick(fns: dict[str, Any], memo: kopf.Memo, member: dict[str, Any]) -> None:
    index = {NS: [member_from_body(member)]}
    body = kopf.Body(_budget_body(OnConflict.PREFER_BUDGET))
    await fns["budget_tick"](body=body, patch=kopf.Patch(), memo=memo, budget_members_index=index)


def test_an_allowance_set_by_the_budget_timer_reaches_other_objects_memos() -> None:
    settings = Settings(namespaces=[NS])
    root = _root_memo(settings)
    fns = _handlers(build_registry(settings))
    asyncio.run(_budget_tick(fns, copy.copy(root), _deployment_body()))
    found = budgets.book(copy.copy(root)).allowance((NS, NAME))
    assert found is not None and found.on_conflict == OnConflict.PREFER_BUDGET
    assert found.allowed_per_hour > 0  # the one member gets all that is left of the 15,000


def test_the_deployment_tick_decides_with_the_allowance(monkeypatch: Any) -> None:
    settings = Settings(namespaces=[NS])
    root = _root_memo(settings)
    fns = _handlers(build_registry(settings))
    seen: list[Any] = []
    real = deployment_handlers.decide

    def spy(*args: Any, **kw: Any) -> Any:
        seen.append(kw.get("budget"))
        return real(*args, **kw)

    monkeypatch.setattr(deployment_handlers, "decide", spy)
    monkeypatch.setattr(kopf, "event", lambda *a, **kw: None)  # kopf's poster is not running
    dep = _deployment_body()
    pools = {p.name: [p] for p in load_manifests(EXAMPLES / "pools")}
    target = Target((NS, NAME), QuerySet("rate", None, "latency", None, None), 0.95, 15.0)
    kw = {"targets_index": {None: [target]}, "children_index": {}, "pools_index": pools}

    async def scenario() -> None:
        await _budget_tick(fns, copy.copy(root), dep)
        await fns["tick"](body=kopf.Body(dep), patch=kopf.Patch(), memo=copy.copy(root), **kw)

    asyncio.run(scenario())
    allowed = budgets.book(root).allowance((NS, NAME))
    assert seen == [allowed] and allowed is not None
    status = root.runtime.kube.status[(NS, NAME)]
    budget_cond = next(c for c in status["conditions"] if c["type"] == "WithinBudget")
    assert budget_cond["reason"] != "NoBudget", budget_cond
