"""The costscaler policy keeps the controller's observation window while it replays."""

from __future__ import annotations

import numpy as np
from sim_helpers import trace

from costscaler.sim.run import simulate


def test_window_holds_the_last_hour_of_ticks_in_order(lineup):
    deployment = lineup.deployment
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
