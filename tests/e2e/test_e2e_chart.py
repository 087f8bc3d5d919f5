"""The Helm chart installs on the real apiserver with the built helm; its RBAC is least privilege.

KWOK runs the operator pod on the untainted system node (it does not execute containers), so
this checks what the apiserver decides: the manifests validate (the chart's own CRDs included:
the session applied only crds/, so kopf's peering CRDs come from the chart), the pod passes the
`restricted` Pod Security Standard, the Deployment becomes Available, and the ServiceAccount may
do what the operator needs and nothing more. tests/e2e/test_e2e_chart_operator.py runs the
operator itself with that ServiceAccount.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

CHART = Path(__file__).resolve().parents[2] / "charts" / "costscaler"


def _helm(cluster, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(cluster.helm_path), *args],
        env=cluster.env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"helm {' '.join(args)} failed:\n{done.stderr}"
    return done


def _can(cluster, sa: str, *what: str) -> bool:
    done = cluster.kubectl("auth", "can-i", f"--as={sa}", *what, check=False)
    return done.stdout.strip() == "yes"


def test_chart_installs_and_its_rbac_is_least_privilege(crds_installed) -> None:
    cluster = crds_installed
    ns = f"costscaler-{uuid.uuid4().hex[:6]}"
    _helm(cluster, "lint", "--strict", str(CHART))
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted",
                    "pod-security.kubernetes.io/warn=restricted")  # fmt: skip
    # With the chart's crds/: helm creates the missing ones (kopf's peering CRDs).
    done = _helm(cluster, "install", "cs", str(CHART), "-n", ns, "--wait", "--timeout", "120s")
    try:
        assert "PodSecurity" not in done.stderr, done.stderr
        for crd in ("clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"):
            cluster.kubectl("get", "crd", crd)
        cluster.kubectl("get", "kopfpeering", "cs-costscaler", "-n", "default")
        phases = cluster.kubectl("get", "pods", "-n", ns, "-o",
                                 "jsonpath={.items[*].status.phase}").stdout.split()  # fmt: skip
        assert phases == ["Running"]
        pods = cluster.kubectl("get", "pods", "-n", ns, "-o",
                               "jsonpath={.items[*].spec.nodeName}").stdout.split()  # fmt: skip
        assert pods == ["system-0"]
        path = "jsonpath={.items[0].spec.template.spec.serviceAccountName}"
        sa_name = cluster.kubectl("get", "deployment", "-n", ns, "-o", path).stdout.strip()
        sa = f"system:serviceaccount:{ns}:{sa_name}"
        # Namespaced mode by default: workloads in the listed namespace (default) only.
        for what in [
            ("watch", "inferencedeployments.costscaler.dev", "-n", "default"),
            ("patch", "inferencedeployments.costscaler.dev", "--subresource=status", "-n",
             "default"),
            ("list", "capacitypools.costscaler.dev"),
            ("create", "deployments.apps", "-n", "default"),
            ("list", "nodes"),
            ("create", "events", "-A"),
        ]:  # fmt: skip
            assert _can(cluster, sa, *what), f"the operator cannot {' '.join(what)}"
        for what in [("get", "secrets", "-A"), ("delete", "nodes"), ("create", "pods", "-A"),
                     ("delete", "customresourcedefinitions"), ("create", "deployments.apps", "-A"),
                     ("create", "deployments.apps", "-n", "kube-system"),
                     ("update", "deployments.apps", "-n", ns)]:  # fmt: skip
            assert not _can(cluster, sa, *what), f"the operator may {' '.join(what)}"
    finally:
        _helm(cluster, "uninstall", "cs", "-n", ns, "--wait")
        cluster.kubectl("delete", "namespace", ns, "--wait=false")
