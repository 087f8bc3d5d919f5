"""Consent for `spec.targetRef`: the operator scales only Deployments that opted in by label.

The operator's ServiceAccount may scale every Deployment in the namespaces it serves, and
anyone who may create an InferenceDeployment there would otherwise borrow that right through
`targetRef` (scale a colleague's Deployment to 1, or to `replicas.max`). The Deployment's owner
consents with the label `costscaler.dev/allow-targetref: "true"`; setting a label needs the
same `update deployments` right as scaling it, so the label proves the consent of someone who
could scale it anyway. Without it the operator neither reads nor scales the Deployment, and
the InferenceDeployment says why (`TargetNotAllowed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LABEL_ALLOW_TARGETREF = "costscaler.dev/allow-targetref"


class TargetNotAllowedError(Exception):
    """The targetRef Deployment has not opted in; `condition_reason` is the Ready reason."""

    condition_reason = "TargetNotAllowed"  # read by controller/failures.classify


def check_target(deployment: Mapping[str, Any], namespace: str, name: str) -> None:
    """Raise `TargetNotAllowedError` unless the Deployment carries the opt-in label."""
    labels = (deployment.get("metadata") or {}).get("labels") or {}
    if labels.get(LABEL_ALLOW_TARGETREF) != "true":
        raise TargetNotAllowedError(
            f"Deployment {namespace}/{name} is not labelled {LABEL_ALLOW_TARGETREF}=true: its "
            "owner must opt in before an InferenceDeployment may scale it (kubectl label "
            f"deployment {name} -n {namespace} {LABEL_ALLOW_TARGETREF}=true)"
        )
