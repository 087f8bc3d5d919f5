"""What the handlers share: clients, metrics, per-deployment history and the batched readings.

Every InferenceDeployment has its own timer, but Prometheus is asked once per interval for all
of them: the first timer of a round refreshes the `ReadingCache`, the others read the result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from costscaler.adapters.kube import Kube
from costscaler.adapters.prometheus import FetchReport, Key, PrometheusSource, Reading, Target
from costscaler.controller.history import History
from costscaler.controller.metrics import Health, OperatorMetrics
from costscaler.controller.settings import Settings

NOT_YET = Reading(problem="NoData", message="no reading yet for this deployment")


class ReadingCache:
    """One batched fetch per round, shared by every deployment's timer.

    A round is `max_age` seconds (the tick interval): a timer finding the snapshot older
    refreshes it for everybody; a deployment missing from a fresh snapshot (just created)
    triggers a refresh at most once a second.
    """

    def __init__(
        self,
        source: PrometheusSource,
        targets: Callable[[], Sequence[Target]],
        max_age: float,
        on_fetch: Callable[[FetchReport, float], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source, self.targets, self.max_age = source, targets, max_age
        self.on_fetch, self.clock = on_fetch, clock
        self.readings: dict[Key, Reading] = {}
        self.taken = -float("inf")
        self.lock = asyncio.Lock()

    async def get(self, key: Key) -> Reading:
        """This deployment's reading from the current round (fetching it when due)."""
        async with self.lock:
            age = self.clock() - self.taken
            if age > self.max_age or (key not in self.readings and age > 1.0):
                started = self.clock()
                self.readings, report = await self.source.fetch(list(self.targets()))
                self.taken = self.clock()
                self.on_fetch(report, self.taken - started)
        return self.readings.get(key, NOT_YET)


@dataclass
class Runtime:
    """The operator's shared objects (kept in kopf's memo)."""

    settings: Settings
    kube: Kube
    cache: ReadingCache
    metrics: OperatorMetrics
    health: Health
    histories: dict[Key, History] = field(default_factory=dict)

    def history(self, key: Key, window_seconds: float) -> History:
        """The observation window of a deployment (created on first use)."""
        found = self.histories.get(key)
        if found is None or found.window != window_seconds:
            interval = self.settings.interval_seconds
            found = self.histories[key] = History(window_seconds, interval)
        return found
