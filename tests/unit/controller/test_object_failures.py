"""Per-object failures (issue 18): child names that cannot collide, failures as conditions.

Each row here failed on main at 65b33e7: names ran together (`col-g6` + `xlarge-l4-spot` and
`col` + `g6-xlarge-l4-spot` wanted the same Deployment), a 253-character name made a 264-char
child, the controller replaced a Deployment it did not own, and every failure was a traceback
per tick with no status.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from test_controller_tick import GOOD, NOW, OD, REPO, SPOT, FakeEngine, RecordingKube, infd

from costscaler.adapters.children import (
    MAX_NAME,
    ChildNameTakenError,
    Owner,
    child_manifest,
    child_name,
    child_names,
)
from costscaler.adapters.kube import _check_owner
from costscaler.api import CapacityPool, load_manifests
from costscaler.controller.failures import (
    Failure,
    FailureLog,
    ObjectProblemError,
    classify,
    ready_false,
)
from costscaler.controller.history import History
from costscaler.controller.tick import converge, run_tick
from costscaler.controller.tick_input import TickInput


@pytest.fixture(scope="module")
def pools() -> dict[str, CapacityPool]:
    return {p.name: p for p in load_manifests(REPO / "examples" / "pools")}


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("col-g6", "xlarge-l4-spot"), ("col", "g6-xlarge-l4-spot")),  # the pair
        (("a" * 40, "b" * 40), ("a" * 40 + "-b", "b" * 38)),  # both too long, same head
    ],
)
def test_owners_whose_names_run_together_get_different_children(a, b) -> None:
    # The plain names may coincide; the fallback (hashed) names never do.
    assert child_names(*a)[1] != child_names(*b)[1]
    assert child_names(*a)[0] not in child_names(*b)[1:]


@pytest.mark.parametrize("owner", ["n", "n" * 63, "x" * 253])
@pytest.mark.parametrize("pool", ["p", "g6-xlarge-l4-spot", "p" * 63])
def test_child_names_fit_a_dns_label(owner: str, pool: str) -> None:
    for name in child_names(owner, pool):
        assert len(name) <= MAX_NAME and name[-1].isalnum() and name[0].isalnum(), name


def test_short_names_stay_plain_and_a_child_keeps_the_name_it_has() -> None:
    assert child_names("llama", "g6-xlarge-l4-spot")[0] == "llama-g6-xlarge-l4-spot"
    hashed = child_names("llama", "g6-xlarge-l4-spot")[1]
    assert child_name("llama", "g6-xlarge-l4-spot", current=hashed) == hashed
    # A Deployment of another name carrying our labels is not adopted as our name.
    assert child_name("llama", "g6-xlarge-l4-spot", current="other") == "llama-g6-xlarge-l4-spot"


def _live(*refs: tuple[str, str, str]) -> SimpleNamespace:
    return SimpleNamespace(
        owner_references=[
            SimpleNamespace(kind=k, name=n, uid=u, controller=True) for k, n, u in refs
        ]
    )


def test_kube_refuses_to_replace_a_deployment_another_owner_controls(pools) -> None:
    manifest = child_manifest(Owner("ns", "col", "uid-col"), {"spec": {}}, pools[SPOT])
    _check_owner(_live(("InferenceDeployment", "col", "uid-col")), manifest["metadata"])
    with pytest.raises(ChildNameTakenError, match="belongs to InferenceDeployment col-g6"):
        _check_owner(_live(("InferenceDeployment", "col-g6", "uid-g6")), manifest["metadata"])
    with pytest.raises(ChildNameTakenError, match="no controller"):
        _check_owner(_live(), manifest["metadata"])


class TakenKube(RecordingKube):
    """Another owner holds `taken` (None: every name)."""

    def __init__(self, taken: str | None = None) -> None:
        super().__init__()
        self.taken = taken

    async def apply_child(self, manifest, replicas):
        name = manifest["metadata"]["name"]
        if self.taken in (None, name):
            raise ChildNameTakenError("default", name, "InferenceDeployment col-g6")
        return await super().apply_child(manifest, replicas)


def test_a_taken_plain_name_falls_back_to_the_hashed_one(pools) -> None:
    obj = infd(pool_names=(OD,))
    plain, hashed = child_names(obj.metadata.name, OD)
    kube = TakenKube(taken=plain)
    asyncio.run(converge(obj, [pools[OD]], [], {OD: 1}, kube))
    assert kube.calls == [("apply", hashed, 1)]


def test_both_names_taken_is_a_condition_naming_the_holder(pools) -> None:
    obj = infd(pool_names=(OD,))
    with pytest.raises(ChildNameTakenError) as err:
        asyncio.run(converge(obj, [pools[OD]], [], {OD: 1}, TakenKube()))
    failure = classify(err.value)
    assert failure.reason == "ChildNameConflict"
    assert "InferenceDeployment col-g6" in failure.message


def test_all_pools_missing_is_pool_not_found_and_nothing_is_written(pools) -> None:
    obj = infd(pool_names=("gone-a", "gone-b"))
    kube = RecordingKube()
    t = TickInput(obj, pools, [], GOOD, History(3600), {}, NOW)
    with pytest.raises(ObjectProblemError) as err:
        asyncio.run(run_tick(t, FakeEngine({}), kube))
    assert (classify(err.value).reason, kube.calls) == ("PoolNotFound", [])
    assert "gone-a" in str(err.value) and "spec.pools" in str(err.value)


class NamedError(Exception):
    condition_reason = "TargetNotAllowed"


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"({status})")
        self.status, self.body, self.reason = status, body, "Unprocessable Entity"


@pytest.mark.parametrize(
    ("exc", "reason", "text"),
    [
        (ObjectProblemError("PoolNotFound", "none"), "PoolNotFound", "none"),
        (ApiError(422, '{"message": "metadata.labels: Invalid value"}'), "ChildRejected",
         "metadata.labels: Invalid value"),
        (ApiError(400, '{"message": "quantities must match"}'), "ChildRejected", "quantities"),
        (ApiError(403, '{"message": "forbidden"}'), "Forbidden", "forbidden"),
        (ApiError(500, "not json"), "ApiError", "500"),
        (ZeroDivisionError("division by zero"), "TickFailed", "ZeroDivisionError"),
        (NamedError("not labelled"), "TargetNotAllowed", "not labelled"),
    ],
)  # fmt: skip
def test_every_exception_becomes_a_camel_case_reason(exc, reason, text) -> None:
    failure = classify(exc)
    assert failure.reason == reason and text in failure.message
    assert failure.reason.isalnum() and failure.reason[0].isupper()


def test_ready_false_is_written_once_per_change_and_keeps_other_conditions() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    other = {"type": "SLOMet", "status": "True", "reason": "WithinSLO", "message": ""}
    first = ready_false(Failure("PoolNotFound", "gone"), {"conditions": [other]}, 2, now)
    assert first is not None and first[0] == other
    assert (first[1]["type"], first[1]["status"], first[1]["reason"]) == (
        "Ready",
        "False",
        "PoolNotFound",
    )
    # The same failure next tick: nothing to write.
    assert ready_false(Failure("PoolNotFound", "gone"), {"conditions": first}, 2, now) is None
    again = ready_false(Failure("ChildRejected", "422"), {"conditions": first}, 2, now)
    assert again is not None and again[1]["reason"] == "ChildRejected"


def test_a_failure_is_logged_once_per_reason(caplog: pytest.LogCaptureFixture) -> None:
    log, key = FailureLog(), ("ns", "bad")
    caplog.set_level(logging.INFO, logger="costscaler.controller.failures")
    for _ in range(50):  # fifty ticks of the same failure
        log.failed(key, "tick", Failure("PoolNotFound", "gone"), ValueError())
    log.failed(key, "tick", Failure("ChildRejected", "422"), ValueError())
    log.succeeded(key)
    log.succeeded(key)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages
    assert "PoolNotFound" in messages[0] and "ChildRejected" in messages[1]
    assert "served again" in messages[2]


def test_an_invalid_pool_is_logged_by_its_index_not_by_every_status_timer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import kopf

    from costscaler.controller.objects import parse_pool

    # Priced above the bound: a pool stored before the CRD had one (issue 18's 999999999999.99).
    body = kopf.Body({
        "apiVersion": "costscaler.dev/v1alpha1", "kind": "CapacityPool",
        "metadata": {"name": "dear"},
        "spec": {"accelerator": {"type": "L4"}, "capacityType": "OnDemand",
                 "price": {"hourly": "999999999999.999999"}},
    })  # fmt: skip
    caplog.set_level(logging.WARNING, logger="costscaler.controller.handlers")
    for _ in range(10):  # ten status-timer runs
        assert parse_pool(body, report=False) is None
    assert parse_pool(body) is None  # the index, on a change of the pool
    assert [r.getMessage()[:25] for r in caplog.records] == ["CapacityPool dear is inva"]
