"""Scoped user PromQL parses on the real Prometheus and reads only its namespace.

The unit tests (tests/unit/adapters/test_adapter_promql_scope.py) pin the rewritten texts; this
runs them on the session's Prometheus, which judges the syntax, and checks what they return
against series this test creates: Prometheus scrapes itself twice, once labelled with the
deployment's namespace and once with another.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

import pytest

from costscaler.adapters.promql_scope import scope_query

pytestmark = pytest.mark.integration

ACCEPTED = [
    'count(up{namespace="default"})', 'count(up{namespace=~".+"})', "up", '{__name__="up"}',
    "sum(rate(up[1m]))", "rate(up[5m:1m])", "up offset 1h30m", "up @ start()",
    "up > bool up", "up * on(instance) group_left(job) up", "up * on(instance) group_left up",
    "sum by (le) (rate(h[5m]))", "SUM(up) WITHOUT (job)", "count(up) or vector(0)",
    "job:rate5m:sum", "rate{a='}'}", 'label_replace(up, "ns", "$1", "x", "(.*)")',
    "up # {namespace='default'}\n", "1.5e3 * Inf - NaN", "histogram_quantile(0.9, h)",
]  # fmt: skip


def _query(url: str, text: str) -> dict[str, Any]:
    q = urllib.parse.urlencode({"query": text})
    try:
        with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=10) as reply:
            return dict(json.loads(reply.read()))
    except urllib.error.HTTPError as exc:  # 400 carries the parse error as JSON
        return dict(json.loads(exc.read()))


@pytest.fixture(scope="module")
def probes(cluster: Any) -> Any:
    """`up` series labelled namespace=mine and namespace=theirs, with a unique probe label."""
    probe = uuid.uuid4().hex[:8]
    path = cluster.targets_dir / f"scope-{probe}.json"
    host = cluster.prometheus_url.split("://", 1)[1].rstrip("/")
    path.write_text(json.dumps([
        {"targets": [host], "labels": {"namespace": ns, "probe": probe}}
        for ns in ("mine", "theirs")]))  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        result = _query(cluster.prometheus_url, f'count(up{{probe="{probe}"}})')["data"]["result"]
        if result and result[0]["value"][1] == "2":
            break
        time.sleep(0.5)
    else:
        raise AssertionError("Prometheus never scraped the probe targets")
    yield cluster.prometheus_url, probe
    path.unlink()


@pytest.mark.parametrize("query", ACCEPTED)
def test_scoped_queries_parse_on_prometheus(probes: Any, query: str) -> None:
    url, _ = probes
    scoped = scope_query(query, "namespace", "mine")
    reply = _query(url, scoped)
    assert reply["status"] == "success", f"{scoped!r}: {reply.get('error')}"


def test_a_scoped_query_reads_its_namespace_and_nothing_else(probes: Any) -> None:
    url, probe = probes
    for written, expected in [
        (f'count(up{{probe="{probe}"}})', "1"),  # unscoped: 2
        (f'count(up{{namespace="theirs", probe="{probe}"}})', None),  # unscoped: 1
        (f'count(up{{namespace=~".+", probe="{probe}"}})', "1"),  # unscoped: 2
        (f'count({{__name__="up", probe="{probe}"}}) or vector(0)', "1"),  # unscoped: 2
    ]:
        assert _query(url, written)["data"]["result"], f"the probe reads nothing: {written}"
        result = _query(url, scope_query(written, "namespace", "mine"))["data"]["result"]
        assert (result[0]["value"][1] if result else None) == expected, written
