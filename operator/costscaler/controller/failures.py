"""Per-object failures: each becomes `Ready=False` with a CamelCase reason, logged once.

A tick or an ensure step that fails for one InferenceDeployment must neither stop the others
nor flood the log: kopf would log a traceback and retry every interval (issue 18 counted 3,251
lines a minute from six bad objects). The handlers catch every exception, turn it into a
`Failure` (reason and message for the Ready condition), write that condition only when it
changed, and log it only when the object's reason changed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from costscaler.adapters.children import ChildNameTakenError
from costscaler.controller.status import READY, Cond, conditions

log = logging.getLogger(__name__)
Key = tuple[str, str]


class ObjectProblemError(Exception):
    """A known reason why one object cannot be served now, with its CamelCase reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Failure:
    """What the Ready condition says about a failed step, and whether it was expected."""

    reason: str
    message: str
    expected: bool = True


def _api_reason(exc: Exception) -> str:
    """The API server's own words from a kubernetes-client ApiException (its JSON body)."""
    import json

    try:
        body = json.loads(getattr(exc, "body", "") or "{}")
    except ValueError:
        body = {}
    return str(body.get("message") or getattr(exc, "reason", "") or exc)


def classify(exc: Exception) -> Failure:
    """The reason and message for an exception raised while serving one object."""
    if isinstance(exc, ObjectProblemError):
        return Failure(exc.reason, str(exc))
    if isinstance(exc, ChildNameTakenError):
        return Failure("ChildNameConflict", str(exc))
    # Adapters name their own reason (e.g. a targetRef refused) without this module
    # importing each of their exception classes.
    reason = getattr(exc, "condition_reason", None)
    if isinstance(reason, str) and reason.isalnum():
        return Failure(reason, str(exc))
    status = getattr(exc, "status", None)
    if status in (400, 422):  # 400: a field it cannot even decode, e.g. a bad quantity
        return Failure("ChildRejected", f"the API server refused a child: {_api_reason(exc)}")
    if status == 403:
        return Failure("Forbidden", f"the operator may not write a child: {_api_reason(exc)}")
    if isinstance(status, int):
        return Failure("ApiError", f"API server replied {status}: {_api_reason(exc)}")
    return Failure("TickFailed", f"{type(exc).__name__}: {exc}", expected=False)


def ready_false(
    failure: Failure, status: Mapping[str, Any], generation: int | None, now: datetime
) -> list[dict[str, Any]] | None:
    """The conditions with Ready=False for `failure`, or None when Ready already says so.

    The other conditions are kept as they were: the failed step observed nothing new about
    them. Returning None when nothing changed keeps a failing object from writing every tick.
    """
    previous = list(status.get("conditions") or [])
    ready: dict[str, Any] = next((c for c in previous if c.get("type") == READY), {})
    if (ready.get("status"), ready.get("reason"), ready.get("message")) == (
        "False",
        failure.reason,
        failure.message[:2000],
    ):
        return None
    (new,) = conditions(
        [Cond(READY, False, failure.reason, failure.message)], previous, generation, now
    )
    return [new if c.get("type") == READY else c for c in previous] + ([] if ready else [new])


class FailureLog:
    """Logs an object's failure when its reason changes, and its recovery once."""

    def __init__(self) -> None:
        self.reasons: dict[Key, str] = {}

    def failed(self, key: Key, what: str, failure: Failure, exc: Exception) -> None:
        """Record a failure of step `what`; log it if this object's reason changed."""
        if self.reasons.get(key) == failure.reason:
            return
        self.reasons[key] = failure.reason
        # An unexpected error gets its traceback, once; a known one needs none.
        log.warning(
            "%s of %s/%s failed (%s): %s; retrying every tick, logged again when the reason "
            "changes",
            what,
            *key,
            failure.reason,
            failure.message,
            exc_info=None if failure.expected else exc,
        )

    def succeeded(self, key: Key) -> None:
        """The object is served again: log the recovery if it had failed."""
        if self.reasons.pop(key, None) is not None:
            log.info("%s/%s is served again", *key)

    def forget(self, key: Key) -> None:
        """The object was deleted."""
        self.reasons.pop(key, None)
