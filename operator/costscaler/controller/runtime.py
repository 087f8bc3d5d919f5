"""What the handlers share: clients, metrics, per-deployment history and the batched readings.

Every InferenceDeployment has its own timer, but Prometheus is asked once per interval for all
of them: the first timer of a round refreshes the `ReadingCache`, the others read the result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from costscaler.adapters.backfill import Past
from costscaler.adapters.karpenter import NodePools
from costscaler.adapters.kube import Kube
from costscaler.adapters.prometheus import FetchReport, Key, PrometheusSource, Reading, Target
from costscaler.controller.budget_tick import BudgetBook
from costscaler.controller.history import History
from costscaler.controller.metrics import Health, OperatorMetrics
from costscaler.controller.settings import Settings
from costscaler.core.types import WarmNeed

log = logging.getLogger(__name__)
NOT_YET = Reading(problem="NoData", message="no reading yet for this deployment")
# Intervals without a tick after which a window counts as stale (see `Runtime.history`), and
# at least so many seconds: a busy machine delays a short interval's ticks by seconds, which
# is no reason to drop what the window knows of warming replicas and spot losses.
PAUSE_TICKS = 3
PAUSE_MIN_SECONDS = 30.0
# Longer than a pause of the ticks (`PAUSE_MIN_SECONDS`, three intervals) by far.
VOLUNTARY_MEMORY_S = 900.0


class ReadingCache:
    """One batched fetch per round, shared by every deployment's timer.

    A round is `max_age` seconds (the tick interval): a timer finding the snapshot older
    starts a refresh for everybody; a deployment missing from a fresh snapshot (just created)
    triggers one at most once a second. Timers arriving while a refresh runs wait for that
    one, bounded by the source's deadline (shorter than the interval); no lock is held over
    the fetch, and no second fetch starts while one runs, so a hung Prometheus costs each tick
    at most the deadline and no backlog of ticks builds up behind it.

    A query that failed leaves each deployment its last reading, marked `QueryFailed`: its
    figures stay at hand, but the engine holds and `MetricsAvailable=False` appears.
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
        self.refresh: asyncio.Task[None] | None = None

    async def get(self, key: Key) -> Reading:
        """This deployment's reading from the current round (fetching it when due)."""
        age = self.clock() - self.taken
        if self.refresh is None and (
            age > self.max_age or (key not in self.readings and age > 1.0)
        ):
            self.refresh = asyncio.get_running_loop().create_task(self._refresh())
        if self.refresh is not None:
            # Shielded: a tick cancelled while waiting does not cancel everybody's fetch.
            await asyncio.shield(self.refresh)
        return self.readings.get(key, NOT_YET)

    async def _refresh(self) -> None:
        started = self.clock()
        try:
            fresh, report = await self.source.fetch(list(self.targets()))
            self.readings = {k: _marked(self.readings.get(k), r) for k, r in fresh.items()}
            # The round starts when the fetch did: a slow fetch does not stretch the interval.
            self.taken = started
            self.on_fetch(report, self.clock() - started)
        finally:
            self.refresh = None


def _marked(last: Reading | None, new: Reading) -> Reading:
    """A failed query keeps the last reading's figures, marked as not usable now."""
    if new.problem != "QueryFailed" or last is None:
        return new
    return replace(last, problem=new.problem, message=new.message)


class Backfill:
    """Past windows for deployments without history, fetched in one batch for all of them.

    The first tick of a deployment the operator has no history for (after a start, a restart
    or a takeover) asks for its past; the first such tick of a round starts the fetch for
    every known deployment lacking history at once (`adapters.backfill`), the others wait for
    that same fetch. A deployment is asked for once per process (a new one has no past to find).

    No lock is held over a fetch and every wait is bounded by `deadline` seconds: a hung or
    slow Prometheus costs a tick at most that, after which the deployment decides on the
    window it builds tick by tick, as a new one does. A fetch that answers after its waiter
    gave up keeps nothing for it (that window has rows by then and is never backfilled).
    """

    def __init__(
        self,
        fetch: Callable[[Sequence[Target], float], Awaitable[dict[Key, Past]]],
        targets: Callable[[], Sequence[Target]],
        clock: Callable[[], float] = time.time,
        deadline: float = 30.0,
    ) -> None:
        self.fetch, self.targets, self.clock, self.deadline = fetch, targets, clock, deadline
        self.tried: set[Key] = set()
        self.found: dict[Key, Past] = {}
        # The running fetch of each deployment asked for and not yet answered.
        self.pending: dict[Key, asyncio.Task[None]] = {}

    async def past(self, key: Key) -> Past | None:
        """This deployment's past (once), or None when it was already asked for, or when no
        answer came within the deadline."""
        if key not in self.tried:
            todo = [t for t in self.targets() if t.key not in self.tried]
            self.tried.update(t.key for t in todo)
            self.tried.add(key)
            keys = {t.key for t in todo}
            if key in keys:
                fetching = asyncio.get_running_loop().create_task(self._run(todo))
                self.pending.update(dict.fromkeys(keys, fetching))
        task = self.pending.get(key)
        if task is not None:
            # Shielded: a tick that gives up (or is cancelled) leaves the others' fetch alone.
            done, _ = await asyncio.wait([asyncio.shield(task)], timeout=self.deadline)
            if not done:
                self.pending.pop(key, None)  # too late: whatever comes is dropped
                return None
        return self.found.pop(key, None)

    async def _run(self, todo: Sequence[Target]) -> None:
        pasts: dict[Key, Past] = {}
        try:
            pasts = await self.fetch(todo, self.clock())
        except Exception as error:  # the windows then fill tick by tick, as new ones do
            log.warning("backfill of %d deployments failed: %s", len(todo), error)
        finally:
            me = asyncio.current_task()  # a key forgotten and asked again waits on another
            waiting = [t.key for t in todo if self.pending.get(t.key) is me]
            for k in waiting:
                del self.pending[k]
        self.found.update((k, pasts[k]) for k in waiting if k in pasts)

    def forget(self, key: Key) -> None:
        """A deleted deployment, or a stale window: ask again for this one."""
        self.tried.discard(key)
        self.found.pop(key, None)
        self.pending.pop(key, None)

    def forget_all(self) -> None:
        """Every window went stale (the process was paused): ask again for all, in one batch."""
        self.tried.clear()
        self.found.clear()
        self.pending.clear()


@dataclass
class Runtime:
    """The operator's shared objects (kept in kopf's memo)."""

    settings: Settings
    kube: Kube
    cache: ReadingCache
    metrics: OperatorMetrics
    health: Health
    backfill: Backfill
    # Process-wide, not in kopf's memo: see `budgets.book`.
    budgets: BudgetBook = field(default_factory=BudgetBook)
    histories: dict[Key, History] = field(default_factory=dict)
    # Ready nodes matching each CapacityPool's placement, as its status timer last counted.
    pool_nodes: dict[str, int] = field(default_factory=dict)
    last_tick: float | None = None
    # The node layer's writer (None when it is off), and each deployment's latest use for
    # warm spare nodes, which the pool timer sizes the pools' buffers from.
    nodepools: NodePools | None = None
    warm_needs: dict[Key, WarmNeed] = field(default_factory=dict)
    # Warm spare nodes each pool with a NodePool holds, as its status timer last kept them.
    pool_warm: dict[str, int] = field(default_factory=dict)
    # Accelerators free on each Ready node of each pool's NodePool (`node_layer`), which the
    # deployments' decisions read as slots that start at the model load alone.
    pool_free: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # Pools whose NodePool launches nothing for their waiting pods (condition
    # NoOfferingLaunched, NodePoolLimitReached): their Pending pods are a stock-out at once
    # (`shortfall`).
    stalled_pools: set[str] = field(default_factory=set)
    # Per deployment, the nodes holding its replicas at its last tick, and the nodes Karpenter
    # was seen taking on purpose with when (`controller.interruptions`).
    held_nodes: dict[Key, dict[str, frozenset[str]]] = field(default_factory=dict)
    voluntary: dict[str, float] = field(default_factory=dict)

    def seen_voluntary(self, nodes: Iterable[str], now: float) -> dict[str, float]:
        """Remember nodes Karpenter disrupts on purpose for `VOLUNTARY_MEMORY_S` (the claim
        that says so may be gone by the tick that sees its node gone); returns them all."""
        for node in nodes:
            self.voluntary[node] = now
        for node in [n for n, t in self.voluntary.items() if now - t > VOLUNTARY_MEMORY_S]:
            del self.voluntary[node]
        return self.voluntary

    def history(self, key: Key, window_seconds: float, now: float) -> History:
        """The observation window of a deployment at `now` (epoch s), created on first use.

        A window whose newest sample is older than `PAUSE_TICKS` intervals (and
        `PAUSE_MIN_SECONDS`) has a hole: a standby that acted before and takes over again, a
        process stalled, a timer held back. Deciding on it would read the load of long ago as
        recent, so it starts over and is backfilled from Prometheus. When no tick at all ran
        for that long the whole process was paused: every window is dropped at once, so that
        one batch of range queries backfills them all rather than one batch per deployment.
        """
        interval = self.settings.interval_seconds
        stale_after = max(PAUSE_TICKS * interval, PAUSE_MIN_SECONDS)
        if self.last_tick is not None and now - self.last_tick > stale_after:
            self.histories.clear()
            self.backfill.forget_all()
        self.last_tick = now if self.last_tick is None else max(self.last_tick, now)
        found = self.histories.get(key)
        stale = found is not None and found.n > 0 and now - found.newest > stale_after
        if stale:
            self.backfill.forget(key)
        if found is None or found.window != window_seconds or stale:
            found = self.histories[key] = History(window_seconds, interval)
        return found
