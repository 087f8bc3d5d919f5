"""The process ends when kopf fails or is told to stop, and kopf's diff-base stays small."""

from __future__ import annotations

import json

import kopf
import pytest

from costscaler.controller.app import EXIT_FAILED, kopf_settings_for, run_operator
from costscaler.controller.settings import Settings

POD_GRACE_SECONDS = 30  # Kubernetes' default terminationGracePeriodSeconds


@pytest.fixture
def settings() -> Settings:
    return Settings(namespaces=["ns"])


def test_a_failed_operator_exits_non_zero(settings: Settings) -> None:
    async def dies(_: Settings) -> None:
        raise RecursionError("maximum recursion depth exceeded while decoding a JSON object")

    async def stops(_: Settings) -> None:
        return None

    assert run_operator(settings, dies) == EXIT_FAILED != 0
    assert run_operator(settings, stops) == 0


def test_stopping_is_bounded_within_the_pod_grace_period(settings: Settings) -> None:
    # kopf's default last resort is 600 s: issue 18 saw SIGTERM ignored for 20 s and more.
    timeout = kopf_settings_for(settings).process.ultimate_exiting_timeout
    assert timeout is not None and timeout < POD_GRACE_SECONDS - 5


def test_the_diff_base_annotation_stays_small_for_a_large_spec(settings: Settings) -> None:
    # A 300 KB spec: kopf's default annotation copies it, over the 256 KB annotation limit,
    # and the finalizer can no longer be removed (the namespace stays Terminating).
    storage = kopf_settings_for(settings).persistence.diffbase_storage
    env = [{"name": f"V{i}", "value": "x" * 3000} for i in range(100)]
    spec = {"template": {"spec": {"containers": [{"name": "s", "image": "i", "env": env}]}}}
    body = kopf.Body({"metadata": {"name": "big", "namespace": "ns"}, "spec": spec})
    assert len(json.dumps(spec)) > 256 * 1024
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=storage.build(body=body))
    stored = patch["metadata"]["annotations"]
    assert sum(len(k) + len(v) for k, v in stored.items()) < 1024
    # A changed spec still reads as a change (the ensure handler depends on it), an equal one not.
    changed = kopf.Body({**body, "spec": {**spec, "mode": "Enforce"}})
    assert storage.build(body=changed) != storage.build(body=body)
    assert storage.build(body=kopf.Body(dict(body))) == storage.build(body=body)
