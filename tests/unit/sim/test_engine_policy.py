"""The costscaler policy keeps the controller's observation window while it replays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sim_helpers import trace

from costscaler.api import CapacityPool, InferenceDeployment, load_manifests
from costscaler.sim.lineup import Lineup
from costscaler.sim.run import simulate

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_window_holds_the_last_hour_of_ticks_in_order():
    resources = load_manifests(EXAMPLES)
    deployment = next(r for r in resources if isinstance(r, InferenceDeployment))
    pools = [r for r in resources if isinstance(r, CapacityPool)]
    lineup = Lineup(deployment, pools)
    steps = 3 * 3600  # three hours of 15 s ticks: the window buffer shifts at least once
    arrivals = np.random.default_rng(2).poisson(10.0, steps).astype(float)
    policy = lineup.policy("costscaler", trace(arrivals))
    simulate(trace(arrivals), lineup.models, policy, lineup.costs)
    obs = policy.observations(has_tokens=False)
    window = deployment.spec.forecast.window_seconds
    assert obs.times.size == window // 15
    np.testing.assert_allclose(np.diff(obs.times), 15.0)
    assert obs.times[-1] == steps - 15
    assert np.nanmean(obs.request_rate) == np.float64(obs.request_rate.mean())
    assert abs(obs.request_rate.mean() - 10.0) < 0.5
    assert set(obs.ready) == {m.name for m in lineup.models}
