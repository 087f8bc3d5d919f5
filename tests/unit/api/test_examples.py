"""Every example a user copies validates through the models and round-trips unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from costscaler.api import CapacityPool, CostBudget, InferenceDeployment, load_manifests

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
FILES = sorted(EXAMPLES.rglob("*.yaml"))


def test_there_are_examples_of_every_kind() -> None:
    kinds = {type(r) for r in load_manifests(EXAMPLES)}
    assert kinds == {CapacityPool, InferenceDeployment, CostBudget}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_validates_and_round_trips(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    resources = load_manifests(path)
    assert len(resources) == len(docs) > 0
    for doc, resource in zip(docs, resources, strict=True):
        wire = resource.to_wire()
        # Every field the user wrote survives validation (defaults may add more).
        assert _subset(doc, wire), f"{path}: {doc['metadata']['name']} lost fields"


def _subset(small: object, big: object) -> bool:
    if isinstance(small, dict) and isinstance(big, dict):
        return all(k in big and _subset(v, big[k]) for k, v in small.items())
    if isinstance(small, list) and isinstance(big, list):
        return len(small) == len(big) and all(
            _subset(a, b) for a, b in zip(small, big, strict=True)
        )
    if isinstance(small, int | float) and isinstance(big, int | float):
        return float(small) == float(big)
    return small == big


def test_pools_named_by_deployments_exist() -> None:
    resources = load_manifests(EXAMPLES)
    pools = {r.metadata.name: r for r in resources if isinstance(r, CapacityPool)}
    for dep in (r for r in resources if isinstance(r, InferenceDeployment)):
        for ref in dep.spec.pools:
            pool = pools[ref.name]
            assert dep.spec.workload.profile_for(pool.spec.accelerator.type), (
                f"{dep.metadata.name} has no capacity profile for {pool.spec.accelerator.type}"
            )
