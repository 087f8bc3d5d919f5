"""Knative's KPA (serving pkg/autoscaler/scaling/autoscaler.go) on its default metric.

The metric is concurrency: requests in the system (in service plus buffered by the
activator). Every 2 s: desired pods from the stable (60 s) and panic (6 s) window averages
divided by the per-pod target: `utilisation` (Knative's default target utilisation is 0.7)
x the concurrency a replica holds at its rated capacity (rated requests/s x service time,
Little's law). Both are clamped to [ready / maxScaleDownRate(2), ready x
maxScaleUpRate(1000)]. Panic starts when the panic desire reaches 2 x ready pods, never
scales down while it lasts, and ends 60 s after the last panicking tick. Going to zero waits
for the scale-to-zero grace period (30 s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from costscaler.sim.policy import ClusterView, one_pool

TICK_S = 2.0
STABLE_S = 60.0
PANIC_S = 6.0
PANIC_THRESHOLD = 2.0
MAX_UP_RATE = 1000.0
MAX_DOWN_RATE = 2.0
ZERO_GRACE_S = 30.0


@dataclass
class KPA:
    """Knative Pod Autoscaler for one pool (min/max scale from the deployment's bounds)."""

    pool: int
    utilisation: float
    min_replicas: int
    max_replicas: int
    name: str = "kpa"
    interval_s: float = TICK_S

    def __post_init__(self) -> None:
        self._panic_since: float | None = None
        self._max_panic = 0
        self._zero_since: float | None = None

    def _target(self, view: ClusterView) -> float:
        pool = view.pools[self.pool]
        return self.utilisation * pool.capacity_rps * max(pool.service_s, view.dt)

    def initial(self, view: ClusterView) -> list[int]:
        """Holds the running pods until the first tick (no concurrency reported yet)."""
        return list(view.desired)

    def desired(self, now: float, ready: int, stable: float, panic: float, target: float) -> int:
        """The KPA's pod count for one tick, before min/max scale and the zero grace."""
        pods = max(1, ready)
        up, down = math.ceil(MAX_UP_RATE * pods), math.floor(pods / MAX_DOWN_RATE)
        want_stable = min(up, max(down, math.ceil(stable / target)))
        want_panic = min(up, max(down, math.ceil(panic / target)))
        over = want_panic / pods >= PANIC_THRESHOLD
        if over:
            if self._panic_since is None:
                self._max_panic = ready
            self._panic_since = now
        elif self._panic_since is not None and now - self._panic_since > STABLE_S:
            self._panic_since = None
            self._max_panic = 0
        if self._panic_since is None:
            return want_stable
        self._max_panic = max(self._max_panic, want_panic)
        return self._max_panic

    def decide(self, view: ClusterView) -> list[int]:
        """One KPA tick."""
        want = self.desired(
            view.now_s,
            view.ready[self.pool],
            view.concurrency(STABLE_S),
            view.concurrency(PANIC_S),
            self._target(view),
        )
        want = max(self.min_replicas, min(self.max_replicas, want))
        if want == 0 and view.desired[self.pool] > 0:
            if self._zero_since is None:
                self._zero_since = view.now_s
            if view.now_s - self._zero_since < ZERO_GRACE_S:
                want = view.desired[self.pool]
        else:
            self._zero_since = None
        return one_pool(view.pools, self.pool, want)
