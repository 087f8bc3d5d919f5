"""`costscaler run` without kopf's peering CRD stops with an error that names the fixes."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client

from costscaler.cli import build_parser
from costscaler.commands import run as run_cmd
from costscaler.controller import peering
from costscaler.errors import UserError


def _discovery(monkeypatch: Any, served: list[str] | None) -> list[tuple[str, str]]:
    """API discovery of kopf.dev/v1 serving `served` (None: the group is not served)."""
    asked: list[tuple[str, str]] = []

    class Api:
        def __init__(self, api_client: Any) -> None:
            pass

        def get_api_resources(self, group: str, version: str) -> Any:
            asked.append((group, version))
            if served is None:
                raise client.ApiException(status=404, reason="Not Found")
            return SimpleNamespace(resources=[SimpleNamespace(name=n) for n in served])

    monkeypatch.setattr(client, "CustomObjectsApi", Api)
    return asked


@pytest.mark.parametrize(
    ("served", "clusterwide", "missing"),
    [
        (None, True, "clusterkopfpeerings.kopf.dev"),
        (None, False, "kopfpeerings.kopf.dev"),
        (["kopfpeerings"], True, "clusterkopfpeerings.kopf.dev"),
        (["clusterkopfpeerings"], False, "kopfpeerings.kopf.dev"),
        (["kopfpeerings", "clusterkopfpeerings"], True, None),
        (["kopfpeerings", "clusterkopfpeerings"], False, None),
    ],
)
def test_the_missing_peering_crd_is_named(monkeypatch, served, clusterwide, missing) -> None:
    asked = _discovery(monkeypatch, served)
    assert peering.missing_peering_crd(object(), clusterwide) == missing
    assert asked == [("kopf.dev", "v1")]


def test_run_stops_with_an_error_naming_standalone_and_the_chart(monkeypatch) -> None:
    _discovery(monkeypatch, None)
    monkeypatch.setattr("costscaler.adapters.kube.load_config", lambda path=None: object())
    args = build_parser().parse_args(["run", "-A"])
    with pytest.raises(UserError) as err:
        run_cmd._require_peering(run_cmd.settings_from(args))
    assert "--peering standalone" in str(err.value) and "charts/costscaler" in str(err.value)
    standalone = build_parser().parse_args(["run", "-A", "--peering", "standalone"])
    run_cmd._require_peering(run_cmd.settings_from(standalone))  # no question asked, no error
