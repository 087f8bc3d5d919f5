"""The closed loop holds a time-to-first-token SLO through a load step (issue 17).

Load twin in batching mode (`sim.batching`: requests one by one on the pods' accelerators as
`sim/accelerators.json` has them, never the declared capacity) -> Prometheus (vLLM's TTFT,
ITL, token and queue series) -> operator (the example vLLM deployment with its TTFT and ITL
objectives, planning on tokens) -> pods. Real time (speed 1): the preset's token rates need
no correction, so the engine sees the request mix as the server reports it.

The SLO is the manifest's, with the TTFT threshold on a bucket edge of vLLM's histogram
(2.5 s) so the share within it is read exactly. A p95 objective is a share over a window:
the test holds the operator to it over the run after the step's reaction time (the model
load the engine plans for, plus what observing takes, and the backlog draining), and to a
scale-up past what it had settled on before the step.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from operator_harness import (  # noqa: F401 - kube_fixture provides the `kube` fixture
    ROOT,
    LoadTwin,
    Operator,
    apply,
    children,
    get,
    kube_fixture,
    llama,
    new_namespace,
    prom_value,
    wait_for,
)

pytestmark = pytest.mark.e2e

SPOT, OD = "e2e-l4-spot", "e2e-l4-ondemand"
NAME = "llama-3-1-8b"
MODEL_LOAD_S = 20
TTFT_S = 2.5  # a bucket edge of vllm:time_to_first_token_seconds
LOW_RPS, HIGH_RPS = 1.0, 4.0
LOW_S, HIGH_S = 150.0, 300.0
PROMPT, OUTPUT = 1000, 120


def e2e_pools(cluster) -> None:
    """The example L4 pools with no node cold start (the KWOK nodes are always there)."""
    import yaml

    for doc in yaml.safe_load_all((ROOT / "examples/pools/aws-g6-xlarge-l4.yaml").read_text()):
        kind = "spot" if doc["spec"]["capacityType"] == "Spot" else "ondemand"
        doc["metadata"]["name"] = f"e2e-l4-{kind}"
        doc["spec"]["coldStart"] = {"nodeSeconds": 0}
        apply(cluster, doc)


def write_trace(path: Path, seed: int = 17) -> None:
    """Poisson arrivals at LOW_RPS for LOW_S, then HIGH_RPS for HIGH_S; fixed-size requests."""
    rng = np.random.default_rng(seed)
    times, t = [], 0.0
    while t < LOW_S + HIGH_S:
        t += rng.exponential(1.0 / (LOW_RPS if t < LOW_S else HIGH_RPS))
        times.append(t)
    path.write_text("timestamp_s,input_tokens,output_tokens\n")
    with path.open("a") as out:
        out.writelines(f"{x:.6f},{PROMPT},{OUTPUT}\n" for x in times[:-1])


def spec(ns: str) -> dict:
    doc = llama(ns, "Enforce", [SPOT, OD], serving="batching")
    doc["spec"].update(
        spot={"maxFraction": 0.5, "minOnDemandReplicas": 1},
        replicas={"min": 1, "max": 12},
        metrics={"preset": "vllm"},
    )
    doc["spec"]["slo"]["ttft"] = {"quantile": 0.95, "thresholdSeconds": TTFT_S}
    doc["spec"]["workload"]["modelLoadSeconds"] = MODEL_LOAD_S
    return doc


def ttft_share(url: str, ns: str, seconds: float) -> tuple[float, float]:
    """(share of requests with TTFT <= TTFT_S, requests) over the last `seconds`, summed
    over the pods: `increase` per series counts a pod scaled away within the range too."""
    sel = f'namespace="{ns}",deployment="{NAME}"'
    metric = "vllm:time_to_first_token_seconds_bucket"

    def count(le: str) -> float:
        return prom_value(url, f'sum(increase({metric}{{{sel},le="{le}"}}[{seconds:.0f}s]))') or 0.0

    total = count("+Inf")
    return (count(f"{TTFT_S:g}") / total if total else 0.0), total


def replicas(kube, ns: str) -> int:
    return sum(d["spec"]["replicas"] for d in children(kube, ns, NAME).values())


def ready(kube, ns: str) -> int:
    return sum(
        (d.get("status") or {}).get("readyReplicas", 0) for d in children(kube, ns, NAME).values()
    )


def test_closed_loop_holds_a_ttft_slo_through_a_load_step(kube, tmp_path: Path):
    ns = new_namespace(kube)
    e2e_pools(kube)
    url = kube.env["PROMETHEUS_URL"]
    op = Operator(kube, ns, tmp_path / "op.log", url, extra_env={"COSTSCALER_RATE_WINDOW": "20s"})
    twin = None
    trace = tmp_path / "trace.csv"
    write_trace(trace)
    try:
        wait_for("operator", op.healthy, timeout=30)
        apply(kube, spec(ns))
        wait_for("one ready replica", lambda: ready(kube, ns) >= 1, timeout=60)
        twin = LoadTwin(kube, f"{ns}/{NAME}", trace, 1.0, tmp_path / "twin.log", "batching")
        begin, samples = time.monotonic(), []
        while time.monotonic() - begin < LOW_S + HIGH_S:
            t = time.monotonic() - begin
            samples.append({"t": t, "replicas": replicas(kube, ns)})
            time.sleep(2)
        (tmp_path / "samples.json").write_text(json.dumps(samples, indent=1))
        status = get(kube, "infd", NAME, "-n", ns)["status"]
        last = status["lastDecision"]
        assert last["reason"] != "MetricsUnavailable", last
        # Reaction time: the model load the engine plans for, a tick and a scrape, the
        # 20 s rate window, and the backlog of the overloaded replicas draining (as long
        # again as the load that built it).
        react = 2 * (MODEL_LOAD_S + 2 + 5) + 20
        before = [s for s in samples if s["t"] <= LOW_S]
        after = [s for s in samples if s["t"] >= LOW_S + react]
        assert before and after, samples
        # The first load is a step from nothing onto one replica: the low phase is long
        # enough to settle, and the step is measured from where it settled.
        low = before[-1]["replicas"]
        peak = max(s["replicas"] for s in samples if s["t"] > LOW_S)
        assert peak > low, samples
        share, total = ttft_share(url, ns, after[-1]["t"] - after[0]["t"])
        assert total > 0.5 * HIGH_RPS * (HIGH_S - react), samples
        assert share >= 0.95, (share, total, samples)
        print(f"TTFT <= {TTFT_S} s after the reaction: {share:.4f} of {total:.0f} requests")
        print(f"replicas: {low} before the step, {peak} at most after it")
    finally:
        if twin is not None:
            twin.stop()
        op.stop()
