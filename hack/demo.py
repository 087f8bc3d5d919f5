"""`make demo`: the whole product on the local cluster, closing the loop, in a few minutes.

Builds or reuses the binaries, starts the local control plane (real kube-apiserver, KWOK GPU
nodes, Prometheus), installs the Helm chart (CRDs, RBAC), applies the example pools and the
vLLM deployment in Enforce mode under the team budget, starts the load twin replaying a
shared trace time-compressed, runs the operator as a local process authenticated with the
chart's ServiceAccount token, prints a live table, then writes a report (markdown with the
cost views, and a PNG) and tears everything down.

Time compression: the twin replays `--speed` trace seconds per wall second and its counters
count trace requests per wall second, so the deployment's rate queries divide by the speed
(the engine then sees the trace's own rates). The operator's clock is the wall clock, so the
model load it plans for is wall seconds too, and so is the node cold start.

Nodes: the L4 spot pool is Managed (`spec.nodePool`): real Karpenter (KWOK provider) launches
its nodes, which register after the pool's node cold start compressed by the speed (160 s at
10x: 16 s), and consolidation removes them when they empty. Its placement asks for a label
(`costscaler.dev/nodes: karpenter`) that only Karpenter's nodes carry. The other pools' KWOK
nodes exist from the start and have no node cold start. The live table shows the Managed
pool's nodes (ready, and launching after a +), its warm spare nodes and the free slots the
engine starts replicas on at the model load alone; the report counts its node-hours.
Money is per trace hour.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from cluster import control, procs
from cluster.state import Cluster

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
NAMESPACE, RELEASE, SYSTEM_NS = "default", "costscaler", "costscaler-system"
NAME = "llama-3-1-8b"
# The pool whose nodes Karpenter launches in the demo (the cheapest L4, used most).
MANAGED = "g6-xlarge-l4-spot"
# A label only the Managed pool's launched nodes carry (its NodePool's requirement sets it;
# the static KWOK nodes carry the pool's name label, so that one would match them too).
LAUNCHED_LABEL = ("costscaler.dev/nodes", "karpenter")
NODEPOOL_LABEL = "karpenter.sh/nodepool"


def say(message: str) -> None:
    """Progress on stderr, so the live table on stdout stays clean."""
    print(f"[demo] {message}", file=sys.stderr, flush=True)


@dataclass
class Tools:
    """The cluster's binaries and environment."""

    cluster: Cluster
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        """Run kubectl or helm (by name) against the demo cluster; return stdout."""
        binary = str(self.cluster.bin_dir / args[0])
        done = subprocess.run(
            [binary, *args[1:]], input=stdin, env=self.env, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:3])} failed: {done.stderr.strip()}")
        return done.stdout

    def apply(self, obj: dict[str, Any]) -> None:
        """kubectl apply one object."""
        self.run("kubectl", "apply", "-f", "-", stdin=json.dumps(obj))


def prom(url: str, query: str) -> float | None:
    """The single value of an instant query, or None without data."""
    q = urllib.parse.urlencode({"query": query})
    try:
        reply = json.loads(urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=5).read())
    except OSError:
        return None
    result = reply.get("data", {}).get("result", [])
    value = float(result[0]["value"][1]) if result else None
    return None if value is None or value != value else value


def managed(doc: dict[str, Any], node_seconds: int) -> dict[str, Any]:
    """The pool as a Managed one: Karpenter launches its nodes (a KWOKNodeClass of its name
    delays each by `node_seconds`), and its placement asks for `LAUNCHED_LABEL`, which only
    those nodes carry (a nodeSelector entry becomes a NodePool requirement of one value,
    which Karpenter puts on the nodes it launches), not the static KWOK nodes. It tolerates
    `costscaler.dev/pool=<pool>`, which its NodePool then taints its nodes with."""
    from costscaler.adapters.karpenter import DEDICATED_TAINT

    spec = doc["spec"]
    spec["coldStart"] = {"nodeSeconds": node_seconds}
    key, value = LAUNCHED_LABEL
    spec["placement"]["nodeSelector"][key] = value
    # Its nodes take its own pods only, so the operator, serving one namespace, may count
    # their free GPUs (`node_layer.dedicated`).
    name = doc["metadata"]["name"]
    dedicated = {"key": DEDICATED_TAINT, "operator": "Equal", "value": name, "effect": "NoSchedule"}
    spec["placement"]["tolerations"] = [*spec["placement"].get("tolerations", []), dedicated]
    spec["nodePool"] = {
        "mode": "Managed",
        "nodeClassRef": {
            "group": "karpenter.kwok.sh",
            "kind": "KWOKNodeClass",
            "name": doc["metadata"]["name"],
        },
        "consolidateAfter": "10s",
    }
    return doc


def install(tools: Tools, node_seconds: int) -> None:
    """The chart (CRDs, RBAC, the operator Deployment), kopf's peering, pools, app, budget."""
    from costscaler.controller.peering import peering_crds, peering_object

    say("installing the Helm chart (CRDs, ServiceAccount, least-privilege RBAC)")
    tools.run("helm", "install", RELEASE, str(REPO / "charts" / "costscaler"), "-n", SYSTEM_NS,
              "--create-namespace", "--set", "grafanaDashboard.enabled=false", "--wait",
              "--timeout", "120s")  # fmt: skip
    for crd in peering_crds():
        tools.apply(crd)
    tools.run("kubectl", "wait", "--for=condition=Established", "crd", "--all")
    tools.apply(peering_object("costscaler", NAMESPACE))  # the chart's default: namespaced
    say(
        f"applying the example pools: {MANAGED} Managed (Karpenter launches its nodes, "
        f"{node_seconds} s node cold start), the others on KWOK nodes that already exist"
    )
    for path in sorted((REPO / "examples" / "pools").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            doc["spec"]["coldStart"] = {"nodeSeconds": 0}
            tools.apply(managed(doc, node_seconds) if doc["metadata"]["name"] == MANAGED else doc)
    tools.run("kubectl", "apply", "-f", str(REPO / "examples" / "budgets"))


def deployment(speed: float, model_load_s: int) -> dict[str, Any]:
    """The example vLLM deployment in Enforce mode, its rate queries corrected for the speed."""
    path = REPO / "examples" / "deployments" / "llama-3-1-8b-vllm.yaml"
    doc = yaml.safe_load(path.read_text())
    rate = f"sum by (namespace, deployment, pool) (rate(vllm:{{}}[20s])) / {speed:g}"
    doc["spec"]["mode"] = "Enforce"
    # The load twin serves no TTFT or ITL histograms yet: objectives on them would hold.
    doc["spec"]["slo"].pop("ttft"), doc["spec"]["slo"].pop("itl")
    doc["spec"]["workload"]["modelLoadSeconds"] = model_load_s
    doc["spec"]["metrics"] = {
        "preset": "vllm",
        "requestRate": rate.format("request_success_total"),
        "tokenRate": rate.format("generation_tokens_total"),
    }
    return doc


def operator_kubeconfig(tools: Tools, workdir: Path) -> Path:
    """A kubeconfig holding a token of the chart's ServiceAccount (proof the RBAC suffices)."""
    path = "jsonpath={.items[0].spec.template.spec.serviceAccountName}"
    sa = tools.run("kubectl", "get", "deployment", "-n", SYSTEM_NS, "-o", path).strip()
    token = tools.run("kubectl", "create", "token", sa, "-n", SYSTEM_NS, "--duration=2h").strip()
    admin = yaml.safe_load(tools.cluster.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [
            {"name": sa, "context": {"cluster": admin["clusters"][0]["name"], "user": sa}}
        ],
        "current-context": sa,
    }
    path = workdir / "operator.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    say(f"the operator runs as system:serviceaccount:{SYSTEM_NS}:{sa}")
    return path


@dataclass
class Sample:
    """One row of the live table."""

    t: float
    demand: float | None
    replicas: dict[str, int]
    p99: float | None
    cost_per_hour: float
    reason: str
    nodes: int = 0  # the Managed pool's Ready nodes
    launching: int = 0  # ... and its NodeClaims with no Ready node yet
    warm: int = 0  # its warm spare nodes (the CapacityBuffer)
    free: int | None = None  # replicas that fit on its Ready nodes' free GPUs (engine's view)


def node_counts(tools: Tools) -> tuple[int, int]:
    """The Managed pool's Ready nodes and its NodeClaims with no Ready node yet."""
    claims = json.loads(tools.run("kubectl", "get", "nodeclaims", "-l",
                                  f"{NODEPOOL_LABEL}={MANAGED}", "-o", "json"))  # fmt: skip
    ready = sum(
        1
        for c in claims["items"]
        if any(
            k.get("type") == "Ready" and k.get("status") == "True"
            for k in (c.get("status") or {}).get("conditions") or []
        )
    )
    return ready, len(claims["items"]) - ready


def sample(tools: Tools, t: float, speed: float) -> Sample:
    """Read the deployment's status, the Managed pool's nodes and the twin's metrics."""
    url = tools.cluster.prometheus_url
    sel = f'namespace="{NAMESPACE}",deployment="{NAME}"'
    demand = prom(url, f"sum(rate(vllm:request_success_total{{{sel}}}[20s])) / {speed:g}")
    p99 = prom(url, "histogram_quantile(0.99, sum by (le) "
                    f"(rate(vllm:e2e_request_latency_seconds_bucket{{{sel}}}[20s])))")  # fmt: skip
    body = json.loads(tools.run("kubectl", "get", "infd", NAME, "-n", NAMESPACE, "-o", "json"))
    status = body.get("status") or {}
    ready = {r["pool"]: int(r.get("ready", 0)) for r in status.get("replicas") or []}
    cost = float((status.get("cost") or {}).get("perHour") or 0.0)
    reason = (status.get("lastDecision") or {}).get("reason", "-")
    # The Managed pool's row: its warm spares (the pool's) and the free slots the engine saw.
    mine = next((r for r in status.get("replicas") or [] if r["pool"] == MANAGED), {})
    free, warm = mine.get("freeSlots"), int(mine.get("warmNodes") or 0)
    nodes, launching = node_counts(tools)
    return Sample(t, demand, ready, p99, cost, reason, nodes, launching, warm, free)


def row(s: Sample, threshold: float, pools: list[str]) -> str:
    """One line of the live table."""
    demand = "-" if s.demand is None else f"{s.demand:7.2f}"
    p99 = "-" if s.p99 is None else f"{s.p99:6.1f}{'!' if s.p99 > threshold else ' '}"
    counts = " ".join(f"{s.replicas.get(p, 0):>6}" for p in pools)
    nodes = f"{s.nodes}+{s.launching}" if s.launching else f"{s.nodes}"
    free = "-" if s.free is None else str(s.free)
    return (
        f"{s.t:6.0f} {demand:>8} {counts} {nodes:>6} {s.warm:>5} {free:>5} {p99:>8} "
        f"{s.cost_per_hour:8.2f}  {s.reason}"
    )


def short(pool: str) -> str:
    """A column header for an example pool: its accelerator and /s (spot) or /o (other)."""
    parts = pool.split("-")
    accelerator = parts[2] if len(parts) > 3 else parts[0]
    return accelerator.upper()[:4] + ("/s" if pool.endswith("spot") else "/o")


def _declared_node_seconds() -> float:
    """The Managed pool's node cold start as the example declares it (trace seconds)."""
    for path in sorted((REPO / "examples" / "pools").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["metadata"]["name"] == MANAGED:
                return float(doc["spec"]["coldStart"]["nodeSeconds"])
    raise RuntimeError(f"examples/pools defines no pool {MANAGED}")


NODE_COLD_START_S = _declared_node_seconds()


def run(args: argparse.Namespace) -> int:
    """The demo, end to end; always tears down what it started."""
    workdir = Path(tempfile.mkdtemp(prefix="costscaler-demo-"))
    state_dir = workdir / "cluster"
    began = time.monotonic()
    operator: subprocess.Popen[bytes] | None = None
    try:
        say("starting the local cluster (the first run builds Kubernetes and Karpenter)")
        node_s = args.node_seconds
        if node_s is None:  # the pools' declared node cold start, compressed like the trace
            node_s = round(NODE_COLD_START_S / args.speed)
        # Static KWOK nodes for every pool, and Karpenter for the Managed one, whose nodes
        # register `node_s` wall seconds after their launch.
        cluster = control.up(state_dir, progress=say, nodes="both", node_cold_start=node_s)
        tools = Tools(cluster, dict(os.environ, **cluster.env()))
        install(tools, node_s)
        doc = deployment(args.speed, args.model_load_seconds)
        tools.apply(doc)
        kubeconfig = operator_kubeconfig(tools, workdir)
        port = procs.free_port()
        log = (workdir / "operator.log").open("w")
        operator = subprocess.Popen(
            [str(Path(sys.executable).parent / "costscaler"), "run", "-n", NAMESPACE,
             "--prometheus-url",
             cluster.prometheus_url, "--interval", "5", "--scrape-interval", "2",
             "--metrics-port", str(port), "--kubeconfig", str(kubeconfig), "--peering",
             "namespaced"],
            stdout=log, stderr=subprocess.STDOUT,
            env=dict(os.environ, COSTSCALER_RATE_WINDOW="20s"),
        )  # fmt: skip
        say("waiting for the first replica to serve before the load starts")
        wait_ready(tools)
        control.start_twin(state_dir, [f"{NAMESPACE}/{NAME}={args.trace}"], args.speed)
        say(f"load twin replaying {args.trace.name} at {args.speed:g}x; operator log {log.name}")
        samples = live(tools, doc, args)
        report(tools, doc, samples, args, workdir)
        say(f"demo finished in {time.monotonic() - began:.0f} s; report in {args.out}")
        return 0
    finally:
        if operator is not None:
            operator.terminate()
            operator.wait(30)
        control.down(state_dir, progress=say)


def wait_ready(tools: Tools, timeout: float = 120) -> None:
    """Until a child Deployment of the demo deployment has a ready replica."""
    deadline = time.monotonic() + timeout
    selector = f"costscaler.dev/deployment={NAME}"
    while time.monotonic() < deadline:
        found = json.loads(tools.run("kubectl", "get", "deployments", "-n", NAMESPACE, "-l",
                                     selector, "-o", "json"))  # fmt: skip
        if any((d.get("status") or {}).get("readyReplicas") for d in found["items"]):
            return
        time.sleep(2)
    raise RuntimeError(f"no replica of {NAME} became ready within {timeout:.0f} s")


def live(tools: Tools, doc: dict[str, Any], args: argparse.Namespace) -> list[Sample]:
    """Print the live table every few seconds for the demo's duration."""
    pools = [p["name"] for p in doc["spec"]["pools"]]
    threshold = float(doc["spec"]["slo"]["latency"]["thresholdSeconds"])
    heads = " ".join(f"{short(p):>6}" for p in pools)
    print(
        f"{'time':>6} {'req/s':>8} {heads} {'nodes':>6} {'warm':>5} {'free':>5} {'p99 s':>8} "
        f"{'$/h':>8}  reason (ready replicas per pool; {short(MANAGED)} nodes ready+launching, "
        f"warm spares, free slots; SLO p99 target {threshold:g} s, ! = over)"
    )
    samples: list[Sample] = []
    start = time.monotonic()
    while (t := time.monotonic() - start) < args.minutes * 60:
        s = sample(tools, t, args.speed)
        samples.append(s)
        print(row(s, threshold, pools), flush=True)
        time.sleep(args.every)
    return samples


def report(
    tools: Tools,
    doc: dict[str, Any],
    samples: list[Sample],
    args: argparse.Namespace,
    workdir: Path,
) -> None:
    """Markdown with the cost views and a PNG of demand, capacity per pool and cost."""
    from demo_report import write_report

    chargeback = subprocess.run(
        [str(Path(sys.executable).parent / "costscaler"), "report", "--kubeconfig",
         str(tools.cluster.kubeconfig)],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    body = json.loads(tools.run("kubectl", "get", "infd", NAME, "-n", NAMESPACE, "-o", "json"))
    budget = json.loads(tools.run("kubectl", "get", "cbudget", "team-ml", "-n", NAMESPACE,
                                  "-o", "json"))  # fmt: skip
    write_report(args.out, doc, samples, args.speed, body.get("status") or {},
                 budget.get("status") or {}, chargeback, datetime.now(UTC), MANAGED)  # fmt: skip


def main() -> int:
    """Parse flags and run the demo."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_trace = SHARED / "traces" / "azure-llm-2023-conv" / "trace.csv"
    parser.add_argument("--trace", type=Path, default=default_trace, help="trace to replay")
    parser.add_argument("--speed", type=float, default=10.0, help="trace seconds per second")
    parser.add_argument("--minutes", type=float, default=4.0, help="wall minutes of load")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between table rows")
    parser.add_argument("--model-load-seconds", type=int, default=20, help="wall seconds")
    parser.add_argument(
        "--node-seconds",
        type=int,
        default=None,
        help=f"wall seconds from launch to Ready of {MANAGED}'s nodes "
        f"(default: its {NODE_COLD_START_S:.0f} s node cold start over --speed)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "demo-report", help="report folder")
    args = parser.parse_args()
    if not args.trace.is_file():
        print(f"error: --trace {args.trace}: no such file", file=sys.stderr)
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
