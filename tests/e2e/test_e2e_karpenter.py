"""Karpenter provisions the nodes (issue 16), on the session cluster's real Karpenter (KWOK
provider, 8 s node cold start): the operator writes a Managed pool's NodePool; the replicas it
places there wait Pending for a NodeClaim's node, which registers after the cold start; they
load under do-not-disrupt, released once Ready; a pool whose instance type matches no offering
reports it on its condition and its share moves to the next pool within two ticks; a deleted
spot node is replaced while the on-demand floor holds, and is learned as one interruption;
once the replicas go, consolidation removes the empty nodes; deleting the pool removes its
NodePool."""

from __future__ import annotations

import asyncio
import sys
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import NODE_COLD_START_S
from costscaler.adapters.karpenter import DEDICATED_TAINT, nodepool_manifest
from costscaler.api import CapacityPool

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
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

pytestmark = pytest.mark.e2e
OD = "g6-xlarge-l4-ondemand"
TRACE = TRACES / "azure-llm-2023-conv" / "trace.csv"
# A steady 1 req/s: the plan keeps a few replicas, spot beside the on-demand floor. The
# trace's own bursts ask for more than replicas.max at times, and the plan then rightly puts
# every replica on the on-demand pool, whose nodes need no launch: no spot replica to lose.
STEADY_RATE = 1.0
NODE_CLASS = {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"}


def managed_pool(
    name: str, instance_type: str, price: str, capacity: str = "OnDemand"
) -> dict[str, Any]:
    """An L4 pool whose nodes only Karpenter launches (no static node has its label)."""
    pool = {
        "apiVersion": "costscaler.dev/v1alpha1",
        "kind": "CapacityPool",
        "metadata": {"name": name},
        "spec": {
            "accelerator": {"type": "L4", "countPerNode": 1, "memoryGiB": 24},
            "instanceType": instance_type,
            "capacityType": capacity,
            "price": {"hourly": price},
            "coldStart": {"nodeSeconds": int(NODE_COLD_START_S)},
            "placement": {
                "nodeSelector": {"costscaler.dev/pool": name},
                # Its nodes take only its pods, so the operator (serving one namespace) counts
                # their free GPUs: `node_layer.dedicated`.
                "tolerations": [
                    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                    {
                        "key": DEDICATED_TAINT,
                        "operator": "Equal",
                        "value": name,
                        "effect": "NoSchedule",
                    },
                ],
            },
            "limits": {"maxNodes": 6},
            "nodePool": {"mode": "Managed", "nodeClassRef": NODE_CLASS, "consolidateAfter": "5s"},
        },
    }
    if capacity == "Spot":
        pool["spec"]["interruption"] = {"ratePerHour": 0.3, "noticeSeconds": 120}
    return pool


def steady_trace(path: Path, seconds: float = 1800.0) -> Path:
    """The conversation trace's requests (their token counts) at `STEADY_RATE`, evenly spaced."""
    rows = TRACE.read_text().splitlines()
    body = [r.split(",", 1)[1] for r in rows[1 : 1 + int(seconds * STEADY_RATE)]]
    lines = [f"{k / STEADY_RATE:.3f},{rest}" for k, rest in enumerate(body)]
    path.write_text("\n".join([rows[0], *lines]) + "\n")
    return path


def _claims(kube: Any, nodepool: str) -> list[dict[str, Any]]:
    items = get(kube, "nodeclaims", "-l", f"karpenter.sh/nodepool={nodepool}")["items"]
    return list(items)


def _condition(kube: Any, pool: str, kind: str) -> dict[str, Any]:
    status = get(kube, "capacitypool", pool).get("status") or {}
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


def _losses_learned(kube: Any, ns: str, pool: str) -> float:
    """The spot hazard's alpha for `pool`: the prior's losses plus those the operator learned."""
    status = get(kube, "infd", "llama-3-1-8b", "-n", ns).get("status") or {}
    return float(((status.get("engineState") or {}).get("hazard") or {}).get(pool, [0.0])[0])


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_karpenter_launches_the_managed_pools_nodes_and_removes_them(kube, tmp_path: Path):
    tag = uuid.uuid4().hex[:6]
    good, bad = f"kp-{tag}", f"kp-none-{tag}"
    apply(kube, managed_pool(good, "g6.xlarge", "0.1000", "Spot"))
    apply(kube, managed_pool(bad, "g9.nowhere", "0.0500"))  # cheapest: the engine tries it first
    ns = new_namespace(kube)
    prom = Prometheus(kube, tmp_path)
    op = Operator(kube, ns, tmp_path / "op.log", prom.url)
    trace = steady_trace(tmp_path / "steady.csv")
    twin = LoadTwin(kube, f"{ns}/llama-3-1-8b", trace, speed=1, log=tmp_path / "twin.log")
    try:
        wait_for("operator", op.healthy, timeout=60)  # a loaded 2-core machine
        nodepool = wait_for("the Managed pool's NodePool", lambda: get(kube, "nodepool", good))
        assert nodepool["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "costscaler"
        reqs = {r["key"]: r["values"] for r in nodepool["spec"]["template"]["spec"]["requirements"]}
        assert reqs["node.kubernetes.io/instance-type"] == ["g6.xlarge"]
        assert reqs["karpenter.sh/capacity-type"] == ["spot"]
        assert nodepool["spec"]["limits"] == {"nodes": "6"}

        # The on-demand floor (minOnDemandReplicas 1) stays on the fixed g6 on-demand nodes.
        spec = llama(ns, "Enforce", [bad, good, OD], replicas={"min": 2, "max": 6})
        spec["spec"]["workload"]["modelLoadSeconds"] = 3
        apply(kube, spec)

        # No offering for g9.nowhere: nothing launches, the condition names the field, and the
        # replicas move on to the next pool (the stock-out signal from Pending pods).
        cond = wait_for("NodePoolReady=False on the pool with no offering", lambda: (
            c := _condition(kube, bad, "NodePoolReady")).get("reason") == "NoOfferingLaunched"
            and c, timeout=240)  # fmt: skip
        assert cond["status"] == "False" and "spec.instanceType g9.nowhere" in cond["message"]
        assert _claims(kube, bad) == []
        # No node is on its way, so the share moves at once: two ticks (2 s each), with slack
        # for a loaded machine, not a node cold start plus a minute.
        wait_for("the share moved off the pool with no offering", lambda: children(
            kube, ns, "llama-3-1-8b")[bad]["spec"]["replicas"] == 0, timeout=10)  # fmt: skip

        # The good pool's replicas wait for Karpenter's node, then run on it.
        kids = wait_for("a ready replica on the Managed pool", lambda: (k := children(
            kube, ns, "llama-3-1-8b")).get(good, {}).get("status", {}).get("readyReplicas", 0)
            >= 1 and k, timeout=240)  # fmt: skip
        assert kids[good]["spec"]["replicas"] >= 1
        # The SLO recovers: with the replicas serving, the measured latency meets it (Met, or
        # AtRisk: met, and the plan's risk past what the target allows).
        wait_for("the SLO met", lambda: (get(kube, "infd", "llama-3-1-8b", "-n", ns).get(
            "status") or {}).get("sloState") in ("Met", "AtRisk"), timeout=120)  # fmt: skip
        claims = _claims(kube, good)
        assert claims, "no NodeClaim for the Managed pool's NodePool"
        pods = get(kube, "pods", "-n", ns, "-l", f"costscaler.dev/pool={good}")["items"]
        on = {p["spec"].get("nodeName") for p in pods if p["status"].get("phase") == "Running"}
        nodes = [get(kube, "node", n) for n in on if n]
        assert nodes and all(
            n["metadata"]["labels"]["karpenter.sh/nodepool"] == good for n in nodes
        )
        # The node cold start really happened: the node registered after its claim + delay.
        by_claim = {c["status"].get("nodeName"): c for c in claims}
        for node in nodes:
            claim = by_claim[node["metadata"]["name"]]
            waited = _stamp(node["metadata"]["creationTimestamp"]) - _stamp(
                claim["metadata"]["creationTimestamp"]
            )
            assert waited >= NODE_COLD_START_S - 1.0
        # Replicas load under karpenter.sh/do-not-disrupt; once Ready the operator drops it.
        template = kids[good]["spec"]["template"]["metadata"]
        assert template["annotations"]["karpenter.sh/do-not-disrupt"] == "true"
        wait_for("do-not-disrupt released from the ready replicas", lambda: all(
            "karpenter.sh/do-not-disrupt" not in (p["metadata"].get("annotations") or {})
            for p in get(kube, "pods", "-n", ns, "-l", f"costscaler.dev/pool={good}")["items"]
            if any(c["type"] == "Ready" and c["status"] == "True"
                   for c in p["status"].get("conditions", []))
        ), timeout=20)  # fmt: skip
        assert _condition(kube, good, "NodePoolReady").get("status") == "True"
        pool_status = get(kube, "capacitypool", good)["status"]
        assert pool_status["nodePool"] == good and pool_status["warmNodes"] == 0
        # The deployment's status shows its pools' warm nodes and free slots, the replicas
        # that would start at the model load alone (only pools with a NodePool).
        rows = wait_for("the warm nodes on the deployment's status", lambda: (r := {
            row["pool"]: row for row in get(kube, "infd", "llama-3-1-8b", "-n", ns)["status"][
                "replicas"]}) and {"warmNodes", "freeSlots"} <= set(r.get(good, {})) and r,
            timeout=30)  # fmt: skip
        assert rows[good]["warmNodes"] == 0 and "warmNodes" not in rows[OD]
        assert rows[good]["freeSlots"] >= 0 and "freeSlots" not in rows[OD]
        exported = urllib.request.urlopen(f"http://127.0.0.1:{op.port}/metrics", timeout=5)
        assert f'costscaler_pool_warm_nodes{{pool="{good}"}} 0.0' in exported.read().decode()

        # A spot node taken away: Karpenter launches a replacement, the on-demand floor holds.
        lost = nodes[0]["metadata"]["name"]
        before = {c["metadata"]["name"] for c in _claims(kube, good)}
        alpha = _losses_learned(kube, ns, good)
        kube.kubectl("delete", "node", lost, "--wait=false")

        floor: list[int] = []
        share: list[int] = []

        def replaced() -> bool:
            kids = children(kube, ns, "llama-3-1-8b")
            floor.append((kids[OD].get("status") or {}).get("readyReplicas", 0))
            share.append(kids[good]["spec"]["replicas"])
            fresh = {c["metadata"]["name"] for c in _claims(kube, good)} - before
            return bool(fresh) and (kids[good].get("status") or {}).get("readyReplicas", 0) >= 1

        wait_for("a replacement spot node and replica", replaced, timeout=180)
        assert floor and min(floor) >= 1, f"the on-demand floor broke: {floor}"
        # One lost node is one interruption, not a reason to leave spot: the share stays.
        assert min(share) >= 1, f"the spot share left the pool after one loss: {share}"
        # The lost node's claim goes too (Karpenter finalizes it, on a loaded machine after
        # the replacement is already serving).
        wait_for("the lost node's claim gone", lambda: lost not in {
            c["status"].get("nodeName") for c in _claims(kube, good)}, timeout=60)  # fmt: skip
        # The spot hazard learned that node as one interruption, from its deletion: not from
        # the ready replicas that dropped, not twice (deleting, then gone).
        learned = wait_for("the loss learned", lambda: (
            a := _losses_learned(kube, ns, good)) >= alpha + 0.9 and a, timeout=30)  # fmt: skip
        assert learned < alpha + 1.9, f"one lost node learned as {learned - alpha:.2f} losses"

        # The replicas go: consolidation removes the empty nodes.
        kube.kubectl("delete", "infd", "llama-3-1-8b", "-n", ns, "--wait=true", timeout=120)
        wait_for("consolidation of the empty nodes", lambda: not _claims(kube, good), timeout=180)
    finally:
        twin.stop()
        for pool in (good, bad):
            kube.kubectl("delete", "capacitypool", pool, "--wait=false", check=False)
        # The operator's finalizer removes each pool's NodePool once its replicas drained.
        try:
            wait_for("the Managed pools' NodePools removed", lambda: kube.kubectl(
                "get", "nodepool", good, bad, "--ignore-not-found", "-o", "name",
                check=False).stdout.strip() == "", timeout=60)  # fmt: skip
        finally:
            op.stop()
            prom.stop()


@pytest.mark.parametrize("mode", ["Managed", "Reference"])
def test_a_nodepool_at_its_limit_moves_the_share_before_the_grace(kube, tmp_path: Path, mode: str):
    """Two deployments want a node each of a pool whose NodePool is limited to one node
    (Managed: the pool's spec.limits.maxNodes; Reference: the NodePool's own limits.nodes):
    Karpenter launches one and no more, the pool says NodePoolLimitReached naming the field,
    and the replica with no node moves to the next pool within about a minute, not after the
    pool's declared node cold start (300 s here) plus a minute."""
    tag = uuid.uuid4().hex[:6]
    lim, team = f"kp-lim-{tag}", f"team-{tag}"
    pool = managed_pool(lim, "g6.xlarge", "0.0500")  # the cheapest on-demand: placed first
    pool["spec"]["limits"]["maxNodes"] = 1
    pool["spec"]["coldStart"]["nodeSeconds"] = 300  # declared; the node comes in 8 s
    field = "spec.limits.maxNodes 1"
    if mode == "Reference":
        # The platform team's NodePool, as costscaler would write it, with a limit of its own.
        nodepool = nodepool_manifest(CapacityPool.model_validate(pool))
        nodepool["metadata"] = {"name": team}
        nodepool["spec"]["limits"] = {"nodes": "1"}
        apply(kube, nodepool)
        pool["spec"]["limits"]["maxNodes"] = 6
        pool["spec"]["nodePool"] = {"mode": "Reference", "name": team}
        field = f"spec.limits.nodes of NodePool {team} (spec.nodePool.name) 1"
    apply(kube, pool)
    backing = lim if mode == "Managed" else team
    ns = new_namespace(kube)
    prom = Prometheus(kube, tmp_path)
    op = Operator(kube, ns, tmp_path / "op.log", prom.url)
    names = ("llama-a", "llama-b")
    try:
        wait_for("operator", op.healthy, timeout=60)  # a loaded 2-core machine
        wait_for("the pool's NodePool", lambda: get(kube, "nodepool", backing))
        # No load twin: no metrics, so each holds replicas.min on the cheapest on-demand pool.
        # One after the other: Karpenter checks a limit against the nodes it has, so pods of
        # one batch can get a node each past it.
        for name in names:
            spec = llama(ns, "Enforce", [lim, OD], replicas={"min": 1, "max": 2})
            spec["metadata"]["name"] = name
            spec["spec"]["workload"]["modelLoadSeconds"] = 3
            apply(kube, spec)
            if name == names[0]:
                wait_for("the first replica running on the pool's node", lambda: children(
                    kube, ns, names[0]).get(lim, {}).get("status", {}).get("readyReplicas"),
                    timeout=120)  # fmt: skip
        started = time.monotonic()
        cond = wait_for("NodePoolReady=False, the limit reached", lambda: (
            c := _condition(kube, lim, "NodePoolReady")).get("reason") == "NodePoolLimitReached"
            and c, timeout=150)  # fmt: skip
        assert field in cond["message"]
        assert len(_claims(kube, backing)) == 1

        def placed() -> dict[str, int] | None:
            on = {n: children(kube, ns, n) for n in names}
            wanted = {n: on[n][lim]["spec"]["replicas"] for n in names}
            moved = [n for n in names if wanted[n] == 0 and on[n][OD]["spec"]["replicas"] >= 1]
            return wanted if len(moved) == 1 else None

        wanted = wait_for("one replica moved to the on-demand pool", placed, timeout=120)
        waited = time.monotonic() - started
        assert waited < 300.0, f"the share moved after {waited:.0f} s: the grace, not the limit"
        assert sorted(wanted.values()) == [0, 1]
        if mode == "Managed":
            # Deleting the pool drains the replica on it first, then removes its NodePool.
            holder = next(n for n in names if wanted[n] == 1)
            kube.kubectl("delete", "capacitypool", lim, "--wait=false")
            seen: list[tuple[bool, int]] = []

            def removed() -> bool:
                # The NodePool first, then the replicas: they only fall, so a NodePool seen
                # gone with replicas still asked of the pool was gone before they drained.
                exists = kube.kubectl("get", "nodepool", lim, "--ignore-not-found", "-o",
                                      "name", check=False).stdout.strip() != ""  # fmt: skip
                kids = children(kube, ns, holder)
                seen.append((exists, kids[lim]["spec"]["replicas"] if lim in kids else 0))
                return not exists

            wait_for("the NodePool removed once the replica drained", removed, timeout=90)
            assert seen[0][0], "the NodePool went at once, before any drain"
            assert all(asked == 0 for exists, asked in seen if not exists), seen
            assert any(exists and asked == 0 for exists, asked in seen), seen
    finally:
        for name in names:
            kube.kubectl("delete", "infd", name, "-n", ns, "--wait=false", check=False)
        kube.kubectl("delete", "capacitypool", lim, "--wait=false", check=False)
        if mode == "Reference":  # never costscaler's to delete
            kube.kubectl("delete", "nodepool", team, "--wait=false", check=False)
        try:
            wait_for("the NodePool removed", lambda: kube.kubectl(
                "get", "nodepool", backing, "--ignore-not-found", "-o", "name",
                check=False).stdout.strip() == "", timeout=90)  # fmt: skip
        finally:
            op.stop()
            prom.stop()


def _gpu_pod(ns: str, name: str, pool: dict[str, Any]) -> dict[str, Any]:
    """A bare pod (no costscaler labels) holding one GPU on a node of `pool`."""
    placement = pool["spec"]["placement"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "nodeSelector": placement["nodeSelector"],
            "tolerations": placement["tolerations"],
            "containers": [{"name": "job", "image": "registry.k8s.io/pause:3.10",
                            "resources": {"requests": {"nvidia.com/gpu": "1"},
                                          "limits": {"nvidia.com/gpu": "1"}}}],
        },
    }  # fmt: skip


def _running(kube: Any, ns: str, name: str) -> bool:
    pod = get(kube, "pod", name, "-n", ns)
    return bool(pod["spec"].get("nodeName")) and pod["status"].get("phase") == "Running"


def test_a_namespaced_operator_offers_no_slot_an_unseen_pod_holds(kube, tmp_path: Path):
    """The operator serves one namespace, so it cannot see another namespace's pods. A batch
    job there holds the GPU of a node of one pool: that node must not read as a free slot.
    Only nodes dedicated to their pool (tainted costscaler.dev/pool=<pool>, which no other
    workload tolerates) count, and there an emptied node does read as one free slot."""
    tag = uuid.uuid4().hex[:6]
    # Dear: the plan keeps its replicas on the static on-demand nodes, and the two pools'
    # nodes hold only the jobs below.
    shared = managed_pool(f"kp-open-{tag}", "g6.xlarge", "9.0000")  # no dedicated taint
    shared["spec"]["placement"]["tolerations"] = shared["spec"]["placement"]["tolerations"][:1]
    own = managed_pool(f"kp-own-{tag}", "g6.xlarge", "9.5000")
    for pool in (shared, own):
        pool["spec"]["nodePool"]["consolidateAfter"] = "600s"  # keep the emptied node
        apply(kube, pool)
    names = (shared["metadata"]["name"], own["metadata"]["name"])
    ns, other = new_namespace(kube), new_namespace(kube)
    prom = Prometheus(kube, tmp_path)
    op = Operator(kube, ns, tmp_path / "op.log", prom.url)
    trace = steady_trace(tmp_path / "steady.csv")
    twin = LoadTwin(kube, f"{ns}/llama-3-1-8b", trace, speed=1, log=tmp_path / "twin.log")
    try:
        wait_for("operator", op.healthy, timeout=60)  # a loaded 2-core machine
        for name in names:
            wait_for("the pools' NodePools", lambda n=name: get(kube, "nodepool", n))
        # Served on the on-demand pool; the status rows show the two pools' free slots.
        spec = llama(ns, "Enforce", [OD, *names], replicas={"min": 1, "max": 2})
        spec["spec"]["workload"]["modelLoadSeconds"] = 3
        apply(kube, spec)
        # A job in a namespace the operator does not serve takes a node of the shared pool;
        # one in its own namespace takes a node of the dedicated pool, then finishes.
        apply(kube, _gpu_pod(other, "batch", shared))
        apply(kube, _gpu_pod(ns, "seen", own))
        wait_for("both jobs running on launched nodes", lambda: _running(
            kube, other, "batch") and _running(kube, ns, "seen"), timeout=180)  # fmt: skip
        kube.kubectl("delete", "pod", "seen", "-n", ns, "--wait=true", timeout=60)
        # The free slots show on decisions made on metrics (a hold for their lack has none).
        wait_for("decisions on metrics", lambda: (get(kube, "infd", "llama-3-1-8b", "-n", ns)
            .get("status") or {}).get("lastDecision", {}).get("reason") not in (
            None, "MetricsUnavailable", "StaleMetrics"), timeout=240)  # fmt: skip

        seen: list[dict[str, Any]] = []

        def slots() -> dict[str, Any] | None:
            status = get(kube, "infd", "llama-3-1-8b", "-n", ns).get("status") or {}
            rows = {r["pool"]: r.get("freeSlots") for r in status.get("replicas") or []}
            seen[:] = [rows, (status.get("lastDecision") or {}).get("reason")]
            return rows if rows.get(names[1]) == 1 else None

        try:
            rows = wait_for("the emptied dedicated node read as a free slot", slots, timeout=90)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; free slots and reason last read: {seen}") from None
        # The shared pool's node is full: the unseen job holds its GPU. Read as free, the
        # engine would price a replica there at the model load alone.
        assert rows[names[0]] == 0, f"an unseen pod's GPU read as free: {rows}"
        node = get(kube, "pod", "batch", "-n", other)["spec"]["nodeName"]
        taints = get(kube, "node", node)["spec"].get("taints") or []
        assert DEDICATED_TAINT not in {t["key"] for t in taints}
    finally:
        twin.stop()
        kube.kubectl("delete", "infd", "llama-3-1-8b", "-n", ns, "--wait=false", check=False)
        kube.kubectl("delete", "pod", "batch", "-n", other, "--wait=false", check=False)
        for name in names:
            kube.kubectl("delete", "capacitypool", name, "--wait=false", check=False)
        try:
            wait_for("the NodePools removed", lambda: kube.kubectl(
                "get", "nodepool", *names, "--ignore-not-found", "-o", "name",
                check=False).stdout.strip() == "", timeout=90)  # fmt: skip
        finally:
            op.stop()
            prom.stop()


def test_a_warm_buffer_keeps_a_ready_empty_node_whose_gpus_read_as_free(kube):
    """Item 3 on real Karpenter: the CapacityBuffer the operator writes for one warm spare
    (podTemplateRef to a PodTemplate asking a whole node's GPUs) launches one node of the
    pool's NodePool, which stays empty: Ready, no pod holding a GPU on it, every GPU read as
    a free slot (a replica there pays the model load only). Back at 0, consolidation removes
    it. No operator runs: the NodePool and the buffer are written as it writes them."""
    from kubernetes import config

    from costscaler.adapters.karpenter import NodePools, warm_name
    from costscaler.adapters.pending import bound_accelerators
    from costscaler.controller import node_layer
    from costscaler.controller.pools import node_view

    tag = uuid.uuid4().hex[:6]
    pool = CapacityPool.model_validate(managed_pool(f"kp-warm-{tag}", "g6.xlarge", "0.1000"))
    name = pool.name
    apply(kube, nodepool_manifest(pool))
    ns = new_namespace(kube)
    writer = NodePools(config.new_client_from_config(config_file=str(kube.kubeconfig)))

    def nodes() -> list[dict[str, Any]]:
        found = get(kube, "nodes", "-l", f"karpenter.sh/nodepool={name}")["items"]
        return list(found)

    try:
        asyncio.run(writer.keep_warm(pool, ns, 1))
        buffer = get(kube, "capacitybuffer", warm_name(pool), "-n", ns)
        assert buffer["spec"]["replicas"] == 1
        ready = wait_for("the warm node Ready", lambda: (n := [node_view(b) for b in nodes()])
                         and all(v.ready for v in n) and n, timeout=120)  # fmt: skip
        assert len(ready) == 1 and len(_claims(kube, name)) == 1
        on = get(kube, "pods", "-A", "--field-selector", f"spec.nodeName={ready[0].name}")
        used: dict[str, list[int]] = {}
        for pod in on["items"]:
            if (bound := bound_accelerators(pod)) is not None:
                used.setdefault(bound[0], []).append(bound[1])
        assert used == {}, "a pod holds the warm node's GPU"
        # Dedicated to the pool (its placement tolerates costscaler.dev/pool=<pool>): counted
        # even by an operator that serves some namespaces only.
        assert node_layer.free_accelerators(pool, ready, used, seen_all=False) == (1,)
        # Held a while: the buffer keeps it past consolidateAfter (5 s).
        time.sleep(15)
        assert [v.name for v in map(node_view, nodes())] == [ready[0].name]
        asyncio.run(writer.keep_warm(pool, ns, 0))
        wait_for("consolidation of the spare", lambda: not _claims(kube, name), timeout=180)
    finally:
        kube.kubectl("delete", "capacitybuffer", warm_name(pool), "-n", ns, "--wait=false",
                     check=False)  # fmt: skip
        kube.kubectl("delete", "nodepool", name, "--wait=false", check=False)
