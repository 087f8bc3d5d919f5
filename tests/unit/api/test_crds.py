"""The committed CRDs are exactly what the models generate, and they are structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from costscaler.api.crd import KINDS, render_all
from costscaler.cli import main
from costscaler.commands.crds import to_yaml

REPO = Path(__file__).resolve().parents[3]


def _walk(node: Any, path: str = "$"):
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def test_committed_crds_match_the_models(tmp_path: Path) -> None:
    assert main(["crds", "-o", str(tmp_path)]) == 0
    generated = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    assert generated == committed, "run `make crds` and commit crds/"
    for name in generated:
        assert (tmp_path / name).read_text() == (REPO / "crds" / name).read_text(), (
            f"crds/{name} drifted from the models: run `make crds` and commit"
        )


@pytest.mark.parametrize("name", sorted(render_all()))
def test_schema_is_structural(name: str) -> None:
    schema = render_all()[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        if not isinstance(node, dict):
            continue
        is_property_map = path.endswith(".properties")
        for banned in ("$ref", "$defs", "anyOf", "oneOf", "allOf", "const", "examples"):
            assert is_property_map or banned not in node, f"{banned} at {path}"
        assert is_property_map or "title" not in node, f"title at {path}"
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True and "minimum" in node, path
        if "properties" in node:
            assert node.get("type") == "object", f"object without type at {path}"
            assert "additionalProperties" not in node, path


@pytest.mark.parametrize("name", sorted(render_all()))
def test_every_spec_field_has_a_description(name: str) -> None:
    spec = render_all()[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    for path, node in _walk(spec["spec"]):
        if path.endswith(".properties") and isinstance(node, dict):
            for field, sub in node.items():
                assert sub.get("description"), f"{path}.{field} has no description"


@pytest.mark.parametrize(
    ("kind", "short", "columns"),
    [
        ("CapacityPool", "cpool", ["Accelerator", "Capacity Type", "$/h", "Nodes", "Age"]),
        (
            "InferenceDeployment",
            "infd",
            ["Mode", "Replicas", "$/h", "Budget", "SLO", "Age"],
        ),
        ("CostBudget", "cbudget", ["Period", "Limit", "Spent", "Forecast", "Age"]),
    ],
)
def test_names_columns_and_status(kind: str, short: str, columns: list[str]) -> None:
    crd = next(c for c in render_all().values() if c["spec"]["names"]["kind"] == kind)
    names = crd["spec"]["names"]
    assert names["shortNames"] == [short]
    assert names["categories"] == ["costscaler"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == columns


def test_cross_field_rules_are_emitted_as_cel() -> None:
    text = "".join(to_yaml(c) for c in render_all().values())
    for rule in (
        "self.min <= self.max",
        "has(self.template) != has(self.targetRef)",
        "self.spot.minOnDemandReplicas <= self.replicas.max",
        "(self.capacityType in ['Reserved', 'OnPrem']) == has(self.ownership)",
        "self.alertThresholds.isSorted()",
        "self.maxFraction >= 0.0 && self.maxFraction <= 1.0",
    ):
        assert rule in text


def test_only_the_engine_state_preserves_unknown_fields() -> None:
    # The pod template is typed: a free-form one let a 3,000-level nesting into etcd (issue 18).
    preserved = [
        path
        for crd in render_all().values()
        for path, node in _walk(crd)
        if isinstance(node, dict) and node.get("x-kubernetes-preserve-unknown-fields")
    ]
    assert sorted(p.rsplit(".", 1)[-1] for p in preserved) == ["engineState"]
    assert len(KINDS) == 3


def test_chart_carries_the_same_crds() -> None:
    chart = REPO / "charts" / "costscaler" / "crds"
    committed = {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml")}
    copied = {p.name: p.read_text() for p in chart.glob("costscaler.dev_*.yaml")}
    assert copied == committed, "run `make crds` to copy crds/ into the chart"
