"""Start-up: past windows fetched once for every deployment; kopf's bounded connection pool."""

from __future__ import annotations

import asyncio

import numpy as np

from costscaler.adapters.backfill import Past
from costscaler.adapters.children import ChildState
from costscaler.adapters.prometheus import Reading, Target
from costscaler.adapters.promql import QuerySet
from costscaler.controller.history import History
from costscaler.controller.runtime import Backfill, Runtime
from costscaler.controller.session import connection_limit
from costscaler.controller.settings import Settings

QUERIES = QuerySet("rate", None, "latency", None, None)


def past(start: float, n: int, step: float = 15.0) -> Past:
    times = start + step * np.arange(n)
    return Past(times, np.arange(n, dtype=float), np.full(n, 0.4), np.full(n, np.nan))


def child(pool: str, ready: int, warming: int = 0) -> ChildState:
    return ChildState(
        namespace="ml", owner="m", pool=pool, name=f"m-{pool}", desired=ready + warming,
        ready=ready, warming=warming, template_hash="h",
    )  # fmt: skip


class RecordingFetch:
    """Returns a past for each target asked and records every batch."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, str]]] = []

    async def __call__(self, targets, now: float) -> dict:
        self.batches.append([t.key for t in targets])
        return {t.key: past(now - 60, 5) for t in targets}


def test_history_backfill_fills_an_empty_window_then_ticks_append():
    h = History(window_seconds=60, interval_seconds=15)  # 6 rows
    assert h.backfill(past(1000, 10), [child("spot", 2, warming=1), child("od", 1)]) == 5
    obs = h.observations(has_tokens=False)
    assert obs.times.tolist() == [1075.0, 1090.0, 1105.0, 1120.0, 1135.0]  # newest that fit
    assert obs.request_rate.tolist() == [5.0, 6.0, 7.0, 8.0, 9.0]
    assert (obs.ready["spot"] == 2).all() and (obs.warming["spot"] == 0).all()
    assert (obs.lost["spot"] == 0).all()
    h.add(1150.0, Reading({"spot": 3.0}, latency_seconds=0.5), [child("spot", 2), child("od", 1)])
    obs = h.observations(has_tokens=False)
    assert obs.times[-1] == 1150.0 and obs.request_rate[-1] == 3.0
    assert obs.times[0] >= 1150.0 - 60
    assert h.backfill(past(0, 3), []) == 0  # a window with samples is never overwritten


def test_backfill_fetches_once_for_every_deployment_then_only_for_new_ones():
    fetch = RecordingFetch()
    known = [Target(("ml", f"m{i}"), QUERIES, 0.95, 1.0) for i in range(3)]
    backfill = Backfill(fetch, lambda: known, clock=lambda: 10_000.0)

    async def first_ticks() -> list[Past | None]:
        return await asyncio.gather(*(backfill.past(t.key) for t in known))

    pasts = asyncio.run(first_ticks())
    assert len(fetch.batches) == 1 and sorted(fetch.batches[0]) == [t.key for t in known]
    assert all(p is not None and p.times[-1] == 10_000 - 60 + 60 for p in pasts)
    assert asyncio.run(backfill.past(("ml", "m0"))) is None  # asked once per process
    known.append(Target(("ml", "new"), QUERIES, 0.95, 1.0))
    assert asyncio.run(backfill.past(("ml", "new"))) is not None
    assert fetch.batches[1] == [("ml", "new")]
    backfill.forget(("ml", "new"))
    asyncio.run(backfill.past(("ml", "new")))
    assert len(fetch.batches) == 3


def test_kopf_connection_pool_leaves_room_for_every_watch():
    one = Settings(namespaces=["a"], kube_connections=32)
    three = Settings(namespaces=["a", "b", "c"], kube_connections=32)
    assert connection_limit(one) == 32 + 5 + 4
    assert connection_limit(three) == connection_limit(one) + 2 * 4
    assert connection_limit(Settings(all_namespaces=True, kube_connections=8)) == 8 + 5 + 4


def _runtime(known: list[Target], fetch: RecordingFetch, interval: float = 15) -> Runtime:
    settings = Settings(namespaces=["ml"], interval_seconds=interval)
    # Prometheus's past ends a second before the tick that asks for it.
    backfill = Backfill(fetch, lambda: known, clock=lambda: CLOCK[0] - 1.0)
    # Only the windows are exercised: no clients, cache or metrics needed.
    return Runtime(settings, None, None, None, None, backfill)  # type: ignore[arg-type]


CLOCK = [0.0]


def _tick(rt: Runtime, key, now: float) -> History:
    """What the tick handler does with the window: get it, backfill it if empty, add a row."""
    CLOCK[0] = now
    history = rt.history(key, 3600, now)
    if not history.n and (found := asyncio.run(rt.backfill.past(key))) is not None:
        history.backfill(found, [child("od", 2)])
    history.add(now, Reading({"od": 2.0}, latency_seconds=0.4), [child("od", 2)])
    return history


def test_a_window_with_a_hole_starts_over_from_prometheus():
    """A timer held back for minutes would decide on a window whose last rows are old."""
    fetch = RecordingFetch()
    known = [Target(("ml", f"m{i}"), QUERIES, 0.95, 1.0) for i in range(2)]
    rt = _runtime(known, fetch)
    for now in (10_000.0, 10_015.0, 10_030.0):
        _tick(rt, known[0].key, now)
    first = _tick(rt, known[1].key, 10_031.0)
    assert len(fetch.batches) == 1 and first.n == 6  # 5 past rows and this tick's
    for now in (10_045.0, 10_060.0, 10_075.0, 10_090.0):  # m1's timer is held back meanwhile
        _tick(rt, known[0].key, now)
    again = _tick(rt, known[1].key, 10_100.0)
    assert fetch.batches[-1] == [known[1].key], "only the stale window is fetched again"
    assert again is not first and again.n == 6
    assert again.observations(has_tokens=False).times[-1] == 10_100.0
    assert _tick(rt, known[0].key, 10_105.0).n == 3 + 4 + 1 + 5  # untouched, never refetched


def test_a_paused_process_backfills_every_window_in_one_batch():
    """A standby that acted before and takes over again: all its windows are an hour old."""
    fetch = RecordingFetch()
    known = [Target(("ml", f"m{i}"), QUERIES, 0.95, 1.0) for i in range(3)]
    rt = _runtime(known, fetch)
    for t in known:
        _tick(rt, t.key, 10_000.0)
    assert len(fetch.batches) == 1
    resumed = [_tick(rt, t.key, 13_600.0 + i) for i, t in enumerate(known)]
    assert len(fetch.batches) == 2 and sorted(fetch.batches[1]) == [t.key for t in known]
    for h in resumed:
        times = h.observations(has_tokens=False).times
        assert times.min() > 10_000.0, "no row from before the pause is left"


def test_ticks_late_by_seconds_keep_their_window():
    """A short interval on a busy machine: ticks seconds late are not a pause (30 s floor)."""
    fetch = RecordingFetch()
    known = [Target(("ml", "m0"), QUERIES, 0.95, 1.0)]
    rt = _runtime(known, fetch, interval=2)
    window = _tick(rt, known[0].key, 10_000.0)
    for now in (10_002.0, 10_020.0, 10_045.0):  # 18 s and 25 s late: over 3 intervals
        assert _tick(rt, known[0].key, now) is window
    assert len(fetch.batches) == 1


class HungFetch:
    """A Prometheus that answers only when released (or never)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls = 0

    async def __call__(self, targets, now: float) -> dict:
        self.calls += 1
        await self.release.wait()
        return {t.key: past(now - 60, 5) for t in targets}


def test_a_hung_backfill_costs_each_tick_at_most_the_deadline_and_holds_no_lock():
    """Before, one lock was held over an unbounded fetch: every first tick queued behind it."""
    fetch = HungFetch()
    known = [Target(("ml", f"m{i}"), QUERIES, 0.95, 1.0) for i in range(3)]
    backfill = Backfill(fetch, lambda: known, clock=lambda: 10_000.0, deadline=0.05)

    async def ticks() -> tuple[list[Past | None], float, Past | None]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        pasts = await asyncio.gather(*(backfill.past(t.key) for t in known))
        waited = loop.time() - started
        fetch.release.set()  # the answer comes after every waiter gave up
        await asyncio.sleep(0.01)
        return pasts, waited, await backfill.past(known[0].key)

    pasts, waited, late = asyncio.run(ticks())
    assert pasts == [None, None, None] and fetch.calls == 1
    assert waited < 0.5, "the three waits ran side by side, each bounded by the deadline"
    assert late is None and not backfill.found, "a late answer is dropped, not kept forever"


def test_a_failed_backfill_leaves_the_windows_to_fill_tick_by_tick():
    async def broken(targets, now: float) -> dict:
        raise ConnectionError("prometheus unreachable")

    known = [Target(("ml", "m0"), QUERIES, 0.95, 1.0)]
    backfill = Backfill(broken, lambda: known, clock=lambda: 10_000.0, deadline=1.0)
    assert asyncio.run(backfill.past(("ml", "m0"))) is None
    assert not backfill.pending
