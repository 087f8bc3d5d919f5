"""Start-up: past windows fetched once for every deployment; kopf's bounded connection pool."""

from __future__ import annotations

import asyncio

import numpy as np

from costscaler.adapters.backfill import Past
from costscaler.adapters.children import ChildState
from costscaler.adapters.prometheus import Reading, Target
from costscaler.adapters.promql import QuerySet
from costscaler.controller.history import History
from costscaler.controller.runtime import Backfill
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
