"""The control plane itself: RBAC with working service-account tokens, and up/down by pid."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from cluster import control, procs

pytestmark = pytest.mark.integration


def _as_token(cluster, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    # No kubeconfig: only the server, its CA and the token, so the admin cert cannot leak in.
    ca = cluster.state_dir / "pki" / "ca.crt"
    return subprocess.run(
        [str(cluster.kubectl_path), "--kubeconfig=/dev/null", f"--server={cluster.server}",
         f"--certificate-authority={ca}", f"--token={token}", *args],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_service_account_token_is_authenticated_and_rbac_applies(cluster) -> None:
    ns = f"rbac-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("create", "serviceaccount", "reader", "-n", ns)
    cluster.kubectl("create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", ns)
    cluster.kubectl(
        "create", "rolebinding", "reader", "--role=pod-reader",
        f"--serviceaccount={ns}:reader", "-n", ns,
    )  # fmt: skip
    token = cluster.kubectl("create", "token", "reader", "-n", ns).stdout.strip()
    who = _as_token(cluster, token, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert who.stdout == f"system:serviceaccount:{ns}:reader", who.stderr
    allowed = _as_token(cluster, token, "get", "pods", "-n", ns)
    assert allowed.returncode == 0, allowed.stderr
    denied = _as_token(cluster, token, "get", "nodes")
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()
    cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_up_is_idempotent_and_down_stops_exactly_its_processes(tmp_path: Path, cluster) -> None:
    state = tmp_path / "second"
    first = control.up(state, progress=lambda _: None)
    again = control.up(state, progress=lambda _: None)
    assert again.pids == first.pids and again.server == first.server
    assert all(procs.alive(ident) for ident in first.pids.values())
    assert first.server != cluster.server, "each cluster gets its own free ports"
    lines = control.env_lines(state)
    assert any(line.startswith("export KUBECONFIG=") for line in lines)
    assert any(line.startswith("export PROMETHEUS_URL=") for line in lines)
    control.down(state, progress=lambda _: None)
    assert not any(procs.alive(ident) for ident in first.pids.values())
    assert not state.exists()
    # The session's own cluster is untouched.
    assert cluster.kubectl("get", "--raw=/readyz").stdout == "ok"
