"""The observation window keeps only what the engine reads, exactly (docs/metrics.md#memory)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from test_controller_tick import OD, SPOT, infd, pools  # noqa: F401 (pools: a fixture)

from costscaler.adapters.backfill import Past
from costscaler.adapters.children import ChildState
from costscaler.adapters.prometheus import Reading
from costscaler.controller.history import History
from costscaler.core.engine import decide

T0 = 1.79e9  # epoch seconds: float32 would round these to 128 s
LLM = Reading(
    rate_by_pool={SPOT: 2.0, OD: 1.0},
    latency_seconds=3.0,
    token_rate=800.0,
    ttft_seconds=0.8,
    itl_seconds=0.04,
    queue_by_pool={SPOT: 4.0},
    prompt_token_rate=3000.0,
)


def kids(ready: int, warming: int = 0, interrupted: int = 0) -> list[ChildState]:
    return [ChildState("ml", "c", "o", SPOT, ready + warming, ready, warming, "", 0, interrupted)]


def test_ttft_and_itl_are_kept_only_while_their_objectives_are_stated():
    h = History(3600)
    h.add(T0, LLM, kids(2), ttft=False, itl=False)
    obs = h.observations(has_tokens=True)
    assert obs.ttft is None and obs.itl is None and not h.signals
    reported = (obs.token_rate, obs.queue_depth, obs.prompt_token_rate, obs.kv_cache_usage)
    assert [None if x is None else x.tolist() for x in reported] == [[800.0], [4.0], [3000.0], None]
    h.add(T0 + 15, LLM, kids(2), ttft=True, itl=False)
    obs = h.observations(has_tokens=True)
    assert math.isnan(obs.ttft[0]) and obs.ttft[-1] == 0.8 and obs.itl is None
    h.add(T0 + 30, LLM, kids(2), ttft=False, itl=False)  # the objective dropped: so is its column
    assert "ttft" not in h.signals and h.observations(has_tokens=True).ttft is None


def test_the_engine_reads_no_ttft_or_itl_without_their_objectives(pools):  # noqa: F811
    """What the window relies on to drop them: the decision is the same without them."""
    doc = infd().spec.model_dump(by_alias=True, exclude_none=True)
    doc["slo"].pop("ttft"), doc["slo"].pop("itl")
    spec = type(infd().spec).model_validate(doc)
    h = History(3600)
    for i in range(40):
        slow = replace(LLM, ttft_seconds=0.5 + 0.2 * i, itl_seconds=0.01 * i)
        h.add(T0 + 15 * i, slow, kids(2), ttft=True, itl=True)
    obs = h.observations(has_tokens=True)
    chosen = [pools[SPOT], pools[OD]]
    seen = decide(spec, chosen, obs, {SPOT: 2}, T0 + 600, alternatives=False)
    blind = decide(spec, chosen, replace(obs, ttft=None, itl=None), {SPOT: 2}, T0 + 600,
                   alternatives=False)  # fmt: skip
    assert (seen.replicas, seen.reason, seen.message, seen.state) == (
        blind.replicas,
        blind.reason,
        blind.message,
        blind.state,
    )


def test_a_signal_gets_a_column_with_its_first_number_and_none_before():
    h = History(3600)
    h.add(T0, replace(LLM, prompt_token_rate=None, queue_by_pool={}), kids(1))
    obs = h.observations(has_tokens=False)
    assert obs.prompt_token_rate is None and obs.queue_depth is None and obs.token_rate is None
    h.add(T0 + 15, LLM, kids(1))
    h.add(T0 + 15, replace(LLM, prompt_token_rate=2000.0), kids(1))  # a retried tick: replaced
    obs = h.observations(has_tokens=True)
    assert math.isnan(obs.prompt_token_rate[0]) and obs.prompt_token_rate[-1] == 2000.0
    assert list(obs.times) == [T0, T0 + 15] and obs.times.dtype == np.float64


def test_replica_counts_stay_exact_past_any_narrow_type():
    h = History(3600)
    h.add(T0, LLM, kids(3, warming=1))
    assert h.replicas.dtype == np.int16
    big = 2**24 + 1  # float32, the window's former type, rounds this to 2**24
    h.add(T0 + 15, LLM, kids(big, warming=40_000, interrupted=1))
    obs = h.observations(has_tokens=True)
    assert list(obs.ready[SPOT]) == [3, big] and list(obs.warming[SPOT]) == [1, 40_000]
    assert list(obs.lost[SPOT]) == [0, 1] and obs.ready[SPOT].dtype == np.float64


def test_backfill_keeps_the_past_token_rate_and_no_other_signal():
    h = History(60, interval_seconds=15)
    times = T0 + np.array([15.0, 30.0])
    past = Past(times, np.array([1.0, 2.0]), np.array([0.5, np.nan]), np.array([np.nan, 300.0]))
    assert h.backfill(past, kids(2, warming=1)) == 2
    obs = h.observations(has_tokens=True)
    assert obs.queue_depth is None and obs.prompt_token_rate is None
    assert math.isnan(obs.token_rate[0]) and obs.token_rate[1] == 300.0
    assert list(obs.ready[SPOT]) == [2, 2] and list(obs.warming[SPOT]) == [0, 0]
    empty = History(60, interval_seconds=15)
    empty.backfill(replace(past, tokens=np.full(2, np.nan)), kids(2))
    assert not empty.signals and empty.observations(has_tokens=False).token_rate is None


def _full(ticks: dict[float, Reading], times: np.ndarray, signal: str) -> np.ndarray | None:
    """A signal over the whole window, from the ticks it was fed (the last one per time)."""
    values = [getattr(ticks[t], signal) if ticks[t].problem is None else None for t in times]
    column = np.array([np.nan if v is None else v for v in values], dtype=float)
    return column if np.isfinite(column).any() else None


def test_the_engine_decides_the_same_on_the_recent_signals_as_on_the_whole_window(pools):  # noqa: F811
    """The token, prompt, queue and KV-cache signals are kept for MIX_WINDOW_S only: with the
    same ticks, whole columns of them give the same decisions, engine state and token costs.
    The ticks jitter, retry, come early, skip minutes, fail, and lose signals for a while."""
    rng = np.random.default_rng(18)
    chosen = [pools[SPOT], pools[OD]]
    for window, interval in ((3600, 15), (300, 15)):
        h, ticks = History(window, interval), {}
        t, current, state, decided = T0, {SPOT: 2, OD: 0}, None, set()
        for i in range(160):
            t += rng.choice([0.0, 4.0, 400.0, interval + 3.0 * rng.standard_normal()],
                            p=[0.05, 0.1, 0.03, 0.82])  # fmt: skip
            quiet = (i // 30) % 3 == 2  # no LLM signal for 30 ticks
            r = replace(
                LLM,
                rate_by_pool={SPOT: 6.0 + 5.0 * np.sin(i / 12) + rng.random(), OD: 0.0},
                latency_seconds=float(rng.uniform(1.0, 6.0)),
                token_rate=None if quiet or rng.random() < 0.1 else float(rng.uniform(200, 1500)),
                prompt_token_rate=None if quiet else float(rng.uniform(1000, 6000)),
                queue_by_pool={} if quiet else {SPOT: float(rng.uniform(0, 30))},
                kv_cache_by_pool={} if quiet else {SPOT: float(rng.random())},
                problem="QueryFailed" if rng.random() < 0.05 else None,
            )
            ticks[t] = r
            h.add(t, r, kids(current[SPOT]))
            obs = h.observations(has_tokens=True)
            whole = {
                name: _full(ticks, obs.times, name)
                for name in ("token_rate", "prompt_token_rate", "queue_depth", "kv_cache_usage")
            }
            whole["token_rate"] = (
                np.full(obs.times.size, np.nan)
                if whole["token_rate"] is None
                else whole["token_rate"]
            )
            ours = decide(infd().spec, chosen, obs, current, t + 1, state=state, alternatives=False)
            full = decide(infd().spec, chosen, replace(obs, **whole), current, t + 1, state=state,
                          alternatives=False)  # fmt: skip
            assert ours == full, (window, i)
            state, current = ours.state, {SPOT: ours.replicas.get(SPOT, 0), OD: 0}
            decided.add((ours.reason, ours.replicas.get(SPOT, 0)))
        assert len(decided) > 5  # the replay reaches more than one outcome
