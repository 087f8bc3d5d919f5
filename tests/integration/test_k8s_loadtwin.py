"""The load twin against the real cluster and a real Prometheus.

Two pods of a test InferenceDeployment run on KWOK L4 nodes; the twin replays a trace that
overloads them for 20 s and then falls below capacity, so the queue builds and drains and
latencies spread over many buckets. Prometheus must answer histogram_quantile over the twin's
buckets with the value the simulator's model predicts for the same trace and capacity. With
`--serving batching` the same holds for the time-to-first-token and inter-token-latency
histograms the operator's vLLM preset reads.
"""

from __future__ import annotations

import json
import math
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cluster import control
from cluster.twinload import (
    ITL_EDGES_S,
    LATENCY_EDGES_S,
    TTFT_EDGES_S,
    DeploymentLoad,
    PodCounters,
    ReadyPod,
)
from costscaler.adapters.promql import histogram_quantile
from costscaler.api import InferenceDeployment
from costscaler.sim import service
from costscaler.sim.traces import load_trace

pytestmark = pytest.mark.integration

RPS_PER_POD, SERVICE_S, THRESHOLD_S, PODS = 2.0, 1.0, 5.0, 2
SPEED, TICK = 2.0, 0.5  # one trace second per step, two steps per wall second


def _manifests(ns: str, name: str, load_s: int, replicas: int) -> str:
    infd = {
        "apiVersion": "costscaler.dev/v1alpha1",
        "kind": "InferenceDeployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "template": {"spec": {"containers": [{"name": "server", "image": "vllm"}]}},
            "slo": {"latency": {"thresholdSeconds": THRESHOLD_S}},
            "workload": {
                "modelLoadSeconds": load_s,
                "capacity": [
                    {"accelerator": "L4", "requestsPerSecond": RPS_PER_POD,
                     "baseLatencySeconds": SERVICE_S}
                ],
            },
            "pools": [{"name": "g6-xlarge-l4-ondemand"}],
            "spot": {"maxFraction": 0.5, "minOnDemandReplicas": 0},
            "replicas": {"min": 1, "max": 4},
        },
    }  # fmt: skip
    labels = {"app": name, "costscaler.dev/deployment": name}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{name}-g6-xlarge-l4-ondemand", "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"node.kubernetes.io/instance-type": "g6.xlarge",
                                     "karpenter.sh/capacity-type": "on-demand"},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                     "effect": "NoSchedule"}],
                    "containers": [{"name": "server", "image": "vllm",
                                    "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
                },
            },
        },
    }  # fmt: skip
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [infd, deployment]})


def _write_trace(path: Path) -> None:
    # 6 req/s for 20 s against 4 req/s of capacity, then 1 req/s for 20 s; 50 tokens each.
    times = [i / 6 for i in range(120)] + [20 + i for i in range(20)]
    path.write_text("timestamp_s,input_tokens,output_tokens\n")
    with path.open("a") as out:
        out.writelines(f"{t:.6f},100,50\n" for t in times)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _query(prom: str, expr: str) -> list[dict[str, Any]]:
    reply = _get(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    return list(reply["data"]["result"])


def _wait(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _expected_buckets(trace_path: Path, extra_steps: int) -> list[tuple[float, float]]:
    trace = load_trace(trace_path, dt=TICK * SPEED)
    arrived = np.concatenate(([0.0], np.cumsum(trace.arrivals), np.zeros(extra_steps)))
    arrived[trace.steps + 1 :] = arrived[trace.steps]
    steps = trace.steps + extra_steps
    res = service.replay(arrived, 0, np.full(steps, RPS_PER_POD * PODS), SERVICE_S, THRESHOLD_S)
    assert res.backlog[-1] == 0, "the expected run must drain its queue"
    counts = service.latency_buckets(res, SERVICE_S, LATENCY_EDGES_S).sum(axis=0)
    return [
        *zip(LATENCY_EDGES_S.tolist(), counts.tolist(), strict=True),
        (math.inf, res.served.sum()),
    ]


def _pods_running(cluster, ns: str, app: str, n: int) -> bool:
    out = cluster.kubectl("get", "pods", "-n", ns, "-l", f"app={app}", "-o", "json").stdout
    phases = [p["status"].get("phase") for p in json.loads(out)["items"]]
    return phases.count("Running") == n


def test_prometheus_quantile_matches_the_model(crds_installed, tmp_path: Path) -> None:
    cluster = crds_installed
    ns = f"twin-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("apply", "-f", "-", stdin=_manifests(ns, "served", 0, PODS))
    cluster.kubectl("apply", "-f", "-", stdin=_manifests(ns, "loading", 3600, 1))
    _wait("pods Running", lambda: _pods_running(cluster, ns, "served", PODS), 60)
    _wait("pod Running", lambda: _pods_running(cluster, ns, "loading", 1), 60)
    trace = tmp_path / "trace.csv"
    _write_trace(trace)
    loads = [f"{ns}/served={trace}", f"{ns}/loading={trace}"]
    port, _ = control.start_twin(cluster.state_dir, loads, speed=SPEED, tick=TICK)
    try:
        status = f"http://127.0.0.1:{port}/status"
        _wait(
            "the twin to finish the trace",
            lambda: _get(status).get(f"{ns}/served", {}).get("done"),
            90,
        )
        sel = f'namespace="{ns}", deployment="served"'
        total = _wait(
            "Prometheus to scrape the final counters",
            lambda: _query(
                cluster.prometheus_url, f"sum(vllm:request_success_total{{{sel}}}) == 140"
            ),
            30,
        )
        assert float(total[0]["value"][1]) == 140
        steps = _get(status)[f"{ns}/served"]["step"]
        expected = _expected_buckets(trace, steps - 40)
        buckets = f"sum by (le) (vllm:e2e_request_latency_seconds_bucket{{{sel}}})"
        for q in (0.5, 0.95, 0.99):
            expr = f"histogram_quantile({q}, {buckets})"
            got = float(_query(cluster.prometheus_url, expr)[0]["value"][1])
            want = histogram_quantile(q, expected)
            assert want is not None and got == pytest.approx(want, rel=1e-6), (q, got, want)
        tokens = _query(cluster.prometheus_url, f"sum(vllm:generation_tokens_total{{{sel}}})")
        assert float(tokens[0]["value"][1]) == pytest.approx(140 * 50)
        # A pod still loading its model answers 503: Prometheus sees its target down.
        up = _query(cluster.prometheus_url, f'up{{namespace="{ns}", deployment="loading"}}')
        assert [float(s["value"][1]) for s in up] == [0.0]
        assert _get(status)[f"{ns}/loading"]["started"] == 0
    finally:
        control.stop_twin(cluster.state_dir, port)
        cluster.kubectl("delete", "namespace", ns, "--wait=false")


def _write_token_trace(path: Path) -> None:
    # 5 req/s for 20 s of 600-token prompts and 120-token answers.
    path.write_text("timestamp_s,input_tokens,output_tokens\n")
    with path.open("a") as out:
        out.writelines(f"{i / 5:.6f},600,120\n" for i in range(100))


def _offline(ns: str, trace_path: Path) -> dict[str, PodCounters]:
    """The same replay without a cluster: two L4 pods ready from the first step."""
    spec = InferenceDeployment.model_validate(
        json.loads(_manifests(ns, "served", 0, PODS))["items"][0]
    )
    load = DeploymentLoad(spec, load_trace(trace_path, dt=TICK * SPEED), "batching")
    pods = [ReadyPod(k, RPS_PER_POD, SERVICE_S, "L4", 1) for k in ("a", "b")]
    counters = {p.key: PodCounters() for p in pods}
    while not load.done:
        load.advance(pods, counters)
    return counters


def test_batching_twin_exports_ttft_and_itl_through_prometheus(
    crds_installed, tmp_path: Path
) -> None:
    cluster = crds_installed
    ns = f"twinb-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("apply", "-f", "-", stdin=_manifests(ns, "served", 0, PODS))
    _wait("pods Running", lambda: _pods_running(cluster, ns, "served", PODS), 60)
    trace = tmp_path / "trace.csv"
    _write_token_trace(trace)
    port, _ = control.start_twin(
        cluster.state_dir, [f"{ns}/served={trace}"], speed=SPEED, tick=TICK, serving="batching"
    )
    try:
        status = f"http://127.0.0.1:{port}/status"
        # The twin lists a deployment only after its first tick: absent means not done yet.
        _wait(
            "the twin to finish the trace",
            lambda: _get(status).get(f"{ns}/served", {}).get("done"),
            90,
        )
        sel = f'namespace="{ns}", deployment="served"'
        _wait(
            "Prometheus to scrape the final counters",
            lambda: _query(
                cluster.prometheus_url,
                f"sum(vllm:inter_token_latency_seconds_count{{{sel}}}) == {100 * 119}",
            ),
            30,
        )
        want = _offline(ns, trace)
        for metric, edges, field in (
            ("vllm:time_to_first_token_seconds", TTFT_EDGES_S, "ttft"),
            ("vllm:inter_token_latency_seconds", ITL_EDGES_S, "itl"),
        ):
            counts = sum(getattr(c, field).buckets for c in want.values())
            total = sum(getattr(c, field).count for c in want.values())
            expected = [*zip(edges.tolist(), counts.tolist(), strict=True), (math.inf, total)]
            buckets = f"sum by (le) ({metric}_bucket{{{sel}}})"
            for q in (0.5, 0.95, 0.99):
                got = float(
                    _query(cluster.prometheus_url, f"histogram_quantile({q}, {buckets})")[0][
                        "value"
                    ][1]
                )
                value = histogram_quantile(q, expected)
                assert value is not None and got == pytest.approx(value, rel=1e-6), (metric, q)
        served = _query(cluster.prometheus_url, f"sum(vllm:request_success_total{{{sel}}})")
        assert float(served[0]["value"][1]) == 100
        prompt = _query(cluster.prometheus_url, f"sum(vllm:prompt_tokens_total{{{sel}}})")
        assert float(prompt[0]["value"][1]) == 100 * 600
    finally:
        control.stop_twin(cluster.state_dir, port)
        cluster.kubectl("delete", "namespace", ns, "--wait=false")
