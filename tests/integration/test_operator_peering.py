"""`costscaler run` against an API server without kopf's peering CRDs: an error naming the fixes,
and `--peering standalone` serving deployments (the README's local run)."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from operator_harness import ROOT, VENV_BIN, Proc, apply, free_port, get, llama, wait_for

from costscaler.controller.peering import peering_crds

pytestmark = pytest.mark.integration
OD = "g6-xlarge-l4-ondemand"


@pytest.fixture(name="bare")
def bare_fixture(crds_installed):
    """The session cluster without kopf's peering CRDs (put back afterwards for other tests)."""
    crds_installed.kubectl(
        "delete", "crd", "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev",
        "--ignore-not-found", "--wait=true",
    )  # fmt: skip
    served = ("api-resources", "--api-group=kopf.dev", "-o", "name")
    wait_for("kopf.dev no longer served",
             lambda: not crds_installed.kubectl(*served, check=False).stdout.strip())  # fmt: skip
    try:
        yield crds_installed
    finally:
        for crd in peering_crds():
            crds_installed.kubectl("apply", "-f", "-", stdin=json.dumps(crd))
        crds_installed.kubectl("wait", "--for=condition=Established", "crd", "--all")


def run_args(cluster, *scope: str, peering: str | None = None, port: int = 0) -> list[str]:
    args = [str(VENV_BIN / "costscaler"), "run", *scope, "--metrics-port", str(port),
            "--prometheus-url", cluster.env["PROMETHEUS_URL"], "--interval", "2"]  # fmt: skip
    return args + (["--peering", peering] if peering else [])


def env_of(cluster) -> dict[str, str]:
    return dict(cluster.env, KUBECONFIG=str(cluster.kubeconfig), COSTSCALER_LOG_LEVEL="INFO")


@pytest.mark.parametrize(
    ("scope", "crd"),
    [(["-A"], "clusterkopfpeerings.kopf.dev"), (["-n", "default"], "kopfpeerings.kopf.dev")],
    ids=["all-namespaces", "namespaced"],
)
def test_run_without_the_peering_crd_exits_naming_the_fixes(bare, scope, crd) -> None:
    done = subprocess.run(
        run_args(bare, *scope), env=env_of(bare), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and crd in error, error
    assert "--peering standalone" in error and "charts/costscaler" in error, error


def test_standalone_serves_deployments_without_the_peering_crd(bare, tmp_path: Path) -> None:
    ns = f"op-{uuid.uuid4().hex[:8]}"
    bare.kubectl("create", "namespace", ns)
    bare.kubectl("apply", "-f", str(ROOT / "examples" / "pools"))
    port = free_port()
    op = Proc(run_args(bare, "-n", ns, peering="standalone", port=port), tmp_path / "op.log",
              env_of(bare))  # fmt: skip
    try:
        apply(bare, llama(ns, "Recommend", [OD]))
        status = wait_for("a decision in status", lambda: get(
            bare, "infd", "llama-3-1-8b", "-n", ns).get("status", {}).get("lastDecision"),
            timeout=90)  # fmt: skip
        assert status["reason"], status
        assert op.p.poll() is None, op.tail()
    finally:
        op.stop()
        bare.kubectl("delete", "deployments", "--all", "-n", ns, "--wait=false", check=False)
        bare.kubectl("delete", "namespace", ns, "--wait=false", check=False)
