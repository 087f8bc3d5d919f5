"""Pools that cannot deliver: replicas requested long ago that never became ready.

A spot pool can have no capacity at all for hours (a zone out of an instance type;
../shared/spot/ has such stretches), and a quota or a scheduling constraint can do the
same to any pool: the pods stay Pending. The engine must not count capacity that is not
coming, or it sizes the plan on replicas that never serve. A pool is stalled when, within
the observation window, some replicas stayed warming for more than `STALL_FACTOR` times
the pool's cold start with no replica becoming ready in between. A stalled pool is capped
at the replicas it has ready until the stall leaves the window: the window's length is
also how often such a pool is probed again.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from costscaler.core import _kernels
from costscaler.core.types import FloatArray

STALL_FACTOR = 2.0


def stalled(
    times: FloatArray, ready: FloatArray, warming: FloatArray, cold_start_s: FloatArray
) -> NDArray[np.bool_]:
    """Per pool (rows of `ready` and `warming`, aligned with `times`): stalled in the window.

    Progress is a sample with nothing warming or with more replicas ready than the sample
    before; the first sample counts as progress (what came before is unknown).
    """
    n, t = ready.shape
    if times.size == 0 or n == 0:
        return np.zeros(n, dtype=np.bool_)
    # Compiled (`_kernels.c`): a scan of a few pools over the window, where numpy's calls
    # cost more than the loop.
    flags = _kernels.stalled(
        np.ascontiguousarray(times, dtype=np.float64),
        np.ascontiguousarray(ready, dtype=np.float64),
        np.ascontiguousarray(warming, dtype=np.float64),
        np.ascontiguousarray(STALL_FACTOR * cold_start_s, dtype=np.float64),
        n,
        t,
    )
    return np.frombuffer(flags, dtype=np.bool_).copy()
