"""The load twin's per-pod split of the simulator's model (no cluster needed; tests/conftest.py
puts hack/ on the path)."""

from __future__ import annotations

import numpy as np
import pytest

from cluster.twinexport import render_pod
from cluster.twinload import (
    LATENCY_EDGES_S,
    TTFT_EDGES_S,
    DeploymentLoad,
    Histogram,
    PodCounters,
    ReadyPod,
)
from costscaler.api import InferenceDeployment
from costscaler.sim import service
from costscaler.sim.batching import Arrivals, Serving, hardware
from costscaler.sim.traces import Requests, Trace, load_accelerators

SPEC = InferenceDeployment.model_validate(
    {
        "apiVersion": "costscaler.dev/v1alpha1",
        "kind": "InferenceDeployment",
        "metadata": {"name": "m", "namespace": "default"},
        "spec": {
            "template": {"spec": {"containers": [{"name": "s", "image": "x"}]}},
            "slo": {"latency": {"thresholdSeconds": 5}},
            "workload": {
                "meanOutputTokens": 100,
                "capacity": [{"accelerator": "L4", "requestsPerSecond": 1}],
            },
            "pools": [{"name": "p"}],
        },
    }
)


def _run(
    arrivals: list[float], pods: list[ReadyPod]
) -> tuple[DeploymentLoad, dict[str, PodCounters]]:
    load = DeploymentLoad(SPEC, Trace("t", 1.0, 0.0, np.array(arrivals), None))
    counters = {p.key: PodCounters() for p in pods}
    while not load.done:
        load.advance(pods, counters)
    return load, counters


def test_pods_share_the_models_totals_by_capacity() -> None:
    pods = [ReadyPod("a", 1.0, 2.0), ReadyPod("b", 3.0, 1.0)]
    arrivals = [8.0] * 10 + [0.0] * 5
    load, counters = _run(arrivals, pods)
    # One queue with the pooled capacity and the capacity-weighted service time.
    svc = (1.0 * 2.0 + 3.0 * 1.0) / 4.0
    n = load.step
    arrived = np.concatenate(([0.0], np.cumsum(arrivals + [0.0] * (n - len(arrivals)))))
    res = service.replay(arrived, 0, np.full(n, 4.0), svc, 5.0)
    want = service.latency_buckets(res, svc, LATENCY_EDGES_S).sum(axis=0)
    got = counters["a"].buckets + counters["b"].buckets
    assert got == pytest.approx(want)
    assert counters["b"].success == pytest.approx(3 * counters["a"].success)
    assert counters["a"].success + counters["b"].success == pytest.approx(sum(arrivals))
    assert counters["a"].tokens == pytest.approx(100 * counters["a"].success)


def test_no_ready_pod_means_a_growing_backlog_and_nothing_served() -> None:
    load = DeploymentLoad(SPEC, Trace("t", 1.0, 0.0, np.array([2.0, 2.0]), None))
    load.advance([], {})
    load.advance([], {})
    assert load.backlog == 4.0 and load.started == 0.0 and not load.done


def test_exposition_uses_vllm_names() -> None:
    c = PodCounters(success=3, tokens=300, latency_count=3, latency_sum=6)
    c.buckets[:] = 3
    text = render_pod(c, "m").decode()
    for name in (
        'vllm:request_success_total{finished_reason="stop",model_name="m"} 3.0',
        'vllm:generation_tokens_total{model_name="m"} 300.0',
        'vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="m"} 3.0',
        'vllm:e2e_request_latency_seconds_sum{model_name="m"} 6.0',
        "vllm:num_requests_running",
    ):
        assert name in text


def _requests_trace(times: list[float], inp: float, out: float, dt: float) -> Trace:
    t = np.array(times)
    steps = int(np.ceil((t.max() + 1e-9) / dt))
    arrivals = np.bincount((t // dt).astype(int), minlength=steps).astype(float)
    reqs = Requests(t, np.full(t.size, inp), np.full(t.size, out))
    return Trace("t", dt, 0.0, arrivals, arrivals * out, reqs)


def _l4(key: str) -> ReadyPod:
    return ReadyPod(key, 1.0, 0.0, "L4", 1)


def test_batching_mode_serves_as_the_simulators_batching_model() -> None:
    """Two L4 pods, a 4 s twin step: the pods' counters add up to what `sim.batching`
    serves on two L4 replicas in 1 s steps, request for request."""
    times = [i / 5 for i in range(100)]  # 5 req/s for 20 s
    trace = _requests_trace(times, 600.0, 120.0, dt=4.0)
    pods = [_l4("a"), _l4("b")]
    load = DeploymentLoad(SPEC, trace, "batching")
    counters = {p.key: PodCounters() for p in pods}
    while not load.done:
        load.advance(pods, counters)
    serving = Serving([hardware(load_accelerators(), "L4")], 1.0)
    serving.set_ready([2])
    t_s, ttft, e2e = np.array(times), [], []
    for t in range(load.step * 4):
        lo, hi = np.searchsorted(t_s, (t, t + 1))
        n = hi - lo
        stats = serving.step(t, Arrivals(t_s[lo:hi], np.full(n, 600.0), np.full(n, 120.0)))
        ttft += stats.finished.ttft_s.tolist()
        e2e += stats.finished.e2e_s.tolist()
    assert len(e2e) == 100 and serving.in_system == 0
    a, b = counters["a"], counters["b"]
    assert a.success + b.success == 100 and a.success > 0 and b.success > 0
    assert a.latency_sum + b.latency_sum == pytest.approx(sum(e2e))
    assert a.ttft.total + b.ttft.total == pytest.approx(sum(ttft))
    want = np.searchsorted(np.sort(ttft), TTFT_EDGES_S, side="right")
    assert a.ttft.buckets + b.ttft.buckets == pytest.approx(want)
    want = np.searchsorted(np.sort(e2e), LATENCY_EDGES_S, side="right")
    assert a.buckets + b.buckets == pytest.approx(want)
    # vLLM observes every token after the first: 119 inter-token gaps per request
    assert a.itl.count + b.itl.count == pytest.approx(100 * 119)
    assert a.tokens + b.tokens == 100 * 120 and a.prompt_tokens + b.prompt_tokens == 100 * 600
    assert a.running == b.running == a.waiting == 0


def test_batching_counters_are_vllms_own_histograms() -> None:
    h = Histogram(np.array([0.1, 1.0]))
    h.observe(np.array([0.05, 0.5, 2.0]), np.array([1.0, 3.0, 2.0]))
    assert h.buckets.tolist() == [1.0, 4.0] and h.count == 6.0
    assert h.total == pytest.approx(0.05 + 1.5 + 4.0)


def test_a_pod_that_goes_away_hands_its_requests_to_the_others() -> None:
    trace = _requests_trace([i / 4 for i in range(40)], 500.0, 400.0, dt=2.0)
    load = DeploymentLoad(SPEC, trace, "batching")
    a, b = _l4("a"), _l4("b")
    counters = {"a": PodCounters(), "b": PodCounters()}
    load.advance([a, b], counters)
    load.advance([a, b], counters)
    assert counters["b"].running > 0
    while not load.done:
        load.advance([a], counters)
    assert counters["a"].success + counters["b"].success == 40
    assert counters["b"].success == 0  # it went away before any of its requests finished


def test_batching_exports_ttft_and_itl_and_fluid_does_not() -> None:
    trace = _requests_trace([0.1, 0.2, 0.3], 100.0, 20.0, dt=1.0)
    load = DeploymentLoad(SPEC, trace, "batching")
    counters = {"a": PodCounters()}
    while not load.done:
        load.advance([_l4("a")], counters)
    text = render_pod(counters["a"], "m").decode()
    for name in (
        'vllm:time_to_first_token_seconds_count{model_name="m"} 3.0',
        'vllm:inter_token_latency_seconds_count{model_name="m"} 57.0',
        'vllm:inter_token_latency_seconds_bucket{le="80",model_name="m"} 57.0',
        'vllm:prompt_tokens_total{model_name="m"} 300.0',
        'vllm:request_success_total{finished_reason="abort",model_name="m"} 0.0',
        "vllm:kv_cache_usage_perc",
    ):
        assert name in text
    assert "time_to_first_token" not in render_pod(PodCounters(), "m").decode()


def test_a_request_given_up_on_counts_as_aborted_and_late() -> None:
    """A prompt larger than the pod's KV cache never gets a batch: after the client's 600 s
    timeout it leaves as an abort, observed at the time it waited, with no first token."""
    trace = _requests_trace([0.5], 40_000.0, 10.0, dt=100.0)
    load = DeploymentLoad(SPEC, trace, "batching")
    counters = {"a": PodCounters()}
    for _ in range(8):
        load.advance([_l4("a")], counters)
    c = counters["a"]
    assert (c.success, c.aborted, c.latency_count, c.ttft.count) == (0.0, 1.0, 1.0, 0.0)
    assert 600 < c.latency_sum <= 700
    i480, i960 = LATENCY_EDGES_S.tolist().index(480.0), LATENCY_EDGES_S.tolist().index(960.0)
    assert (c.buckets[i480], c.buckets[i960]) == (0.0, 1.0)
    assert load.done


def test_batching_names_an_accelerator_without_parameters() -> None:
    load = DeploymentLoad(SPEC, _requests_trace([0.1], 10.0, 10.0, dt=1.0), "batching")
    with pytest.raises(ValueError, match=r"H100.*accelerators.json.*--serving fluid"):
        load.advance([ReadyPod("a", 1.0, 0.0, "H100-80GB", 1)], {"a": PodCounters()})


def test_serving_mode_is_checked() -> None:
    with pytest.raises(ValueError, match="serving must be one of fluid, batching"):
        DeploymentLoad(SPEC, _requests_trace([0.1], 10.0, 10.0, dt=1.0), "exact")  # type: ignore[arg-type]
