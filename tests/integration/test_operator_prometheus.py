"""Real Prometheus, real load twin: metrics flow, Prometheus stops, replicas hold, it recovers."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.parse
import urllib.request
from datetime import datetime
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
    release,
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
        release(kube, ns)


# Issue 18 measured 300 deployments and a 60 s hang; 2 cores shared with other test runs hold
# fewer in reasonable time: 30 deployments (one with load, so MetricsAvailable starts True),
# a 30 s hang, 2 s ticks: 450 decisions are due during the hang. HANG_DEPLOYMENTS=100
# HANG_SECONDS=60 in the environment runs the issue's own scale (about 3 minutes).
HUNG_DEPLOYMENTS = int(os.environ.get("HANG_DEPLOYMENTS", "30"))
HANG_SECONDS = float(os.environ.get("HANG_SECONDS", "30"))
TICK = 2.0


def decisions(op: Operator, ns: str) -> float:
    return op.metric("costscaler_decisions_total", namespace=ns)


def slow_ticks(op: Operator) -> float:
    """Ticks that took longer than 2.5 s (the histogram bucket above the 1 s fetch deadline).

    Both figures come from one scrape: ticks finishing between two scrapes would count."""
    name, values = "costscaler_reconcile_duration_seconds", {}
    for line in scrape(op).splitlines():
        if line.startswith((f"{name}_count ", f'{name}_bucket{{le="2.5"}} ')):
            values[line.split(" ")[0]] = float(line.rsplit(" ", 1)[1])
    assert len(values) == 2, values
    return values[f"{name}_count"] - values[f'{name}_bucket{{le="2.5"}}']


def scrape(op: Operator) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{op.port}/metrics", timeout=5).read().decode()


def test_a_hung_prometheus_stalls_no_tick(kube, tmp_path: Path):
    ns = new_namespace(kube)
    prom = Prometheus(kube, tmp_path)
    op = Operator(kube, ns, tmp_path / "op.log", prom.url, interval=TICK)
    twin = LoadTwin(kube, f"{ns}/llama-3-1-8b", TRACE, speed=1, log=tmp_path / "twin.log")
    stopped = False
    try:
        wait_for("operator", op.healthy, timeout=30)
        spec = llama(ns, "Enforce", [OD], replicas={"min": 1, "max": 8})
        spec["spec"]["workload"]["modelLoadSeconds"] = 3
        apply(kube, spec)
        for i in range(HUNG_DEPLOYMENTS - 1):  # no load: they tick, hold and say NoData
            idle = llama(ns, "Recommend", [OD])
            idle["metadata"]["name"] = f"idle-{i}"
            apply(kube, idle)
        wait_for("metrics available", lambda: conditions(kube, ns)["MetricsAvailable"]["status"]
                 == "True", timeout=120)  # fmt: skip
        wait_for("every deployment deciding",
                 lambda: len(deciding(op, ns)) >= HUNG_DEPLOYMENTS, timeout=60)  # fmt: skip
        held = replicas(kube, ns)
        slow_before, before = slow_ticks(op), decisions(op, ns)
        prom.p.send_signal(signal.SIGSTOP)
        stopped, hung_at = True, time.monotonic()
        cond = wait_for("MetricsAvailable=False", lambda: (c := conditions(kube, ns)[
            "MetricsAvailable"])["status"] == "False" and c, timeout=4 * TICK + 10)  # fmt: skip
        flipped = time.monotonic() - hung_at
        assert cond["reason"] == "QueryFailed", cond
        time.sleep(max(0.0, HANG_SECONDS - (time.monotonic() - hung_at)))
        during = decisions(op, ns) - before
        assert replicas(kube, ns) >= held  # holds: never scaled down on no data
        slow_during = slow_ticks(op) - slow_before
        prom.p.send_signal(signal.SIGCONT)
        stopped, resumed_at = False, time.monotonic()
        due = HUNG_DEPLOYMENTS * HANG_SECONDS / TICK
        print(f"hang: {during:.0f} decisions of {due:.0f} due, MetricsAvailable=False after "
              f"{flipped:.1f} s, {slow_during:.0f} ticks over 2.5 s")  # fmt: skip
        assert during >= 0.8 * due, (during, due)
        # Behind the old lock every deployment had a tick of 5-20 s per stalled round (30 of
        # 30 here); a straggler or two on a busy machine is noise, not a stall.
        assert slow_during < HUNG_DEPLOYMENTS / 10, slow_during
        wait_for("recovered", lambda: conditions(kube, ns)["MetricsAvailable"]["status"]
                 == "True", timeout=30)  # fmt: skip
        # Caught up without a queue: the next 10 s bring one round of decisions per tick, not a
        # burst of ticks that waited behind the hang.
        start, t0 = decisions(op, ns), time.monotonic()
        time.sleep(10)
        after = (decisions(op, ns) - start) / (time.monotonic() - t0) * TICK
        print(f"after SIGCONT ({time.monotonic() - resumed_at:.0f} s): {after:.1f} decisions "
              f"per tick interval for {HUNG_DEPLOYMENTS} deployments")  # fmt: skip
        assert 0.8 * HUNG_DEPLOYMENTS <= after <= 1.3 * HUNG_DEPLOYMENTS, after
        assert slow_ticks(op) - slow_before < HUNG_DEPLOYMENTS / 10
    finally:
        if stopped:
            prom.p.send_signal(signal.SIGCONT)
        twin.stop()
        op.stop()
        prom.stop()
        release(kube, ns)


def deciding(op: Operator, ns: str) -> list[str]:
    """The deployments with at least one decision (one metric line per deployment and reason)."""
    names = set()
    for line in scrape(op).splitlines():
        if line.startswith("costscaler_decisions_total{") and f'namespace="{ns}"' in line:
            names.add(line.split('deployment="')[1].split('"')[0])
    return sorted(names)


def bucket_increases(url: str, ns: str, window: str, at: float) -> list[tuple[float, float]]:
    """(le, requests) of the twin's latency histogram over `window` up to `at`, from
    Prometheus directly (every bucket, summed over the deployment's pods)."""
    query = (
        f'sum by (le) (increase(vllm:e2e_request_latency_seconds_bucket{{namespace="{ns}"}}'
        f"[{window}]))"
    )
    q = urllib.parse.urlencode({"query": query, "time": str(at)})
    reply = json.loads(urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=5).read())
    return sorted((float(r["metric"]["le"]), float(r["value"][1])) for r in reply["data"]["result"])


def window_counts(url: str, ns: str, at: float) -> tuple[float, float]:
    """(good, total) requests of the last hour at `at`, good interpolated at 12.5 s inside
    vLLM's (10, 15] bucket, from Prometheus's buckets (the test's own arithmetic)."""
    buckets = bucket_increases(url, ns, "1h", at)
    if not buckets:  # no series yet at `at`
        return 0.0, 0.0
    (lo, below), (hi, upto) = [(le, n) for le, n in buckets if le in (10.0, 15.0)]
    return below + (upto - below) * (12.5 - lo) / (hi - lo), buckets[-1][1]


def test_slo_window_counts_come_from_the_histogram_and_reach_status(kube, tmp_path: Path):
    # Issue 13: the operator reads the window's good and total requests from the latency
    # histogram in its batched round, and status and /metrics show the error budget.
    ns = new_namespace(kube)
    prom = Prometheus(kube, tmp_path)
    op = Operator(kube, ns, tmp_path / "op.log", prom.url)
    twin = LoadTwin(kube, f"{ns}/llama-3-1-8b", TRACE, speed=1, log=tmp_path / "twin.log")
    try:
        wait_for("operator", op.healthy, timeout=30)
        spec = llama(ns, "Enforce", [OD], replicas={"min": 1, "max": 8})
        spec["spec"]["workload"]["modelLoadSeconds"] = 3
        # 12.5 s lies inside vLLM's (10, 15] bucket: the good count is interpolated.
        spec["spec"]["slo"] = {"latency": {"thresholdSeconds": 12.5}, "window": "1h"}
        apply(kube, spec)

        def window() -> dict | None:
            status = get(kube, "infd", "llama-3-1-8b", "-n", ns).get("status") or {}
            found = status.get("errorBudget")
            return found if found and found["totalRequests"] >= 200 else None

        found = wait_for("the error budget in status", window, timeout=180)
        at = datetime.fromisoformat(
            get(kube, "infd", "llama-3-1-8b", "-n", ns)["status"]["lastDecision"]["time"]
        ).timestamp()
        status = get(kube, "infd", "llama-3-1-8b", "-n", ns)["status"]
        found = window()  # the status of the decision at `at` (a tick may have passed)
        assert found is not None and found["window"] == "1h"
        # The counts were answered at most a hundredth of the window (36 s) and a tick
        # before the decision: between Prometheus's figures at those two times.
        answered = [window_counts(prom.url, ns, t) for t in (at - 36 - 2 * 2.0 - 1, at)]
        print(f"status {found}; Prometheus (good, total) then and at the decision {answered}")
        total_then, total_now = (total for _, total in answered)
        assert 0.95 * total_then <= found["totalRequests"] <= 1.05 * total_now
        shares = [good / total for good, total in answered if total > 0]
        assert min(shares) - 0.02 <= found["attainment"] <= max(shares) + 0.02
        bad_share = 1 - found["attainment"]
        assert found["burnRate"] == pytest.approx(bad_share / 0.01, abs=1e-3)
        # A window younger than its period is allowed the requests a full one holds at the
        # forecast rate, E = max(N, rate x 1 h) (core.errorbudget.expected), never fewer
        # than the N so far. Minutes into the hour E is near rate x 3600, far above N (the
        # forecast rate is not the observed one: a 4x band; a run gave 1.7x).
        assert 1 - bad_share / 0.01 - 1e-3 <= found["remaining"] <= 1.0
        bad = found["totalRequests"] - found["goodRequests"]
        if 1 - found["remaining"] >= 0.01:
            full = bad / (0.01 * (1 - found["remaining"]))
            rate = status["observed"]["requestRate"]
            print(f"full-window requests {full:.0f} at {rate:.3f} req/s observed")
            assert full >= 0.999 * found["totalRequests"]
            assert 0.25 * rate * 3600 <= full <= 4.0 * rate * 3600
        else:
            assert bad <= 0.01 * 0.01 * 4.0 * status["observed"]["requestRate"] * 3600
        assert 0.98 <= found["attainmentTarget"] <= 0.999
        assert op.metric("costscaler_slo_attainment", namespace=ns) == pytest.approx(
            found["attainment"], abs=0.02
        )
        assert op.metric("costscaler_error_budget_remaining", namespace=ns) <= 1.0
    finally:
        twin.stop()
        op.stop()
        prom.stop()
        release(kube, ns)


def test_a_stated_ttft_without_its_series_holds_naming_it(kube, tmp_path: Path):
    # Issue 17: the load twin serves vLLM's end-to-end histogram, requests waiting and
    # running, but no TTFT histogram. A deployment stating spec.slo.ttft cannot check it: the
    # reading is bad data naming the objective and the query, and the replicas hold. The fast
    # signals of the twin reach status while the metrics are good.
    ns = new_namespace(kube)
    prom = Prometheus(kube, tmp_path)
    op = Operator(kube, ns, tmp_path / "op.log", prom.url)
    twin = LoadTwin(kube, f"{ns}/llama-3-1-8b", TRACE, speed=1, log=tmp_path / "twin.log")
    try:
        wait_for("operator", op.healthy, timeout=30)
        spec = llama(ns, "Enforce", [OD], replicas={"min": 1, "max": 8})
        spec["spec"]["workload"]["modelLoadSeconds"] = 3
        apply(kube, spec)
        wait_for("scaled up for the load", lambda: replicas(kube, ns) >= 2, timeout=120)
        observed = get(kube, "infd", "llama-3-1-8b", "-n", ns)["status"]["observed"]
        assert observed["queueDepth"] >= 0 and "ttftSeconds" not in observed
        held = replicas(kube, ns)
        spec["spec"]["slo"]["ttft"] = {"quantile": 0.95, "thresholdSeconds": 2}
        apply(kube, spec)
        cond = wait_for("MetricsAvailable=False", lambda: (c := conditions(kube, ns)[
            "MetricsAvailable"])["status"] == "False" and c, timeout=60)  # fmt: skip
        assert cond["reason"] == "NoData"
        assert "no TTFT series for" in cond["message"] and "spec.slo.ttft" in cond["message"]
        assert "vllm:time_to_first_token_seconds_bucket" in cond["message"]
        for _ in range(4):  # two ticks each: never below what it had
            time.sleep(2)
            assert replicas(kube, ns) >= held
    finally:
        twin.stop()
        op.stop()
        prom.stop()
        release(kube, ns)
