"""The reading cache under a slow or failing Prometheus: one fetch, bounded waits, last figures."""

from __future__ import annotations

import asyncio
import time

from costscaler.adapters.prometheus import FetchReport, Reading, Target
from costscaler.adapters.promql import QuerySet
from costscaler.controller.runtime import ReadingCache

Q = QuerySet("r", None, "l", None, None)
TARGETS = [Target(("ml", f"d{i}"), Q, 0.95, 1.0) for i in range(50)]


class ScriptedSource:
    """Answers each fetch after `delay` s with the next of `rounds` (a rate, or None: failed)."""

    def __init__(self, rounds: list[float | None], delay: float = 0.0) -> None:
        self.rounds, self.delay, self.fetches = rounds, delay, 0

    async def fetch(self, targets):  # type: ignore[no-untyped-def]
        rate = self.rounds[min(self.fetches, len(self.rounds) - 1)]
        self.fetches += 1
        await asyncio.sleep(self.delay)
        if rate is None:
            failed = Reading(problem="QueryFailed", message="r: no answer within the deadline")
            return {t.key: failed for t in targets}, FetchReport(1, 1, {"r": "timeout"})
        return {t.key: Reading(rate_by_pool={"p": rate}) for t in targets}, FetchReport(1)


def _cache(source: ScriptedSource, clock: list[float]) -> ReadingCache:
    return ReadingCache(source, lambda: TARGETS, 2.0, lambda r, s: None, lambda: clock[0])  # type: ignore[arg-type]


def test_a_failed_fetch_keeps_the_last_figures_marked_query_failed():
    clock = [100.0]
    cache = _cache(ScriptedSource([3.0, None, 5.0]), clock)

    async def scenario() -> list[Reading]:
        seen = [await cache.get(("ml", "d1"))]
        clock[0] += 2.5
        seen.append(await cache.get(("ml", "d1")))
        clock[0] += 2.5
        seen.append(await cache.get(("ml", "d1")))
        return seen

    good, failed, back = asyncio.run(scenario())
    assert good.problem is None and good.rate_by_pool == {"p": 3.0}
    assert failed.problem == "QueryFailed" and "deadline" in failed.message
    assert failed.rate_by_pool == {"p": 3.0}  # what was last seen, not usable for deciding
    assert failed.request_rate is None
    assert back.problem is None and back.rate_by_pool == {"p": 5.0}


def test_ticks_arriving_during_a_slow_fetch_share_it_and_wait_only_for_it():
    clock = [100.0]
    source = ScriptedSource([1.0], delay=0.3)
    cache = _cache(source, clock)

    async def round_() -> float:
        started = time.monotonic()
        readings = await asyncio.gather(*(cache.get(t.key) for t in TARGETS))
        assert all(r.request_rate == 1.0 for r in readings)
        return time.monotonic() - started

    async def scenario() -> list[float]:
        took = [await round_()]
        clock[0] += 2.5
        took.append(await round_())
        return took

    took = asyncio.run(scenario())
    assert source.fetches == 2  # one per round for 50 deployments, not one per tick
    assert all(t < 0.3 * 2 for t in took)  # each waits for the one fetch, not a queue of them


def test_the_fetch_deadline_is_shorter_than_the_interval():
    from costscaler.controller.settings import Settings

    assert Settings(namespaces=["a"]).fetch_deadline_seconds == 5.0  # the query timeout
    assert Settings(namespaces=["a"], interval_seconds=2).fetch_deadline_seconds == 1.0
