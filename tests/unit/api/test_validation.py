"""Bad manifests fail with a message naming the field and what is expected."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from costscaler.api import load_manifests, parse_resource
from costscaler.cli import main
from costscaler.errors import UserError

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _example(kind: str, name: str) -> dict[str, Any]:
    for path in EXAMPLES.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == kind and doc["metadata"]["name"] == name:
                return copy.deepcopy(doc)
    raise LookupError(name)


def _set(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    *parents, leaf = dotted.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DELETE:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return doc


_DELETE = object()
_PRIVILEGED = {"name": "vllm", "image": "v", "securityContext": {"privileged": True}}
_LOTS = {"name": "vllm", "image": "v", "resources": {"limits": {"nvidia.com/gpu": "lots"}}}
_NESTED: dict[str, Any] = {}
_node = _NESTED
for _ in range(200):  # deep enough to be hostile, shallow enough for the YAML dumper
    _node = _node.setdefault("a", {})
_NC = {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"}
POOL = ("CapacityPool", "g6-xlarge-l4-spot")
ONPREM = ("CapacityPool", "onprem-h100")
DEP = ("InferenceDeployment", "llama-3-1-8b")
BUDGET = ("CostBudget", "team-ml")


@pytest.mark.parametrize(
    ("base", "field", "value", "expected"),
    [
        (DEP, "spec.replicas", {"min": 5, "max": 2}, "min must be less than or equal to max"),
        (DEP, "spec.replicas", {"min": 0, "max": 2}, "min 0 needs scaleToZero"),
        (DEP, "spec.spot.maxFraction", 1.5, "spec.spot.maxFraction"),
        (DEP, "spec.spot.minOnDemandReplicas", 41, "minOnDemandReplicas"),
        (DEP, "spec.targetRef", {"name": "x"}, "exactly one of template or targetRef"),
        (DEP, "spec.template", _DELETE, "exactly one of template or targetRef"),
        (DEP, "spec.template", {"spec": {}}, "spec.containers"),
        (DEP, "spec.mode", "Auto", "spec.mode: Input should be 'Enforce' or 'Recommend'"),
        (DEP, "spec.slo.latency.thresholdSeconds", -1, "spec.slo.latency.thresholdSeconds"),
        (DEP, "spec.slo.latency.quantil", 0.9, "spec.slo.latency.quantil: unknown field"),
        (DEP, "spec.workload.capacity", [], "spec.workload.capacity"),
        # Issue 13: an idle replica already past the threshold meets the SLO at no load.
        (
            DEP,
            "spec.workload.capacity",
            [{"accelerator": "L4", "requestsPerSecond": 1.6, "baseLatencySeconds": 15}],
            "baseLatencySeconds must be below slo.latency.thresholdSeconds",
        ),
        (DEP, "spec.slo", _DELETE, "spec.slo: required field is missing"),
        (DEP, "spec.costModel.sloMissCostPerHour", 50.5, "sloMissCostPerHour"),
        (DEP, "spec.costModel.sloMissCostPerHour", "-3", "sloMissCostPerHour"),
        (DEP, "spec.pools", [{"name": "a"}, {"name": "a"}], "pool names must be unique"),
        (DEP, "spec.metrics", {"preset": "generic"}, "generic needs explicit"),
        # Issue 18: the template is typed and the escalations a pod could carry are refused.
        (DEP, "spec.template.spec.hostPID", True, "hostPID is not allowed"),
        (DEP, "spec.template.spec.hostNetwork", True, "hostNetwork is not allowed"),
        (DEP, "spec.template.spec.hostIPC", True, "hostIPC is not allowed"),
        (DEP, "spec.template.spec.volumes", [{"name": "r", "hostPath": {"path": "/"}}], "hostPath"),
        (DEP, "spec.template.spec.serviceAccountName", "ci-deployer", "start with inference-"),
        (DEP, "spec.template.spec.containers", [_PRIVILEGED], "privileged containers are not"),
        (DEP, "spec.template.spec.shareProcessNamespac", True, "unknown field"),
        (DEP, "spec.template.spec.containers", [_LOTS], "'lots' is not a quantity"),
        (DEP, "spec.template.spec.deep", _NESTED, "spec.template.spec.deep: unknown field"),
        # Issue 13: the SLO window is a duration within [forecast window, 90d].
        (DEP, "spec.slo.window", "7 days", "spec.slo.window"),
        (DEP, "spec.slo.window", "91d", "spec.slo: window must be at most 90d"),
        (DEP, "spec.slo.window", "30m", "slo.window must be at least forecast.windowSeconds"),
        (DEP, "metadata.name", "n" * 253, "metadata.name must be at most 63 characters"),
        (POOL, "spec.price.hourly", "999999999999.999999", "spec.price.hourly"),
        (ONPREM, "spec.ownership.purchasePrice", "99999999999", "purchasePrice"),
        (POOL, "spec.capacityType", "Reserved", "ownership is required"),
        (POOL, "spec.price.hourly", "0.4.0", "spec.price.hourly"),
        (ONPREM, "spec.price", {"hourly": "1"}, "price is required when capacityType is OnDemand"),
        (ONPREM, "spec.ownership.pue", 0.5, "spec.ownership.pue"),
        (ONPREM, "spec.interruption", {"ratePerHour": 0.3}, "ratePerHour must be 0 unless"),
        # Issue 14: a reservation carries its commitment; only a reservation does.
        (ONPREM, "spec.capacityType", "Reserved", "commitment is required when capacityType"),
        (ONPREM, "spec.commitment", {"count": 2, "termMonths": 12}, "commitment is required"),
        (ONPREM, "spec.commitment", {"count": 0, "termMonths": 12}, "spec.commitment.count"),
        # Issue 16: a NodePool behind the pool, Managed or Reference.
        (POOL, "spec.nodePool", {"mode": "Reference"}, "name is required when mode is Reference"),
        (POOL, "spec.nodePool", {"mode": "Managed"}, "nodeClassRef is required when mode is"),
        (POOL, "spec.nodePool", {"mode": "Owned"}, "spec.nodePool.mode"),
        (ONPREM, "spec.nodePool", {"mode": "Managed", "nodeClassRef": _NC}, "needs instanceType"),
        (
            POOL,
            "spec.nodePool",
            {"mode": "Managed", "nodeClassRef": _NC, "consolidateAfter": "1d"},
            "spec.nodePool.consolidateAfter",
        ),
        (BUDGET, "spec.alertThresholds", [0.8, 0.5], "alertThresholds must be ascending"),
        (BUDGET, "spec.alertThresholds", [0.5, 2.5], "spec.alertThresholds[1]"),
        (BUDGET, "spec.period", "Hourly", "spec.period"),
        (BUDGET, "spec.limit.currency", "usd", "spec.limit.currency"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_invalid_manifest_names_the_field(
    base: tuple[str, str], field: str, value: Any, expected: str
) -> None:
    doc = _set(_example(*base), field, value)
    with pytest.raises(UserError) as err:
        parse_resource(doc, "test.yaml")
    assert expected in str(err.value)
    assert str(err.value).startswith("test.yaml")


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: CapacityPool\nspec: [unclosed\n")
    with pytest.raises(UserError, match=r"bad.yaml:3:1: not valid YAML"):
        load_manifests(bad)


def test_other_kinds_are_skipped_and_missing_paths_reported(tmp_path: Path) -> None:
    mixed = tmp_path / "app.yaml"
    mixed.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\n")
    assert load_manifests(mixed) == []
    with pytest.raises(UserError, match="no such file or folder"):
        load_manifests(tmp_path / "missing.yaml")


def test_cli_reports_user_errors_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _set(_example(*DEP), "spec.replicas", {"min": 3, "max": 1})
    path = tmp_path / "dep.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "spec.replicas" in err and "Traceback" not in err
