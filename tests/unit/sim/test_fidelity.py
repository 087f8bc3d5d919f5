"""Scenario options of a replay: correlated spot bursts, cold starts at t=0, the rate window."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sim_helpers import pool, trace

from costscaler.core import hazard
from costscaler.sim.cluster import ClusterTwin, SpotBursts
from costscaler.sim.lineup import Lineup, Settings
from costscaler.sim.run import Costs, Start, simulate
from costscaler.sim.static import Static


def test_a_whole_pool_burst_reclaims_every_replica_at_the_seeded_time():
    spot = pool(spot=True, interruption_rate_per_hour=6.0, notice_s=0, load_s=30)
    twin = ClusterTwin([spot], 20_000, 1.0, seed=4, bursts=SpotBursts(share=1.0, size=1.0))
    twin.start([6])
    # The same seeded draw the twin makes for the pool's first burst.
    rng = np.random.default_rng(np.random.SeedSequence([4, 0, 13]))
    kill = max(1, int(np.ceil(rng.exponential(3600.0 / 6.0))))
    ready, held = twin.advance(0, kill + 1)
    assert ready[0, kill - 1] == 6 and ready[0, kill] == 0  # all at once, replacements warming
    assert held[0, kill] == 6
    assert twin.lost == [6]


def test_bursts_keep_the_declared_hazard_but_cluster_the_losses():
    spot = pool(spot=True, interruption_rate_per_hour=4.0, notice_s=0, load_s=0)
    hours, replicas = 300, 8
    losses = {}
    for share in (0.0, 0.8):
        twin = ClusterTwin(
            [spot], hours * 3600, 1.0, seed=2, bursts=SpotBursts(share=share, size=0.5)
        )
        twin.start([replicas])
        _, held = twin.advance(0, hours * 3600)
        assert twin.lost[0] / (held.sum() / 3600) == pytest.approx(4.0, rel=0.1)
        losses[share] = twin.lost[0]
    # Same hazard, so about as many losses; what changes is that they come together.
    assert losses[0.8] == pytest.approx(losses[0.0], rel=0.1)


def test_bursts_reclaim_several_replicas_in_one_step():
    spot = pool(spot=True, interruption_rate_per_hour=4.0, notice_s=0, load_s=60)
    twin = ClusterTwin([spot], 50 * 3600, 1.0, seed=2, bursts=SpotBursts(share=0.8, size=0.5))
    twin.start([8])
    ready, _ = twin.advance(0, 50 * 3600)
    assert -np.diff(ready[0]).min() >= 3  # several replicas lost in the same second
    alone = ClusterTwin([spot], 50 * 3600, 1.0, seed=2)
    alone.start([8])
    ready, _ = alone.advance(0, 50 * 3600)
    assert -np.diff(ready[0]).min() < 3  # independent clocks: rarely two in the same second


def test_share_zero_is_the_independent_model_unchanged():
    spot = pool(spot=True, interruption_rate_per_hour=5.0, notice_s=30, load_s=20)
    arrivals = np.random.default_rng(0).poisson(30, 4000).astype(float)
    runs = [
        simulate(trace(arrivals), [s], Static(0, 4), Costs(2.0), seed=5, bursts=b)
        for s, b in (
            (replace(spot, burst_share=0.0), None),
            (spot, SpotBursts(share=0.0, size=0.3)),
        )
    ]
    assert runs[0] == runs[1]


def test_the_default_burst_share_is_the_pools_own():
    # What the engine prices (`core.hazard`: the pool's interruption.burstShare, 0.6 unset)
    # is what a replay offers unless the run says otherwise (issue #14).
    spot = pool(spot=True, interruption_rate_per_hour=5.0, notice_s=30, load_s=20)
    assert spot.burst_share == hazard.DEFAULT_BURST_SHARE
    arrivals = np.random.default_rng(0).poisson(30, 4000).astype(float)
    runs = [
        simulate(trace(arrivals), [spot], Static(0, 4), Costs(2.0), seed=5, bursts=b)
        for b in (None, SpotBursts(share=hazard.DEFAULT_BURST_SHARE), SpotBursts(share=0.0))
    ]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_cold_start_pays_the_initial_replicas_warm_up():
    p = pool(node_cold_s=40, load_s=20)
    arrivals = np.full(600, 5.0)
    runs = [
        simulate(trace(arrivals), [p], Static(0, 2), Costs(10.0), start=start, keep_timeline=True)
        for start in (Start((2,), warm=True), Start((2,), warm=False))
    ]
    warm, cold = runs
    assert warm.timeline is not None and cold.timeline is not None
    assert warm.timeline.ready[0, 0] == 2
    assert cold.timeline.ready[0, 59] == 0 and cold.timeline.ready[0, 60] == 2
    assert cold.timeline.held[0, 0] == 2  # paid while warming
    assert cold.replica_cost == warm.replica_cost  # same replica-seconds held
    assert cold.slo_attainment < warm.slo_attainment  # the first minute queues


def test_rate_window_reaches_costscaler_hpa_and_keda(lineup):
    settings = Settings(rate_window_s=10.0)
    scenario = Lineup(lineup.deployment, lineup.pools, settings)
    t = trace(np.ones(100))
    for name in ("costscaler", "hpa", "keda"):
        assert scenario.policy(name, t).rate_window_s == 10.0  # type: ignore[attr-defined]


def test_invalid_burst_settings_are_refused():
    with pytest.raises(ValueError, match="share"):
        SpotBursts(share=1.5)
