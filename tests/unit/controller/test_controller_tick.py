"""The tick shell with recording fakes: what it writes, records and hands to the engine."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from costscaler.adapters.children import ChildState, Owner, child_manifest
from costscaler.adapters.prometheus import Reading
from costscaler.api import CapacityPool, InferenceDeployment, load_manifests
from costscaler.controller.history import History
from costscaler.controller.tick import run_tick
from costscaler.controller.tick_input import TickInput
from costscaler.core import Alternative, Decision, EngineState

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SPOT, OD = "g6-xlarge-l4-spot", "g6-xlarge-l4-ondemand"


class RecordingKube:
    """An Actuator that records every write."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    async def apply_child(self, manifest, replicas):
        self.calls.append(("apply", manifest["metadata"]["name"], replicas))
        return "created"

    async def scale(self, namespace, name, replicas):
        self.calls.append(("scale", name, replicas))

    async def delete(self, namespace, name):
        self.calls.append(("delete", name))


class FakeEngine:
    """Returns a fixed plan and records what it was asked."""

    def __init__(self, replicas: dict[str, int], reason: str = "CostOptimal") -> None:
        self.replicas, self.reason = replicas, reason
        self.calls: list[dict] = []

    def __call__(self, spec, pools, observations, current, now, state=None, budget=None):
        self.calls.append(
            dict(pools=[p.name for p in pools], obs=observations, current=current, state=state)
        )
        state_out = EngineState(last_replicas=dict(self.replicas), capacity_scale=1.1)
        alt = Alternative("cheapest-on-demand", {OD: 3}, 2.415, 0.01)
        return Decision(self.replicas, 1.6, 0.02, self.reason, "because", (alt,), state_out)


@pytest.fixture(scope="module")
def pools() -> dict[str, CapacityPool]:
    return {p.name: p for p in load_manifests(REPO / "examples" / "pools")}


def infd(mode: str = "Enforce", pool_names=(SPOT, OD), **spec) -> InferenceDeployment:
    (base,) = [
        r
        for r in load_manifests(REPO / "examples" / "deployments")
        if r.metadata.name == "llama-3-1-8b"
    ]
    doc = base.model_dump(mode="json", by_alias=True, exclude_none=True)
    doc["metadata"].update(uid="u-1", generation=3)
    doc["spec"].update(mode=mode, pools=[{"name": n} for n in pool_names], **spec)
    doc["spec"].pop("budgetRef", None)
    return InferenceDeployment.model_validate(doc)


def child(obj, pools, pool, desired, ready=None, fresh=True) -> ChildState:
    manifest = child_manifest(
        Owner("default", obj.metadata.name, "u-1"), obj.spec.template, pools[pool]
    )
    digest = next(iter(manifest["metadata"]["annotations"].values())) if fresh else "old"
    ready = desired if ready is None else ready
    return ChildState(
        "default", manifest["metadata"]["name"], obj.metadata.name, pool, desired, ready,
        desired - ready, digest,
    )  # fmt: skip


GOOD = Reading(rate_by_pool={SPOT: 2.0, OD: 1.0}, latency_seconds=3.0, attainment=0.995)


def tick(obj, pools, children, engine, reading=GOOD, status=None, history=None, now=NOW):
    kube = RecordingKube()
    t = TickInput(obj, pools, children, reading, history or History(3600), status or {}, now)
    return asyncio.run(run_tick(t, engine, kube)), kube


def test_enforce_creates_missing_children_at_the_decided_replicas(pools):
    obj = infd()
    result, kube = tick(obj, pools, [], FakeEngine({SPOT: 2, OD: 1}))
    assert kube.calls == [
        ("apply", f"llama-3-1-8b-{SPOT}", 2),
        ("apply", f"llama-3-1-8b-{OD}", 1),
    ]
    assert result.event is not None and result.event[0] == "CostOptimal"
    assert f"{SPOT} 0->2" in result.event[1] and "$1.6000/h" in result.event[1]


def test_enforce_scales_only_what_differs_and_a_second_tick_writes_nothing(pools):
    obj = infd()
    engine = FakeEngine({SPOT: 3, OD: 1})
    children = [child(obj, pools, SPOT, 2), child(obj, pools, OD, 1)]
    result, kube = tick(obj, pools, children, engine)
    assert kube.calls == [("scale", f"llama-3-1-8b-{SPOT}", 3)]
    assert engine.calls[0]["current"] == {SPOT: 2, OD: 1}
    settled = [child(obj, pools, SPOT, 3), child(obj, pools, OD, 1)]
    again, kube2 = tick(obj, pools, settled, engine, status=result.status)
    assert kube2.calls == [] and again.event is None


def test_template_change_rewrites_the_child(pools):
    obj = infd()
    children = [child(obj, pools, SPOT, 2, fresh=False), child(obj, pools, OD, 1)]
    _, kube = tick(obj, pools, children, FakeEngine({SPOT: 2, OD: 1}))
    assert kube.calls == [("apply", f"llama-3-1-8b-{SPOT}", 2)]


def test_recommend_changes_no_replicas_but_records_the_decision(pools):
    obj = infd(mode="Recommend")
    children = [child(obj, pools, SPOT, 1), child(obj, pools, OD, 1)]
    result, kube = tick(obj, pools, children, FakeEngine({SPOT: 4, OD: 1}))
    assert kube.calls == []
    last = result.status["lastDecision"]
    assert last["replicas"] == [{"pool": OD, "replicas": 1}, {"pool": SPOT, "replicas": 4}]
    assert last["alternatives"][0] == {
        "name": "cheapest-on-demand",
        "replicas": [{"pool": OD, "replicas": 3}],
        "costPerHour": "2.4150",
        "sloRisk": 0.01,
    }
    assert last["message"].startswith("Recommend mode, not applied.")
    assert result.status["totalReplicas"] == 2
    assert result.event is not None
    again, _ = tick(obj, pools, children, FakeEngine({SPOT: 4, OD: 1}), status=result.status)
    assert again.event is None  # same recommendation: no new Event


def test_recommend_creates_missing_children_without_setting_replicas(pools):
    _, kube = tick(infd(mode="Recommend"), pools, [], FakeEngine({SPOT: 4, OD: 1}))
    assert {c[2] for c in kube.calls} == {None}


def test_pool_removed_from_spec_is_drained_then_deleted(pools):
    obj = infd(pool_names=(OD,))
    engine = FakeEngine({OD: 2})
    serving = [child(obj, pools, OD, 2), child(obj, pools, SPOT, 2)]
    _, kube = tick(obj, pools, serving, engine)
    assert kube.calls == [("scale", f"llama-3-1-8b-{SPOT}", 0)]
    drained = [child(obj, pools, OD, 2), child(obj, pools, SPOT, 0)]
    _, kube = tick(obj, pools, drained, engine)
    assert kube.calls == [("delete", f"llama-3-1-8b-{SPOT}")]


def test_missing_and_unfit_pools_are_not_given_to_the_engine(pools):
    obj = infd(pool_names=(SPOT, "no-such-pool", "onprem-h100"))  # no H100 profile
    engine = FakeEngine({SPOT: 1})
    result, _ = tick(obj, pools, [], engine)
    assert engine.calls[0]["pools"] == [SPOT]
    ready = next(c for c in result.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PoolNotFound")
    assert "no-such-pool" in ready["message"]


def test_bad_reading_sets_metrics_unavailable_and_hands_nan_to_the_engine(pools):
    obj = infd()
    engine = FakeEngine({SPOT: 2, OD: 1}, reason="MetricsUnavailable")
    history = History(3600)
    children = [child(obj, pools, SPOT, 2), child(obj, pools, OD, 1)]
    tick(obj, pools, children, engine, history=history, now=NOW - timedelta(seconds=15))
    bad = Reading(problem="QueryFailed", message="connection refused")
    result, kube = tick(obj, pools, children, engine, reading=bad, history=history)
    obs = engine.calls[-1]["obs"]
    assert list(obs.request_rate[:1]) == [3.0] and math.isnan(obs.request_rate[-1])
    cond = {c["type"]: c for c in result.status["conditions"]}
    assert (cond["MetricsAvailable"]["status"], cond["MetricsAvailable"]["reason"]) == (
        "False",
        "QueryFailed",
    )
    assert cond["SLOMet"]["status"] == "Unknown"
    assert "observed" not in result.status
    assert kube.calls == []


def test_status_carries_engine_state_cost_views_and_generation(pools):
    obj = infd()
    old = {"engineState": {"capacityScale": 1.0, "gone": 1}}
    result, _ = tick(obj, pools, [child(obj, pools, SPOT, 2)], FakeEngine({SPOT: 2}), status=old)
    s = result.status
    assert s["engineState"]["capacityScale"] == 1.1 and s["engineState"]["gone"] is None
    assert s["cost"]["perHour"] == "1.6000" and s["cost"]["projectedMonthly"] == "1168.0000"
    assert s["cost"]["per1kRequests"] == "0.1481"  # 1.6 $/h / (3 req/s x 3.6 k req/h)
    assert s["observedGeneration"] == 3
    assert all(c["observedGeneration"] == 3 for c in s["conditions"])
    # Met now, but the plan's 2 % shortfall risk exceeds the 1 % of misses the SLO allows.
    assert s["sloState"] == "AtRisk" and s["budgetState"] == "NoBudget"


def test_engine_state_from_status_is_handed_back(pools):
    obj = infd()
    engine = FakeEngine({SPOT: 2})
    status = {"engineState": EngineState(capacity_scale=0.8).to_dict()}
    tick(obj, pools, [], engine, status=status)
    assert engine.calls[0]["state"].capacity_scale == 0.8


def test_target_ref_scales_the_referenced_deployment(pools):
    obj = infd(pool_names=(OD,), template=None, targetRef={"name": "existing"})
    current = ChildState("default", "existing", obj.metadata.name, OD, 1, 1, 0, "")
    _, kube = tick(obj, pools, [current], FakeEngine({OD: 4}))
    assert kube.calls == [("scale", "existing", 4)]


@pytest.mark.parametrize(
    ("rates", "tokens", "per_1k", "per_1m"),
    [
        ({SPOT: 2.0, OD: 1.0}, 1000.0, "0.1481", "0.4444"),
        ({SPOT: 0.0}, None, None, None),
        ({SPOT: 1.0, OD: -2.0}, -5.0, None, None),  # a counter reset reads negative
        ({SPOT: float("nan")}, float("nan"), None, None),
    ],
    ids=["traffic", "idle", "negative", "nan"],
)
def test_unit_costs_only_with_traffic(pools, rates, tokens, per_1k, per_1m):
    obj = infd()
    reading = Reading(rate_by_pool=rates, latency_seconds=3.0, attainment=1.0, token_rate=tokens)
    result, _ = tick(obj, pools, [child(obj, pools, SPOT, 2)], FakeEngine({SPOT: 2}), reading)
    cost = result.status["cost"]
    assert (cost.get("per1kRequests"), cost.get("perMillionTokens")) == (per_1k, per_1m)


def test_slo_window_counts_reach_the_engine_and_the_status(pools):
    # Issue 13: the window's counts from the histogram go to the engine, and status shows
    # attainment so far, the budget left, its burn rate and the target decided on.
    obj = infd(slo={"latency": {"thresholdSeconds": 15}, "attainment": 0.99, "window": "24h"})
    engine = FakeEngine({SPOT: 2})

    def decide(*args, **kw):
        return replace(FakeEngine.__call__(engine, *args, **kw), attainment_target=0.9912)

    counted = replace(GOOD, slo_good=99_700.0, slo_total=100_000.0)
    result, _ = tick(obj, pools, [], decide, reading=counted)
    obs = engine.calls[-1]["obs"]
    assert (obs.slo_good, obs.slo_total) == (99_700.0, 100_000.0)
    assert result.status["errorBudget"] == {
        "window": "24h",
        "goodRequests": 99_700.0,
        "totalRequests": 100_000.0,
        "attainment": 0.997,
        "remaining": 0.7,
        "burnRate": 0.3,
        "attainmentTarget": 0.9912,
    }

    # The engine's budget left, of the full window's allowance (a young window's), wins.
    def young(*args, **kw):
        return replace(FakeEngine.__call__(engine, *args, **kw), error_budget_left=0.98)

    result, _ = tick(obj, pools, [], young, reading=counted, status=result.status)
    assert result.status["errorBudget"]["remaining"] == 0.98
    # Counts gone unknown (the query failed): the merge patch removes the stale window.
    result, _ = tick(obj, pools, [], engine, status=result.status)
    assert result.status["errorBudget"] is None
    assert engine.calls[-1]["obs"].slo_total is None
