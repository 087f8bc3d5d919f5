"""The committed golden decisions replay exactly (issue 13: "same decisions" is checkable).

The file holds 200 cases from a seeded generator, inputs and outputs; when a change of
decisions is intended, regenerate it with
`.venv/bin/python tests/unit/core/golden/make_decisions.py` and say why in the commit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))
from make_decisions import replay  # noqa: E402

CASES = json.loads((GOLDEN / "decisions.json").read_text())["cases"]


def test_the_file_has_the_cases_it_promises():
    assert len(CASES) == 200
    assert {c["decision"]["reason"] for c in CASES} >= {"CostOptimal", "KeepAlive"}


@pytest.mark.parametrize("k", range(len(CASES)))
def test_every_golden_decision_replays_exactly(k: int):
    case = CASES[k]
    got, want = replay(case), case["decision"]
    assert got["replicas"] == want["replicas"]
    assert got["reason"] == want["reason"]
    for key in ("violating_share", "marginal_cost_per_hour"):
        assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), key
