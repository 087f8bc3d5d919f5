"""The controller's side of stock-outs and capacity conditions (issue 14 item 4, issue 18
item 5, SpotLimitRelaxed): unscheduled child pods past a grace reach the engine as
`unfulfillable`, and the decision's shortfalls become conditions, not CostOptimal."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from test_controller_tick import (
    GOOD,
    NOW,
    OD,
    REPO,
    SPOT,
    FakeEngine,
    RecordingKube,
    child,
    infd,
    tick,
)

from costscaler.adapters.children import LABEL_DEPLOYMENT, LABEL_POOL
from costscaler.adapters.pending import PendingPod, pending_pod
from costscaler.api import CapacityPool, load_manifests
from costscaler.controller.history import History
from costscaler.controller.shortfall import GRACE_MARGIN_S, grace_seconds, with_unplaced
from costscaler.controller.tick import run_tick
from costscaler.controller.tick_input import TickInput
from costscaler.core import Decision

STAMP = "2026-11-23T11:50:00Z"  # ten minutes before NOW


@pytest.fixture(scope="module", name="pools")
def example_pools() -> dict[str, CapacityPool]:
    return {p.name: p for p in load_manifests(REPO / "examples" / "pools")}


def pod(phase="Pending", scheduled="False", labels=True, deleting=False) -> dict:
    meta: dict = {"namespace": "default", "creationTimestamp": STAMP}
    if labels:
        meta["labels"] = {LABEL_DEPLOYMENT: "llama-3-1-8b", LABEL_POOL: SPOT}
    if deleting:
        meta["deletionTimestamp"] = STAMP
    conds = [] if scheduled is None else [{"type": "PodScheduled", "status": scheduled,
                                           "reason": "Unschedulable",
                                           "lastTransitionTime": STAMP}]  # fmt: skip
    return {"metadata": meta, "status": {"phase": phase, "conditions": conds}}


@pytest.mark.parametrize(
    ("body", "counted"),
    [
        pytest.param(pod(), True, id="pending-unschedulable"),
        pytest.param(pod(phase="Running", scheduled="True"), False, id="running"),
        pytest.param(pod(scheduled="True"), False, id="scheduled-pulling-image"),
        pytest.param(pod(scheduled=None), False, id="not-seen-by-scheduler-yet"),
        pytest.param(pod(deleting=True), False, id="being-deleted"),
        pytest.param(pod(labels=False), False, id="not-a-child-pod"),
    ],
)
def test_only_unscheduled_child_pods_are_pending(body, counted):
    found = pending_pod(body)
    assert (found is not None) is counted
    if found:
        assert (found.owner, found.pool, found.since) == (
            "llama-3-1-8b",
            SPOT,
            NOW.timestamp() - 600,
        )


def test_pods_past_the_pools_grace_are_unfulfillable_capped_at_desired(pools):
    obj = infd()
    grace = grace_seconds(pools[SPOT])
    assert grace == pools[SPOT].spec.cold_start.node_seconds + GRACE_MARGIN_S
    now = NOW.timestamp()
    late = [PendingPod("default", "llama-3-1-8b", SPOT, now - grace - 1)] * 5
    fresh = [PendingPod("default", "llama-3-1-8b", OD, now - grace + 30)]
    children = [child(obj, pools, SPOT, 3, ready=0), child(obj, pools, OD, 2, ready=1)]
    out = {c.pool: c.unfulfillable for c in with_unplaced(children, late + fresh, pools, now)}
    assert out == {SPOT: 3, OD: 0}


def test_on_a_pool_whose_nodepool_launches_nothing_waiting_pods_count_at_once(pools):
    # Issue 16: no node is on its way, so the pool's grace (a node cold start) is no reason
    # to wait: the share moves on the next tick.
    obj = infd()
    now = NOW.timestamp()
    fresh = [PendingPod("default", "llama-3-1-8b", OD, now - 1)] * 2
    children = [child(obj, pools, SPOT, 1, ready=1), child(obj, pools, OD, 2, ready=0)]
    out = {c.pool: c.unfulfillable for c in with_unplaced(children, fresh, pools, now, {OD})}
    assert out == {SPOT: 0, OD: 2}
    assert all(c.unfulfillable == 0 for c in with_unplaced(children, fresh, pools, now))


def test_the_engine_sees_unfulfillable_replicas_per_pool(pools):
    obj = infd()
    engine = FakeEngine({SPOT: 0, OD: 4})
    children = [
        replace(child(obj, pools, SPOT, 3, ready=1), unfulfillable=2),
        child(obj, pools, OD, 1),
    ]
    tick(obj, pools, children, engine)
    obs = engine.calls[0]["obs"]
    assert obs.unfulfillable[SPOT][-1] == 2 and obs.unfulfillable[OD][-1] == 0


class ShortEngine(FakeEngine):
    """A FakeEngine whose decision carries shortfalls."""

    def __init__(self, replicas, **fields) -> None:
        super().__init__(replicas, reason=fields.pop("reason", "CostOptimal"))
        self.fields = fields

    def __call__(self, *args, **kw) -> Decision:
        return replace(super().__call__(*args, **kw), **self.fields)


def _conds(result) -> dict[str, dict]:
    return {c["type"]: c for c in result.status["conditions"]}


def test_a_healthy_plan_says_capacity_is_available_and_spot_limits_hold(pools):
    obj = infd()
    result, _ = tick(obj, pools, [], FakeEngine({SPOT: 2, OD: 1}))
    conds = _conds(result)
    assert conds["CapacityAvailable"]["status"] == "True"
    assert (conds["SpotLimitRelaxed"]["status"], conds["SpotLimitRelaxed"]["reason"]) == (
        "False",
        "WithinSpotLimits",
    )


@pytest.mark.parametrize(
    ("fields", "schedulable", "reason", "text"),
    [
        pytest.param(
            {"out_of_stock": (SPOT,), "reason": "PoolOutOfStock"},
            None,
            "PoolOutOfStock",
            SPOT,
            id="out-of-stock",
        ),
        pytest.param(
            {"quota_shortfall": 9984, "reason": "ReplicasMinBeyondQuota"},
            None,
            "ReplicasMinBeyondQuota",
            "9984 replicas more",
            id="min-beyond-quota",
        ),
        pytest.param({}, {SPOT: 0, OD: 3}, "NoSchedulableNodes", SPOT, id="no-nodes"),
    ],
)
def test_shortfalls_are_conditions_not_cost_optimal(pools, fields, schedulable, reason, text):
    obj = infd()
    engine = ShortEngine({SPOT: 2, OD: 1}, **fields)
    kube_result, _ = tick_with(obj, pools, engine, schedulable)
    cond = _conds(kube_result)["CapacityAvailable"]
    assert (cond["status"], cond["reason"]) == ("False", reason)
    assert text in cond["message"]


def test_no_schedulable_nodes_on_a_pool_the_plan_leaves_empty_is_fine(pools):
    engine = FakeEngine({SPOT: 0, OD: 3})
    result, _ = tick_with(infd(), pools, engine, {SPOT: 0, OD: 3})
    assert _conds(result)["CapacityAvailable"]["status"] == "True"


def test_spot_limit_relaxed_is_a_condition_with_the_engines_numbers(pools):
    message = (
        "Demand 30 req/s ... Spot limits relaxed: replicas.min 5 is more than 2 on-demand "
        "replicas carry at spot.maxFraction 50% (4 replicas at most)."
    )
    engine = ShortEngine(
        {SPOT: 3, OD: 2}, spot_limit_relaxed=True, reason="SpotLimitRelaxed", message=message
    )
    result, _ = tick_with(infd(), pools, engine, None)
    cond = _conds(result)["SpotLimitRelaxed"]
    assert (cond["status"], cond["reason"]) == ("True", "SpotLimitRelaxed")
    assert cond["message"].startswith("Spot limits relaxed: replicas.min 5")


def tick_with(obj, pools, engine, schedulable):
    """`tick` with the pools' schedulable node counts set."""

    kube = RecordingKube()
    t = TickInput(obj, pools, [], GOOD, History(3600), {}, NOW, schedulable=schedulable)
    return asyncio.run(run_tick(t, engine, kube)), kube


def test_status_rows_show_the_warm_nodes_of_pools_that_keep_them(pools):
    """Issue 16: a deployment's status shows, per pool with a NodePool, the warm spare nodes
    it keeps now (shared by the deployments on it); pools without one show none."""
    kube = RecordingKube()
    engine = ShortEngine({SPOT: 1, OD: 1})
    t = TickInput(infd(), pools, [], GOOD, History(3600), {}, NOW, warm_nodes={SPOT: 2})
    result = asyncio.run(run_tick(t, engine, kube))
    rows = {r["pool"]: r for r in result.status["replicas"]}
    assert rows[SPOT]["warmNodes"] == 2 and "warmNodes" not in rows[OD]
    from costscaler.api.deployment import PoolReplicas

    assert PoolReplicas.model_validate(rows[SPOT]).warm_nodes == 2


def test_free_slots_reach_the_engine_and_the_status_rows(pools):
    """Issue 16, item 4: the pool timer's free accelerators per Ready node reach the
    engine as node facts (a replica on them starts at the model load), and the status rows
    and the decision's message show the slots; pools without facts show none."""
    from costscaler.core import decide

    t = TickInput(infd(), pools, [], GOOD, History(3600), {}, NOW,
                  free_accelerators={SPOT: (1, 0, 1), "not-eligible": (8,)})  # fmt: skip
    result = asyncio.run(run_tick(t, decide, RecordingKube()))
    rows = {r["pool"]: r for r in result.status["replicas"]}
    assert rows[SPOT]["freeSlots"] == 2 and "freeSlots" not in rows[OD]
    assert result.decision.free_slots == {SPOT: 2}
    assert f"Free slots on ready nodes: {SPOT} 2" in result.decision.message
    from costscaler.api.deployment import PoolReplicas

    assert PoolReplicas.model_validate(rows[SPOT]).free_slots == 2


def test_deployments_deciding_before_a_recount_do_not_start_on_the_same_free_slot(pools):
    """Issue 16: the free slots are the pool's, shared by the deployments on it. A decision
    that starts replicas on them takes them from the count the next deployment reads, so
    two deciding before the pool timer counts again do not both price a start at the model
    load on one slot; the next count replaces the taken one. A Recommend deployment starts
    nothing, so it takes nothing."""
    from costscaler.controller import node_layer
    from costscaler.core import decide

    free = {SPOT: (1, 0, 1)}
    claiming = node_layer.claiming(decide, free)
    advice = TickInput(infd("Recommend"), pools, [], GOOD, History(3600), {}, NOW,
                       free_accelerators=free)  # fmt: skip
    assert asyncio.run(run_tick(advice, claiming, RecordingKube())).decision.replicas[SPOT] > 0
    assert free == {SPOT: (1, 0, 1)}  # a recommendation starts nothing: it takes nothing
    first = TickInput(infd(), pools, [], GOOD, History(3600), {}, NOW, free_accelerators=free)
    one = asyncio.run(run_tick(first, claiming, RecordingKube()))
    took = min(one.decision.replicas[SPOT], 2)
    assert one.decision.free_slots == {SPOT: 2} and took > 0
    assert sum(free[SPOT]) == 2 - took  # one GPU a replica
    other = infd()
    other.metadata.name = "qwen"
    second = TickInput(other, pools, [], GOOD, History(3600), {}, NOW, free_accelerators=free)
    two = asyncio.run(run_tick(second, claiming, RecordingKube()))
    assert two.decision.free_slots == {SPOT: 2 - took}
