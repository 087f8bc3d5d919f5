"""Bring the local control plane up and down: etcd, apiserver, controller-manager, scheduler,
kwok with fake GPU nodes, Prometheus. Everything listens on 127.0.0.1 on free ports and is
recorded (pid and start time) in a state directory, so `down` stops exactly what `up` started.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cluster import procs
from cluster.kube import Api, http_ok, wait_for, write_kubeconfig
from cluster.nodes import SYSTEM_NODE, load_pools, pool_nodes, system_node
from cluster.pki import Pki, make_pki
from cluster.tools import Tools, ensure_tools

REPO = Path(__file__).resolve().parents[2]
STATE_FILE = "state.json"
ALWAYS_ALLOW = "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics"
Progress = Callable[[str], None]


@dataclass
class Cluster:
    """What a running cluster is: where its state lives, its endpoints and its processes."""

    state_dir: Path
    bin_dir: Path
    kubeconfig: Path
    server: str
    prometheus_url: str
    targets_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, list[int]] = field(default_factory=dict)

    def save(self) -> None:
        """Write state.json (called after every process start, so a failed up can be undone)."""
        data = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        (self.state_dir / STATE_FILE).write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, state_dir: Path) -> Cluster | None:
        """The cluster recorded in state_dir, or None if there is none."""
        try:
            data = json.loads((state_dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None
        for key in ("state_dir", "bin_dir", "kubeconfig", "targets_dir"):
            data[key] = Path(data[key])
        return cls(**data)

    def env(self) -> dict[str, str]:
        """The environment a shell or test needs to use this cluster."""
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "PROMETHEUS_URL": self.prometheus_url,
        }


def default_state_dir() -> Path:
    """One state directory per checkout, so `make cluster-env` finds what `up` started."""
    override = os.environ.get("COSTSCALER_CLUSTER_DIR")
    if override:
        return Path(override)
    digest = hashlib.sha256(str(REPO).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"costscaler-cluster-{os.getuid()}-{digest}"


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class _Starter:
    """Starts the components one by one, recording each pid as soon as it exists."""

    def __init__(self, cluster: Cluster, tools: Tools) -> None:
        self.c, self.tools = cluster, tools
        self.pki: Pki = make_pki(cluster.state_dir / "pki")

    def spawn(self, name: str, cmd: list[str]) -> Path:
        log = self.c.state_dir / "logs" / f"{name}.log"
        self.c.pids[name] = procs.spawn(cmd, log, cwd=self.c.state_dir)
        self.c.save()
        return log

    def wait(self, name: str, check: Callable[[], bool], timeout: float = 60) -> None:
        log = self.c.state_dir / "logs" / f"{name}.log"
        try:
            wait_for(name, lambda: check() or self._died(name), timeout, log)
        except RuntimeError as err:
            raise RuntimeError(f"{err}\n{_tail(log)}") from None
        if not procs.alive(self.c.pids[name]):
            raise RuntimeError(f"{name} exited; see {log}\n{_tail(log)}")

    def _died(self, name: str) -> bool:
        return not procs.alive(self.c.pids[name])

    def etcd(self) -> None:
        client, peer = self.c.ports["etcd"], self.c.ports["etcd-peer"]
        self.spawn("etcd", [
            str(self.tools.binary("etcd")), f"--data-dir={self.c.state_dir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=default=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync=true", "--log-level=warn",
        ])  # fmt: skip
        self.wait("etcd", lambda: http_ok(f"http://127.0.0.1:{client}/health"))

    def apiserver(self, api: Api) -> None:
        p = self.pki
        self.spawn("kube-apiserver", [
            str(self.tools.binary("kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{self.c.ports['etcd']}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.c.ports['apiserver']}",
            f"--cert-dir={self.c.state_dir / 'apiserver'}",
            f"--tls-cert-file={p.admin_cert}", f"--tls-private-key-file={p.admin_key}",
            f"--client-ca-file={p.ca_cert}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p.sa_pub}",
            f"--service-account-signing-key-file={p.sa_key}",
            "--service-cluster-ip-range=10.96.0.0/16", "--allow-privileged=true",
            "--authorization-mode=Node,RBAC", "--profiling=false",
            # The `kubernetes` Service cannot point at a loopback address; nothing in the
            # fake pods dials it, so skip the reconciler rather than log its error forever.
            "--endpoint-reconciler-type=none",
            # Front-proxy (aggregation) settings, so delegated authentication is complete.
            f"--requestheader-client-ca-file={p.ca_cert}", "--requestheader-allowed-names=admin",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={p.admin_cert}", f"--proxy-client-key-file={p.admin_key}",
        ])  # fmt: skip
        self.wait("kube-apiserver", api.ready)

    def controllers(self) -> None:
        kc, p = str(self.c.kubeconfig), self.pki
        auth = [f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}", "--leader-elect=false",
                "--bind-address=127.0.0.1", ALWAYS_ALLOW]  # fmt: skip
        self.spawn("kube-controller-manager", [
            str(self.tools.binary("kube-controller-manager")), *auth,
            f"--secure-port={self.c.ports['controller-manager']}",
            f"--root-ca-file={p.ca_cert}", f"--service-account-private-key-file={p.sa_key}",
            f"--cluster-signing-cert-file={p.ca_cert}", f"--cluster-signing-key-file={p.ca_key}",
        ])  # fmt: skip
        self.spawn("kube-scheduler", [
            str(self.tools.binary("kube-scheduler")), *auth,
            f"--secure-port={self.c.ports['scheduler']}",
        ])  # fmt: skip
        self.spawn("kwok", [
            str(self.tools.binary("kwok")), f"--kubeconfig={kc}",
            f"--config={self.tools.kwok_stages}",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--cidr=10.244.0.0/16", "--node-ip=10.0.0.1", "--node-lease-duration-seconds=40",
        ])  # fmt: skip

    def prometheus(self, scrape_interval: str) -> None:
        config = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "scrape_configs": [
                {
                    # Load twins drop a file_sd JSON here, one target per Running pod.
                    "job_name": "loadtwin",
                    "file_sd_configs": [
                        {"files": [str(self.c.targets_dir / "*.json")], "refresh_interval": "2s"}
                    ],
                }
            ],
        }
        conf = self.c.state_dir / "prometheus.yml"
        conf.write_text(json.dumps(config, indent=2))
        self.spawn("prometheus", [
            str(self.tools.prometheus), f"--config.file={conf}",
            f"--storage.tsdb.path={self.c.state_dir / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{self.c.ports['prometheus']}",
            "--storage.tsdb.retention.time=10y", "--web.enable-lifecycle",
            "--web.enable-admin-api", "--log.level=warn",
        ])  # fmt: skip


def _nodes_ready(api: Api, names: set[str]) -> bool:
    status, reply = api.request("GET", "/api/v1/nodes?labelSelector=type%3Dkwok")
    if status != 200:
        return False
    ready = {
        n["metadata"]["name"]
        for n in reply["items"]
        for c in n.get("status", {}).get("conditions", [])
        if c["type"] == "Ready" and c["status"] == "True"
    }
    return names <= ready


def _create_nodes(api: Api, pools: Path, per_pool: int) -> set[str]:
    api.create("/api/v1/nodes", system_node())
    names = {SYSTEM_NODE}
    for pool in load_pools(pools):
        for node in pool_nodes(pool, per_pool):
            api.create("/api/v1/nodes", node)
            names.add(node["metadata"]["name"])
    return names


def _running(cluster: Cluster) -> bool:
    if not cluster.pids or not all(procs.alive(i) for i in cluster.pids.values()):
        return False
    return http_ok(cluster.prometheus_url + "/-/ready")


def up(
    state_dir: Path,
    pools: Path = REPO / "examples" / "pools",
    nodes_per_pool: int = 8,
    scrape_interval: str = "2s",
    progress: Progress = print,
) -> Cluster:
    """Start the cluster (or return the one already running in state_dir)."""
    existing = Cluster.load(state_dir)
    if existing is not None and _running(existing):
        progress(f"cluster already running (state in {state_dir})")
        return existing
    down(state_dir, progress=lambda _: None)
    tools = ensure_tools(progress)
    began = time.monotonic()
    (state_dir / "logs").mkdir(parents=True)
    names = ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "prometheus")
    ports = {name: procs.free_port() for name in names}
    cluster = Cluster(
        state_dir=state_dir,
        bin_dir=tools.bin_dir,
        kubeconfig=state_dir / "kubeconfig",
        server=f"https://127.0.0.1:{ports['apiserver']}",
        prometheus_url=f"http://127.0.0.1:{ports['prometheus']}",
        targets_dir=state_dir / "targets",
        ports=ports,
    )
    cluster.targets_dir.mkdir()
    cluster.save()
    try:
        _start(cluster, tools, pools, nodes_per_pool, scrape_interval)
    except BaseException:
        down(state_dir, progress=lambda _: None, keep_logs=True)
        raise
    progress(f"cluster up in {time.monotonic() - began:.1f} s (state in {state_dir})")
    return cluster


def _start(cluster: Cluster, tools: Tools, pools: Path, per_pool: int, interval: str) -> None:
    start = _Starter(cluster, tools)
    api = Api(cluster.server, start.pki)
    start.etcd()
    start.apiserver(api)
    write_kubeconfig(cluster.kubeconfig, cluster.server, start.pki)
    start.controllers()
    start.prometheus(interval)
    names = _create_nodes(api, pools, per_pool)
    start.wait("kwok", lambda: _nodes_ready(api, names))
    # Pods are only admitted once the service-account controller made `default`.
    sa = "/api/v1/namespaces/default/serviceaccounts/default"
    start.wait("kube-controller-manager", lambda: api.request("GET", sa)[0] == 200)
    port = cluster.ports["scheduler"]
    start.wait("kube-scheduler", lambda: http_ok(f"https://127.0.0.1:{port}/healthz"))
    start.wait("prometheus", lambda: http_ok(cluster.prometheus_url + "/-/ready"))


def down(state_dir: Path, progress: Progress = print, keep_logs: bool = False) -> None:
    """Stop the processes recorded in state_dir (by pid) and delete the state."""
    cluster = Cluster.load(state_dir)
    if cluster is None:
        progress(f"no cluster recorded in {state_dir}")
        return
    # Reverse start order: clients before the apiserver, the apiserver before etcd.
    procs.stop(list(reversed(cluster.pids.values())))
    if keep_logs:
        kept = Path(tempfile.mkdtemp(prefix="costscaler-cluster-logs-"))
        shutil.copytree(state_dir / "logs", kept / "logs", dirs_exist_ok=True)
        progress(f"logs kept in {kept}")
    shutil.rmtree(state_dir)
    progress(f"cluster stopped ({len(cluster.pids)} processes), {state_dir} removed")


def start_twin(
    state_dir: Path, loads: list[str], speed: float = 1.0, tick: float = 1.0
) -> tuple[int, Path]:
    """Start a load twin for this cluster (stopped by `down`); returns its port and log."""
    cluster = Cluster.load(state_dir)
    if cluster is None:
        raise RuntimeError(f"no cluster in {state_dir}: run `make cluster-up` first")
    # The twin runs in the state directory: make the trace paths absolute first.
    loads = [f"{n}={Path(t).resolve()}" for n, _, t in (load.partition("=") for load in loads)]
    port = procs.free_port()
    name = f"loadtwin-{port}"
    cmd = [sys.executable, "-m", "cluster.loadtwin", f"--kubeconfig={cluster.kubeconfig}",
           f"--targets-dir={cluster.targets_dir}", f"--speed={speed}", f"--tick={tick}",
           f"--port={port}", *(f"--load={load}" for load in loads)]  # fmt: skip
    log = state_dir / "logs" / f"{name}.log"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    cluster.pids[name] = procs.spawn(cmd, log, cwd=state_dir, env=env)
    cluster.save()
    wait_for(name, lambda: http_ok(f"http://127.0.0.1:{port}/status"), 30, log)
    return port, log


def stop_twin(state_dir: Path, port: int) -> None:
    """Stop the load twin started on this port and forget it."""
    cluster = Cluster.load(state_dir)
    ident = cluster.pids.pop(f"loadtwin-{port}", None) if cluster else None
    if cluster is None or ident is None:
        raise RuntimeError(f"no load twin on port {port} in {state_dir}")
    procs.stop([ident])
    cluster.save()


def env_lines(state_dir: Path) -> list[str]:
    """`export` lines for a shell to eval."""
    cluster = Cluster.load(state_dir)
    if cluster is None:
        raise RuntimeError(f"no cluster in {state_dir}: run `make cluster-up` first")
    return [f"export {key}={_quote(value)}" for key, value in cluster.env().items()]


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def describe(cluster: Cluster) -> dict[str, Any]:
    """A JSON-friendly summary for `status`."""
    alive = {name: procs.alive(ident) for name, ident in cluster.pids.items()}
    return {"server": cluster.server, "prometheus": cluster.prometheus_url, "alive": alive}
