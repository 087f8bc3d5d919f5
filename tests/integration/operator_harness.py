"""Run the operator (`costscaler run`), the load twin and spare Prometheus servers as local
processes against the session cluster, and read back what they did. Stopped by pid only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.procs import free_port

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT.parent / "shared" / "traces"
VENV_BIN = Path(sys.executable).parent


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60, every: float = 0.5) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what`."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # the object may not exist yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")


class Proc:
    """A child process with its log; stopped by its own pid."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.handle = log.open("w")
        self.p = subprocess.Popen(args, stdout=self.handle, stderr=subprocess.STDOUT, env=env)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.handle.close()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Operator(Proc):
    """`costscaler run` for one namespace, with its /metrics port."""

    def __init__(
        self,
        cluster: Any,
        ns: str,
        log: Path,
        prometheus: str,
        priority: int = 100,
        interval: float = 2.0,
        extra_env: dict[str, str] | None = None,
        scrape_interval: float = 5.0,
    ) -> None:
        # Prometheus scrapes every 2 s; readings are stale after twice `scrape_interval`, and
        # 10 s leaves room for a loaded CI machine where a scrape runs seconds late (at 4 s
        # the operator saw StaleMetrics for minutes while other work ran).
        self.port = free_port()
        args = [
            str(VENV_BIN / "costscaler"), "run", "-n", ns, "--prometheus-url", prometheus,
            "--interval", str(interval), "--scrape-interval", str(scrape_interval),
            "--metrics-port", str(self.port), "--priority", str(priority),
            "--peering", "namespaced",
        ]  # fmt: skip
        env = dict(cluster.env, KUBECONFIG=str(cluster.kubeconfig), COSTSCALER_LOG_LEVEL="INFO")
        # Tests read decisions back from status: refresh it every other tick, not every minute.
        env["COSTSCALER_STATUS_INTERVAL_SECONDS"] = str(2 * interval)
        env.update(extra_env or {})
        super().__init__(args, log, env)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples matching `labels` (0 when absent)."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5).read()
        total = 0.0
        for line in text.decode().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def healthy(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.port}/healthz"
            return urllib.request.urlopen(url, timeout=2).status == 200
        except OSError:
            return False


class Prometheus(Proc):
    """A private Prometheus scraping the load twins' targets (to stop without harming others)."""

    def __init__(self, cluster: Any, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        conf = workdir / "prometheus.yml"
        targets = str(Path(cluster.targets_dir) / "*.json")
        conf.write_text(json.dumps({
            "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
            "scrape_configs": [{"job_name": "loadtwin", "file_sd_configs": [
                {"files": [targets], "refresh_interval": "2s"}]}],
        }))  # fmt: skip
        binary = subprocess.run(["which", "prometheus"], capture_output=True, text=True).stdout
        args = [
            binary.strip() or "prometheus", f"--config.file={conf}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]  # fmt: skip
        super().__init__(args, workdir / f"prometheus-{self.port}.log", dict(os.environ))
        wait_for("prometheus ready", lambda: _http_ok(self.url + "/-/ready"), timeout=30)


class LoadTwin(Proc):
    """hack/cluster's load twin replaying a trace for one deployment, time-compressed;
    `serving="batching"` serves requests one by one and exports TTFT and ITL histograms."""

    def __init__(
        self,
        cluster: Any,
        key: str,
        trace: Path,
        speed: float,
        log: Path,
        serving: str = "fluid",
    ) -> None:
        args = [
            sys.executable, "-m", "cluster.loadtwin", "--kubeconfig", str(cluster.kubeconfig),
            "--targets-dir", str(cluster.targets_dir), "--load", f"{key}={trace}",
            "--speed", str(speed), "--tick", "1", "--serving", serving,
        ]  # fmt: skip
        env = dict(cluster.env, PYTHONPATH=str(ROOT / "hack"))
        super().__init__(args, log, env)


def _http_ok(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError:
        return False


def prom_value(url: str, query: str, at: float | None = None) -> float | None:
    """The single value of an instant query (at time `at`), or None when it has no series."""
    params = {"query": query} | ({"time": str(at)} if at is not None else {})
    q = urllib.parse.urlencode(params)
    reply = json.loads(urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=5).read())
    result = reply["data"]["result"]
    return float(result[0]["value"][1]) if result else None


CREATED: list[str] = []  # namespaces this module made; its `kube` fixture frees them


def new_namespace(cluster: Any) -> str:
    """A fresh namespace with kopf's peering object for namespaced operators."""
    ns = f"op-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", ns)
    CREATED.append(ns)
    peering = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering",
               "metadata": {"name": "costscaler", "namespace": ns}}  # fmt: skip
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(peering))
    wait_for("default service account", lambda: cluster.kubectl(
        "get", "sa", "default", "-n", ns, check=False).returncode == 0)  # fmt: skip
    return ns


def release(cluster: Any, ns: str) -> None:
    """Give back the nodes a test's replicas hold: delete the namespace's InferenceDeployments
    (no operator is left to act on them) and Deployments, so that the next test's replicas
    find the session's static nodes free."""
    for kind in ("inferencedeployments", "deployments"):
        cluster.kubectl("delete", kind, "--all", "-n", ns, "--wait=false", check=False)


def apply(cluster: Any, obj: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(obj))


def get(cluster: Any, *args: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def llama(
    ns: str, mode: str, pools: list[str], serving: str = "fluid", **spec: Any
) -> dict[str, Any]:
    """The example vLLM deployment in `ns`, with `mode` and `pools` (no budget), for a load
    twin `serving` requests as `LoadTwin` does."""
    doc = yaml.safe_load((ROOT / "examples/deployments/llama-3-1-8b-vllm.yaml").read_text())
    doc["metadata"]["namespace"] = ns
    doc["spec"].update(mode=mode, pools=[{"name": p} for p in pools], **spec)
    doc["spec"].pop("budgetRef", None)
    if serving == "fluid":
        # The fluid twin has no tokens per request, so no TTFT or ITL histograms: a stated
        # TTFT or ITL objective would be a missing series, and the operator would hold on it.
        doc["spec"]["slo"].pop("ttft"), doc["spec"]["slo"].pop("itl")
    return doc


def children(cluster: Any, ns: str, name: str) -> dict[str, dict[str, Any]]:
    """The child Deployments of an InferenceDeployment, by pool."""
    items = get(cluster, "deployments", "-n", ns, "-l", f"costscaler.dev/deployment={name}")
    return {d["metadata"]["labels"]["costscaler.dev/pool"]: d for d in items["items"]}


@pytest.fixture(scope="module", name="kube")
def kube_fixture(crds_installed: Any) -> Iterator[Any]:
    """The session cluster with the CRDs, kopf's peering CRDs and the example pools."""
    from costscaler.controller.peering import peering_crds

    for crd in peering_crds():
        crds_installed.kubectl("apply", "-f", "-", stdin=json.dumps(crd))
    crds_installed.kubectl("wait", "--for=condition=Established", "crd", "--all")
    crds_installed.kubectl("apply", "-f", str(ROOT / "examples" / "pools"))
    yield crds_installed
    # The KWOK GPU nodes are shared by the whole session: free the accelerators this module's
    # model servers hold, or a later test's pods stay Pending (no Running pod, no metrics).
    # Deployments go first: with no operator left, kopf's finalizers keep the
    # InferenceDeployments (and so the namespaces) from going away.
    while CREATED:
        ns = CREATED.pop()
        crds_installed.kubectl("delete", "deployments", "--all", "-n", ns, "--wait=false",
                               check=False)  # fmt: skip
        crds_installed.kubectl("delete", "namespace", ns, "--wait=false", check=False)
