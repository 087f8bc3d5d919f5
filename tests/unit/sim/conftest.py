"""Fixtures shared by the simulator's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from costscaler.api import CapacityPool, InferenceDeployment, load_manifests
from costscaler.sim.lineup import Lineup

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture(scope="session")
def lineup() -> Lineup:
    """The example LLM deployment on every example pool."""
    resources = load_manifests(EXAMPLES)
    deployment = next(
        r
        for r in resources
        if isinstance(r, InferenceDeployment) and r.metadata.name == "llama-3-1-8b"
    )
    return Lineup(deployment, [r for r in resources if isinstance(r, CapacityPool)])
