"""Restarts on the real API server and Prometheus: same-priority failover, backfilled window."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from operator_harness import (  # noqa: F401 - kube_fixture provides the `kube` fixture
    TRACES,
    LoadTwin,
    Operator,
    Prometheus,
    apply,
    get,
    kube_fixture,
    llama,
    new_namespace,
    wait_for,
)

pytestmark = pytest.mark.integration
OD = "g6-xlarge-l4-ondemand"
NO_PROMETHEUS = "http://127.0.0.1:9"
TRACE = TRACES / "azure-llm-2023-conv" / "trace.csv"
LIFETIME = 10  # seconds a killed replica's keep-alive still counts


def test_same_priority_standby_acts_once_the_short_peering_lifetime_lapses(kube, tmp_path):
    ns = new_namespace(kube)
    env = {"COSTSCALER_PEERING_LIFETIME_SECONDS": str(LIFETIME)}
    ops = [
        Operator(kube, ns, tmp_path / f"{name}.log", NO_PROMETHEUS, priority=7, extra_env=env)
        for name in ("first", "second")
    ]
    first, second = ops
    try:
        for op in ops:
            wait_for("/healthz", op.healthy, timeout=30)
        # Equal priorities: kopf pauses both while both are alive (our default priority is
        # random for that reason); the standby may act once the other is gone.
        wait_for("the standby to see its equal", lambda: "Possibly conflicting operators with "
                 "the same priority" in second.tail(400))  # fmt: skip
        apply(kube, llama(ns, "Recommend", [OD]))
        first.stop(signal.SIGKILL)  # no goodbye: its keep-alive stays in the peering object
        killed = time.monotonic()
        wait_for("the standby decides", lambda: second.metric("costscaler_decisions_total") >= 1,
                 timeout=90, every=0.2)  # fmt: skip
        took = time.monotonic() - killed
        assert "Resuming operations after the pause" in second.tail(400)
        # The dead keep-alive lapses at most LIFETIME s after the kill, then the first tick
        # (2 s); kopf's default lifetime would have kept the standby waiting up to 60 s.
        assert took < LIFETIME + 8, took

        def peers() -> dict:
            return get(kube, "kopfpeering", "costscaler", "-n", ns).get("status") or {}

        wait_for("the dead peer cleaned up", lambda: len(peers()) == 1, timeout=30)
        assert [p["lifetime"] for p in peers().values()] == [LIFETIME]
    finally:
        for op in ops:
            op.stop()


def backfill_log(op: Operator) -> tuple[int, int, int]:
    found = wait_for("the backfill log line", lambda: re.search(
        r"backfilled (\d+) deployments with (\d+) past samples from (\d+) range queries",
        op.log.read_text()), timeout=60)  # fmt: skip
    return int(found[1]), int(found[2]), int(found[3])


def served(ns: str) -> dict:
    """The deployment the load twin serves: Enforce, a 3 s model load, a 60 s window."""
    doc = llama(ns, "Enforce", [OD], replicas={"min": 1, "max": 2})
    doc["spec"]["workload"]["modelLoadSeconds"] = 3
    doc["spec"]["forecast"] = {"windowSeconds": 60}
    return doc


@contextmanager
def serving(kube, tmp_path: Path) -> Iterator[tuple[str, Prometheus, Operator]]:
    """A namespace with Prometheus, the load twin and a priority-10 operator serving `served`
    (namespace, Prometheus, operator); all stopped on exit, whatever the test did to them."""
    ns = new_namespace(kube)
    prom = Prometheus(kube, tmp_path)
    twin = LoadTwin(kube, f"{ns}/llama-3-1-8b", TRACE, speed=1, log=tmp_path / "twin.log")
    first = Operator(kube, ns, tmp_path / "first.log", prom.url, priority=10)
    try:
        wait_for("first /healthz", first.healthy, timeout=30)
        apply(kube, served(ns))
        yield ns, prom, first
    finally:
        twin.stop()
        first.stop()
        prom.stop()


def test_restarted_operator_backfills_the_window_from_prometheus(kube, tmp_path: Path):
    second = None
    with serving(kube, tmp_path) as (ns, prom, first):
        try:
            quiet = llama(ns, "Recommend", [OD])  # no pods, so no past in Prometheus
            quiet["metadata"]["name"] = "quiet"
            apply(kube, quiet)

            def metrics_ok() -> bool:
                s = get(kube, "infd", "llama-3-1-8b", "-n", ns).get("status") or {}
                cond = {c["type"]: c["status"] for c in s.get("conditions", [])}
                return cond.get("MetricsAvailable") == "True"

            wait_for("metrics available", metrics_ok, timeout=120)
            time.sleep(40)  # Prometheus gathers some 20 ticks of past (2 s scrapes)
            first.stop(signal.SIGKILL)
            second = Operator(kube, ns, tmp_path / "second.log", prom.url, priority=20)
            deployments, samples, queries = backfill_log(second)
            # One batch for both deployments: a range query per metric (rate, latency, tokens),
            # not per deployment; only the served one has a past.
            assert (deployments, queries) == (1, 3)
            assert second.metric("costscaler_prometheus_range_queries_total") == 3
            # Its first decision sees a window of 60 s at 2 s ticks (~30 samples), not one sample.
            assert samples >= 20, samples
            assert second.metric("costscaler_backfilled_samples_total") == samples
            wait_for("second decides", lambda: second.metric("costscaler_decisions_total") >= 2)
            assert second.metric("costscaler_prometheus_range_queries_total") == 3  # once only
        finally:
            if second is not None:
                second.stop()


def test_operator_paused_by_a_peer_backfills_again_when_it_resumes(kube, tmp_path: Path):
    """Its windows stopped when it paused: resuming, it fetches them again in one batch
    instead of deciding on samples from before the pause."""
    higher = None
    with serving(kube, tmp_path) as (ns, prom, first):
        try:
            wait_for("first decides", lambda: first.metric("costscaler_decisions_total") >= 3)
            asked = first.metric("costscaler_prometheus_range_queries_total")
            higher = Operator(kube, ns, tmp_path / "higher.log", prom.url, priority=20)
            wait_for(
                "the higher peer decides", lambda: higher.metric("costscaler_decisions_total") >= 1
            )

            def settled() -> bool:  # a tick in flight when the peer came still finishes
                before = first.metric("costscaler_decisions_total")
                time.sleep(5)
                return first.metric("costscaler_decisions_total") == before

            wait_for("first pauses", settled, timeout=60)
            paused = first.metric("costscaler_decisions_total")
            time.sleep(30)  # 35 s and more without a tick, past 3 intervals and 30 s: stale
            assert first.metric("costscaler_decisions_total") == paused, "paused while outranked"
            higher.stop()  # a clean exit leaves the peering object: the first resumes
            higher = None
            wait_for(
                "first decides again",
                lambda: first.metric("costscaler_decisions_total") > paused,
                timeout=60,
            )
            # One batch again (a range query per metric), and the window came back from it.
            assert first.metric("costscaler_prometheus_range_queries_total") == asked + 3
            assert first.metric("costscaler_backfilled_samples_total") > 0
        finally:
            if higher is not None:
                higher.stop()
