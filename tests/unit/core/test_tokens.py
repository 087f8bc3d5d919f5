"""Tokens in the engine (issue 17, item 3): the mix, token capacity, and TTFT/ITL in V."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from costscaler.api import CapacityPool, InferenceDeployment, load_manifests
from costscaler.core import (
    Decision,
    EngineState,
    Observations,
    Planner,
    PoolView,
    Reason,
    Settings,
    latency,
    tokens,
)
from costscaler.core.engine import planner_for
from costscaler.core.forecast import forecast
from costscaler.core.risk import RiskModel
from costscaler.core.step import learn, problem
from costscaler.core.tokens import TokenMix, TokenObjective
from costscaler.core.types import FloatArray
from costscaler.sim import batching

ROOT = Path(__file__).resolve().parents[3]
DEP = ROOT / "examples" / "deployments" / "llama-3-1-8b-vllm.yaml"
ACCELERATORS = ROOT / "operator" / "costscaler" / "sim" / "accelerators.json"

# Llama-3.1-8B on an L4 and an A100 as the example manifest profiles them.
L4 = PoolView(
    "l4",
    spot=False,
    replica_cost_per_hour=0.805,
    capacity_rps=1.6,
    cold_start_s=300.0,
    base_latency_s=8.0,
    prefill_tokens_per_second=3800.0,
    decode_tokens_per_second=400.0,
    max_concurrent_sequences=24,
)
A100 = PoolView(
    "a100",
    spot=False,
    replica_cost_per_hour=4.1,
    capacity_rps=7.0,
    cold_start_s=300.0,
    base_latency_s=3.0,
    prefill_tokens_per_second=9700.0,
    decode_tokens_per_second=1750.0,
    max_concurrent_sequences=100,
)


def window(
    rate: float, input_tokens: float, output_tokens: float, n: int = 240, dt: float = 15.0
) -> Observations:
    """`n` samples every `dt` s ending at 3600 s: steady requests of a fixed token mix."""
    times = 3600.0 - dt * np.arange(n)[::-1]
    return Observations(
        times=times,
        request_rate=np.full(n, rate),
        latency=np.full(n, math.nan),
        token_rate=np.full(n, rate * output_tokens),
        prompt_token_rate=np.full(n, rate * input_tokens),
    )


def planner(pools: list[PoolView], **kw: object) -> Planner:
    base: dict[str, object] = {"latency_threshold_s": 15.0, "replicas_max": 60}
    base.update(kw)
    return Planner(pools, Settings(**base))  # type: ignore[arg-type]


# -- the mix and token capacity ---------------------------------------------------------------


def test_the_mix_is_token_rates_over_the_request_rate_of_the_recent_window():
    obs = window(2.0, 1000.0, 250.0)
    assert tokens.observed_mix(obs) == TokenMix(1000.0, 250.0)
    # Only the last MIX_WINDOW_S counts: a switch to 3,000-token prompts shows at once.
    prompt = np.asarray(obs.prompt_token_rate).copy()
    prompt[-2:] = 2.0 * 3000.0
    mix = tokens.observed_mix(replace(obs, prompt_token_rate=prompt))
    assert mix is not None
    recent = int(tokens.MIX_WINDOW_S // 15.0) + 1  # samples in the window, both ends
    assert mix.input_tokens == pytest.approx((1000.0 * (recent - 2) + 3000.0 * 2) / recent)


def test_no_mix_without_both_token_series_or_without_requests():
    obs = window(2.0, 1000.0, 250.0)
    assert tokens.observed_mix(replace(obs, prompt_token_rate=None)) is None
    assert tokens.observed_mix(replace(obs, token_rate=None)) is None
    assert tokens.observed_mix(window(0.0, 1000.0, 250.0)) is None


def test_a_missing_sample_is_skipped_not_read_as_zero():
    obs = window(2.0, 1000.0, 250.0)
    prompt = np.asarray(obs.prompt_token_rate).copy()
    prompt[-1] = math.nan
    assert tokens.observed_mix(replace(obs, prompt_token_rate=prompt)) == TokenMix(1000.0, 250.0)


def test_capacity_is_one_over_the_time_a_request_takes_of_the_replica():
    cap = tokens.capacity(
        np.array([1.6, 2.0]),
        np.array([3800.0, math.nan]),
        np.array([400.0, math.nan]),
        TokenMix(1000.0, 250.0),
    )
    assert cap[0] == pytest.approx(1.0 / (1000.0 / 3800.0 + 250.0 / 400.0))  # 1.126 req/s
    assert cap[1] == 2.0  # no token profile: as declared
    declared = np.array([1.6])
    assert tokens.capacity(declared, np.array([3800.0]), np.array([400.0]), None)[0] == 1.6


@given(
    st.floats(1.0, 20_000.0),
    st.floats(1.0, 4_000.0),
    st.floats(100.0, 50_000.0),
    st.floats(10.0, 5_000.0),
    st.floats(1.01, 4.0),
)
def test_longer_requests_never_raise_capacity(i: float, o: float, p: float, d: float, k: float):
    def cap(mix: TokenMix) -> float:
        return float(tokens.capacity(np.ones(1), np.array([p]), np.array([d]), mix)[0])

    base = cap(TokenMix(i, o))
    assert cap(TokenMix(i * k, o)) < base
    assert cap(TokenMix(i, o * k)) < base
    assert cap(TokenMix(i * k, o * k)) == pytest.approx(base / k)


@pytest.mark.parametrize("accelerator", ["L4", "A100-40GB"])
@pytest.mark.parametrize(("i", "o"), [(200, 250), (1000, 250), (3000, 250), (1000, 1000)])
def test_token_capacity_is_what_the_simulators_batching_model_serves(
    accelerator: str, i: int, o: int
):
    # The serving model (`sim.batching`) at its KV-cache-bound batch, from datasheets; its
    # idle prefill rate and decode rate at that batch make the profile. Prefill and decode
    # sharing a replica's time, summed, is within 12 % of what it serves, never above
    # (their overlap in mixed iterations is what it leaves out: 2-11 % on these mixes).
    hw = batching.hardware(json.loads(ACCELERATORS.read_text()), accelerator)
    batch = batching.kv_bound(hw, i, o)
    served = batching.steady_state(hw, batch, i, o)[0] / o
    prefill = hw.chunk_tokens / max(hw.weight_read_s, hw.compute_s * hw.chunk_tokens)
    decode = batch / hw.decode_iteration_s(batch, batch * (i + o / 2))
    model = tokens.capacity(np.ones(1), np.array([prefill]), np.array([decode]), TokenMix(i, o))
    assert 0.88 * served <= float(model[0]) <= served


# -- TTFT and ITL curves ----------------------------------------------------------------------

UTIL = np.linspace(0.0, 1.2, 241)


@settings(max_examples=60)
@given(
    st.floats(0.05, 50.0),
    st.floats(1.0, 300.0),
    st.floats(0.0, 5.0),
    st.floats(0.01, 10.0),
)
def test_ttft_share_is_a_share_rising_with_load(c: float, m: float, pre: float, thr: float):
    v = latency.ttft_violating(UTIL, c, m, pre, thr)
    assert np.all((v >= 0) & (v <= 1))
    assert np.all(np.diff(v) >= -1e-12)
    assert np.all(v[UTIL >= 1.0] == 1.0)
    looser = latency.ttft_violating(UTIL, c, m, pre, thr * 1.5)
    assert np.all(looser <= v + 1e-12)  # a looser threshold never misses more


def test_ttft_share_is_the_mmm_wait_tail_past_the_prefill():
    # One slot, no prefill: M/M/1, P(W > t) = u exp(-c (1 - u) t).
    v = latency.ttft_violating(np.array([0.5]), 2.0, 1.0, 0.0, 1.0)
    assert v[0] == pytest.approx(0.5 * math.exp(-2.0 * 0.5 * 1.0))
    # The prefill eats the slack: 0.4 s of prefill leaves 0.6 s to wait.
    v = latency.ttft_violating(np.array([0.5]), 2.0, 1.0, 0.4, 1.0)
    assert v[0] == pytest.approx(0.5 * math.exp(-2.0 * 0.5 * 0.6))
    assert np.all(latency.ttft_violating(UTIL, 2.0, 8.0, 1.0, 1.0) == 1.0)  # prefill >= SLO


@settings(max_examples=60)
@given(st.floats(0.0, 0.95), st.floats(1.0, 400.0), st.floats(1.0, 1000.0))
def test_itl_share_is_a_share_rising_with_load(f: float, batch: float, kv: float):
    v = latency.itl_violating(UTIL, f, batch, kv)
    assert np.all((v >= 0) & (v <= 1))
    assert np.all(np.diff(v) >= -1e-12)
    assert v[0] == 0.0 and np.all(v[UTIL >= 1.0] == 1.0)


def test_itl_share_is_the_size_biased_poisson_tail():
    # Integer B*: a request sees N > B* others-and-itself with probability
    # sum_{n > B} n P(n) / E N = P(Poisson(B rho) >= B) (no prefill: rho = u).
    for batch, u in [(10, 0.6), (40, 0.9), (100, 0.8)]:
        lam = batch * u
        n = np.arange(batch + 1, batch + 2000)
        biased = float((n * stats.poisson.pmf(n, lam)).sum() / lam)
        got = latency.itl_violating(np.array([u]), 0.0, float(batch))[0]
        assert got == pytest.approx(biased, rel=1e-6)


def test_a_kv_cache_that_stops_the_batch_short_of_b_star_keeps_itl():
    v = latency.itl_violating(UTIL, 0.2, 40.0, 24.0)
    assert np.all(v[UTIL < 1.0] == 0.0) and np.all(v[UTIL >= 1.0] == 1.0)


# -- in the engine ----------------------------------------------------------------------------


def test_longer_prompts_scale_up_before_the_request_rate_moves():
    pl = planner([L4, A100])
    short = pl.decide(window(4.0, 200.0, 250.0), {}, 3600.0)
    long = pl.decide(window(4.0, 3000.0, 250.0), {}, 3600.0)
    cap = {
        m: tokens.capacity(pl.capacity, pl.prefill_tps, pl.decode_tps, TokenMix(m, 250.0))
        for m in (200.0, 3000.0)
    }
    assert np.all(cap[3000.0] < cap[200.0])
    assert long.cost_per_hour > 1.5 * short.cost_per_hour
    for d in (short, long):
        assert d.violating_share <= 0.01 + 1e-9


@pytest.mark.parametrize("objectives", [{}, {"ttft": TokenObjective(0.5, 0.99)}])
def test_without_token_rates_the_engine_decides_as_before(objectives: dict[str, object]):
    # No mix: the declared req/s and the end-to-end model alone, TTFT stated or not.
    obs = window(4.0, 3000.0, 250.0)
    bare = replace(obs, prompt_token_rate=None, token_rate=None)
    with_profiles = planner([L4, A100], **objectives).decide(bare, {}, 3600.0)
    stripped = [
        replace(p, prefill_tokens_per_second=None, decode_tokens_per_second=None)
        for p in (L4, A100)
    ]
    without = planner(stripped).decide(bare, {}, 3600.0)
    assert with_profiles.replicas == without.replicas
    assert with_profiles.violating_share == without.violating_share


def _risk(pl: Planner, obs: Observations, mix: TokenMix | None) -> RiskModel:
    demand = forecast(obs.times, obs.request_rate, pl.horizon_s)
    return problem(pl, EngineState(), demand, mix=mix).risk


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(0, 12), min_size=2, max_size=2),
    st.floats(0.2, 8.0),
    st.floats(50.0, 4000.0),
    st.floats(0.3, 5.0),
)
def test_stating_ttft_or_itl_never_lowers_v(x: list[int], rate: float, i: float, thr: float):
    obs = window(rate, i, 250.0)
    mix = tokens.observed_mix(obs)
    plans = np.array([x], dtype=np.int64)
    e2e = _risk(planner([L4, A100]), obs, mix).evaluate(plans)[0][0]
    ttft = TokenObjective(thr, 0.95)
    itl = TokenObjective(0.05, 0.95)
    both = _risk(planner([L4, A100], ttft=ttft, itl=itl), obs, mix).evaluate(plans)[0][0]
    assert both >= e2e - 1e-12
    assert 0.0 <= both <= 1.0


def test_a_tight_ttft_slo_buys_capacity_a_loose_one_does_not():
    # An L4 with a quick idle response and a cheap miss: the end-to-end SLO leaves it at
    # half load, where 24 slots rarely all fill. Waiting for one within 0.6 s at p99, behind
    # a 0.53 s prefill of the 2,000-token prompts, takes more replicas.
    pool = replace(L4, base_latency_s=2.0)
    obs = window(6.0, 2000.0, 250.0)

    def decide(**kw: object) -> Decision:
        return planner([pool], slo_miss_cost_per_hour=0.5, **kw).decide(obs, {}, 3600.0)

    none = decide()
    assert decide(ttft=TokenObjective(10.0, 0.95)).replicas == none.replicas
    assert decide(ttft=TokenObjective(0.6, 0.99)).total_replicas > none.total_replicas


def test_a_tight_itl_slo_buys_capacity_when_the_batch_can_pass_b_star():
    # A100: B* = 1750 x 0.02 = 35 < its 100 sequences, so load slows decode past the SLO.
    obs = window(20.0, 500.0, 250.0)
    none = planner([A100]).decide(obs, {}, 3600.0)
    tight = planner([A100], itl=TokenObjective(0.02, 0.99)).decide(obs, {}, 3600.0)
    assert tight.total_replicas > none.total_replicas


def test_the_example_manifest_feeds_every_token_figure_to_the_planner():
    objs = load_manifests(str(DEP)) + load_manifests(str(ROOT / "examples" / "pools"))
    dep = next(r for r in objs if isinstance(r, InferenceDeployment))
    pools = [r for r in objs if isinstance(r, CapacityPool)]
    pl = planner_for(dep.spec, pools)
    assert pl.settings.ttft == TokenObjective(2.0, 0.95)
    assert pl.settings.itl == TokenObjective(0.1, 0.95)
    by_pool = dict(zip(pl.names, pl.kv_bound.tolist(), strict=True))
    assert by_pool["p4d-24xlarge-a100-ondemand"] == 100.0
    assert by_pool["g6-xlarge-l4-ondemand"] == 24.0


# Two on-demand pools whose merit order the mix reverses: "short" declares more req/s, but at
# 3,000-token prompts "long" (fast prefill) serves 4 req/s per replica and "short" 0.65.
SHORT = PoolView(
    "short",
    spot=False,
    replica_cost_per_hour=1.0,
    capacity_rps=4.0,
    cold_start_s=300.0,
    base_latency_s=3.0,
    prefill_tokens_per_second=2000.0,
    decode_tokens_per_second=2000.0,
)
LONG = replace(
    SHORT,
    name="long",
    capacity_rps=2.0,
    prefill_tokens_per_second=20000.0,
    decode_tokens_per_second=1000.0,
)


def _bad_latest(obs: Observations) -> Observations:
    rate = obs.request_rate.copy()
    rate[-1] = math.nan
    return replace(obs, request_rate=rate)


def test_a_hold_raises_to_the_minimum_on_the_cheapest_pool_at_the_mix():
    pl = planner([SHORT, LONG], replicas_min=3)
    d = pl.decide(_bad_latest(window(2.0, 3000.0, 100.0)), {}, 3600.0)
    assert d.reason == Reason.METRICS_UNAVAILABLE
    assert d.replicas == {"short": 0, "long": 3}
    # Without token rates the declared figures order the pools, as before.
    bare = replace(_bad_latest(window(2.0, 3000.0, 100.0)), prompt_token_rate=None)
    assert pl.decide(bare, {}, 3600.0).replicas == {"short": 3, "long": 0}


def test_a_hold_moves_what_a_pool_cannot_place_to_the_cheapest_pool_at_the_mix():
    spot = replace(SHORT, name="spot", spot=True, replica_cost_per_hour=0.4)
    pl = planner([SHORT, LONG, spot], spot_max_fraction=1.0, min_on_demand=0)
    obs = _bad_latest(window(2.0, 3000.0, 100.0))
    n = obs.times.size
    obs = replace(
        obs,
        ready={"spot": np.zeros(n), "short": np.ones(n)},
        unfulfillable={"spot": np.full(n, 3.0)},
    )
    d = pl.decide(obs, {"short": 1, "spot": 3}, 3600.0)
    assert d.out_of_stock == ("spot",)
    assert d.replicas == {"short": 1, "long": 3, "spot": 0}


def test_warm_spares_are_asked_of_the_cheapest_launching_pool_at_the_mix():
    launch = {"launches_nodes": True, "node_cold_start_s": 240.0}
    pools = [replace(SHORT, **launch), replace(LONG, **launch)]  # type: ignore[arg-type]
    pl = planner(pools, slo_miss_cost_per_hour=200.0)
    rate = 2.0 * np.random.default_rng(3).uniform(0.5, 1.5, 240)
    obs = replace(
        window(2.0, 3000.0, 100.0),
        request_rate=rate,
        prompt_token_rate=3000.0 * rate,
        token_rate=100.0 * rate,
    )
    d = pl.decide(obs, {}, 3600.0)
    assert d.warm_need is not None and d.warm_need.pool == "long"
    # The tail is of the demand beyond the plan's capacity at the mix.
    got = d.warm_need.tail[0]
    demand = forecast(obs.times, obs.request_rate, pl.horizon_s)
    served = d.replicas["long"] * 4.0 + d.replicas["short"] / 1.55
    assert got == pytest.approx(float(demand.exceedance(np.array([served]))[0]), rel=1e-6)


finite_or_nan = st.one_of(st.just(math.nan), st.floats(0.0, 50.0))


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(finite_or_nan, finite_or_nan, finite_or_nan), min_size=1, max_size=12),
    st.floats(0.5, 30.0),
    st.floats(0.1, 10.0),
    st.floats(0.01, 1.0),
)
def test_the_calibrator_reads_a_sample_as_met_when_every_measured_objective_is(
    rows: list[tuple[float, float, float]], e2e_s: float, ttft_s: float, itl_s: float
):
    lat, ttft, itl = (np.array(col) for col in zip(*rows, strict=True))
    goals = (TokenObjective(ttft_s, 0.95), TokenObjective(itl_s, 0.9))
    seen, threshold = tokens.slowest(lat, e2e_s, [(ttft, goals[0]), (itl, goals[1])])
    for k in range(len(rows)):
        measured = [
            x / t for x, t in ((lat[k], e2e_s), (ttft[k], ttft_s), (itl[k], itl_s)) if x == x
        ]
        if not measured:
            assert math.isnan(seen[k])
        else:
            assert (seen[k] <= threshold) == all(m <= 1.0 for m in measured)


def test_without_token_objectives_or_series_the_calibrator_reads_the_latency_as_it_is():
    lat = np.array([3.0, math.nan, 20.0])
    goal = TokenObjective(2.0, 0.95)
    for observed in ([], [(None, goal)], [(np.ones(3), None)]):
        seen, threshold = tokens.slowest(lat, 15.0, observed)
        assert seen is lat and threshold == 15.0


def _loaded(ttft_s: FloatArray, latency_s: float, rate: float = 4.0) -> Observations:
    """Three L4 replicas at `rate` req/s of 1,000-token prompts (u = 0.75 of their token
    capacity), every sample steady, the TTFT quantile as given."""
    n = ttft_s.size
    obs = window(rate, 1000.0, 120.0, n=n)
    return replace(obs, latency=np.full(n, latency_s), ttft=ttft_s, ready={"l4": np.full(n, 3.0)})


def test_a_ttft_objective_missed_under_load_lowers_the_calibrated_capacity():
    # The end-to-end latency meets its 15 s; the p95 TTFT climbs past 2.5 s at 0.75 load.
    obs = _loaded(np.linspace(2.6, 6.0, 30), latency_s=5.0)
    mix = tokens.observed_mix(obs)
    stated = learn(planner([L4], ttft=TokenObjective(2.5, 0.95)), obs, EngineState(), mix)
    assert 0.75 < stated.capacity_scale < 0.9
    assert learn(planner([L4]), obs, EngineState(), mix).capacity_scale == 1.0


def test_a_ttft_objective_met_past_the_token_capacity_raises_it():
    # 7 req/s on three replicas (u = 1.31) with the first token within 2.5 s throughout.
    obs = _loaded(np.full(30, 1.0), latency_s=math.nan, rate=7.0)
    mix = tokens.observed_mix(obs)
    stated = learn(planner([L4], ttft=TokenObjective(2.5, 0.95)), obs, EngineState(), mix)
    assert 1.1 < stated.capacity_scale < 1.31
    assert learn(planner([L4]), obs, EngineState(), mix).capacity_scale == 1.0
