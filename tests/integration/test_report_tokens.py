"""`costscaler report` against the real API server: $/1M input and output tokens (issue 17).

The status the operator writes (cost.perMillionInputTokens, perMillionOutputTokens and the
observed token rates) goes through the real status subresource, and the report reads it back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from costscaler.cli import main

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_report_shows_input_and_output_token_costs(crds_installed, capsys, tmp_path: Path):
    ns = "report-tokens"
    crds_installed.kubectl("create", "namespace", ns, check=False)
    doc = yaml.safe_load((ROOT / "examples/deployments/llama-3-1-8b-vllm.yaml").read_text())
    doc["metadata"]["namespace"] = ns
    doc["spec"].pop("budgetRef")
    path = tmp_path / "llama.yaml"
    path.write_text(yaml.safe_dump(doc))
    crds_installed.kubectl("apply", "-f", str(path))
    status = {
        "status": {
            "cost": {
                "perHour": "3.6000",
                "perMillionInputTokens": "0.1000",
                "perMillionOutputTokens": "0.6000",
            },
            "observed": {"requestRate": 4.0, "tokenRate": 1000.0, "promptTokenRate": 4000.0},
        }
    }
    crds_installed.kubectl(
        "patch", "infd", "llama-3-1-8b", "-n", ns, "--subresource=status", "--type=merge",
        "-p", json.dumps(status),
    )  # fmt: skip
    kubeconfig = str(crds_installed.kubeconfig)
    assert main(["report", "-n", ns, "--json", "--kubeconfig", kubeconfig]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["group"] == "ml-platform"
    assert (row["cost_per_million_input_tokens"], row["cost_per_million_output_tokens"]) == (
        "0.1000",
        "0.6000",
    )
    assert main(["report", "-n", ns, "--kubeconfig", kubeconfig]) == 0
    header, line = capsys.readouterr().out.splitlines()
    assert header.rstrip().endswith("$/1M IN  $/1M OUT")
    assert line.split()[-2:] == ["0.1000", "0.6000"]
