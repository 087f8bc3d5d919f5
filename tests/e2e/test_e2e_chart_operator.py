"""The chart's RBAC suffices for a full reconcile, and grants nothing outside what it manages.

The chart is installed once in namespaced mode (the default and narrowest grant: Roles in two
watched namespaces) and once watching all namespaces (opt-in), each time into a namespace that
enforces the `restricted` Pod Security Standard. KWOK does not execute containers, so the
operator runs here as a local process with exactly the installed Deployment's args and
environment, authenticated only by a token of the chart's ServiceAccount. It must create an
InferenceDeployment's children and write its decision, a CapacityPool's status and (once its
controller is registered) a CostBudget's status, without a single 403 in its log. And it must
refuse each escalation of issue 18: Deployment writes in a protected namespace (with the
ServiceAccount's own token), a targetRef to an unlabelled Deployment, PromQL that reads
another namespace.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.procs import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "costscaler"
VENV_BIN = Path(sys.executable).parent
OD, SPOT = "g6-xlarge-l4-ondemand", "g6-xlarge-l4-spot"
RESTRICTED = {f"pod-security.kubernetes.io/{m}": "restricted" for m in ("enforce", "warn", "audit")}


def _wait(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (AssertionError, KeyError, IndexError, json.JSONDecodeError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")


def _helm(cluster: Any, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(cluster.helm_path), *args],
        env=cluster.env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"helm {' '.join(args)} failed:\n{done.stderr}"
    return done


def _get(cluster: Any, *args: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def _apply(cluster: Any, obj: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(obj))


@dataclass
class Install:
    """The installed release and the local operator running as its ServiceAccount."""

    cluster: Any
    mode: str  # "namespaced" or "cluster"
    ns: str  # release namespace (restricted Pod Security)
    watched: tuple[str, str]
    other: str  # a namespace the release does not manage
    sa: str  # system:serviceaccount:<ns>:<name>
    log: Path
    helm_stderr: str
    suffix: str
    metrics_port: int
    kubeconfig: Path  # authenticated only by a token of the chart's ServiceAccount

    def can(self, *what: str) -> bool:
        """`kubectl auth can-i` with the operator's ServiceAccount token."""
        done = self.as_sa("auth", "can-i", *what)
        return done.stdout.strip() == "yes"

    def as_sa(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """kubectl with the ServiceAccount's token (the admin kubeconfig is overridden)."""
        return self.cluster.kubectl(f"--kubeconfig={self.kubeconfig}", *args, stdin=stdin,
                                    check=False)  # fmt: skip


def _pools(suffix: str) -> list[dict[str, Any]]:
    # Fresh pools: their status can only have been written by this test's operator.
    docs = yaml.safe_load_all((ROOT / "examples/pools/aws-g6-xlarge-l4.yaml").read_text())
    out = []
    for doc in docs:
        doc["metadata"]["name"] += f"-{suffix}"
        out.append(doc)
    return out


def _workloads(cluster: Any, a: str, b: str, suffix: str) -> None:
    for pool in _pools(suffix):
        _apply(cluster, pool)
    base = yaml.safe_load((ROOT / "examples/deployments/llama-3-1-8b-vllm.yaml").read_text())
    for ns, mode in ((a, "Enforce"), (b, "Recommend")):
        doc = json.loads(json.dumps(base))
        doc["metadata"]["namespace"] = ns
        pools = [{"name": f"{SPOT}-{suffix}"}, {"name": f"{OD}-{suffix}"}]
        doc["spec"].update(mode=mode, pools=pools, budgetRef={"name": "team-ml"})
        _apply(cluster, doc)
    budget = yaml.safe_load((ROOT / "examples/budgets/team-ml.yaml").read_text())
    budget["metadata"]["namespace"] = a
    _apply(cluster, budget)


def _kubeconfig_for(cluster: Any, ns: str, sa_name: str, path: Path) -> None:
    token = cluster.kubectl("create", "token", sa_name, "-n", ns, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    server = admin["clusters"][0]["cluster"]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "operator",
        "clusters": [{"name": "local", "cluster": server}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "local", "user": "operator"}}],
    }))  # fmt: skip


def _operator_command(cluster: Any, ns: str, kubeconfig: Path) -> tuple[list[str], dict[str, str]]:
    """The installed container's args and plain env, pointed at the ServiceAccount kubeconfig."""
    (deploy,) = _get(cluster, "deployments", "-n", ns)["items"]
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COSTSCALER_", "KUBE"))}
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    env["KUBECONFIG"] = str(kubeconfig)
    args = [str(VENV_BIN / "costscaler"), *container["args"], f"--kubeconfig={kubeconfig}"]
    return args, env


@pytest.fixture(scope="module", params=["namespaced", "cluster"])
def install(
    request: pytest.FixtureRequest, crds_installed: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Install]:
    """Chart installed in a mode, workloads applied, the operator running as the chart's SA."""
    from costscaler.controller.peering import peering_crds

    cluster, suffix, mode = crds_installed, uuid.uuid4().hex[:6], request.param
    release = "csns" if mode == "namespaced" else "csall"
    for crd in peering_crds():  # the chart's crds/ hold the same; the session applies crds/
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(crd))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd", "--all")
    ns, a, b, other = (f"{p}-{suffix}" for p in ("csop", "csop-a", "csop-b", "csop-other"))
    for name in (ns, a, b, other):
        cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", ns, *(f"{k}={v}" for k, v in RESTRICTED.items()))
    tmp = tmp_path_factory.mktemp("chart-operator")
    scope = {"namespaces": [a, b]} if mode == "namespaced" else {"allNamespaces": True}
    values = {
        "operator": {**scope, "interval": 2, "logLevel": "DEBUG"},
        "prometheus": {"url": cluster.prometheus_url},
        "metricsPort": free_port(),
    }
    (tmp / "values.yaml").write_text(yaml.safe_dump(values))
    helm = _helm(cluster, "install", release, str(CHART), "-n", ns, "--skip-crds", "-f",
                 str(tmp / "values.yaml"), "--wait", "--timeout", "120s")  # fmt: skip
    (deploy,) = _get(cluster, "deployments", "-n", ns)["items"]
    sa_name = deploy["spec"]["template"]["spec"]["serviceAccountName"]
    _kubeconfig_for(cluster, ns, sa_name, tmp / "kubeconfig")
    args, env = _operator_command(cluster, ns, tmp / "kubeconfig")
    log = tmp / "operator.log"
    with log.open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _workloads(cluster, a, b, suffix)
        sa = f"system:serviceaccount:{ns}:{sa_name}"
        port = values["metricsPort"]
        yield Install(
            cluster, mode, ns, (a, b), other, sa, log, helm.stderr, suffix, port, tmp / "kubeconfig"
        )
    finally:
        try:  # while the operator runs: it removes kopf's finalizers from what it served
            for name in (a, b):
                cluster.kubectl("delete", "infd,costbudget", "--all", "-n", name, "--wait=true")
            names = [p["metadata"]["name"] for p in _pools(suffix)]
            cluster.kubectl("delete", "capacitypool", *names, "--wait=true")
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            _helm(cluster, "uninstall", release, "-n", ns, "--wait")
            for name in (ns, a, b, other):
                cluster.kubectl("delete", "namespace", name, "--wait=false")


def _status(cluster: Any, kind: str, name: str, *ns: str) -> dict[str, Any]:
    return _get(cluster, kind, name, *(("-n", ns[0]) if ns else ())).get("status") or {}


def _children(cluster: Any, ns: str) -> dict[str, dict[str, Any]]:
    items = _get(cluster, "deployments", "-n", ns, "-l", "costscaler.dev/deployment=llama-3-1-8b")
    return {d["metadata"]["labels"]["costscaler.dev/pool"]: d for d in items["items"]}


def _no_forbidden(install: Install) -> None:
    text = install.log.read_text(errors="replace")
    # kopf says "Not enough permissions to ..." when a list or watch is forbidden. A namespace
    # being deleted also answers 403 to creates ("is being terminated"): not an RBAC denial (in
    # cluster mode the operator also sees other tests' leftovers).
    # The operator logs at DEBUG here, so every HTTP status line of its kube client is seen too.
    pattern = re.compile(
        r'forbidden|\(403\)|HTTP/1\.1\\?" 403|not enough (rbac )?permissions', re.I
    )
    lines = [line for line in text.splitlines() if "is being terminated" not in line]
    denied = [line for line in lines if pattern.search(line)]
    assert not denied, "the operator was denied:\n" + "\n".join(denied[:10])


def test_enforce_deployment_reconciles_with_the_chart_serviceaccount(install: Install) -> None:
    cluster, (a, _) = install.cluster, install.watched
    pools = {f"{SPOT}-{install.suffix}", f"{OD}-{install.suffix}"}
    kids = _wait("both children in the Enforce namespace",
                 lambda: (c := _children(cluster, a)) and set(c) == pools and c)  # fmt: skip
    for pool, child in kids.items():
        assert child["metadata"]["ownerReferences"][0]["kind"] == "InferenceDeployment"
        assert child["metadata"]["labels"]["costscaler.dev/pool"] == pool
    status = _wait("status.lastDecision",
                   lambda: (s := _status(cluster, "infd", "llama-3-1-8b", a)).get("lastDecision")
                   and s)  # fmt: skip
    # The session Prometheus has no series for this deployment: the engine holds replicas.min
    # on-demand (Enforce applies it to the children's replicas).
    assert status["lastDecision"]["reason"] == "MetricsUnavailable"
    wanted = {r["pool"]: r["replicas"] for r in status["lastDecision"]["replicas"]}
    _wait("the decision applied to the children",
          lambda: {p: d["spec"]["replicas"] for p, d in _children(cluster, a).items()}
          == {p: wanted.get(p, 0) for p in pools})  # fmt: skip
    _no_forbidden(install)


def test_recommend_deployment_gets_children_and_a_decision(install: Install) -> None:
    cluster, (_, b) = install.cluster, install.watched
    _wait("children in the Recommend namespace", lambda: len(_children(cluster, b)) == 2)
    decision = _wait(
        "status.lastDecision", lambda: _status(cluster, "infd", "llama-3-1-8b", b)["lastDecision"]
    )
    assert decision["message"].startswith("Recommend mode, not applied.")
    _no_forbidden(install)


def test_capacity_pool_status_written(install: Install) -> None:
    name = f"{OD}-{install.suffix}"
    status = _wait("CapacityPool status", lambda: _status(install.cluster, "capacitypool", name)
                   .get("effectiveHourlyCost"), timeout=60) and _status(
        install.cluster, "capacitypool", name)  # fmt: skip
    assert status["effectiveHourlyCost"] == "0.8050"
    assert status["nodes"] >= 1 and status["allocatableAccelerators"] >= 1
    _no_forbidden(install)


def _budgets_registered() -> bool:
    from costscaler.controller.app import build_registry
    from costscaler.controller.settings import Settings

    registry = build_registry(Settings(namespaces=["probe"]))
    return "budget_tick" in {h.id for h in registry._spawning.get_all_handlers()}


def test_cost_budget_status_written(install: Install) -> None:
    if not _budgets_registered():
        pytest.skip("the CostBudget controller (controller/budgets.py) is not registered yet")
    a = install.watched[0]
    status = _wait("CostBudget status",
                   lambda: (s := _status(install.cluster, "costbudget", "team-ml", a)).get(
                       "conditions") and s)  # fmt: skip
    assert "spent" in status
    _no_forbidden(install)


def test_alerts_and_dashboard_use_only_metrics_the_operator_exposes(install: Install) -> None:
    a = install.watched[0]
    _wait("a decision", lambda: _status(install.cluster, "infd", "llama-3-1-8b", a)["lastDecision"])
    url = f"http://127.0.0.1:{install.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    used = set()
    for path in (CHART / "files" / "alerts.rules.yaml", CHART / "files" / "dashboard.json"):
        used |= set(re.findall(r"\bcostscaler_[a-z_]+", path.read_text()))
    if _budgets_registered():  # the budget gauges get samples at the first budget tick
        _wait(
            "a budget tick", lambda: _status(install.cluster, "costbudget", "team-ml", a)["spent"]
        )
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    else:
        used = {name for name in used if not name.startswith("costscaler_budget_")}
    exposed = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    # The SLO window's gauges have no sample while its counts are unknown (no load here: an
    # unknown budget exports no made-up figure), but the operator declares them.
    declared = {line.split(" ")[2] for line in text.splitlines() if line.startswith("# HELP ")}
    window = {"costscaler_slo_attainment", "costscaler_error_budget_remaining"}
    window |= {"costscaler_error_budget_burn_rate"}
    exposed |= window & declared
    assert used and used <= exposed, f"not exposed by the operator: {sorted(used - exposed)}"


def test_serviceaccount_may_not_reach_outside_what_it_manages(install: Install) -> None:
    can, (a, b), other = install.can, install.watched, install.other
    managed = (a, b) if install.mode == "namespaced" else (a, b, other)
    for ns in managed:
        for verb in ("get", "watch", "create", "update", "delete"):
            assert can(verb, "deployments.apps", "-n", ns), f"cannot {verb} deployments in {ns}"
        assert can("patch", "deployments.apps", "--subresource=scale", "-n", ns)
        assert can("patch", "inferencedeployments.costscaler.dev", "--subresource=status", "-n", ns)
        assert can("patch", "costbudgets.costscaler.dev", "--subresource=status", "-n", ns)
    denied = [
        ("get", "secrets", "-A"), ("list", "secrets", "-A"), ("get", "secrets", "-n", install.ns),
        ("get", "secrets", "-n", a), ("delete", "nodes"), ("patch", "nodes"),
        ("create", "pods", "-n", a), ("delete", "pods", "-n", a), ("delete", "pods", "-n", other),
        ("create", "daemonsets.apps", "-n", a), ("create", "daemonsets.apps", "-n", other),
        ("create", "statefulsets.apps", "-n", other), ("delete", "services", "-n", other),
        ("delete", "customresourcedefinitions"), ("create", "clusterrolebindings"),
        ("create", "rolebindings", "-n", a), ("delete", "capacitypools.costscaler.dev"),
        ("delete", "inferencedeployments.costscaler.dev", "-n", a),
        ("update", "inferencedeployments.costscaler.dev", "-n", a),
        ("create", "costbudgets.costscaler.dev", "-n", a),
        ("update", "capacitypools.costscaler.dev", "--subresource=status"),
    ]  # fmt: skip
    protected = [("create", "deployments.apps", "-n", "kube-system"),
                 ("patch", "deployments.apps", "--subresource=scale", "-n", "kube-system"),
                 ("update", "deployments.apps", "-n", install.ns)]  # fmt: skip
    if install.mode == "cluster":  # RBAC allows; the admission policy denies (next test)
        assert all(can(*what) for what in protected)
    if install.mode == "namespaced":
        denied += protected
        denied += [
            ("list", "deployments.apps", "-A"), ("delete", "deployments.apps", "-n", other),
            ("create", "deployments.apps", "-n", other),
            ("patch", "deployments.apps", "--subresource=scale", "-n", other),
            ("list", "inferencedeployments.costscaler.dev", "-n", other),
            ("list", "deployments.apps", "-n", install.ns),
        ]  # fmt: skip
    for what in denied:
        assert not can(*what), f"the operator ({install.mode}) may {' '.join(what)}"


def test_operator_pod_passes_restricted_pod_security(install: Install) -> None:
    cluster, ns = install.cluster, install.ns
    assert "PodSecurity" not in install.helm_stderr, install.helm_stderr
    pods = _get(cluster, "pods", "-n", ns)["items"]
    assert [p["status"]["phase"] for p in pods] == ["Running"]
    assert pods[0]["spec"]["nodeName"] == "system-0"
    events = _get(cluster, "events", "-n", ns)["items"]
    assert not [e["message"] for e in events if "PodSecurity" in e.get("message", "")]
    # The check is live: a privileged pod is refused in the same namespace.
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad", "namespace": ns},
           "spec": {"containers": [{"name": "c", "image": "busybox",
                                    "securityContext": {"privileged": True}}]}}  # fmt: skip
    done = cluster.kubectl("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(bad),
                           check=False)  # fmt: skip
    assert done.returncode != 0 and "violates PodSecurity" in done.stderr, done.stderr


def _plain_deployment(name: str, ns: str, replicas: int, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         "containers": [{"name": "c", "image": "busybox"}]}}}}  # fmt: skip


def test_serviceaccount_cannot_write_deployments_in_protected_namespaces(install: Install) -> None:
    # Measured before (issue 18): the ServiceAccount created a privileged Deployment mounting
    # a Secret in kube-system. Real requests with its token, server-side dry runs.
    def create(ns: str) -> subprocess.CompletedProcess[str]:
        body = _plain_deployment(f"escalate-{install.suffix}", ns, 1, {})
        return install.as_sa("create", "--dry-run=server", "-f", "-", stdin=json.dumps(body))

    served = create(install.watched[0])
    assert served.returncode == 0, f"the token cannot even write where it should: {served.stderr}"
    (operator,) = _get(install.cluster, "deployments", "-n", install.ns)["items"]
    for ns in ("kube-system", install.ns):
        done = create(ns)
        assert done.returncode != 0 and "forbidden" in done.stderr, f"created in {ns}"
        if install.mode == "cluster":
            assert "never writes Deployments in the protected namespaces" in done.stderr
    scale = install.as_sa("scale", "deployment", operator["metadata"]["name"], "--replicas=0",
                          "-n", install.ns, "--dry-run=server")  # fmt: skip
    assert scale.returncode != 0 and "forbidden" in scale.stderr, scale.stdout


def _target_infd(name: str, ns: str, target: str, suffix: str) -> dict[str, Any]:
    base = yaml.safe_load((ROOT / "examples/deployments/llama-3-1-8b-vllm.yaml").read_text())
    spec = base["spec"]
    spec.pop("template"), spec.pop("budgetRef")
    # replicas.min above the Deployment's 3: whatever the (absent) metrics, a scale is due.
    spec.update(mode="Enforce", targetRef={"name": target}, pools=[{"name": f"{OD}-{suffix}"}],
                replicas={"min": 4, "max": 6})  # fmt: skip
    return {**base, "metadata": {"name": name, "namespace": ns}, "spec": spec}


def test_targetref_needs_the_opt_in_label(install: Install) -> None:
    # Measured before (issue 18): an InferenceDeployment scaled someone else's Deployment 3 -> 1.
    cluster, a, sfx = install.cluster, install.watched[0], install.suffix
    allowed = {"costscaler.dev/allow-targetref": "true"}
    _apply(cluster, _plain_deployment(f"theirs-{sfx}", a, 3, {}))
    _apply(cluster, _plain_deployment(f"optin-{sfx}", a, 3, allowed))
    _apply(cluster, _target_infd(f"grab-{sfx}", a, f"theirs-{sfx}", sfx))
    _apply(cluster, _target_infd(f"scale-{sfx}", a, f"optin-{sfx}", sfx))
    try:
        # The labelled one is scaled: the path works, so the other's 3 is a refusal.
        _wait("the opted-in Deployment scaled to replicas.min",
              lambda: _get(cluster, "deployment", f"optin-{sfx}", "-n", a)["spec"]["replicas"]
              >= 4)  # fmt: skip

        def theirs() -> int:
            return int(_get(cluster, "deployment", f"theirs-{sfx}", "-n", a)["spec"]["replicas"])

        def refused() -> list[dict[str, Any]]:
            conditions = _status(cluster, "infd", f"grab-{sfx}", a).get("conditions", [])
            return [c for c in conditions if c["type"] == "Ready" and c["status"] == "False"]

        _wait("a refusal (or a scale)", lambda: refused() or theirs() != 3)
        assert theirs() == 3, f"someone else's Deployment was scaled 3 -> {theirs()}"
        (ready,) = refused()
        assert ready["reason"] == "TargetNotAllowed"
        assert "costscaler.dev/allow-targetref=true" in ready["message"]
    finally:
        cluster.kubectl("delete", "infd", f"grab-{sfx}", f"scale-{sfx}", "-n", a)
        cluster.kubectl("delete", "deployment", f"theirs-{sfx}", f"optin-{sfx}", "-n", a)


def _promql_infd(name: str, ns: str, query: str, suffix: str) -> dict[str, Any]:
    base = yaml.safe_load((ROOT / "examples/deployments/llama-3-1-8b-vllm.yaml").read_text())
    base["metadata"] = {"name": name, "namespace": ns}
    base["spec"].pop("budgetRef")
    # A generic preset states no TTFT or ITL queries, so no objectives on them.
    base["spec"]["slo"].pop("ttft"), base["spec"]["slo"].pop("itl")
    base["spec"].update(
        pools=[{"name": f"{OD}-{suffix}"}],
        metrics={"preset": "generic", "requestRate": query, "latency": "vector(0.5)"},
    )
    return base


def test_user_promql_reads_only_its_own_namespace(install: Install) -> None:
    # Measured before (issue 18): count(up{namespace="default"}) from another namespace
    # appeared in status. Prometheus scrapes itself twice here, as a series of the other
    # namespace and one of the deployment's own.
    cluster, a, sfx = install.cluster, install.watched[0], install.suffix
    probe = cluster.targets_dir / f"escalation-{sfx}.json"
    host = cluster.prometheus_url.split("://", 1)[1].rstrip("/")
    probe.write_text(json.dumps([
        {"targets": [host], "labels": {"namespace": ns, "probe": sfx}}
        for ns in (install.other, a)]))  # fmt: skip
    mine = f'count(up{{namespace="{a}", probe="{sfx}"}})'
    theirs = f'count(up{{namespace="{install.other}", probe="{sfx}"}})'
    _apply(cluster, _promql_infd(f"own-{sfx}", a, mine, sfx))
    _apply(cluster, _promql_infd(f"leak-{sfx}", a, theirs, sfx))
    try:
        _wait(
            "both series in Prometheus", lambda: _prom_count(cluster, f'up{{probe="{sfx}"}}') == 2
        )
        # The user-query path reads: its own namespace's series reaches status.
        _wait("the own-namespace query observed", lambda: _status(
            cluster, "infd", f"own-{sfx}", a)["observed"]["requestRate"] == 1.0)  # fmt: skip
        leak = _wait("the other-namespace query judged", lambda: [
            c for c in _status(cluster, "infd", f"leak-{sfx}", a).get("conditions", [])
            if c["type"] == "MetricsAvailable"])  # fmt: skip
        assert (leak[0]["status"], leak[0]["reason"]) == ("False", "NoData"), leak
        assert "observed" not in _status(cluster, "infd", f"leak-{sfx}", a)
    finally:
        probe.unlink()
        cluster.kubectl("delete", "infd", f"own-{sfx}", f"leak-{sfx}", "-n", a)


def _prom_count(cluster: Any, selector: str) -> int:
    query = urllib.parse.urlencode({"query": f"count({selector})"})
    reply = json.loads(urllib.request.urlopen(f"{cluster.prometheus_url}/api/v1/query?{query}",
                                              timeout=5).read())  # fmt: skip
    result = reply["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0
