"""The run record: the queue computed ahead on a guess equals a tick-by-tick replay."""

from __future__ import annotations

import numpy as np
from sim_helpers import pool

from costscaler.sim import service
from costscaler.sim.policy import VIEW_EDGES_S
from costscaler.sim.record import Record
from costscaler.sim.service import FIELDS, ServiceResult


def _replicas(steps: int, tick: int, seed: int) -> np.ndarray:
    """Ready replicas per step for two pools, changing at some ticks and held between."""
    rng = np.random.default_rng(seed)
    out = np.zeros((2, steps), dtype=np.int64)
    level = np.array([3, 1])
    for t in range(0, steps, tick):
        if rng.random() < 0.3:
            level = np.maximum(0, level + rng.integers(-1, 2, 2))
        out[:, t : t + tick] = level[:, None]
    return out


def test_queue_ahead_matches_the_tick_by_tick_replay():
    steps, tick, threshold = 3000, 15, 1.0
    pools = [pool(capacity_rps=4.0, service_s=0.4), pool(name="b", capacity_rps=6.0, service_s=0.7)]
    arrivals = np.random.default_rng(3).poisson(18.0, steps).astype(float)
    ready = _replicas(steps, tick, seed=4)
    rec = Record(arrivals, None, pools, threshold, 1.0, VIEW_EDGES_S)
    # The reference: the queue run chunk by chunk as the ticks come, nothing guessed.
    mu, mu_s = np.array([4.0, 6.0]), np.array([4.0 * 0.4, 6.0 * 0.7])
    cap = mu @ ready
    svc = np.divide(mu_s @ ready, cap, out=np.zeros_like(cap), where=cap > 0)
    parts, started = [], 0.0
    for t in range(0, steps, tick):
        if t >= 60:
            rec.sync(t)
            got = rec.histogram(t - 60, t)
            window = ServiceResult(
                *(np.concatenate([getattr(p, f) for p in parts])[t - 60 : t] for f in FIELDS)
            )
            want = service.latency_histogram(window, svc[t - 60 : t], VIEW_EDGES_S)
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
        rec.store(t, ready[:, t : t + tick], ready[:, t : t + tick])
        part = service.replay(
            rec.arrived, t, cap[t : t + tick], svc[t : t + tick], threshold, 1.0, started
        )
        started += float(part.served.sum())
        parts.append(part)
    rec.sync(steps)
    for f in FIELDS:
        want = np.concatenate([getattr(p, f) for p in parts])
        np.testing.assert_allclose(getattr(rec.queue, f), want, rtol=1e-9, atol=1e-9, err_msg=f)
    assert rec.queue.backlog.max() > 0  # the case covers queueing, not only calm steps


def test_unchanged_replicas_are_not_recomputed_each_tick():
    arrivals = np.full(2000, 5.0)
    rec = Record(arrivals, None, [pool()], 1.0, 1.0, VIEW_EDGES_S)
    rec.store(0, np.ones((1, 15), dtype=np.int64), np.ones((1, 15), dtype=np.int64))
    rec.sync(15)
    ahead, t = rec.ahead, 15
    assert ahead > 15  # ran past the last recorded step on the guess of one replica
    one = np.ones((1, 15), dtype=np.int64)
    while t + 15 <= ahead:
        rec.store(t, one, one)
        rec.sync(t + 15)
        t += 15
    assert rec.ahead == ahead  # the guess held: nothing recomputed
    rec.store(t, 2 * one, 2 * one)
    rec.sync(t + 15)
    assert rec.capacity[t - 1] == 10.0 and rec.capacity[t] == 20.0  # recomputed from the change
