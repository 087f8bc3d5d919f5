"""Warm spare nodes: kept while their $/h is below the SLO misses a node cold start would cost."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from core_helpers import OD, SPOT_A, planner, steady

from costscaler.core import warm
from costscaler.core.types import WarmNeed


def _need(tail: list[float], value: float = 100.0, price: float = 0.4, room: int = 40) -> WarmNeed:
    return WarmNeed("spot", tuple(tail), value_per_hour=value, node_cost_per_hour=price, room=room)


def _kept(needs: list[WarmNeed]) -> int:
    got = warm.spares(needs)
    return got["spot"].nodes if "spot" in got else 0


def test_a_spare_is_kept_while_its_price_is_below_its_chance_of_use_times_the_saving() -> None:
    # P(N >= 1) x 100 $/h = 1.0 $/h > 0.40: kept; P(N >= 2) x 100 = 0.30 < 0.40: not.
    assert _kept([_need([0.010, 0.003, 0.001])]) == 1
    assert _kept([_need([0.010, 0.003], price=1.01)]) == 0
    got = warm.spares([_need([0.5, 0.2, 0.1, 0.001])])["spot"]
    assert got.nodes == 3 and got.cost_per_hour == pytest.approx(1.2)


def test_deployments_sharing_a_pool_share_its_spares() -> None:
    # Alone, neither pays for a spare (0.003 x 100 = 0.30 $/h < 0.40); together, the chance
    # that one of them needs a node, 1 - 0.997^2 = 0.006, does (0.60 $/h).
    one = _need([0.003, 0.0005])
    assert _kept([one]) == 0
    assert _kept([one, one]) == 1
    # That forty need two nodes at once is likelier than 0.004: a second spare.
    assert _kept([one] * 40) >= 2


def test_no_spare_without_room_or_miss_cost_and_pools_are_sized_apart() -> None:
    assert _kept([_need([0.9, 0.9], room=0)]) == 0
    assert _kept([_need([0.9, 0.9], value=0.0)]) == 0
    assert _kept([_need([0.9, 0.9, 0.9], room=2)]) == 2
    other = replace(_need([0.9]), pool="od")
    assert set(warm.spares([_need([0.9]), other])) == {"spot", "od"}


def test_the_need_is_the_forecasts_tail_beyond_the_plan_on_the_cheapest_launching_pool() -> None:
    launched = replace(SPOT_A, launches_nodes=True, node_cold_start_s=240.0)
    pl = planner([OD, launched], slo_miss_cost_per_hour=200.0, replicas_max=40)
    rng = np.random.default_rng(3)
    obs = steady(12.0)
    obs = replace(obs, request_rate=obs.request_rate + rng.normal(0.0, 3.0, obs.times.size))
    d = pl.decide(obs, {}, now=3600.0)
    need = d.warm_need
    assert need is not None and need.pool == "spot-a"
    assert list(need.tail) == sorted(need.tail, reverse=True) and 0 < need.tail[0] < 0.5
    # The saving is the node's cold start share of the horizon (the slowest pool's 300 s).
    assert need.value_per_hour == pytest.approx(200.0 * 240.0 / 300.0)
    # Alone, the deployment's cost-optimal plan leaves a spare nothing to pay for.
    assert d.warm_nodes == {}
    assert planner([OD, SPOT_A]).decide(obs, {}, now=3600.0).warm_need is None


def _launching_planner(**settings: object):
    launched = replace(SPOT_A, launches_nodes=True, node_cold_start_s=240.0)
    return planner([OD, launched], **{"slo_miss_cost_per_hour": 200.0, **settings})


def test_no_spares_while_the_budget_binds_the_plan() -> None:
    """A plan the budget cut leaves demand far past it: its tail asked for a spare node per
    missing replica, and `make demo` kept 24 warm nodes beside a BudgetLimited plan, spending
    what the budget held back. A bound plan asks for none; the same deployment without the
    budget asks for spares."""
    from costscaler.api.budget import OnConflict
    from costscaler.core import BudgetConstraint

    pl = _launching_planner(replicas_max=40)
    obs = steady(12.0)
    free = pl.decide(obs, {}, now=3600.0)
    assert free.warm_need is not None and free.warm_need.tail[0] < 0.5
    tight = pl.decide(obs, {}, now=3600.0, budget=BudgetConstraint(2.0, OnConflict.PREFER_BUDGET))
    assert tight.budget_limited and sum(tight.replicas.values()) < sum(free.replicas.values())
    assert tight.warm_need is None and tight.warm_nodes == {}


def test_no_spares_past_replicas_max() -> None:
    """A plan at replicas.max may add no replica: a spare node would wait for nothing."""
    pl = _launching_planner(replicas_max=3)
    d = pl.decide(steady(40.0), {}, now=3600.0)
    assert sum(d.replicas.values()) == 3
    assert d.warm_need is None or d.warm_need.room == 0
    assert d.warm_nodes == {}
