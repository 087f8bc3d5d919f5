"""Real Prometheus, real load twin: metrics flow, Prometheus stops, replicas hold, it recovers."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from operator_harness import (  # noqa: F401 - kube_fixture provides the `kube` fixture
    TRACES,
    LoadTwin,
    Operator,
    Prometheus,
    apply,
    children,
    get,
    kube_fixture,
    llama,
    new_namespace,
    wait_for,
)

pytestmark = pytest.mark.integration
OD = "g6-xlarge-l4-ondemand"
TRACE = TRACES / "azure-llm-2023-conv" / "trace.csv"


def conditions(kube, ns: str) -> dict[str, dict]:
    s = get(kube, "infd", "llama-3-1-8b", "-n", ns).get("status") or {}
    return {c["type"]: c for c in s.get("conditions", [])}


def replicas(kube, ns: str) -> int:
    return sum(d["spec"]["replicas"] for d in children(kube, ns, "llama-3-1-8b").values())


def test_prometheus_stopped_holds_replicas_and_recovers(kube, tmp_path: Path):
    ns = new_namespace(kube)
    prom = Prometheus(kube, tmp_path)
    op = Operator(kube, ns, tmp_path / "op.log", prom.url)
    twin = LoadTwin(kube, f"{ns}/llama-3-1-8b", TRACE, speed=1, log=tmp_path / "twin.log")
    try:
        wait_for("operator", op.healthy, timeout=30)
        spec = llama(ns, "Enforce", [OD], replicas={"min": 1, "max": 8})
        spec["spec"]["workload"]["modelLoadSeconds"] = 3
        apply(kube, spec)
        wait_for("metrics available", lambda: conditions(kube, ns)["MetricsAvailable"]["status"]
                 == "True", timeout=90)  # fmt: skip
        wait_for("scaled up for the load", lambda: replicas(kube, ns) >= 2, timeout=90)
        held = replicas(kube, ns)
        prom.stop(signal.SIGKILL)
        cond = wait_for("MetricsAvailable=False", lambda: (c := conditions(kube, ns)[
            "MetricsAvailable"])["status"] == "False" and c, timeout=30)  # fmt: skip
        assert cond["reason"] == "QueryFailed"
        for _ in range(4):  # two ticks each: never below what it had
            time.sleep(2)
            assert replicas(kube, ns) >= held
        assert op.metric("costscaler_prometheus_query_errors_total") > 0
        assert op.metric("costscaler_metrics_available", namespace=ns) == 0
        prom2 = Prometheus(kube, tmp_path, port=prom.port)
        try:
            wait_for("recovered", lambda: conditions(kube, ns)["MetricsAvailable"]["status"]
                     == "True", timeout=60)  # fmt: skip
            last = get(kube, "infd", "llama-3-1-8b", "-n", ns)["status"]["lastDecision"]
            assert last["reason"] != "MetricsUnavailable"
        finally:
            prom2.stop()
    finally:
        twin.stop()
        op.stop()
        prom.stop()
