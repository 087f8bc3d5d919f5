"""Bring the local control plane up and down: etcd, apiserver, controller-manager, scheduler,
kwok with fake GPU nodes, Karpenter (KWOK provider), Prometheus. Everything listens on
127.0.0.1 on free ports and is recorded (pid and start time) in a state directory, so `down`
stops exactly what `up` started.

Node modes: `static` pre-creates min(maxNodes, nodes_per_pool) nodes per pool and runs no
Karpenter (nothing is ever launched); `karpenter` pre-creates only the owned pools' nodes
(Reserved, OnPrem: always on) and lets Karpenter launch the cloud pools' nodes, Ready after
their node cold start; `both` does both, for a test session where some tests need fixed nodes
and others NodePools of their own.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from cluster import karpenter, procs
from cluster.components import Starter
from cluster.kube import Api, http_ok, wait_for, write_kubeconfig
from cluster.nodes import SYSTEM_NODE, load_pools, pool_nodes, system_node
from cluster.state import REPO, Cluster, default_state_dir
from cluster.tools import Tools, ensure_tools

__all__ = ["REPO", "Cluster", "default_state_dir", "down", "env_lines", "start_twin", "up"]

Progress = Callable[[str], None]
NODE_MODES = ("static", "karpenter", "both")


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


def _create_nodes(api: Api, pools: Path, per_pool: int, mode: str) -> set[str]:
    api.create("/api/v1/nodes", system_node())
    names = {SYSTEM_NODE}
    for pool in load_pools(pools):
        if mode == "karpenter" and karpenter.launchable(pool):
            continue
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
    nodes: str = "static",
    node_cold_start: float | None = None,
) -> Cluster:
    """Start the cluster (or return the one already running in state_dir).

    `nodes`: static, karpenter or both (see the module docstring); `node_cold_start`: seconds
    a launched node takes to Ready, for every pool (default: each pool's coldStart.nodeSeconds).
    """
    if nodes not in NODE_MODES:
        raise RuntimeError(f"nodes must be one of {', '.join(NODE_MODES)}, not {nodes!r}")
    existing = Cluster.load(state_dir)
    if existing is not None and _running(existing):
        progress(f"cluster already running (state in {state_dir})")
        return existing
    down(state_dir, progress=lambda _: None)
    if state_dir.exists() and any(state_dir.iterdir()):
        raise RuntimeError(f"{state_dir} holds files but no cluster state: remove it first")
    tools = ensure_tools(progress)
    began = time.monotonic()
    (state_dir / "logs").mkdir(parents=True)
    names = ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "prometheus")
    if nodes != "static":
        names += ("karpenter-metrics", "karpenter-health")
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
        _start(cluster, tools, pools, nodes_per_pool, scrape_interval, nodes, node_cold_start)
    except BaseException:
        down(state_dir, progress=lambda _: None, keep_logs=True)
        raise
    progress(f"cluster up in {time.monotonic() - began:.1f} s (state in {state_dir})")
    return cluster


def _apply_karpenter(
    api: Api, tools: Tools, cluster: Cluster, pools: Path, cold_start: float | None
) -> Path:
    """Karpenter's CRDs, namespace and node class; returns its instance-types file."""
    crd_path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    crds = [d for d in yaml.safe_load_all(tools.karpenter_crds.read_text()) if d]
    for crd in crds:
        api.create(crd_path, crd)

    def established() -> bool:
        for crd in crds:
            status, reply = api.request("GET", f"{crd_path}/{crd['metadata']['name']}")
            conds = reply.get("status", {}).get("conditions", []) if status == 200 else []
            if not any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                return False
        return True

    wait_for("karpenter CRDs", established, 30)
    namespace = {"apiVersion": "v1", "kind": "Namespace"}
    api.create("/api/v1/namespaces", dict(namespace, metadata={"name": karpenter.SYSTEM_NAMESPACE}))
    for node_class in karpenter.node_classes(load_pools(pools), cold_start):
        api.create("/apis/karpenter.kwok.sh/v1alpha1/kwoknodeclasses", node_class)
    types = cluster.state_dir / "instance-types.json"
    types.write_text(json.dumps(karpenter.instance_types(load_pools(pools)), indent=2))
    return types


def _start(
    cluster: Cluster,
    tools: Tools,
    pools: Path,
    per_pool: int,
    interval: str,
    mode: str,
    cold_start: float | None,
) -> None:
    start = Starter(cluster, tools)
    api = Api(cluster.server, start.pki)
    start.etcd()
    start.apiserver(api)
    write_kubeconfig(cluster.kubeconfig, cluster.server, start.pki)
    start.controllers()
    start.prometheus(interval)
    names = _create_nodes(api, pools, per_pool, mode)
    if mode != "static":
        start.karpenter(_apply_karpenter(api, tools, cluster, pools, cold_start))
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
    state_dir: Path,
    loads: list[str],
    speed: float = 1.0,
    tick: float = 1.0,
    serving: str = "fluid",
) -> tuple[int, Path]:
    """Start a load twin for this cluster (stopped by `down`); returns its port and log.
    `serving`: the twin's serving model, `fluid` or `batching` (`cluster.twinload`)."""
    cluster = Cluster.load(state_dir)
    if cluster is None:
        raise RuntimeError(f"no cluster in {state_dir}: run `make cluster-up` first")
    # The twin runs in the state directory: make the trace paths absolute first.
    loads = [f"{n}={Path(t).resolve()}" for n, _, t in (load.partition("=") for load in loads)]
    port = procs.free_port()
    name = f"loadtwin-{port}"
    cmd = [sys.executable, "-m", "cluster.loadtwin", f"--kubeconfig={cluster.kubeconfig}",
           f"--targets-dir={cluster.targets_dir}", f"--speed={speed}", f"--tick={tick}",
           f"--port={port}", f"--serving={serving}",
           *(f"--load={load}" for load in loads)]  # fmt: skip
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
