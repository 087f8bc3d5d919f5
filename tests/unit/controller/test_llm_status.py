"""Issue 17 in the tick: TTFT and ITL in SLOMet, the LLM signals in status and observations."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import pytest
from test_controller_tick import GOOD, NOW, REPO, SPOT, FakeEngine, infd, tick

from costscaler.adapters.prometheus import Reading
from costscaler.api import CapacityPool, load_manifests
from costscaler.controller.history import History

LLM = replace(
    GOOD,
    ttft_seconds=0.8,
    ttft_attainment=0.995,
    itl_seconds=0.04,
    itl_attainment=0.999,
    queue_by_pool={SPOT: 6.0},
    kv_cache_by_pool={SPOT: 0.9},
    prompt_token_rate=3000.0,
)


@pytest.fixture(scope="module", name="pools")
def example_pools() -> dict[str, CapacityPool]:
    return {p.name: p for p in load_manifests(REPO / "examples" / "pools")}


def _slo_met(status: dict) -> dict:
    return next(c for c in status["conditions"] if c["type"] == "SLOMet")


def test_slo_met_needs_every_stated_objective(pools):
    obj = infd()  # the example: latency p95 15 s, TTFT p95 2 s, ITL p95 0.1 s, attainment 0.99
    met, _ = tick(obj, pools, [], FakeEngine({SPOT: 2}), reading=LLM)
    cond = _slo_met(met.status)
    assert (cond["status"], cond["reason"]) == ("True", "WithinSLO")
    assert "p95 TTFT 0.8 s, 0.9950 within 2.0 s" in cond["message"]
    assert "p95 ITL 0.04 s, 0.9990 within 0.1 s" in cond["message"]
    slow_first_token = replace(LLM, ttft_seconds=2.6, ttft_attainment=0.93)
    missed, _ = tick(obj, pools, [], FakeEngine({SPOT: 2}), reading=slow_first_token)
    cond = _slo_met(missed.status)
    assert (cond["status"], cond["reason"]) == ("False", "SLOMissed")  # e2e latency still met
    assert missed.status["sloState"] == "Missed"


def test_an_unmeasured_objective_is_skipped_not_missed(pools):
    idle_ttft = replace(LLM, ttft_seconds=None, ttft_attainment=None)
    result, _ = tick(infd(), pools, [], FakeEngine({SPOT: 2}), reading=idle_ttft)
    cond = _slo_met(result.status)
    assert cond["status"] == "True" and "TTFT" not in cond["message"]


def test_status_shows_the_llm_signals(pools):
    result, _ = tick(infd(), pools, [], FakeEngine({SPOT: 2}), reading=LLM)
    observed = result.status["observed"]
    assert (observed["ttftSeconds"], observed["itlSeconds"]) == (0.8, 0.04)
    assert (observed["queueDepth"], observed["kvCacheUsage"]) == (6.0, 0.9)
    assert observed["promptTokenRate"] == 3000.0


def test_the_engine_gets_the_signals_as_observations(pools):
    engine, history = FakeEngine({SPOT: 2}), History(3600)
    tick(infd(), pools, [], engine, reading=GOOD, history=history, now=NOW.replace(minute=0))
    tick(infd(), pools, [], engine, reading=LLM, history=history, now=NOW.replace(minute=1))
    obs = engine.calls[-1]["obs"]
    assert math.isnan(obs.ttft[0]) and obs.ttft[-1] == 0.8
    assert (obs.itl[-1], obs.queue_depth[-1], obs.kv_cache_usage[-1]) == (0.04, 6.0, 0.9)
    assert obs.prompt_token_rate[-1] == 3000.0
    first = engine.calls[0]["obs"]  # a window without any: None, as for token_rate
    assert first.ttft is None and first.kv_cache_usage is None


def test_a_reading_with_a_problem_records_no_signals(pools):
    engine, history = FakeEngine({SPOT: 2}), History(3600)
    bad = Reading(problem="NoData", message="no TTFT series")
    tick(infd(), pools, [], engine, reading=bad, history=history)
    assert engine.calls[-1]["obs"].queue_depth is None


def test_status_prices_input_and_output_tokens_of_what_runs(pools):
    # Enforce runs the decision: 2 L4 replicas (3,800 prefill and 400 decode tokens/s each)
    # at the engine's 1.6 $/h, over 3,000 input and 800 output tokens/s.
    reading = replace(LLM, token_rate=800.0)
    result, _ = tick(infd(), pools, [], FakeEngine({SPOT: 2}), reading=reading)
    cost = result.status["cost"]
    busy_in, busy_out = 3000 / 7600, 800 / 800
    share_in = busy_in / (busy_in + busy_out)
    assert float(cost["perMillionInputTokens"]) == pytest.approx(
        1.6 * share_in / (3000 * 3600) * 1e6, abs=1e-4
    )
    assert float(cost["perMillionOutputTokens"]) == pytest.approx(
        1.6 * (1 - share_in) / (800 * 3600) * 1e6, abs=1e-4
    )
    no_prompt = replace(reading, prompt_token_rate=None)
    result, _ = tick(infd(), pools, [], FakeEngine({SPOT: 2}), reading=no_prompt)
    assert "perMillionInputTokens" not in result.status["cost"]


def test_a_growing_queue_adds_its_growth_to_the_rate_the_engine_sizes_for(pools):
    # GOOD finishes 3 req/s. The queue grows 0 -> 30 in 15 s: 2 req/s more arrive than
    # finish, and the engine sees 5 req/s at once, not after the rate window. Draining
    # (30 -> 6) adds nothing, and status keeps the measured rate.
    engine, history, start = FakeEngine({SPOT: 2}), History(3600), NOW.replace(minute=0)
    for i, waiting in enumerate((0.0, 30.0, 6.0)):
        reading = replace(GOOD, queue_by_pool={SPOT: waiting})
        when = start + timedelta(seconds=15 * i)
        result, _ = tick(infd(), pools, [], engine, reading=reading, history=history, now=when)
        assert result.status["observed"]["requestRate"] == 3.0
    rates = engine.calls[-1]["obs"].request_rate
    assert list(rates) == [3.0, 5.0, 3.0]


def test_no_queue_series_leaves_the_rate_as_measured(pools):
    engine, history, start = FakeEngine({SPOT: 2}), History(3600), NOW.replace(minute=0)
    for i in range(2):
        when = start + timedelta(seconds=15 * i)
        tick(infd(), pools, [], engine, reading=GOOD, history=history, now=when)
    assert list(engine.calls[-1]["obs"].request_rate) == [3.0, 3.0]
