"""Merged queries on the real Prometheus: the same readings as one query per text.

`PrometheusSource` sends the small preset texts three to a query (`label_replace` tags, joined
with `or`) and splits the answer by tag (issue 18: queries per round). The unit tests check
the split against canned answers; this runs the merged text on the session's Prometheus,
which judges the PromQL, over series labelled like two deployments' pods: Prometheus scrapes
itself four times, as deployments a and b on pools spot and od.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest

from costscaler.adapters.prometheus import PrometheusSource, Target, connect
from costscaler.adapters.promql import QuerySet, SeriesLabels

pytestmark = pytest.mark.integration

PODS = [("a", "spot"), ("a", "od"), ("b", "spot")]


@pytest.fixture(scope="module")
def probe(cluster: Any) -> Any:
    """A unique label on `up` series of deployments a (two pools) and b (one), namespace ml."""
    probe = uuid.uuid4().hex[:8]
    path = cluster.targets_dir / f"merge-{probe}.json"
    host = cluster.prometheus_url.split("://", 1)[1].rstrip("/")
    path.write_text(json.dumps([
        {"targets": [host], "labels": {"namespace": "ml", "deployment": d, "pool": p,
                                       "probe": probe}}
        for d, p in PODS]))  # fmt: skip
    client = connect(cluster.prometheus_url, None, None, 10.0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = client.custom_query(f'count(up{{probe="{probe}"}})')
        if found and found[0]["value"][1] == str(len(PODS)):
            break
        time.sleep(0.5)
    else:
        raise AssertionError("Prometheus never scraped the probe targets")
    yield client, probe
    path.unlink()


def _queries(probe: str) -> QuerySet:
    by_pool = "namespace, deployment, pool"
    sel = f'{{probe="{probe}"}}'
    per_pool = [
        f"sum by ({by_pool}) (up{sel})",  # 1 per pool: the request rate
        f"count by ({by_pool}) (up{sel}) * 100",  # the token rate
        f"time() - max by ({by_pool}) (timestamp(up{sel}))",  # freshness, seconds
        f"(sum by ({by_pool}) (up{sel}) * 2) or (sum by ({by_pool}) (absent_metric{sel}))",
        f"avg by ({by_pool}) (up{sel}) / 4",  # the KV-cache use
    ]
    return QuerySet(
        request_rate=per_pool[0],
        latency_buckets=None,
        latency=f"max by (namespace, deployment) (scrape_duration_seconds{sel})",
        token_rate=per_pool[1],
        freshness=per_pool[2],
        queue_depth=per_pool[3],
        kv_cache_usage=per_pool[4],
        mergeable=tuple(per_pool),
    )


def test_merged_queries_read_the_same_as_one_query_per_text(probe: Any) -> None:
    client, tag = probe
    queries = _queries(tag)
    keys = [("ml", "a"), ("ml", "b"), ("ml", "absent")]
    targets = [Target(k, queries, quantile=0.95, threshold_seconds=1.0) for k in keys]
    merged = PrometheusSource(client, SeriesLabels(), max_age_seconds=120.0)
    alone = PrometheusSource(client, SeriesLabels(), max_age_seconds=120.0)
    alone.MERGE_PARTS = 1
    got, report = asyncio.run(merged.fetch(targets))
    want, alone_report = asyncio.run(alone.fetch(targets))
    assert (report.queries, report.errors, alone_report.queries) == (3, 0, 6), report.failed
    a, b = got[("ml", "a")], got[("ml", "b")]
    assert a.problem is None and a.rate_by_pool == {"spot": 1.0, "od": 1.0}
    assert a.queue_by_pool == {"spot": 2.0, "od": 2.0} and a.kv_cache_usage == 0.25
    assert (a.token_rate, b.token_rate, b.rate_by_pool) == (200.0, 100.0, {"spot": 1.0})
    assert got[("ml", "absent")].problem == "NoData"
    # The same readings but for the latency, a gauge that may move between the two fetches.
    for key in keys:
        assert got[key].rate_by_pool == want[key].rate_by_pool
        assert got[key].queue_by_pool == want[key].queue_by_pool
        assert got[key].kv_cache_by_pool == want[key].kv_cache_by_pool
        assert (got[key].token_rate, got[key].problem) == (want[key].token_rate, want[key].problem)
