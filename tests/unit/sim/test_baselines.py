"""HPA, KEDA and KPA against hand-computed cases from their documentation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from costscaler.sim.hpa import Behavior, external_metric_replicas, pods_metric_replicas
from costscaler.sim.karpenter import split
from costscaler.sim.knative import KPA
from costscaler.sim.static import peak_rate


@pytest.mark.parametrize(
    ("current", "ready", "missing", "total", "target", "want"),
    [
        # kubernetes.io HPA docs: 200m against 100m doubles, 50m halves.
        pytest.param(4, 4, 0, 800, 100, 8, id="double"),
        pytest.param(4, 4, 0, 200, 100, 2, id="halve"),
        pytest.param(4, 4, 0, 420, 100, 4, id="within-tolerance"),
        pytest.param(4, 4, 0, 440, 100, 5, id="just-outside-tolerance"),
        # Missing metrics: 0 % of target on scale-up, 100 % on scale-down.
        pytest.param(5, 4, 1, 600, 100, 6, id="missing-as-zero-on-scale-up"),
        pytest.param(5, 4, 1, 200, 100, 3, id="missing-as-target-on-scale-down"),
        pytest.param(5, 4, 1, 480, 100, 5, id="correction-within-tolerance"),
        pytest.param(5, 4, 1, 440, 100, 5, id="correction-flips-direction"),
        pytest.param(3, 0, 3, 0, 100, 3, id="no-ready-pod-holds"),
    ],
)
def test_hpa_replica_calculator(current, ready, missing, total, target, want):
    assert pods_metric_replicas(current, ready, missing, total, target) == want


def test_hpa_scale_down_waits_for_the_stabilisation_window():
    b = Behavior(min_replicas=1, max_replicas=100)
    assert b.normalize(0.0, 10, 10) == 10
    assert b.normalize(15.0, 10, 4) == 10  # the 10 from t=0 is still in the 300 s window
    assert b.normalize(285.0, 10, 4) == 10
    assert b.normalize(300.0, 10, 4) == 4  # t=0 left the window


def test_hpa_scale_up_is_limited_to_double_or_four_pods_per_15_s():
    b = Behavior(min_replicas=1, max_replicas=100)
    assert b.normalize(0.0, 3, 20) == 7  # max(2 x 3, 3 + 4)
    assert b.normalize(5.0, 7, 20) == 7  # the period that began at 3 is used up
    assert b.normalize(15.0, 7, 20) == 14  # a new period: max(2 x 7, 7 + 4)
    assert b.normalize(30.0, 14, 200) == 28


def test_hpa_clamps_to_min_and_max():
    assert Behavior(min_replicas=2, max_replicas=5).normalize(0.0, 3, 40) == 5
    b = Behavior(min_replicas=2, max_replicas=5)
    b.normalize(0.0, 3, 3)
    assert b.normalize(400.0, 3, 0) == 2


@pytest.mark.parametrize(
    ("current", "total", "target", "want"),
    [(2, 35, 10, 4), (3, 31, 10, 3), (3, 0, 10, 0), (0, 12, 10, 2)],
    ids=["scale-up", "tolerance", "to-zero-metric", "from-zero"],
)
def test_keda_external_average_value(current, total, target, want):
    assert external_metric_replicas(current, total, target) == want


def test_kpa_panics_at_twice_ready_and_never_scales_down_in_panic():
    kpa = KPA(pool=0, utilisation=1.0, min_replicas=0, max_replicas=1000)
    # stable 30 in the system -> 3 pods; panic 50 -> 5 pods >= 2 x 2 ready: panic, 5.
    assert kpa.desired(0.0, 2, 30.0, 50.0, 10.0) == 5
    # Load falls: stable wants 1 (floored at ready / 2), but panic holds the maximum.
    assert kpa.desired(2.0, 2, 10.0, 10.0, 10.0) == 5
    assert kpa.desired(60.0, 5, 10.0, 10.0, 10.0) == 5
    # More than 60 s after the last panicking tick, the stable decision returns (halving).
    assert kpa.desired(62.0, 5, 10.0, 10.0, 10.0) == 2


def test_kpa_stable_mode_and_rate_limits():
    kpa = KPA(pool=0, utilisation=1.0, min_replicas=0, max_replicas=1000)
    assert kpa.desired(0.0, 4, 55.0, 60.0, 10.0) == 6  # 60/10 = 6 < 2 x 4: no panic
    assert kpa.desired(2.0, 10, 0.0, 0.0, 10.0) == 5  # at most halve per tick
    assert kpa.desired(4.0, 0, 25.0, 5.0, 10.0) == 3  # from zero (ready counts as 1)


def test_static_peak_is_the_busiest_minute():
    import numpy as np

    arrivals = np.zeros(600)
    arrivals[100:160] = 5.0
    arrivals[300] = 200.0  # one-second spike: averaged over its minute
    assert peak_rate(arrivals, 1.0) == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("total", "base", "share", "unplaced", "want"),
    [
        (10, 1, 0.6, 0, (5, 5)),  # base 1, then floor(9 x 0.6) = 5 on spot
        (1, 1, 0.6, 0, (1, 0)),
        (10, 0, 0.5, 2, (7, 3)),  # two spot replicas cannot be placed: on demand instead
        (4, 2, 1.0, 9, (4, 0)),
        (7, 1, 0.0, 0, (7, 0)),
    ],
)
def test_karpenter_placement_splits_by_base_and_share(total, base, share, unplaced, want):
    assert split(total, base, share, unplaced) == want


def test_hpa_with_karpenter_places_the_hpa_count_on_spot_and_on_demand(lineup):
    from sim_helpers import trace

    from costscaler.sim.run import simulate
    from costscaler.sim.scenario import Scenario

    t = trace(np.full(1800, 40.0))
    policy = lineup.policy("hpa-karpenter-spot", t)
    od, spot = policy.on_demand, policy.spot  # type: ignore[attr-defined]
    assert lineup.models[od].accelerator == lineup.models[spot].accelerator
    assert lineup.models[spot].spot and not lineup.models[od].spot
    out = simulate(
        t,
        lineup.models,
        policy,
        lineup.costs,
        start=lineup.start(t),
        scenario=Scenario(stockouts=((900.0, 3600.0),)),
        keep_timeline=True,
    )
    ready = out.timeline.ready  # type: ignore[union-attr]
    total = ready[od, 800] + ready[spot, 800]
    # pods stay where they started (on demand); the scale-up went to spot, within its share
    assert 0 < ready[spot, 800] <= split(int(total), 1, 0.6)[1]
    assert ready[spot, 1700] == 0 and ready[od, 1700] >= total  # spot gone: on demand instead


def test_karpenter_baselines_run_on_the_cheapest_on_demand_pool_with_a_spot_twin(lineup):
    """With the A100 the cheapest on-demand pool per request/s (as under the batching model's
    capacities) and no A100 spot pool, HPA + Karpenter runs on the cheapest on-demand pool
    that has a spot twin, and starts there with the same rated capacity as the others."""
    from sim_helpers import trace

    from costscaler.sim.lineup import Lineup

    data = lineup.deployment.model_dump(by_alias=True, exclude_none=True)
    for prof in data["spec"]["workload"]["capacity"]:
        if prof["accelerator"] == "A100-40GB":
            prof["requestsPerSecond"] = 20.0  # $4.10/h a replica: the cheapest per req/s
    deployment = type(lineup.deployment).model_validate(data)
    world = Lineup(deployment, lineup.pools)
    names = [m.name for m in world.models]
    assert names[world.single] == "p4d-24xlarge-a100-ondemand"
    assert names[world.family] == "g5-xlarge-a10g-ondemand"  # type: ignore[index]
    t = trace(np.full(1800, 40.0))
    policy = world.policy("hpa-karpenter-spot", t)
    assert names[policy.on_demand] == "g5-xlarge-a10g-ondemand"  # type: ignore[attr-defined]
    assert names[policy.spot] == "g5-xlarge-a10g-spot"  # type: ignore[attr-defined]
    home = world.start(t, world.home("hpa-karpenter-spot")).replicas
    assert home[world.family] == math.ceil(40.0 / world.models[world.family].capacity_rps)  # type: ignore[index]
    assert world.start(t, world.home("hpa")).replicas[world.single] == 2  # 40 / 20 req/s
    out = world.run(["hpa-karpenter-spot"], t)[0]
    assert out.slo_attainment > 0.99  # it took over its own warm replicas
