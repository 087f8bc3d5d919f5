"""Whole nodes: a node bills whole from its first replica, and replicas pack onto it.

Issue 14, item 6. Before, a replica on an 8-GPU node was priced at node/8, so the engine put
2 replicas on a $24/h node for "$6/h" rather than on two $4/h single-GPU nodes.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
from core_helpers import planner, steady

from costscaler.api.budget import OnConflict
from costscaler.core import BudgetConstraint, EngineState, PoolView, allocate, exact, nodes, step
from costscaler.core.forecast import forecast

# An 8-GPU node at $24/h ($3 per GPU when full) and a single-GPU node at $4/h, same GPU.
X8 = PoolView(
    "x8",
    spot=False,
    replica_cost_per_hour=3.0,
    capacity_rps=7.0,
    cold_start_s=360.0,
    max_replicas=16,
    replicas_per_node=8,
)
X1 = PoolView("x1", spot=False, replica_cost_per_hour=4.0, capacity_rps=7.0, cold_start_s=360.0)


def _decide(rate: float, current: dict[str, int] | None = None, **settings: object):
    pl = planner([X8, X1], **{"replicas_max": 40, **settings})
    cur = current or {}
    return pl.decide(steady(rate, ready=cur), cur, 3600.0)


@pytest.mark.parametrize(
    ("replicas", "per_node", "count", "slots"),
    [
        pytest.param([0, 1, 8, 9], [8, 8, 8, 8], [0, 1, 1, 2], [0, 7, 0, 7], id="eight-per-node"),
        pytest.param([3, 0], [1, 1], [3, 0], [0, 0], id="one-per-node"),
        pytest.param([5], [2], [3], [1], id="two-per-node"),
    ],
)
def test_nodes_and_empty_slots(replicas, per_node, count, slots):
    x, k = np.array(replicas), np.array(per_node)
    assert nodes.counts(x, k).tolist() == count
    assert nodes.empty(x, k).tolist() == slots


def test_a_replica_on_an_8_gpu_node_costs_the_whole_node():
    """Before: {x8: 2} at $6/h for accelerators, though the node bills $24/h."""
    d = _decide(10.0)
    assert dict(d.replicas) == {"x8": 0, "x1": 2}
    assert dict(d.nodes) == {"x8": 0, "x1": 2}
    assert d.cost_per_hour == pytest.approx(8.0)
    assert d.marginal_cost_per_hour == pytest.approx(8.0)


def test_a_paid_node_is_filled_before_a_new_one_opens():
    """Before: {x8: 6} priced at 6 x $3; the node is paid whole, so all 8 slots serve."""
    d = _decide(40.0)
    assert dict(d.replicas) == {"x8": 8, "x1": 0}
    assert dict(d.nodes) == {"x8": 1, "x1": 0}
    assert d.cost_per_hour == pytest.approx(24.0)


def test_the_views_bill_whole_nodes_when_the_bounds_stop_the_fill():
    d = _decide(40.0, replicas_max=6)
    billed = sum(24.0 * n for p, n in d.nodes.items() if p == "x8")
    billed += 4.0 * d.replicas["x1"]
    assert d.cost_per_hour == pytest.approx(billed)
    for alt in d.alternatives:
        x8 = alt.replicas["x8"]
        expected = 24.0 * (-(-x8 // 8)) + 4.0 * alt.replicas["x1"]
        assert alt.cost_per_hour == pytest.approx(expected), alt.name


def test_one_replica_per_node_is_unchanged():
    pl = planner([X1], replicas_max=40)
    d = pl.decide(steady(10.0), {}, 3600.0)
    assert d.cost_per_hour == pytest.approx(4.0 * d.replicas["x1"])
    assert dict(d.nodes) == dict(d.replicas)


def test_a_part_empty_nodes_slots_count_as_idle_accelerators():
    d = _decide(40.0, replicas_max=6)  # the bound stops the fill: 2 of 8 slots empty
    assert dict(d.nodes) == {"x8": 1, "x1": 0}
    assert d.idle_accelerators >= 2.0


@pytest.mark.parametrize("seed", range(24))
def test_the_plan_is_the_whole_node_optimum_of_every_plan(seed):
    """Against every plan of a small space, warm-up of running replicas and spot included."""
    rng = np.random.default_rng(seed)

    def view(name: str, spot: bool, price: float, top: int, per_node: int) -> PoolView:
        return PoolView(
            name,
            spot,
            price,
            rng.uniform(1, 8),
            300.0,
            max_replicas=int(rng.integers(2, top)),
            interruption_rate_per_hour=0.3 if spot else 0.0,
            replicas_per_node=per_node,
        )

    pools = [
        view("a", False, rng.uniform(1, 5), 13, int(rng.choice([2, 4, 8]))),
        view("b", False, rng.uniform(1, 5), 10, 1),
        view("c", True, rng.uniform(0.3, 2), 9, int(rng.choice([1, 2, 4]))),
    ]
    pl = planner(pools, replicas_max=30, spot_max_fraction=float(rng.choice([0.5, 1.0])))
    obs = steady(float(rng.uniform(1, 40)))
    demand = forecast(obs.times, obs.request_rate, pl.horizon_s, False)
    cur = rng.integers(0, 5, size=3).astype(np.int64)
    prob = step.problem(pl, EngineState(), demand, None, cur, 0.99)
    starts = step.start_plans(pl, prob, demand.quantile(0.99), cur)
    got = exact.optimum(prob, starts)
    tops = [range(int(m) + 1) for m in prob.max_replicas]
    every = np.array(list(itertools.product(*tops)), dtype=np.int64)
    every = every[allocate.feasible(prob, every)]
    best = float(allocate.evaluate(prob, every)[2].min())
    # The objective pays whole nodes (`allocate.nodes_spend`): check it does, then the optimum.
    x = got.replicas
    assert (
        float(allocate.money(prob, x[None, :])[0])
        >= float((nodes.counts(x, pl.per_node) * pl.per_node) @ prob.price) - 1e-9
    )
    assert got.objective <= best + 1e-9 * max(1.0, abs(best))


def test_prefer_budget_holds_at_whole_node_spend():
    """Issue 14 items 1 and 6 together: the allowance caps what the nodes bill."""
    rng = np.random.default_rng(3)
    for _ in range(40):
        rate, allowed = float(rng.uniform(1, 80)), float(rng.uniform(3, 60))
        cur = {"x8": int(rng.integers(0, 17)), "x1": int(rng.integers(0, 10))}
        budget = BudgetConstraint(allowed, OnConflict.PREFER_BUDGET)
        d = planner([X8, X1], replicas_max=40).decide(
            steady(rate, ready=cur), cur, 3600.0, budget=budget
        )
        if d.reason != "BudgetBelowMinimum":
            assert d.marginal_cost_per_hour <= allowed + 1e-6, (rate, allowed, cur, d.replicas)


# Two pools whose NodePools launch nodes: 340 s of node cold start, then 60 s of model load.
NEAR = PoolView("near", spot=False, replica_cost_per_hour=1.0, capacity_rps=2.0,
                cold_start_s=400.0, launches_nodes=True, node_cold_start_s=340.0,
                accelerators_per_replica=2)  # fmt: skip
FAR = PoolView("far", spot=False, replica_cost_per_hour=1.05, capacity_rps=2.0,
               cold_start_s=400.0, launches_nodes=True, node_cold_start_s=340.0,
               accelerators_per_replica=2)  # fmt: skip


def _slots_decide(free: dict[str, tuple[int, ...]] | None):
    pl = planner([NEAR, FAR], replicas_max=20, slo_miss_cost_per_hour=50.0)
    obs = steady(9.0, ready={"near": 2})
    if free is not None:
        obs = replace(obs, free_accelerators=free)
    return pl.decide(obs, {"near": 2}, 3600.0)


def test_free_slots_count_whole_replicas_per_node():
    """A node's free accelerators hold floor(free / per replica) replicas; pools without
    node facts have none, and without any facts there is no count at all."""
    pl = planner([NEAR, FAR])
    obs = replace(steady(1.0), free_accelerators={"far": (3, 1, 4, -2)})
    assert nodes.free_slots(pl, obs).tolist() == [0, 3]
    assert nodes.free_slots(pl, steady(1.0)) is None


def test_new_replicas_start_on_free_slots_at_the_model_load():
    """Without node facts every new replica pays the node cold start too, and they go to
    the cheaper pool. With 3 free slots on the other pool's Ready nodes (a warm spare), a
    replica there waits 60 s, not 400 s: the warm-up saved outweighs the 5 % dearer node
    for as many replicas as the slots hold, and the message says so."""
    plain = _slots_decide(None)
    assert plain.replicas["far"] == 0 and plain.free_slots == {}
    assert "Free slots" not in plain.message
    slots = _slots_decide({"far": (4, 2)})
    added = plain.replicas["near"] - 2
    assert added > 0
    assert slots.replicas["near"] == 2 + max(added - 3, 0)
    assert slots.replicas["far"] == min(added, 3)
    assert slots.free_slots == {"far": 3}
    assert "Free slots on ready nodes: far 3 (a replica there starts in 60 s, on a new node " \
        "in 400 s" in slots.message  # fmt: skip


def test_no_node_facts_decide_as_before():
    """A deployment whose pools report no node facts decides exactly as without the field
    (the golden decisions hold the rest): empty facts change nothing."""
    plain = _slots_decide(None)
    empty = _slots_decide({})
    assert plain.replicas == empty.replicas and plain.message == empty.message


def test_replicas_started_on_free_slots_take_them_node_by_node():
    """What a decision takes of the pool's shared count (`controller.node_layer.claiming`):
    each replica its accelerators from the first node with room for them, as
    `free_slots` counts them."""
    assert nodes.taken((3, 1, 4), 2, 2) == (1, 1, 2)
    assert nodes.taken((3, 1, 4), 9, 1) == (0, 0, 0)
    assert nodes.taken((3, 1, 4), 0, 1) == (3, 1, 4)
