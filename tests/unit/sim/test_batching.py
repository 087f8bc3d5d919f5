"""Per-request serving: the batching model against a published sweep, the router, KV limits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from costscaler.sim.batching import (
    Arrivals,
    Serving,
    hardware,
    kv_bound,
    route,
    steady_state,
)
from costscaler.sim.serving import TokenDraw, batching_profiles, token_slo
from costscaler.sim.traces import load_accelerators

DATA = load_accelerators()


def _fixed(t: int, n: int, inp: float, out: float) -> Arrivals:
    return Arrivals(t + (np.arange(n) + 0.5) / max(n, 1), np.full(n, inp), np.full(n, out))


@pytest.mark.parametrize("curve", DATA["reference_curves"], ids=lambda c: c["accelerator"])
def test_the_model_reproduces_the_published_sweep_within_ten_percent(curve):
    hw = hardware(DATA, curve["accelerator"])
    inp, out = curve["input_tokens"], curve["output_tokens"]
    base, _ = steady_state(hw, 1, inp, out)
    for point in curve["points"]:
        c = point["concurrency"]
        throughput, tpot = steady_state(hw, c, inp, out)
        if "decode_tokens_per_s_per_request" in point:
            assert 1 / tpot == pytest.approx(point["decode_tokens_per_s_per_request"], rel=0.10)
        if "output_tokens_per_s" in point:
            # the sweep states this point as a multiple of its concurrency-1 throughput
            ratio = (
                point["output_tokens_per_s"] / curve["points"][0]["decode_tokens_per_s_per_request"]
            )
            assert throughput / base == pytest.approx(ratio, rel=0.10)


@pytest.mark.parametrize("accelerator", sorted(DATA["accelerators"]))
def test_a_saturated_replica_serves_as_the_iteration_model_says(accelerator):
    """With requests always waiting, a replica runs the batch its KV cache allows; stepping
    requests through it matches `steady_state` at that batch within 10 % (completions free
    their slot at the next step only)."""
    hw = hardware(DATA, accelerator)
    serving = Serving([hw], 1.0)
    serving.set_ready([1])
    tokens = 0.0
    for t in range(300):
        stats = serving.step(t, _fixed(t, 40 if serving.in_system < 400 else 0, 1024, 128))
        if t >= 100:
            tokens += 128 * stats.finished.e2e_s.size
    batch = kv_bound(hw, 1024, 128)
    assert stats.running + stats.finished.e2e_s.size == batch  # admitted at the step start
    want, _ = steady_state(hw, batch, 1024, 128)
    assert tokens / 200 == pytest.approx(want, rel=0.10)


def test_every_request_gets_its_latencies_in_order():
    hw = hardware(DATA, "A10G")
    serving = Serving([hw], 1.0)
    serving.set_ready([1])
    got = [serving.step(t, _fixed(t, 1, 2000, 50)).finished for t in range(30)]
    ttft = np.concatenate([f.ttft_s for f in got])
    e2e = np.concatenate([f.e2e_s for f in got])
    itl = np.concatenate([f.itl_s for f in got])
    assert ttft.size == e2e.size > 20
    assert (ttft >= 2000 * hw.compute_s - 1e-9).all()  # the prompt is prefilled first
    assert np.allclose(e2e, ttft + 49 * itl)
    assert (itl >= hw.weight_read_s).all()  # no token faster than streaming the weights


def test_the_kv_cache_bounds_the_batch():
    hw = dataclasses.replace(hardware(DATA, "L4"), kv_tokens=10 * 1100)
    serving = Serving([hw], 1.0)
    serving.set_ready([1])
    stats = serving.step(0, _fixed(0, 40, 1000, 100))
    assert stats.running == 10 and stats.in_system == 40


@pytest.mark.parametrize(
    ("outstanding", "count", "router", "want"),
    [
        ([3, 0, 1], 4, "least", [1, 1, 2, 1]),
        ([2, 2], 3, "least", [0, 1, 0]),
        ([5, 0, 0], 4, "round-robin", [1, 2, 0, 1]),
    ],
)
def test_router_sends_to_least_outstanding_or_in_turn(outstanding, count, router, want):
    got = route(np.array(outstanding, dtype=np.int64), count, router, turn=1)
    assert got.tolist() == want


def test_requests_on_a_removed_replica_start_over_and_none_is_lost():
    hw = hardware(DATA, "A10G")
    serving = Serving([hw, hw], 1.0)
    serving.set_ready([2, 1])
    sent = finished = 0
    for t in range(200):
        if t == 50:
            serving.set_ready([0, 1])  # a spot pool reclaimed mid-flight
        if t == 120:
            serving.set_ready([1, 1])
        stats = serving.step(t, _fixed(t, 2, 500, 200))
        sent += 2
        finished += stats.finished.e2e_s.size
        assert (stats.finished.e2e_s > 0).all()
    assert sent == finished + serving.in_system


def test_unknown_accelerator_names_the_data_file():
    with pytest.raises(ValueError, match=r"accelerators\.json"):
        hardware(DATA, "TPU-v5e")


def test_clients_give_up_on_requests_left_waiting():
    hw = hardware(DATA, "L4")
    serving = Serving([hw], 1.0, timeout_s=30.0)
    serving.set_ready([1])
    late = 0
    for t in range(200):
        stats = serving.step(t, _fixed(t, 10, 1000, 200))  # far past one L4's capacity
        late += int(np.isinf(stats.finished.e2e_s).sum())
    assert late > 1000
    assert serving.in_system < 10 * 31 + hw.max_seqs  # bounded by the timeout


def test_ttft_and_itl_attainment_when_the_slo_declares_them(lineup):
    from sim_helpers import trace

    from costscaler.api.deployment import TokenLatencySLO
    from costscaler.sim.lineup import Lineup, Settings

    spec = lineup.deployment.spec
    slo = spec.slo.model_copy(
        update={
            "ttft": TokenLatencySLO(threshold_seconds=0.5),
            "itl": TokenLatencySLO(threshold_seconds=0.05),
        }
    )
    deployment = lineup.deployment.model_copy(update={"spec": spec.model_copy(update={"slo": slo})})
    world = Lineup(deployment, lineup.pools, Settings(serving="batching"))
    t = trace(np.full(900, 0.4))  # static: one A10G replica, within its true capacity
    rows = {o.policy: o for o in world.run(["static", "oracle"], t)}
    got = rows["static"].latency
    assert got.ttft_attainment is not None and got.itl_attainment is not None
    assert 0 < got.ttft_attainment <= 1 and 0 < got.itl_attainment <= 1
    assert got.ttft_p95_s is not None
    assert (got.ttft_p95_s <= 0.5) == (got.ttft_attainment >= 0.95)
    bare = slo.model_copy(update={"ttft": None, "itl": None})
    none = lineup.deployment.model_copy(update={"spec": spec.model_copy(update={"slo": bare})})
    plain = Lineup(none, lineup.pools, Settings(serving="batching"))
    assert plain.run(["static"], t)[0].latency.ttft_attainment is None
    assert rows["oracle"].oracle_block_s == 1.0  # 900 steps: one step a block


def _queue_after(hw, rps: float, inp: float, out: float, steps: int = 900) -> int:
    serving = Serving([hw], 1.0)
    serving.set_ready([1])
    owed = 0.0
    for t in range(steps):
        owed += rps
        n = int(owed)
        owed -= n
        serving.step(t, _fixed(t, n, inp, out))
    return serving.in_system


def test_batching_profiles_declare_what_the_model_serves(lineup):
    """The example declares 2.6 req/s on an A10G: at the mean request of the default token
    draw the batching model serves about 1.06, so a replica fed the declared rate queues
    without bound, and one fed 80 % of the derived rate does not. An L4 takes longer than
    the 15 s threshold for one such request idle: its profile is dropped."""
    draw = TokenDraw()
    inp, out = draw.means()
    deployment, notes = batching_profiles(lineup.deployment, draw, DATA)
    by_acc = {p.accelerator: p for p in deployment.spec.workload.capacity}
    assert "L4" not in by_acc and any(n.startswith("L4: dropped") for n in notes)
    a10g = hardware(DATA, "A10G")
    declared = lineup.deployment.spec.workload.profile_for("A10G").requests_per_second
    derived = by_acc["A10G"].requests_per_second
    assert derived == pytest.approx(steady_state(a10g, kv_bound(a10g, inp, out), inp, out)[0] / out)
    assert derived < declared / 2
    assert _queue_after(a10g, declared, round(inp), out) > 500
    assert _queue_after(a10g, 0.8 * derived, round(inp), out) < 2 * kv_bound(a10g, inp, out)
    assert (
        by_acc["A10G"].base_latency_seconds
        < 15
        < steady_state(hardware(DATA, "L4"), 1, inp, out)[1] * out
    )


def test_batching_profiles_name_the_slo_no_accelerator_meets(lineup):
    tight = lineup.deployment.model_copy(deep=True)
    tight.spec.slo.latency.threshold_seconds = 2.0
    with pytest.raises(ValueError, match=r"spec.workload.capacity: no accelerator meets"):
        batching_profiles(tight, TokenDraw(), DATA)


def test_token_slo_sets_the_end_to_end_threshold_the_token_objectives_allow(lineup):
    """TTFT 2 s and ITL 0.1 s allow the longest answer of 4,096 tokens 2 + 0.1 x 4,095 s."""
    slo = token_slo(lineup.deployment, 4096).spec.slo
    assert slo.latency.threshold_seconds == pytest.approx(411.5)
    assert slo.ttft == lineup.deployment.spec.slo.ttft
    bare = lineup.deployment.model_copy(deep=True)
    bare.spec.slo.itl = None
    with pytest.raises(ValueError, match=r"spec.slo.ttft and spec.slo.itl"):
        token_slo(bare, 4096)


def test_batching_profiles_keep_the_l4_under_a_token_slo_and_drop_on_itl(lineup):
    """Under the token SLO an idle L4 meets TTFT and ITL (~0.07 s a token on its 300 GB/s),
    so its profile stays; an ITL objective below that drops it, naming the objective."""
    sloped = token_slo(lineup.deployment, 4096)
    deployment, _ = batching_profiles(sloped, TokenDraw(), DATA)
    assert "L4" in {p.accelerator for p in deployment.spec.workload.capacity}
    tight = sloped.model_copy(deep=True)
    tight.spec.slo.itl.threshold_seconds = 0.05  # type: ignore[union-attr]
    deployment, notes = batching_profiles(tight, TokenDraw(), DATA)
    assert "L4" not in {p.accelerator for p in deployment.spec.workload.capacity}
    assert any(n.startswith("L4: dropped") and "ITL threshold" in n for n in notes)
    trace_mix, _ = batching_profiles(sloped, TokenDraw(), DATA, means=(1155.0, 211.0))
    a10g = hardware(DATA, "A10G")
    rps = trace_mix.spec.workload.profile_for("A10G").requests_per_second
    assert rps == pytest.approx(steady_state(a10g, kv_bound(a10g, 1155, 211), 1155, 211)[0] / 211)


def test_a_request_meets_the_slo_only_when_it_meets_every_objective(lineup):
    """Attainment under batching counts requests within end to end, TTFT and ITL at once:
    with a TTFT objective no request meets, nothing attains, whatever end to end does."""
    from sim_helpers import trace

    from costscaler.api.deployment import TokenLatencySLO
    from costscaler.sim.lineup import Lineup, Settings

    spec = lineup.deployment.spec
    slo = spec.slo.model_copy(update={"ttft": TokenLatencySLO(threshold_seconds=0.001)})
    deployment = lineup.deployment.model_copy(update={"spec": spec.model_copy(update={"slo": slo})})
    t = trace(np.full(600, 0.4))
    got = Lineup(deployment, lineup.pools, Settings(serving="batching")).run(["static"], t)[0]
    assert got.latency.ttft_attainment == 0.0 and got.slo_attainment == 0.0
    loose = spec.slo.model_copy(update={"ttft": TokenLatencySLO(threshold_seconds=30.0)})
    easy = lineup.deployment.model_copy(update={"spec": spec.model_copy(update={"slo": loose})})
    fine = Lineup(easy, lineup.pools, Settings(serving="batching")).run(["static"], t)[0]
    assert fine.slo_attainment > 0.5
    assert fine.slo_attainment <= min(fine.latency.ttft_attainment, fine.latency.itl_attainment)  # type: ignore[type-var]
