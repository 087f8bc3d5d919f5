"""A user query the operator cannot confine to its namespace makes the spec invalid.

`_parse_infd` is the one parser of the index, the ensure step and the tick, so a refused query
is never run and the object gets Ready=False InvalidSpec with the token named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml

from costscaler.controller.objects import parse_infd

EXAMPLE = Path(__file__).resolve().parents[3] / "examples/deployments/llama-3-1-8b-vllm.yaml"


def body(latency: str) -> dict[str, Any]:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"]["namespace"] = "team"
    doc["spec"]["metrics"] = {"preset": "generic", "requestRate": "sum(rate(r[1m]))",
                              "latency": latency}  # fmt: skip
    # The example's TTFT and ITL objectives would need their own generic queries.
    del doc["spec"]["slo"]["ttft"], doc["spec"]["slo"]["itl"]
    return dict(doc)


def test_an_unscopable_query_is_an_invalid_spec() -> None:
    with pytest.raises(kopf.PermanentError, match="query refused: unknown function 'evil'"):
        parse_infd(kopf.Body(body("evil(up)")))


def test_a_scopable_query_parses() -> None:
    infd = parse_infd(kopf.Body(body('max(lat{namespace="default"})')))
    assert infd.spec.metrics.latency == 'max(lat{namespace="default"})'  # scoped when built
