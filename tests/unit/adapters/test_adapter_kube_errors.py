"""Which failures the Kubernetes adapter absorbs, retries or lets through."""

from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException

from costscaler.adapters.kube import ConflictError, with_conflict_retry


class Flaky:
    """Raises each queued error once, then returns "ok"; counts the calls."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_a_conflict_is_retried_until_the_write_lands() -> None:
    write = Flaky(ApiException(status=409), ApiException(status=409))
    assert with_conflict_retry(write) == "ok"
    assert write.calls == 3


def test_a_conflict_on_every_attempt_becomes_conflict_error() -> None:
    write = Flaky(*[ApiException(status=409) for _ in range(3)])
    with pytest.raises(ConflictError):
        with_conflict_retry(write, attempts=3)


@pytest.mark.parametrize(
    "error",
    [ApiException(status=422), ApiException(status=403), TypeError("a bug"), KeyError("spec")],
    ids=["invalid", "forbidden", "type-error", "key-error"],
)
def test_anything_but_a_conflict_is_raised_at_once(error: Exception) -> None:
    # A bug in our own code (TypeError, KeyError) must surface as itself, never be
    # mistaken for an API answer and retried.
    write = Flaky(error)
    with pytest.raises(type(error)):
        with_conflict_retry(write)
    assert write.calls == 1
