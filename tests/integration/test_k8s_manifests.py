"""Every CRD and every example applies to the real apiserver; explain shows the descriptions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CRDS = sorted((ROOT / "crds").glob("*.yaml"))
EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))


def test_there_is_something_to_apply() -> None:
    assert len(CRDS) >= 3, "crds/ should hold the three CRDs"
    assert EXAMPLES, "examples/ should hold manifests"


@pytest.mark.parametrize("path", CRDS, ids=lambda p: p.name)
def test_crd_is_established(crds_installed, path: Path) -> None:
    name = yaml.safe_load(path.read_text())["metadata"]["name"]
    out = crds_installed.kubectl("get", "crd", name, "-o", "jsonpath={.status.conditions}")
    assert '"type":"Established"' in out.stdout and '"status":"True"' in out.stdout


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT / "examples")))
def test_example_applies(crds_installed, path: Path) -> None:
    out = crds_installed.kubectl("apply", "--server-side", "-f", str(path))
    kinds = {d["kind"] for d in yaml.safe_load_all(path.read_text()) if d}
    applied = out.stdout.lower()
    for kind in kinds:
        assert kind.lower() in applied, f"{kind} from {path.name} not reported: {out.stdout}"
    # Read back what the apiserver stored: the objects exist with their spec.
    got = crds_installed.kubectl("get", "-f", str(path), "-o", "yaml")
    stored = yaml.safe_load(got.stdout)
    items = stored["items"] if stored.get("kind") == "List" else [stored]
    assert all(item.get("spec") for item in items)


def _descriptions(node: dict, depth: int = 1) -> list[str]:
    found = []
    for prop in node.get("properties", {}).values():
        if "description" in prop:
            found.append(prop["description"])
        if depth > 0:
            found += _descriptions(prop, depth - 1)
    return found


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_explain_prints_slo_field_descriptions(crds_installed) -> None:
    crd = yaml.safe_load((ROOT / "crds" / "costscaler.dev_inferencedeployments.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    slo = schema["properties"]["spec"]["properties"]["slo"]
    expected = _descriptions(slo)
    assert len(expected) >= 3, "slo should describe its fields"
    out = _words(crds_installed.kubectl("explain", "infd.spec.slo", "--recursive=false").stdout)
    assert "FIELDS:" in out
    for field in slo["properties"]:
        assert re.search(rf"\b{field}\b", out), f"explain does not list {field}"
    for text in _descriptions(slo, depth=0):
        assert _words(text)[:60] in out, f"explain lacks the description {text[:60]!r}"
