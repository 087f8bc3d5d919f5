"""Capacity: replicas needed for a demand, and an online calibrator of per-replica capacity.

The declared per-replica capacity (req/s within the SLO, from the workload's profiles) is a
user's measurement, often optimistic or stale. The calibrator keeps one multiplier `scale` on
all profiles and nudges it from observed (rate, latency quantile, ready replicas) samples:

- a sample where the latency met the threshold while the replicas carried `u` times their
  declared capacity says capacity >= u x declared; if u > scale, scale moves toward u;
- a sample where the latency missed while carrying u < scale says capacity < u; scale moves
  toward u, but only if u >= `MIN_LOAD_FOR_MISS` x scale: a miss at a small fraction of rated
  load is a latency outlier (a slow request, a GC pause), not a capacity limit; and only
  if the latency is not below what it was `DRAIN_LAG` samples before. A latency over the
  threshold that falls is a backlog draining (after a burst, a start-up, added capacity:
  the replicas serve faster than requests arrive, which says capacity > u). The comparison
  reaches back a few samples because histogram quantiles move in steps: a draining queue
  repeats a value before the next step down, while one that replicas cannot keep up with
  climbs or stays on the top bucket.

Evidence of weakness ages: between samples a multiplier below 1 relaxes toward the declared
capacity (1.0) with a half-life of `HALF_LIFE_S`. A plan sized on a lowered multiplier never
loads its replicas enough to show they are stronger, so without it one bad episode (a
start-up backlog, a noisy neighbour that left) would size the deployment for the rest of
its life; a real shortfall is learned again within a few loaded samples. A raised one needs
no such pull: the plan sized on it loads the replicas to it, and misses lower it.

It never trusts one bad sample: only steady samples count (the same ready replicas as the
sample before, nothing lost, finite values); each moves `scale` by at most `STEP` of the gap
(so one outlier shifts it by a few percent and it takes a consistent run of evidence to move
far); each sample is consumed once (`until`); and `scale` stays in [`MIN_SCALE`, `MAX_SCALE`].
"""

from __future__ import annotations

import math

import numpy as np

from costscaler.core.types import FloatArray

STEP = 0.05
MIN_SCALE = 0.5
MAX_SCALE = 2.0
MIN_LOAD_FOR_MISS = 0.5
HALF_LIFE_S = 6 * 3600.0
DRAIN_LAG = 4


def replicas_needed(demand_rps: float, capacity_rps: float, scale: float = 1.0) -> int:
    """Replicas to serve `demand_rps` within the SLO: ceil(demand / (capacity x scale)).

    A relative tolerance of 1e-9 keeps float noise (3.0000000001 replicas) from adding one.
    """
    if not demand_rps > 0:
        return 0
    per = capacity_rps * scale
    if not per > 0:
        raise ValueError("capacity_rps x scale must be > 0")
    return max(0, math.ceil(demand_rps / per - 1e-9))


def calibrate(
    scale: float,
    until: float,
    times: FloatArray,
    rate: FloatArray,
    latency: FloatArray,
    declared_rps: FloatArray,
    steady: FloatArray,
    threshold_s: float,
) -> tuple[float, float]:
    """Fold the samples after `until` into `scale`; return (new scale, new until).

    `declared_rps[k]`: declared capacity (req/s) of the replicas ready at sample k, summed
    over pools; `steady[k]`: 1 when sample k is steady (see the module docstring), else 0.
    """
    # Only the tail after `until` is new (times increase): work on it, not the whole window.
    # The tail is a sample or two per tick, so the loop runs on plain floats.
    start = int(np.searchsorted(times, until, side="right"))
    if start >= times.size:
        return scale, until
    base = max(start - DRAIN_LAG, 0)  # the drain check reaches DRAIN_LAG samples back
    lat: list[float] = latency[base:].tolist()
    offset = start - base
    last = until if math.isfinite(until) else float(times[start])
    for k, (t, r, cap, still) in enumerate(
        zip(
            times[start:].tolist(),
            rate[start:].tolist(),
            declared_rps[start:].tolist(),
            steady[start:].tolist(),
            strict=True,
        )
    ):
        if scale < 1.0:
            scale = 1.0 + (scale - 1.0) * 2.0 ** (-(t - last) / HALF_LIFE_S)
        last = t
        x = lat[offset + k]
        if not (
            math.isfinite(r) and math.isfinite(x) and cap > 0 and still > 0 and r > 0 and x >= 0
        ):
            continue
        u = r / cap
        if x <= threshold_s:
            if u > scale:
                scale += STEP * (min(u, MAX_SCALE) - scale)
            continue
        # A miss with the latency below where it was DRAIN_LAG samples ago is a backlog
        # draining (never when that sample is missing or not finite: False either way).
        j = offset + k - DRAIN_LAG
        drain = j >= 0 and x < lat[j]
        if not drain and MIN_LOAD_FOR_MISS * scale <= u < scale:
            scale += STEP * (max(u, MIN_SCALE) - scale)
    scale = min(max(scale, MIN_SCALE), MAX_SCALE)
    return scale, last
