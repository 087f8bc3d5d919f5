"""Command lines and readiness checks of the control-plane components, started one by one."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from cluster import karpenter, procs
from cluster.kube import Api, http_ok, wait_for
from cluster.pki import Pki, make_pki
from cluster.state import Cluster
from cluster.tools import KARPENTER_BINARY, Tools

ALWAYS_ALLOW = "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics"


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Starter:
    """Starts the components one by one, recording each pid as soon as it exists."""

    def __init__(self, cluster: Cluster, tools: Tools) -> None:
        self.c, self.tools = cluster, tools
        self.pki: Pki = make_pki(cluster.state_dir / "pki")

    def spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> Path:
        log = self.c.state_dir / "logs" / f"{name}.log"
        self.c.pids[name] = procs.spawn(cmd, log, cwd=self.c.state_dir, env=env)
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

    def karpenter(self, instance_types: Path) -> None:
        """Karpenter's KWOK provider as a local process (its CRDs and node class applied)."""
        env = dict(
            os.environ,
            **karpenter.environment(
                str(self.c.kubeconfig),
                str(instance_types),
                self.c.ports["karpenter-metrics"],
                self.c.ports["karpenter-health"],
            ),
        )
        self.spawn("karpenter", [str(self.tools.binary(KARPENTER_BINARY))], env=env)
        port = self.c.ports["karpenter-health"]
        self.wait("karpenter", lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), timeout=120)

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
