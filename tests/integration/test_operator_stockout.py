"""A pool whose pods the scheduler cannot place is out of stock and its share moves (issue 14
item 4), on the real API server, scheduler and Karpenter: no node can ever match the pool's
placement, so its pods stay Pending unscheduled; past the grace (node cold start + 60 s) the
operator counts them unfulfillable and the engine moves the pool's replicas on-demand."""

from __future__ import annotations

import uuid
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


def nowhere_pool(name: str) -> dict:
    """An L4 pool cheaper than any other, whose placement no node (nor Karpenter) can meet.

    Its node cold start (90 s) sets the grace to 150 s, before the stall fallback's twice the
    cold start (186 s with the 3 s model load): the stock-out signal is what moves it."""
    return {
        "apiVersion": "costscaler.dev/v1alpha1",
        "kind": "CapacityPool",
        "metadata": {"name": name},
        "spec": {
            "accelerator": {"type": "L4", "countPerNode": 1, "memoryGiB": 24},
            "capacityType": "OnDemand",
            "price": {"hourly": "0.1000"},
            "coldStart": {"nodeSeconds": 90},
            "placement": {"nodeSelector": {"costscaler.dev/nowhere": "true"}},
            "limits": {"maxNodes": 8},
        },
    }


def status(kube, ns: str) -> dict:
    return get(kube, "infd", "llama-3-1-8b", "-n", ns).get("status") or {}


def test_unschedulable_pods_put_their_pool_out_of_stock(kube, tmp_path: Path):
    pool = f"nowhere-{uuid.uuid4().hex[:6]}"
    apply(kube, nowhere_pool(pool))
    ns = new_namespace(kube)
    prom = Prometheus(kube, tmp_path)
    op = Operator(kube, ns, tmp_path / "op.log", prom.url)
    twin = LoadTwin(kube, f"{ns}/llama-3-1-8b", TRACE, speed=1, log=tmp_path / "twin.log")
    try:
        wait_for("operator", op.healthy, timeout=30)
        spec = llama(ns, "Enforce", [pool, OD], replicas={"min": 1, "max": 8})
        spec["spec"]["workload"]["modelLoadSeconds"] = 3
        apply(kube, spec)
        wait_for("replicas asked on the cheap pool", lambda: children(kube, ns, "llama-3-1-8b")
                 .get(pool, {}).get("spec", {}).get("replicas", 0) >= 1, timeout=90)  # fmt: skip

        def out_of_stock() -> dict | None:
            conds = {c["type"]: c for c in status(kube, ns).get("conditions", [])}
            cond = conds.get("CapacityAvailable") or {}
            return cond if cond.get("reason") == "PoolOutOfStock" else None

        cond = wait_for("CapacityAvailable=False PoolOutOfStock", out_of_stock, timeout=300)
        assert cond["status"] == "False" and pool in cond["message"]
        s = status(kube, ns)
        assert pool in s["engineState"]["stockouts"]
        kids = wait_for("the share moved on-demand", lambda: (k := children(
            kube, ns, "llama-3-1-8b")) and k[pool]["spec"]["replicas"] == 0
            and k[OD]["spec"]["replicas"] >= 1 and k, timeout=30)  # fmt: skip
        assert (kids[pool].get("status") or {}).get("readyReplicas", 0) == 0
    finally:
        twin.stop()
        op.stop()
        prom.stop()
        kube.kubectl("delete", "capacitypool", pool, "--wait=false", check=False)
