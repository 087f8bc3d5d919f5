"""HorizontalPodAutoscaler autoscaling/v2 and KEDA's Prometheus scaler on top of it.

Follows kubernetes pkg/controller/podautoscaler (replica_calculator.go, horizontal.go):
- Pods metric (AverageValue): ratio = (sum over ready pods / ready) / target; within the
  0.1 tolerance nothing changes; pods without metrics (warming: the model server exports
  none until it is up) count as 0 on scale-up and as 100 % of target on scale-down, and a
  correction that flips the direction keeps the current count.
- External metric AverageValue (KEDA): replicas = ceil(total / target) unless
  |1 - total / (target x current)| <= 0.1.
- Behaviour defaults: scale-up stabilisation 0 s, at most max(+100 %, +4 pods) per 15 s;
  scale-down stabilisation 300 s (the highest recommendation in the window), 100 % per 15 s.
- Sync every 15 s; the HPA does not act at 0 replicas (KEDA's activation does).
KEDA polls Prometheus every 30 s (the HPA reads the cached value), scales 0 -> 1 when the
value exceeds activationThreshold and back to 0 after cooldownPeriod (300 s) without it.
Metrics outages (`sim.scenario`): the HPA holds when its metric is unavailable; KEDA reads
an empty result as 0 with `ignoreNullValues` (default true), and when the query fails (or
`ignoreNullValues` is false) it holds, or after `failureThreshold` (3) failed polls scales
to `fallback.replicas` when a fallback is set.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from costscaler.sim.policy import ClusterView, one_pool

TOLERANCE = 0.1
SYNC_S = 15.0
DOWN_WINDOW_S = 300.0
RATE_WINDOW_S = 60.0


def pods_metric_replicas(
    current: int, ready: int, missing: int, total: float, target: float
) -> int:
    """Replicas for a Pods AverageValue metric (calcPlainMetricReplicas); `total` over ready."""
    if ready == 0:
        return current  # no pod reports a metric: the HPA errors and holds
    ratio = total / ready / target
    if missing == 0:
        return current if abs(1.0 - ratio) <= TOLERANCE else math.ceil(ratio * ready)
    filled = total + (target * missing if ratio < 1.0 else 0.0)
    new_ratio = filled / (target * (ready + missing))
    if abs(1.0 - new_ratio) <= TOLERANCE or (ratio < 1.0) != (new_ratio < 1.0):
        return current
    replicas = math.ceil(new_ratio * (ready + missing))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current
    return replicas


def external_metric_replicas(current: int, total: float, target: float) -> int:
    """Replica count for an External AverageValue metric (GetExternalPerPodMetricReplicas)."""
    if current > 0 and abs(1.0 - total / (target * current)) <= TOLERANCE:
        return current
    return math.ceil(total / target)


@dataclass
class Behavior:
    """Default HPA behaviour: stabilisation windows and rate limits, with their history."""

    min_replicas: int
    max_replicas: int
    recommendations: deque[tuple[float, int]] = field(default_factory=deque)
    scale_ups: deque[tuple[float, int]] = field(default_factory=deque)

    def normalize(self, now: float, current: int, desired: int) -> int:
        """Stabilise, rate-limit and clamp a raw recommendation (horizontal.go)."""
        self.recommendations.append((now, desired))
        while self.recommendations and self.recommendations[0][0] <= now - DOWN_WINDOW_S:
            self.recommendations.popleft()
        stable = min(current, max(r for _, r in self.recommendations))
        stable = max(stable, desired)  # scale-up window 0 s: only this recommendation
        while self.scale_ups and self.scale_ups[0][0] <= now - SYNC_S:
            self.scale_ups.popleft()
        if stable > current:
            start = current - sum(n for _, n in self.scale_ups)
            stable = min(stable, max(2 * start, start + 4))
        # scale-down policy 100 % per 15 s never binds above 0 replicas
        result = max(self.min_replicas, min(self.max_replicas, stable))
        if result > current:
            self.scale_ups.append((now, result - current))
        return result


@dataclass
class HPA:
    """HPA on per-pod request rate, target = `utilisation` x the replica's rated capacity."""

    pool: int
    utilisation: float
    min_replicas: int
    max_replicas: int
    name: str = "hpa"
    interval_s: float = SYNC_S
    rate_window_s: float = RATE_WINDOW_S  # the custom-metrics adapter's rate() range

    def __post_init__(self) -> None:
        self.behavior = Behavior(max(1, self.min_replicas), self.max_replicas)

    def _target(self, view: ClusterView) -> float:
        return self.utilisation * view.pools[self.pool].capacity_rps

    def initial(self, view: ClusterView) -> list[int]:
        """Holds the running replicas; a new HPA's history starts with them (horizontal.go)."""
        self.behavior.recommendations.append((view.now_s, view.desired[self.pool]))
        return list(view.desired)

    def decide(self, view: ClusterView) -> list[int]:
        """One HPA sync."""
        current = view.desired[self.pool]
        if current == 0:
            return list(view.desired)
        ready, warming = view.ready[self.pool], view.warming[self.pool]
        rate = view.rate(self.rate_window_s)
        if math.isnan(rate):
            return list(view.desired)  # the metrics API fails: the HPA cannot compute, holds
        raw = pods_metric_replicas(current, ready, warming, rate, self._target(view))
        new = self.behavior.normalize(view.now_s, current, raw)
        return one_pool(view.pools, self.pool, new)


@dataclass
class KEDA:
    """KEDA ScaledObject with a Prometheus trigger `sum(rate(requests[1m]))`, AverageValue."""

    pool: int
    threshold_rps: float
    min_replicas: int
    max_replicas: int
    activation_threshold: float = 0.0
    polling_s: float = 30.0
    cooldown_s: float = 300.0
    fallback_replicas: int | None = None
    failure_threshold: int = 3
    ignore_null_values: bool = True
    name: str = "keda"
    interval_s: float = SYNC_S
    rate_window_s: float = RATE_WINDOW_S  # the trigger query's rate() range

    def __post_init__(self) -> None:
        self.behavior = Behavior(max(1, self.min_replicas), self.max_replicas)
        self._value = 0.0
        self._polled = -math.inf
        self._last_active = 0.0
        self._failures = 0

    def initial(self, view: ClusterView) -> list[int]:
        """Holds the running replicas; its HPA's history starts with them (horizontal.go)."""
        self.behavior.recommendations.append((view.now_s, view.desired[self.pool]))
        return list(view.desired)

    def decide(self, view: ClusterView) -> list[int]:
        """One HPA sync reading KEDA's value; activation and cooldown at each poll."""
        now, current = view.now_s, view.desired[self.pool]
        if now - self._polled >= self.polling_s:
            self._polled = now
            value = view.rate(self.rate_window_s)
            empty = view.metrics in ("gap", "nan")
            if math.isnan(value) and empty and self.ignore_null_values:
                value = 0.0  # an empty result reads as 0 (ignoreNullValues, the default)
            if math.isnan(value):
                self._failures += 1
                fallback = self.fallback_replicas
                if fallback is not None and self._failures >= self.failure_threshold:
                    return one_pool(view.pools, self.pool, fallback)
                return list(view.desired)  # the scaler errors: the HPA holds
            self._failures = 0
            self._value = value
            if self._value > self.activation_threshold:
                self._last_active = now
            elif self.min_replicas == 0 and now - self._last_active >= self.cooldown_s:
                return one_pool(view.pools, self.pool, 0)
            if current == 0 and self._value > self.activation_threshold:
                return one_pool(view.pools, self.pool, 1)
        elif self._failures:  # between polls the HPA reads what the last poll served
            fallback = self.fallback_replicas
            if fallback is not None and self._failures >= self.failure_threshold:
                return one_pool(view.pools, self.pool, fallback)
            return list(view.desired)
        if current == 0:
            return list(view.desired)
        raw = external_metric_replicas(current, self._value, self.threshold_rps)
        new = self.behavior.normalize(now, current, raw)
        return one_pool(view.pools, self.pool, new)
