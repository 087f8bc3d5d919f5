"""CostBudgets on the real API server: accrual in status that survives an operator restart."""

from __future__ import annotations

import signal
from datetime import datetime
from pathlib import Path

import pytest
from operator_harness import (  # noqa: F401 - kube_fixture provides the `kube` fixture
    Operator,
    apply,
    get,
    kube_fixture,
    llama,
    new_namespace,
    wait_for,
)

pytestmark = pytest.mark.integration

SPOT, OD = "g6-xlarge-l4-spot", "g6-xlarge-l4-ondemand"
INTERVAL = 2.0


def budget(ns: str, enforcement: str = "Advisory") -> dict:
    return {
        "apiVersion": "costscaler.dev/v1alpha1",
        "kind": "CostBudget",
        "metadata": {"name": "team", "namespace": ns},
        "spec": {
            "period": "Monthly",
            "limit": {"amount": "1000"},
            "selector": {"matchLabels": {"team": "ml-platform"}},
            "enforcement": enforcement,
            "attributionLabels": ["team"],
        },
    }


def ledger(kube, ns: str) -> dict:
    return get(kube, "cbudget", "team", "-n", ns).get("status") or {}


def accrued(kube, ns: str, after: str | None = None) -> dict | None:
    """The budget status once it has accrued something (after a given accrual time)."""
    s = ledger(kube, ns)
    if not s.get("lastAccrualTime") or float(s.get("spent") or 0) <= 0:
        return None
    return s if after is None or s["lastAccrualTime"] > after else None


def test_spend_accrues_and_survives_a_restart(kube, tmp_path: Path) -> None:
    ns = new_namespace(kube)
    prometheus = kube.env["PROMETHEUS_URL"]  # no load: NoData, replicas held at the minimum
    op = Operator(kube, ns, tmp_path / "op1.log", prometheus, interval=INTERVAL)
    try:
        wait_for("operator", op.healthy, timeout=30)
        apply(kube, llama(ns, "Enforce", [SPOT, OD]))
        apply(kube, budget(ns))
        first = wait_for("spend accrued", lambda: accrued(kube, ns), timeout=90)
        rate = float(get(kube, "infd", "llama-3-1-8b", "-n", ns)["status"]["cost"]["perHour"])
        assert rate > 0
        assert first["byDeployment"][0]["name"] == "llama-3-1-8b"
        assert first["byLabel"] == [
            {"label": "team", "value": "ml-platform", "spent": first["byLabel"][0]["spent"]}
        ]
        assert {c["type"] for c in first["conditions"]} >= {"WithinBudget", "AtRisk", "Exceeded"}
        assert op.metric("costscaler_budget_limit", namespace=ns, budget="team") == 1000
        op.stop(signal.SIGKILL)  # mid-period, mid-tick: no chance to checkpoint anything more
    finally:
        op.stop()
    killed = ledger(kube, ns)
    op2 = Operator(kube, ns, tmp_path / "op2.log", prometheus, interval=INTERVAL)
    try:
        wait_for("operator again", op2.healthy, timeout=30)
        after = wait_for(
            "accrual after the restart",
            lambda: accrued(kube, ns, after=killed["lastAccrualTime"]),
            timeout=60,
        )
    finally:
        op2.stop()
    # Spend is continuous over the restart: what the checkpoint held plus the rate over the
    # time since, within one tick's worth (the in-flight tick that the kill lost).
    t0 = datetime.fromisoformat(killed["lastAccrualTime"])
    t1 = datetime.fromisoformat(after["lastAccrualTime"])
    expected = float(killed["spent"]) + rate * (t1 - t0).total_seconds() / 3600
    one_tick = rate * INTERVAL / 3600
    assert abs(float(after["spent"]) - expected) <= one_tick + 1e-6, (killed, after, rate)
    assert float(after["spent"]) > float(killed["spent"])
