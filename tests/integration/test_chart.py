"""The Helm chart renders, lints and validates on the real apiserver; its alerts pass promtool.

Rendered with the built helm (v4) for the default values and for every option on; each
manifest whose kind the test cluster serves goes through `kubectl apply --dry-run=server`
(admission, schema and RBAC escalation checks included). The prometheus-operator kinds are not
served there, so the ServiceMonitor is checked against the Service it must select and the
PrometheusRule's groups go through `promtool check rules`.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "costscaler"
ALERTS = CHART / "files" / "alerts.rules.yaml"
PROMETHEUS_OPERATOR = {"ServiceMonitor", "PrometheusRule"}


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)


def _helm(cluster: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return _run([str(cluster.helm_path), *args], cluster.env)


def _render(cluster: Any, values: dict[str, Any], ns: str, *extra: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(_template(cluster, values, ns, *extra)) if d]


def _template(cluster: Any, values: dict[str, Any], ns: str, *extra: str) -> str:
    done = subprocess.run(
        [str(cluster.helm_path), "template", "cs", str(CHART), "-n", ns, "-f", "-", *extra],
        input=yaml.safe_dump(values), env=cluster.env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"helm template failed:\n{done.stderr}"
    return done.stdout


def _every_option(ns: str, a: str, b: str) -> dict[str, Any]:
    return {
        "image": {"tag": "0.1.0-test", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "replicaCount": 2,
        "operator": {
            "allNamespaces": False, "namespaces": [a, b], "interval": 30, "jsonLogs": False,
            "logLevel": "DEBUG",
            "extraEnv": [
                {"name": "COSTSCALER_RATE_WINDOW", "value": "2m"},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
        },
        "prometheus": {
            "url": "https://thanos-query.monitoring.svc:10902",
            "bearerTokenSecret": "prometheus-token", "caBundleConfigMap": "prometheus-ca",
        },
        "serviceAccount": {"create": True, "name": "costscaler-op",
                           "annotations": {"iam.example.com/role": "costscaler"}},
        "resources": {"requests": {"cpu": "200m", "memory": "256Mi"},
                      "limits": {"cpu": "2", "memory": "1Gi"}},
        "metricsPort": 9095,
        "podLabels": {"team": "ml-platform"},
        "podAnnotations": {"example.com/scrape": "true"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "system",
                         "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [
                {"key": "node-role", "operator": "In", "values": ["system"]}]}}]}},
        "priorityClassName": "system-cluster-critical",
        "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "kps"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "kps"}},
        "grafanaDashboard": {"enabled": True, "label": "grafana_dashboard", "labelValue": "yes",
                             "namespace": ns},
        "networkPolicy": {"enabled": True, "apiServerCIDR": "10.0.0.1/32", "prometheusPort": 10902,
                          "metricsFrom": [{"namespaceSelector": {"matchLabels": {
                              "kubernetes.io/metadata.name": "monitoring"}}}]},
    }  # fmt: skip


@pytest.fixture(scope="module")
def namespaces(crds_installed: Any) -> Any:
    """A release namespace and two watched ones, and kopf's peering CRDs (the chart's crds/)."""
    from costscaler.controller.peering import peering_crds

    cluster = crds_installed
    for crd in peering_crds():
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(crd))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd", "--all")
    suffix = uuid.uuid4().hex[:6]
    names = [f"chart-{suffix}", f"chart-a-{suffix}", f"chart-b-{suffix}"]
    for ns in names:
        cluster.kubectl("create", "namespace", ns)
    yield cluster, *names
    for ns in names:
        cluster.kubectl("delete", "namespace", ns, "--wait=false")


def _dry_run(cluster: Any, docs: list[dict[str, Any]]) -> None:
    served = [d for d in docs if d["kind"] not in PROMETHEUS_OPERATOR]
    stream = "---\n".join(yaml.safe_dump(d) for d in served)
    done = cluster.kubectl("apply", "--dry-run=server", "-f", "-", stdin=stream, check=False)
    assert done.returncode == 0, f"the apiserver rejected the chart:\n{done.stderr}"
    accepted = [line for line in done.stdout.splitlines() if "(server dry run)" in line]
    assert len(accepted) == len(served), done.stdout


def test_helm_lint_strict_passes(crds_installed: Any) -> None:
    namespaced = ["--set", "operator.allNamespaces=false", "--set", "operator.namespaces={a,b}"]
    cluster_wide = ["--set", "operator.allNamespaces=true"]
    for values in ([], [*namespaced, "--set", "prometheusRule.enabled=true"], cluster_wide):
        done = _helm(crds_installed, "lint", "--strict", str(CHART), *values)
        assert done.returncode == 0, f"helm lint --strict {values}:\n{done.stdout}{done.stderr}"
        assert "0 chart(s) failed" in done.stdout


def test_default_values_render_and_the_apiserver_accepts_them(namespaces: Any) -> None:
    cluster, ns, _, _ = namespaces
    docs = _render(cluster, {}, ns, "--include-crds")
    kinds = sorted(d["kind"] for d in docs)
    # Namespaced mode by default (issue 18): workload access only in the listed `default`.
    # The node layer's Role (CapacityBuffers and PodTemplates, issue 16) is the second pair.
    assert kinds == sorted([
        "KopfPeering", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap",
        "Role", "RoleBinding",
        "CustomResourceDefinition", "CustomResourceDefinition", "CustomResourceDefinition",
        "CustomResourceDefinition", "CustomResourceDefinition", "Deployment", "Service",
        "ServiceAccount",
    ])  # fmt: skip
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role"}
    assert {r["metadata"]["namespace"] for r in roles.values()} == {"default"}
    warm = roles["cs-costscaler-warm"]["rules"]
    assert {r["resources"][0] for r in warm} == {"capacitybuffers", "podtemplates"}
    (deploy,) = [d for d in docs if d["kind"] == "Deployment"]
    assert deploy["spec"]["strategy"]["type"] == "Recreate"
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert (
        "--all-namespaces" not in container["args"] and "--namespace=default" in container["args"]
    )
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["COSTSCALER_PEERING"] == "namespaced"
    (peering,) = [d for d in docs if d["kind"] == "KopfPeering"]
    assert env["COSTSCALER_PEERING_NAME"] == peering["metadata"]["name"]
    _dry_run(cluster, docs)


def test_cluster_wide_mode_denies_writes_in_protected_namespaces(namespaces: Any) -> None:
    cluster, ns, _, _ = namespaces
    values = {"operator": {"allNamespaces": True, "extraProtectedNamespaces": ["monitoring"]}}
    docs = _render(cluster, values, ns)
    by_kind = {d["kind"]: d for d in docs}
    # No workload Role: a ClusterRole; only the node layer's warm-buffer Role is namespaced.
    roles = [d["metadata"]["name"] for d in docs if d["kind"] == "Role"]
    assert roles == ["cs-costscaler-warm"] and by_kind["ClusterKopfPeering"]
    policy = by_kind["ValidatingAdmissionPolicy"]["spec"]
    (selector,) = policy["matchConstraints"]["namespaceSelector"]["matchExpressions"]
    assert selector["key"] == "kubernetes.io/metadata.name" and selector["operator"] == "In"
    assert set(selector["values"]) == {"kube-system", "kube-public", "kube-node-lease", ns,
                                       "monitoring"}  # fmt: skip
    (rule,) = policy["matchConstraints"]["resourceRules"]
    assert set(rule["resources"]) == {"deployments", "deployments/scale"}
    assert set(rule["operations"]) == {"CREATE", "UPDATE", "DELETE"}
    (who,) = policy["matchConditions"]
    sa = f"system:serviceaccount:{ns}:cs-costscaler"
    assert who["expression"] == f'request.userInfo.username == "{sa}"'
    binding = by_kind["ValidatingAdmissionPolicyBinding"]["spec"]
    assert binding["validationActions"] == ["Deny"]
    assert binding["policyName"] == by_kind["ValidatingAdmissionPolicy"]["metadata"]["name"]
    _dry_run(cluster, docs)  # the API server compiles the policy's CEL


@pytest.mark.parametrize("protected", ["kube-system", "kube-node-lease", "RELEASE", "monitoring"])
def test_namespaced_mode_refuses_a_protected_namespace(namespaces: Any, protected: str) -> None:
    cluster, ns, a, _ = namespaces
    listed = ns if protected == "RELEASE" else protected
    values = {"operator": {"namespaces": [a, listed], "extraProtectedNamespaces": ["monitoring"]}}
    done = subprocess.run(
        [str(cluster.helm_path), "template", "cs", str(CHART), "-n", ns, "-f", "-"],
        input=yaml.safe_dump(values), env=cluster.env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0, f"{listed} was accepted"
    assert f'operator.namespaces lists "{listed}", a protected namespace' in done.stderr


def test_every_option_renders_and_the_apiserver_accepts_it(namespaces: Any, tmp_path: Path) -> None:
    cluster, ns, a, b = namespaces
    docs = _render(cluster, _every_option(ns, a, b), ns)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    # Namespaced mode: Roles only in the watched namespaces, no cluster-wide workload access;
    # the node layer's (CapacityBuffers, PodTemplates) only in the first of them.
    workloads = [r for r in by_kind["Role"] if r["metadata"]["name"].endswith("-workloads")]
    assert sorted(r["metadata"]["namespace"] for r in workloads) == sorted([a, b])
    warm = [r for r in by_kind["Role"] if r["metadata"]["name"].endswith("-warm")]
    assert [r["metadata"]["namespace"] for r in warm] == [a]
    assert sorted(r["metadata"]["namespace"] for r in by_kind["KopfPeering"]) == sorted([a, b])
    assert [r["metadata"]["name"] for r in by_kind["ClusterRole"]] == ["cs-costscaler-cluster"]
    (deploy,) = by_kind["Deployment"]
    assert deploy["spec"]["replicas"] == 2 and deploy["spec"]["strategy"]["type"] == "RollingUpdate"
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert [x for x in container["args"] if x.startswith("--namespace")] == [
        f"--namespace={a}", f"--namespace={b}"]  # fmt: skip
    env = {e["name"]: e for e in container["env"]}
    assert env["COSTSCALER_PEERING"]["value"] == "namespaced"
    assert env["COSTSCALER_PROMETHEUS_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "prometheus-token", "key": "token"}  # fmt: skip
    ca_file = Path(env["COSTSCALER_PROMETHEUS_CA_FILE"]["value"])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert ca_file.parent == Path(mounts["prometheus-ca"]) and ca_file.name == "ca.crt"
    assert {"name": "prometheus-ca", "configMap": {"name": "prometheus-ca"}} in pod["volumes"]
    assert env["COSTSCALER_RATE_WINDOW"]["value"] == "2m" and "POD_NAME" in env
    assert pod["serviceAccountName"] == "costscaler-op"
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert container["ports"][0]["containerPort"] == 9095
    _dry_run(cluster, docs)
    _check_service_monitor(by_kind)
    _check_prometheus_rule(by_kind, tmp_path)


def test_the_node_layer_off_asks_for_no_karpenter_access(namespaces: Any) -> None:
    cluster, ns, a, _ = namespaces
    on = _render(cluster, {"nodes": {"warmNamespace": a}}, ns)
    off = _render(cluster, {"nodes": {"enabled": False}}, ns)

    def groups(docs: list[dict[str, Any]]) -> set[str]:
        return {
            g
            for d in docs
            if d["kind"] in ("ClusterRole", "Role")
            for r in d["rules"]
            for g in r["apiGroups"]
        }

    assert {"karpenter.sh", "autoscaling.x-k8s.io"} <= groups(on)
    assert not {"karpenter.sh", "autoscaling.x-k8s.io"} & groups(off)
    # No Node writes either way: Karpenter launches and removes the nodes.
    for d in on:
        for r in d.get("rules", []) if d["kind"] == "ClusterRole" else []:
            if "nodes" in r["resources"]:
                assert set(r["verbs"]) <= {"get", "list", "watch"}

    def env(docs: list[dict[str, Any]]) -> dict[str, str]:
        (deploy,) = [d for d in docs if d["kind"] == "Deployment"]
        (container,) = deploy["spec"]["template"]["spec"]["containers"]
        return {e["name"]: e.get("value") for e in container["env"]}

    assert env(on)["COSTSCALER_NODE_LAYER"] == "true"
    assert env(on)["COSTSCALER_WARM_NAMESPACE"] == a
    assert env(off)["COSTSCALER_NODE_LAYER"] == "false"
    assert "COSTSCALER_WARM_NAMESPACE" not in env(off)
    _dry_run(cluster, off)


def test_an_existing_serviceaccount_is_bound_and_not_created(namespaces: Any) -> None:
    cluster, ns, _, _ = namespaces
    docs = _render(cluster, {"serviceAccount": {"create": False, "name": "platform-ops"}}, ns)
    assert "ServiceAccount" not in {d["kind"] for d in docs}
    bindings = [d for d in docs if d["kind"].endswith("RoleBinding")]
    assert bindings and all(
        b["subjects"] == [{"kind": "ServiceAccount", "name": "platform-ops", "namespace": ns}]
        for b in bindings
    )
    (deploy,) = [d for d in docs if d["kind"] == "Deployment"]
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == "platform-ops"
    _dry_run(cluster, docs)


def _check_service_monitor(by_kind: dict[str, list[dict[str, Any]]]) -> None:
    (sm,) = by_kind["ServiceMonitor"]
    (svc,) = by_kind["Service"]
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "kps"
    selector = sm["spec"]["selector"]["matchLabels"]
    assert selector.items() <= svc["metadata"]["labels"].items(), "it selects no Service"
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}
    assert endpoint["path"] == "/metrics" and endpoint["interval"] == "15s"


def _check_prometheus_rule(by_kind: dict[str, list[dict[str, Any]]], tmp: Path) -> None:
    (rule,) = by_kind["PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert set(rule["spec"]) == {"groups"}
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text())
    rendered = tmp / "rendered-rules.yaml"
    rendered.write_text(yaml.safe_dump(rule["spec"]))
    done = _run(["promtool", "check", "rules", str(rendered)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"replicaCount": "two"}, "replicaCount"),
        ({"replicaCount": 0}, "replicaCount"),
        ({"operator": {"logLevel": "LOUD"}}, "logLevel"),
        ({"operator": {"namespaces": ["Not_A_Namespace"]}}, "namespaces"),
        ({"prometheus": {"url": "prometheus:9090"}}, "url"),
        ({"metricsPort": "8080"}, "metricsPort"),
        ({"serviceMonitor": {"enabled": "yes"}}, "enabled"),
        ({"replicas": 2}, "replicas"),
        # Issue 18, item 7: each of these was accepted.
        ({"networkPolicy": {"apiServerCIDR": "10.0.0.300/33"}}, "apiServerCIDR"),
        ({"networkPolicy": {"apiServerCIDR": "kubernetes.default"}}, "apiServerCIDR"),
        ({"operator": {"extraEnv": [{"name": "X", "value": 5}]}}, "extraEnv"),
        ({"operator": {"extraEnv": ["X=1"]}}, "extraEnv"),
        ({"prometheus": {"bearerTokenSecret": "Prom_Token"}}, "bearerTokenSecret"),
        ({"serviceAccount": {"name": "ops sa"}}, "name"),
        ({"prometheus": {"url": "http://prometheus:9090/a b"}}, "url"),
        ({"resources": {"requests": {"memory": "-128Mi"}}}, "memory"),
        ({"resources": {"limits": {"memory": -1}}}, "memory"),
        ({"priorityClassName": "system-node-critical"}, "priorityClassName"),
        ({"nodes": {"warmNamespace": "Not_A_Namespace"}}, "warmNamespace"),
        ({"nodes": {"enabled": "yes"}}, "enabled"),
    ],
)
def test_wrong_values_are_rejected_naming_the_field(
    crds_installed: Any, values: dict[str, Any], field: str
) -> None:
    done = subprocess.run(
        [str(crds_installed.helm_path), "template", "cs", str(CHART), "-f", "-"],
        input=yaml.safe_dump(values), env=crds_installed.env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0, f"{values} was accepted"
    assert "schema" in done.stderr and field in done.stderr, done.stderr


@pytest.mark.parametrize(
    "values",
    [
        {"networkPolicy": {"enabled": True, "apiServerCIDR": "fd00:10::1/128"}},
        {"networkPolicy": {"enabled": True, "apiServerCIDR": "0.0.0.0/0"}},
        {"resources": {"requests": {"cpu": 0.5, "memory": "1.5Gi"}, "limits": {"cpu": "1"}}},
        {
            "operator": {
                "extraEnv": [
                    {"name": "A", "value": "5"},
                    {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "x"}}},
                ]
            }
        },
        {"serviceAccount": {"name": "ops.team-1"}, "priorityClassName": "high"},
        {"prometheus": {"url": "https://thanos.monitoring.svc:10902/prefix?x=1"}},
    ],
)
def test_good_values_next_to_the_rejected_ones_are_accepted(
    crds_installed: Any, values: dict[str, Any]
) -> None:
    done = subprocess.run(
        [str(crds_installed.helm_path), "lint", "--strict", str(CHART), "-f", "-"],
        input=yaml.safe_dump(values), env=crds_installed.env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_namespaced_mode_without_namespaces_fails_with_the_fix(crds_installed: Any) -> None:
    done = _helm(crds_installed, "template", "cs", str(CHART), "--set",
                 "operator.namespaces=null")  # fmt: skip
    assert done.returncode != 0
    assert "operator.namespaces must list at least one namespace" in done.stderr


def test_alert_rules_pass_promtool_check_and_unit_tests() -> None:
    done = _run(["promtool", "check", "rules", str(ALERTS)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout
    tests = ROOT / "tests" / "unit" / "chart" / "alerts_test.yaml"
    done = _run(["promtool", "test", "rules", str(tests)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_chart_ships_the_peering_crds_the_operator_expects() -> None:
    from costscaler.controller.peering import peering_crds

    shipped = list(yaml.safe_load_all((CHART / "crds" / "kopf.dev_peerings.yaml").read_text()))
    assert shipped == peering_crds()
    for name in ("capacitypools", "costbudgets", "inferencedeployments"):
        copy = CHART / "crds" / f"costscaler.dev_{name}.yaml"
        assert copy.read_text() == (ROOT / "crds" / copy.name).read_text(), "run `make crds`"
