"""Pools that cannot deliver: out of stock, stalled, or blinded by the control plane.

Out of stock (`backoff`, `out_of_stock`): the cluster says so. The operator counts a
pool's replicas Pending past a grace period (the simulator: replicas waiting for spot
capacity that a trace says is not there) as unplaceable; any such replica takes the pool
out at once, and it is retried with exponential back-off, the clocks kept in `EngineState`.

Stalled (`stalled`) is the fallback when no such signal comes. A spot pool can have no
capacity at all for hours (a zone out of an instance type; ../shared/spot/ has such
stretches), and a quota or a scheduling constraint can do the same to any pool: the pods
stay Pending. The engine must not count capacity that is not coming, or it sizes the plan on
replicas that never serve. A pool is stalled when, within the observation window, some
replicas stayed warming for more than `STALL_FACTOR` times the pool's cold start with no
replica becoming ready in between. A stalled pool is capped at the replicas it has ready
until the stall leaves the window: the window's length is also how often such a pool is
probed again.

A readiness blip (`blip`) is neither: when the control plane loses sight of nodes, all
pools' ready replicas fall together. The engine holds rather than move replicas away from
pools that are fine.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from costscaler.core.types import FloatArray

STALL_FACTOR = 2.0


def stalled(
    times: FloatArray, ready: FloatArray, warming: FloatArray, cold_start_s: FloatArray
) -> NDArray[np.bool_]:
    """Per pool (rows of `ready` and `warming`, aligned with `times`): stalled in the window.

    Progress is a sample with nothing warming or with more replicas ready than the sample
    before; the first sample counts as progress (what came before is unknown).
    """
    n = ready.shape[0]
    if times.size == 0 or n == 0:
        return np.zeros(n, dtype=np.bool_)
    # NaN counts as 0 replicas; a NaN time is no sample (fmax skips it).
    warming_now = warming > 0
    r = np.where(np.isnan(ready), 0.0, ready)
    grew = np.ones(r.shape, dtype=np.bool_)
    np.greater(r[:, 1:], r[:, :-1], out=grew[:, 1:])
    progress = ~warming_now | grew
    last = np.fmax.accumulate(np.where(progress, times, -np.inf), axis=1)
    wait = STALL_FACTOR * np.asarray(cold_start_s, dtype=np.float64)
    return np.asarray((warming_now & (times - last > wait[:, None])).any(axis=1))


# Back-off of an out-of-stock pool's retries (s): the first after a minute, then doubling,
# at most half an hour apart. A stock-out is a fact the cluster reported (replicas Pending
# past their grace, nodes that failed to launch), so the pool is dropped at once; capacity
# comes back unannounced, so it is probed again, ever more rarely while it keeps failing.
RETRY_FIRST_S = 60.0
RETRY_MAX_S = 1800.0

# A readiness blip: within `BLIP_LOOKBACK_S`, every pool that had ready replicas (two or
# more, one of them on-demand) lost at least `BLIP_SHARE` of them while still asking for
# them. Spot reclaims never take on-demand replicas, and one pool's nodes failing does not
# take the others': that shape is the control plane (nodes NotReady, API unreachable).
BLIP_LOOKBACK_S = 900.0
BLIP_SHARE = 0.5


def backoff(
    stockouts: Mapping[str, tuple[float, float]], unplaced: Mapping[str, int], now: float
) -> dict[str, tuple[float, float]]:
    """Per pool, (retry at (s), back-off (s)) after this tick's signal `unplaced` (replicas
    the cluster says it cannot place, per pool).

    A pool with unplaced replicas and no record is out of stock until `now + RETRY_FIRST_S`.
    Unplaced replicas before the retry time are the ones already written off: the record
    stands. Unplaced replicas after it mean the retry failed: the back-off doubles (up to
    `RETRY_MAX_S`). A record whose retry time passed `RETRY_MAX_S` ago with no new signal is
    forgotten: the pool delivered, or was not asked, for as long as the longest back-off.
    """
    out: dict[str, tuple[float, float]] = {}
    for pool, (until, wait) in stockouts.items():
        if unplaced.get(pool, 0) <= 0 and now < until + RETRY_MAX_S:
            out[pool] = (until, wait)
    for pool, count in unplaced.items():
        if count <= 0:
            continue
        record = stockouts.get(pool)
        if record is None:
            out[pool] = (now + RETRY_FIRST_S, RETRY_FIRST_S)
        elif now < record[0]:
            out[pool] = record
        else:
            wait = min(2.0 * record[1], RETRY_MAX_S)
            out[pool] = (now + wait, wait)
    return out


def out_of_stock(stockouts: Mapping[str, tuple[float, float]], now: float) -> set[str]:
    """The pools whose retry time has not come yet."""
    return {pool for pool, (until, _) in stockouts.items() if now < until}


def probing(stockouts: Mapping[str, tuple[float, float]], now: float) -> set[str]:
    """The pools retried after a stock-out and not yet forgotten (`backoff`): on probation."""
    return {pool for pool, (until, _) in stockouts.items() if now >= until}


def blip(
    times: FloatArray, ready: FloatArray, warming: FloatArray, spot: NDArray[np.bool_]
) -> bool:
    """Whether the latest sample is a control-plane-wide readiness blip (see `BLIP_SHARE`).

    `ready`, `warming`: rows per pool aligned with `times` (NaN counts as 0); `spot`: per
    pool. Each pool's reference is its most ready replicas within `BLIP_LOOKBACK_S` before
    the latest sample; "still asking" is ready + warming at or above that reference.
    """
    if times.size < 2 or ready.shape[0] < 2:
        return False
    recent = times[:-1] >= times[-1] - BLIP_LOOKBACK_S
    if not recent.any():
        return False
    ref = np.nan_to_num(ready[:, :-1][:, recent], nan=0.0).max(axis=1)
    had = ref > 0
    if had.sum() < 2 or spot[had].all():
        return False
    r = np.nan_to_num(ready[:, -1], nan=0.0)[had]
    asked = r + np.nan_to_num(warming[:, -1], nan=0.0)[had]
    return bool((r <= (1.0 - BLIP_SHARE) * ref[had]).all() and (asked >= ref[had]).all())
