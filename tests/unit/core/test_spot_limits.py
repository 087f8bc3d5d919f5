"""Spot limits relax only as far as on-demand quota forces (issue #14, item 2):

spot <= max(floor(maxFraction x T), T - on-demand capacity),
on-demand >= min(minOnDemandReplicas, on-demand capacity, T)
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from core_helpers import OD, SPOT_A, planner, steady
from hypothesis import given
from hypothesis import strategies as st
from test_properties import FAST, _current, planners, rates

SMALL_OD = replace(OD, max_replicas=2)
BIG_SPOT = replace(SPOT_A, max_replicas=40)


@pytest.mark.parametrize(
    "replicas_min",
    [pytest.param(4, id="min-4-within-the-share"), pytest.param(5, id="min-5-was-od-0-spot-19")],
)
def test_on_demand_quota_too_small_for_the_minimum_keeps_on_demand(replicas_min: int):
    """The reproducer: on-demand max 2, spot max 40, maxFraction 0.5, 30 req/s. With
    replicas.min = 5, on-demand cannot carry the minimum at the share, and the engine dropped
    both limits: {od 0, spot 19}. On-demand must stay at its 2, spot within the relaxed share."""
    pl = planner(
        [SMALL_OD, BIG_SPOT], spot_max_fraction=0.5, replicas_min=replicas_min, replicas_max=60
    )
    d = pl.decide(steady(30.0), {}, 3600.0)
    total, spot = d.total_replicas, d.replicas["spot-a"]
    assert d.replicas["od"] == 2, d.replicas
    assert spot <= max(math.floor(0.5 * total), total - 2), d.replicas
    if replicas_min == 5:
        assert d.reason == "SpotLimitRelaxed", d.reason
        for number in ("replicas.min 5", "2 on-demand", "50%"):
            assert number in d.message, d.message
    else:  # demand does not relax the limits: the share caps the total at 4, and says so
        assert d.reason == "SLOAtRisk" and d.total_replicas == 4, d.replicas
        assert "spot.maxFraction 50% with 2 on-demand replicas" in d.message, d.message


def _limits(pl, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per plan (rows): within the declared spot limits, and within the relaxed ones.

    The on-demand floor is min(minOnDemandReplicas, on-demand capacity, T) in both. With no
    on-demand capacity at all the relaxed share is T: spot is unlimited (as it always was).
    """
    s, spot_pool = pl.settings, pl.spot
    od_cap = int(
        sum(
            min(int(m), s.replicas_max)
            for m, sp in zip(pl.max_replicas, spot_pool, strict=True)
            if not sp
        )
    )
    total, spot = x.sum(axis=1), x[:, spot_pool].sum(axis=1)
    share = np.floor(s.spot_max_fraction * total + 1e-9)
    floor = total - spot >= np.minimum(min(s.min_on_demand, od_cap), total)
    strict = (spot <= share) & floor
    if od_cap == 0:
        return np.ones(len(x), dtype=bool), np.ones(len(x), dtype=bool)
    return strict, (spot <= np.maximum(share, total - od_cap)) & floor


@FAST
@given(planners(), rates, st.lists(st.integers(0, 20), min_size=1, max_size=4))
def test_the_decision_is_within_the_spot_limits_whenever_a_plan_is(pl, rate, counts):
    """Brute force over every plan within the replica bounds: if one is within the declared
    limits, so is the decision; either way it is within the relaxed ones."""
    current = _current(pl, counts)
    d = pl.decide(steady(rate, ready=current), current, 3600.0)
    x = np.array([[d.replicas[n] for n in pl.names]])
    s = pl.settings
    tops = np.minimum(pl.max_replicas, s.replicas_max) + 1
    every = np.indices(tops.tolist()).reshape(tops.size, -1).T
    total = every.sum(axis=1)
    every = every[
        (total >= min(s.replicas_min, int(pl.max_replicas.sum()))) & (total <= s.replicas_max)
    ]
    strict_any = bool(_limits(pl, every)[0].any())
    strict, relaxed = _limits(pl, x)
    assert relaxed[0], d.message
    assert strict[0] or not strict_any, d.message
    assert d.spot_limit_relaxed == (not strict_any), d.message
