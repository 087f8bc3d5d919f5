"""targetRef scales only a Deployment whose owner opted in by label (issue 18, item 3).

The refusal on a real cluster, as the chart's ServiceAccount, is in
tests/e2e/test_e2e_chart_operator.py::test_targetref_needs_the_opt_in_label.
"""

from __future__ import annotations

from typing import Any

import pytest

from costscaler.adapters.targetref import (
    LABEL_ALLOW_TARGETREF,
    TargetNotAllowedError,
    check_target,
)


def deployment(labels: dict[str, str] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "namespace": "team"}
    if labels is not None:
        meta["labels"] = labels
    return {"metadata": meta, "spec": {"replicas": 3}}


@pytest.mark.parametrize(
    "labels",
    [None, {}, {"app": "web"}, {LABEL_ALLOW_TARGETREF: "false"}, {LABEL_ALLOW_TARGETREF: "True"}],
    ids=["no-labels", "empty", "other-label", "false", "not-exactly-true"],
)
def test_a_deployment_without_the_label_is_refused(labels: dict[str, str] | None) -> None:
    with pytest.raises(TargetNotAllowedError) as refused:
        check_target(deployment(labels), "team", "web")
    assert refused.value.condition_reason == "TargetNotAllowed"
    assert f"{LABEL_ALLOW_TARGETREF}=true" in str(refused.value) and "team/web" in str(
        refused.value
    )


def test_a_labelled_deployment_is_allowed() -> None:
    check_target(deployment({LABEL_ALLOW_TARGETREF: "true", "app": "web"}), "team", "web")
