"""The load twin's per-pod split of the simulator's model (no cluster needed; tests/conftest.py
puts hack/ on the path)."""

from __future__ import annotations

import numpy as np
import pytest

from cluster.twinexport import render_pod
from cluster.twinload import LATENCY_EDGES_S, DeploymentLoad, PodCounters, ReadyPod
from costscaler.api import InferenceDeployment
from costscaler.sim import service
from costscaler.sim.traces import Trace

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
