"""The user's path: `make cluster-up`, `eval "$(make -s cluster-env)"`, kubectl, helm,
`make cluster-down`."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _make(target: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["make", "-s", "-C", str(ROOT), target],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"make {target} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _exports(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if words and words[0] == "export":
            key, _, value = words[1].partition("=")
            found[key] = value
    return found


def test_make_cluster_up_env_down(cluster, tmp_path: Path) -> None:
    # `cluster` first: the binaries are built, so this measures a cached start.
    state = tmp_path / "state"
    env = dict(os.environ, COSTSCALER_CLUSTER_DIR=str(state))
    began = time.monotonic()
    _make("cluster-up", env)
    elapsed = time.monotonic() - began
    assert elapsed < 60, f"cached start took {elapsed:.1f} s"
    try:
        exports = _exports(_make("cluster-env", env))
        assert set(exports) == {"KUBECONFIG", "PATH", "PROMETHEUS_URL"}
        shell = dict(os.environ, **exports)
        kubectl = subprocess.run(
            ["kubectl", "get", "nodes", "-o", "json"],
            env=shell, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        nodes = json.loads(kubectl.stdout)["items"]
        assert any(n["metadata"]["labels"].get("nvidia.com/gpu.product") for n in nodes)
        # Cloud pools' nodes are Karpenter's to launch: none pre-created, a node class each.
        assert not any(n["metadata"]["name"].startswith("g6-xlarge-l4-spot") for n in nodes)
        classes = subprocess.run(
            ["kubectl", "get", "kwoknodeclasses", "-o", "name"],
            env=shell, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert "kwoknodeclass.karpenter.kwok.sh/g6-xlarge-l4-spot" in classes.stdout.split()
        which = subprocess.run(["which", "kubectl", "helm"], env=shell, capture_output=True,
                               text=True, check=True)  # fmt: skip
        assert all(
            line.startswith(str(cluster.kubectl_path.parent)) for line in which.stdout.split()
        )
        with urllib.request.urlopen(exports["PROMETHEUS_URL"] + "/-/ready", timeout=5) as r:
            assert r.status == 200
        _make("cluster-up", env)  # idempotent: the same cluster
        assert _exports(_make("cluster-env", env)) == exports
    finally:
        _make("cluster-down", env)
    assert not state.exists()
