"""The LLM parts of the API (issue 17): TTFT and ITL objectives, token profiles, request sizes.

Every rule is checked twice: in Python here, and as CEL by the real API server in
tests/integration/invalid/ (infd-ttft-*, infd-token-*, infd-bucket-*, infd-request-sizes-*).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from costscaler.api import InferenceDeployment, parse_resource
from costscaler.api.crd import render_all
from costscaler.errors import UserError

EXAMPLE = Path(__file__).resolve().parents[3] / "examples/deployments/llama-3-1-8b-vllm.yaml"

SIZES = [
    {"name": "short", "inputTokens": {"max": 512}, "outputTokens": {"max": 256}},
    {"name": "long", "inputTokens": {"min": 4096, "max": 8192}, "outputTokens": {"max": 256}},
]


def _llama() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))


def _bucketed(ttft: float = 2.0) -> dict[str, Any]:
    """The example with two request sizes; the L4 serves only the short one."""
    doc = _llama()
    doc["spec"]["slo"]["ttft"] = {"quantile": 0.95, "thresholdSeconds": ttft}
    work = doc["spec"]["workload"]
    work["requestSizes"] = copy.deepcopy(SIZES)
    for entry in work["capacity"]:
        entry["buckets"] = [{"size": "short", "requestsPerSecond": 2.0}]
        if entry["accelerator"] != "L4":
            entry["buckets"].append({"size": "long", "requestsPerSecond": 0.4})
    return doc


def _parse(doc: dict[str, Any]) -> InferenceDeployment:
    resource = parse_resource(doc, "test.yaml")
    assert isinstance(resource, InferenceDeployment)
    return resource


def test_the_llama_example_states_ttft_itl_and_a_token_profile() -> None:
    spec = _parse(_llama()).spec
    assert spec.slo.ttft is not None and spec.slo.ttft.threshold_seconds == 2
    assert spec.slo.itl is not None and spec.slo.itl.threshold_seconds == 0.1
    l4 = spec.workload.profile_for("L4")
    assert l4 is not None and l4.prefill_tokens_per_second == 3800
    assert (l4.decode_tokens_per_second, l4.max_concurrent_sequences) == (400, 24)


def test_request_sizes_and_buckets_are_accepted_and_round_trip() -> None:
    dep = _parse(_bucketed())
    work = dep.spec.workload
    assert [s.name for s in work.request_sizes or []] == ["short", "long"]
    a100 = work.profile_for("A100-40GB")
    assert a100 is not None and [b.size for b in a100.buckets or []] == ["short", "long"]
    assert work.request_sizes and work.request_sizes[0].input_tokens.min == 0  # defaulted
    assert _parse(dep.to_wire()).to_wire() == dep.to_wire()


def test_the_requests_per_second_form_alone_stays_valid() -> None:
    doc = _llama()
    del doc["spec"]["slo"]["ttft"], doc["spec"]["slo"]["itl"]
    for entry in doc["spec"]["workload"]["capacity"]:
        for key in ("prefillTokensPerSecond", "decodeTokensPerSecond", "maxConcurrentSequences"):
            del entry[key]
    assert _parse(doc).spec.slo.ttft is None


def test_a_ttft_below_a_buckets_unloaded_prefill_names_both_values() -> None:
    # The long bucket's smallest prompt, 4096 tokens, prefills in 4096 / 3900 s on the A10G
    # and 4096 / 9700 s on the A100: a 1 s threshold is below the first only.
    with pytest.raises(UserError) as err:
        _parse(_bucketed(ttft=1.0))
    text = str(err.value)
    # The API server's message (CEL) names the threshold and the ranges of both sides...
    assert (
        "spec.slo.ttft.thresholdSeconds 1 s is below the unloaded prefill time of a request-size "
        "bucket on an accelerator that serves it (requestSizes[].inputTokens.min / "
        "capacity[].prefillTokensPerSecond, here up to 4096 tokens at down to 3800 tokens/s); "
        "raise the threshold or leave the bucket out of that accelerator: " in text
    )
    # ...and `costscaler validate` adds the exact offenders.
    assert text.endswith(
        "that accelerator: A10G bucket long: 4096 input tokens at 3900 tokens/s take "
        "1.0502564102564103 s"
    )


def test_a_ttft_above_every_buckets_prefill_is_accepted() -> None:
    assert _parse(_bucketed(ttft=1.1)).spec.slo.ttft is not None


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, leaf = path.split(".")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is None:
        del node[leaf]
    else:
        node[leaf] = value
    return doc


CAP = "spec.workload.capacity.0"


@pytest.mark.parametrize(
    ("doc", "path", "value", "expected"),
    [
        (_llama, f"{CAP}.decodeTokensPerSecond", None, "needs both prefillTokensPerSecond"),
        (_llama, f"{CAP}.prefillTokensPerSecond", None, "needs both prefillTokensPerSecond"),
        (_llama, f"{CAP}.prefillTokensPerSecond", 0, "prefillTokensPerSecond"),
        (_llama, f"{CAP}.maxConcurrentSequences", 0, "maxConcurrentSequences"),
        (_llama, "spec.slo.ttft.thresholdSeconds", 0, "spec.slo.ttft.thresholdSeconds"),
        (_llama, "spec.slo.itl.quantile", 1.0, "spec.slo.itl.quantile"),
        (_llama, "spec.metrics", {"preset": "tgi"}, "slo.ttft needs a time-to-first-token"),
        (_llama, "spec.metrics", {"preset": "triton"}, "slo.ttft needs a time-to-first-token"),
        (_bucketed, f"{CAP}.buckets", [{"size": "huge", "requestsPerSecond": 1}], "must name"),
        (_bucketed, f"{CAP}.buckets", None, "every capacity entry lists its buckets"),
        (_bucketed, f"{CAP}.buckets", [], "spec.workload.capacity[0].buckets"),
        (_bucketed, "spec.workload.requestSizes", None, "must name an entry"),
        (
            _bucketed,
            "spec.workload.requestSizes.1.inputTokens",
            {"min": 500, "max": 8192},
            "requestSizes must not overlap",
        ),
        (
            _bucketed,
            "spec.workload.requestSizes.0.outputTokens",
            {"min": 300, "max": 256},
            "min must be less than or equal to max",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_incoherent_llm_fields_are_refused(doc: Any, path: str, value: Any, expected: str) -> None:
    with pytest.raises(UserError) as err:
        _parse(_set(doc(), path, value))
    assert expected in str(err.value)


def test_a_size_no_accelerator_serves_is_refused() -> None:
    doc = _bucketed()
    for entry in doc["spec"]["workload"]["capacity"]:
        entry["buckets"] = [b for b in entry["buckets"] if b["size"] == "short"]
    with pytest.raises(UserError, match="every requestSizes entry needs a capacity"):
        _parse(doc)


def test_ttft_and_itl_with_their_own_queries_need_no_preset() -> None:
    doc = _llama()
    doc["spec"]["metrics"] = {
        "preset": "generic",
        "requestRate": "sum(rate(requests_total[1m]))",
        "latency": "histogram_quantile(0.95, sum by (le) (rate(latency_bucket[1m])))",
        "ttft": "histogram_quantile(0.95, sum by (le) (rate(ttft_bucket[1m])))",
        "itl": "histogram_quantile(0.95, sum by (le) (rate(itl_bucket[1m])))",
    }
    assert _parse(doc).spec.metrics.ttft is not None


def test_the_ttft_rule_and_its_message_are_emitted_as_cel() -> None:
    crd = render_all()["costscaler.dev_inferencedeployments.yaml"]
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = {r.get("fieldPath"): r for r in spec["x-kubernetes-validations"]}
    ttft = rules[".slo.ttft.thresholdSeconds"]
    assert "prefillTokensPerSecond" in ttft["rule"]
    assert ttft["messageExpression"].startswith("'spec.slo.ttft.thresholdSeconds %s s is below")
