"""A control-plane readiness blip holds, on the real API server (issue 18, items 5 and 6).

What the issue saw: the API server was unreachable for 26 s; when it came back the node
controller, finding the nodes' leases stale, marked every node and pod NotReady, and the
operator took the fall of ready replicas for a stall of the A10G pools and moved replicas
($4.94 -> $9.41/h, shown as CostOptimal). Here the API server is stopped (SIGSTOP) for a few
seconds while the operator runs in Enforce mode, then every replica is marked NotReady
through the pods' status, as the node controller does. The operator must hold with reason
ClusterNotReady, change no replica, and go back to deciding by itself once the pods are
Ready again: same process, watches re-established, no restart.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

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

from cluster import procs
from cluster.state import Cluster

pytestmark = pytest.mark.integration
SPOT, OD = "g6-xlarge-l4-spot", "g6-xlarge-l4-ondemand"
TRACE = TRACES / "azure-llm-2023-conv" / "trace.csv"
NAME = "llama-3-1-8b"
OUTAGE_S = 6.0
BLIP = "ClusterNotReady"


def last_reason(kube: Any, ns: str) -> str | None:
    status = get(kube, "infd", NAME, "-n", ns).get("status") or {}
    return (status.get("lastDecision") or {}).get("reason")


def asked(kube: Any, ns: str) -> dict[str, int]:
    """spec.replicas of each child Deployment, by pool."""
    return {p: d["spec"].get("replicas", 0) for p, d in children(kube, ns, NAME).items()}


def settled(kube: Any, ns: str) -> dict[str, int] | None:
    """The children's replicas once both pools have replicas and all of them are ready."""
    kids = children(kube, ns, NAME)
    want = {p: d["spec"].get("replicas", 0) for p, d in kids.items()}
    ready = {p: (d.get("status") or {}).get("readyReplicas", 0) for p, d in kids.items()}
    both = set(want) == {SPOT, OD} and all(want.values())
    return want if both and want == ready else None


def set_ready(kube: Any, ns: str, ready: bool) -> int:
    """Set the Ready condition of every replica's pod, as the node controller (NotReady) or
    the kubelet (Ready) does; kwok readies only Pending pods, so it does not undo this."""
    pods = get(kube, "pods", "-n", ns, "-l", f"costscaler.dev/deployment={NAME}")["items"]
    value = "True" if ready else "False"
    conds = [{"type": t, "status": value} for t in ("Ready", "ContainersReady")]
    for pod in pods:
        kube.kubectl("patch", "pod", pod["metadata"]["name"], "-n", ns, "--subresource=status",
                     "-p", json.dumps({"status": {"conditions": conds}}))  # fmt: skip
    return len(pods)


def apiserver_pid(kube: Any) -> int:
    state = Cluster.load(Path(kube.state_dir))
    assert state is not None, f"no cluster state in {kube.state_dir}"
    ident = state.pids["kube-apiserver"]
    assert procs.alive(ident), "the session's kube-apiserver is not running"
    return ident[0]


def test_an_unreachable_api_server_and_a_readiness_blip_hold(kube, tmp_path: Path):
    ns = new_namespace(kube)
    prom = Prometheus(kube, tmp_path)
    op = Operator(kube, ns, tmp_path / "op.log", prom.url)
    twin = LoadTwin(kube, f"{ns}/{NAME}", TRACE, speed=1, log=tmp_path / "twin.log")
    pid, stopped = apiserver_pid(kube), False
    try:
        wait_for("operator", op.healthy, timeout=120)
        # Replicas on a spot and an on-demand pool: a blip is all pools falling at once,
        # on-demand included (a spot reclaim never takes on-demand replicas).
        spec = llama(ns, "Enforce", [SPOT, OD], replicas={"min": 3, "max": 8},
                     spot={"maxFraction": 0.6, "minOnDemandReplicas": 1})  # fmt: skip
        spec["spec"]["workload"]["modelLoadSeconds"] = 3
        apply(kube, spec)
        before = wait_for("replicas ready on both pools", lambda: settled(kube, ns), timeout=180)
        wait_for("a decision on the settled replicas", lambda: last_reason(kube, ns)
                 not in (None, BLIP) and asked(kube, ns) == before, timeout=30)  # fmt: skip
        before = asked(kube, ns)

        os.kill(pid, signal.SIGSTOP)
        stopped = True
        time.sleep(OUTAGE_S)
        os.kill(pid, signal.SIGCONT)
        stopped = False
        assert op.p.poll() is None, "the operator exited while the API server was away:\n" + (
            op.tail()
        )
        wait_for("the API server back", lambda: kube.kubectl(
            "get", "--raw", "/readyz", check=False).returncode == 0, timeout=30)  # fmt: skip

        # What the node controller does when the API server returns with stale node leases.
        assert set_ready(kube, ns, False) == sum(before.values())
        seen: list[dict[str, int]] = []

        def holding() -> bool:
            seen.append(asked(kube, ns))
            return last_reason(kube, ns) == BLIP

        wait_for("lastDecision.reason ClusterNotReady", holding, timeout=60, every=1)
        status = get(kube, "infd", NAME, "-n", ns)["status"]
        assert "every pool at once" in status["lastDecision"]["message"], status["lastDecision"]
        # Held for several ticks: no replica moved.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            seen.append(asked(kube, ns))
            time.sleep(1)
        assert all(s == before for s in seen), (before, seen)
        assert last_reason(kube, ns) == BLIP

        # The pods are Ready again (the kubelets report in): the operator decides again on its
        # own, from the same process.
        set_ready(kube, ns, True)
        wait_for("a decision other than ClusterNotReady",
                 lambda: last_reason(kube, ns) not in (None, BLIP), timeout=60)  # fmt: skip
        assert op.p.poll() is None and op.healthy(), op.tail()
    finally:
        if stopped:
            os.kill(pid, signal.SIGCONT)
        twin.stop()
        op.stop()
        prom.stop()
