"""Child manifests, pool status, the observation window, conditions, settings, the cache."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from costscaler.adapters.children import (
    LABEL_DEPLOYMENT,
    LABEL_POOL,
    Owner,
    child_manifest,
    child_state,
)
from costscaler.adapters.prometheus import FetchReport, Reading, Target
from costscaler.adapters.promql import QuerySet
from costscaler.api import load_manifests
from costscaler.controller.history import History
from costscaler.controller.pools import NodeView, node_view, pool_status
from costscaler.controller.runtime import ReadingCache
from costscaler.controller.settings import Settings
from costscaler.controller.status import Cond, conditions, replace_patch
from costscaler.errors import UserError

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POOLS = {p.name: p for p in load_manifests(REPO / "examples" / "pools")}
TEMPLATE = {
    "metadata": {"labels": {"app": "m"}},
    "spec": {
        "containers": [{"name": "c", "image": "i"}],
        "nodeSelector": {"zone": "a"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}


def test_child_manifest_merges_placement_labels_and_owner():
    m = child_manifest(Owner("ml", "llama", "uid-1"), TEMPLATE, POOLS["g6-xlarge-l4-spot"])
    assert m["metadata"]["name"] == "llama-g6-xlarge-l4-spot"
    labels = {LABEL_DEPLOYMENT: "llama", LABEL_POOL: "g6-xlarge-l4-spot"}
    assert m["metadata"]["labels"] == labels == m["spec"]["selector"]["matchLabels"]
    pod = m["spec"]["template"]
    assert pod["metadata"]["labels"] == {"app": "m", **labels}
    assert pod["spec"]["nodeSelector"] == {
        "zone": "a",
        "node.kubernetes.io/instance-type": "g6.xlarge",
        "karpenter.sh/capacity-type": "spot",
    }
    # The template's own GPU toleration is not repeated; the spot taint's is added.
    assert pod["spec"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {
            "key": "costscaler.dev/spot",
            "operator": "Equal",
            "value": "true",
            "effect": "NoSchedule",
        },
    ]
    (ref,) = m["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("InferenceDeployment", "uid-1", True)
    assert "replicas" not in m["spec"]
    assert TEMPLATE["spec"]["nodeSelector"] == {"zone": "a"}  # the spec is not mutated


def test_template_hash_changes_with_the_template_only():
    owner, pool = Owner("ml", "llama", "u"), POOLS["g6-xlarge-l4-spot"]
    a = child_manifest(owner, TEMPLATE, pool)["metadata"]["annotations"]
    b = child_manifest(owner, TEMPLATE, pool)["metadata"]["annotations"]
    changed = {
        **TEMPLATE,
        "spec": {**TEMPLATE["spec"], "containers": [{"name": "c", "image": "j"}]},
    }
    c = child_manifest(owner, changed, pool)["metadata"]["annotations"]
    assert a == b != c


def test_child_state_from_a_deployment():
    body = child_manifest(Owner("ml", "llama", "u"), TEMPLATE, POOLS["g6-xlarge-l4-spot"])
    body["spec"]["replicas"] = 3
    body["status"] = {"readyReplicas": 1, "replicas": 3}
    s = child_state(body)
    assert s is not None
    assert (s.owner, s.pool, s.desired, s.ready, s.warming) == (
        "llama",
        "g6-xlarge-l4-spot",
        3,
        1,
        2,
    )
    assert child_state({"metadata": {"labels": {"app": "x"}}}) is None


def node(name, labels, taints=(), gpus=1, ready=True) -> NodeView:
    return NodeView(name, labels, tuple(taints), gpus, ready)


def test_pool_status_counts_matching_ready_nodes_whose_taints_it_tolerates():
    spot = POOLS["g6-xlarge-l4-spot"]
    sel = dict(spot.spec.placement.node_selector)
    gpu_taint = ("nvidia.com/gpu", "", "NoSchedule")
    spot_taint = ("costscaler.dev/spot", "true", "NoSchedule")
    nodes = [
        node("a", sel, [gpu_taint, spot_taint]),
        node("b", sel, [gpu_taint, spot_taint], ready=False),
        node("c", {**sel, "karpenter.sh/capacity-type": "on-demand"}, [gpu_taint]),
        node("d", sel, [("dedicated", "other", "NoSchedule")]),
        node("e", sel, [gpu_taint, ("x", "y", "PreferNoSchedule")], gpus=2),
    ]
    s = pool_status(spot, nodes, [], 1, NOW)
    assert (s["nodes"], s["allocatableAccelerators"]) == (2, 3)
    assert s["effectiveHourlyCost"] == s["marginalHourlyCost"] == "0.4000"
    assert s["conditions"][0]["reason"] == "NodesFound"


def test_an_owned_pools_status_shows_its_tco_and_its_marginal_cost():
    s = pool_status(POOLS["onprem-h100"], [], [], 1, NOW)
    # 200000/36/730 + 8 x 1.4 x 0.09 + 1100/730 allocated; 8 kW x 1.4 x 0.09 at the margin.
    assert (s["effectiveHourlyCost"], s["marginalHourlyCost"]) == ("10.1252", "1.0080")


def test_node_view_reads_labels_taints_gpus_and_readiness():
    v = node_view(
        {
            "metadata": {"name": "n", "labels": {"a": "b"}},
            "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]},
            "status": {
                "allocatable": {"nvidia.com/gpu": "8"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
    )
    assert v == NodeView("n", {"a": "b"}, (("k", "", "NoSchedule"),), 8, True)


def test_condition_transition_time_moves_only_when_status_flips():
    first = conditions([Cond("Ready", True, "A")], [], 1, NOW)
    later = NOW + timedelta(minutes=5)
    same = conditions([Cond("Ready", True, "B", "m")], first, 2, later)
    flipped = conditions([Cond("Ready", False, "C")], same, 2, later)
    assert same[0]["lastTransitionTime"] == first[0]["lastTransitionTime"]
    assert same[0]["reason"] == "B" and same[0]["observedGeneration"] == 2
    assert flipped[0]["lastTransitionTime"] != first[0]["lastTransitionTime"]


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        pytest.param(None, {"a": 1}, {"a": 1}, id="fresh"),
        pytest.param({"a": 1, "b": 2}, {"a": 3}, {"a": 3, "b": None}, id="removed-key"),
        pytest.param(
            {"m": {"x": 1, "y": 2}}, {"m": {"x": 1}}, {"m": {"x": 1, "y": None}}, id="nested"
        ),
    ],
)
def test_replace_patch(old, new, patch):
    assert replace_patch(old, new) == patch


def test_history_window_losses_and_nan_on_bad_data():
    from costscaler.adapters.children import ChildState

    def kids(ready, desired=3, interrupted=0):
        return [ChildState("ml", "c", "o", "spot", desired, ready, desired - ready, "", 0,
                           interrupted)]  # fmt: skip

    h = History(window_seconds=30)
    h.add(0, Reading(rate_by_pool={"spot": 1.0}), kids(3))
    h.add(15, Reading(rate_by_pool={"spot": 2.0}, latency_seconds=0.5), kids(1, interrupted=1))
    h.add(30, Reading(problem="StaleMetrics"), kids(1, desired=1))  # scaled down: no loss
    h.add(30, Reading(problem="StaleMetrics"), kids(1, desired=1))  # same tick again
    h.add(45, Reading(rate_by_pool={"spot": 0.0}), kids(1, desired=1))
    obs = h.observations(has_tokens=False)
    assert list(obs.times) == [15, 30, 45]  # the sample at 0 left the 30 s window
    assert obs.request_rate[0] == 2.0 and math.isnan(obs.request_rate[1])
    assert list(obs.ready["spot"]) == [1, 1, 1] and list(obs.warming["spot"]) == [2, 0, 0]
    assert list(obs.lost["spot"]) == [1, 0, 0]


def test_history_learns_no_loss_from_ready_replicas_that_drop():
    """Ready replicas that drop while the ask holds (a crash, a readiness flap) or after a
    scale-down to zero (the terminating pod's readiness goes a tick later) are no
    interruption: only nodes lost are (`ChildState.interrupted`)."""
    from costscaler.adapters.children import ChildState

    def kid(ready, desired):
        return [ChildState("ml", "c", "o", "spot", desired, ready, max(0, desired - ready), "")]

    h = History(120)
    for t, (ready, desired) in enumerate([(3, 3), (1, 3), (1, 0), (0, 0)]):
        h.add(15.0 * t, Reading(rate_by_pool={"spot": 1.0}), kid(ready, desired))
    assert list(h.observations(False).lost["spot"]) == [0, 0, 0, 0]


def test_settings_flags_over_environment(monkeypatch):
    monkeypatch.setenv("COSTSCALER_INTERVAL_SECONDS", "30")
    monkeypatch.setenv("COSTSCALER_PROMETHEUS_URL", "http://prom:9090/")
    monkeypatch.setenv("COSTSCALER_PROMETHEUS_TOKEN", "s3cret")
    s = Settings(interval_seconds=5)
    assert (s.interval_seconds, s.prometheus_url, s.token()) == (5, "http://prom:9090", "s3cret")
    assert "s3cret" not in repr(s)


def test_settings_token_file_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("COSTSCALER_PROMETHEUS_TOKEN", "env")
    f = tmp_path / "token"
    f.write_text("from-file\n")
    assert Settings(prometheus_token_file=f).token() == "from-file"


def test_run_rejects_bad_settings_with_the_field_named():
    from costscaler.cli import build_parser
    from costscaler.commands.run import settings_from

    parser = build_parser()
    with pytest.raises(UserError, match="prometheus_url"):
        settings_from(parser.parse_args(["run", "-A", "--prometheus-url", "prom:9090"]))
    with pytest.raises(UserError, match="--all-namespaces"):
        settings_from(parser.parse_args(["run"]))


class CountingSource:
    def __init__(self) -> None:
        self.fetches = 0

    async def fetch(self, targets):
        self.fetches += 1
        return {t.key: Reading(rate_by_pool={"p": 1.0}) for t in targets}, FetchReport(4)


def test_reading_cache_fetches_once_per_round_for_every_deployment():
    clock = [100.0]
    src = CountingSource()
    q = QuerySet("r", None, "l", None, None)
    targets = [Target(("ml", f"d{i}"), q, 0.95, 1.0) for i in range(100)]
    reports = []
    cache = ReadingCache(
        src, lambda: targets, 7.5, lambda r, s: reports.append(r), lambda: clock[0]
    )

    async def round_():
        return await asyncio.gather(*(cache.get(t.key) for t in targets))

    first = asyncio.run(round_())
    assert src.fetches == 1 and all(r.request_rate == 1.0 for r in first)
    clock[0] += 5
    asyncio.run(round_())
    assert src.fetches == 1
    clock[0] += 5
    asyncio.run(round_())
    assert src.fetches == 2 and len(reports) == 2


def test_metrics_server_serves_metrics_and_health():
    import urllib.request

    from prometheus_client import CollectorRegistry

    from costscaler.controller.metrics import Health, OperatorMetrics, serve

    registry = CollectorRegistry()
    m = OperatorMetrics.create(registry)
    m.cost_per_hour.labels("ml", "llama").set(1.5)
    health = Health(stuck_after_seconds=60)

    async def scenario():
        runner, port = await serve("127.0.0.1", 0, health, lambda: True, registry)
        base = f"http://127.0.0.1:{port}"
        try:
            body = await asyncio.to_thread(lambda: urllib.request.urlopen(base + "/metrics").read())
            ok = await asyncio.to_thread(lambda: urllib.request.urlopen(base + "/healthz").status)
            health.last_tick -= 120  # no tick for two minutes with work to do: stuck
            try:
                await asyncio.to_thread(lambda: urllib.request.urlopen(base + "/healthz"))
                stuck = 200
            except urllib.error.HTTPError as err:
                stuck = err.code
        finally:
            await runner.cleanup()
        return body.decode(), ok, stuck

    text, ok, stuck = asyncio.run(scenario())
    assert 'costscaler_cost_per_hour{deployment="llama",namespace="ml"} 1.5' in text
    assert (ok, stuck) == (200, 503)


def test_window_gauges_are_set_when_known_and_dropped_when_not():
    from prometheus_client import CollectorRegistry, generate_latest

    from costscaler.controller.metrics import OperatorMetrics

    registry = CollectorRegistry()
    m = OperatorMetrics.create(registry)
    m.set_window("ml", "llama", (0.997, 0.7, 0.3))
    text = generate_latest(registry).decode()
    for line in (
        'costscaler_slo_attainment{deployment="llama",namespace="ml"} 0.997',
        'costscaler_error_budget_remaining{deployment="llama",namespace="ml"} 0.7',
        'costscaler_error_budget_burn_rate{deployment="llama",namespace="ml"} 0.3',
    ):
        assert line in text
    m.set_window("ml", "llama", (None, None, None))  # counts gone unknown: no stale figure
    assert 'deployment="llama"' not in generate_latest(registry).decode()


def test_history_is_bounded_by_its_rows_whatever_the_tick_rate():
    from costscaler.adapters.children import ChildState

    kids = [ChildState("ml", "c", "o", "od", 1, 1, 0, "")]
    h = History(window_seconds=60, interval_seconds=15)  # room for 6 rows
    for t in range(100):  # ticks every second: many more than the rows
        h.add(float(t), Reading(rate_by_pool={"od": float(t)}), kids)
    obs = h.observations(has_tokens=False)
    assert len(obs.times) == h.load.shape[0] == 6
    assert list(obs.request_rate) == [94.0, 95.0, 96.0, 97.0, 98.0, 99.0]


def test_status_is_written_on_material_change_or_when_the_refresh_is_due():
    from costscaler.controller.status import status_due

    old = {
        "lastDecision": {"time": NOW.isoformat(), "reason": "CostOptimal", "replicas": [1]},
        "conditions": [{"type": "Ready", "status": "True", "reason": "ReplicasReady"}],
        "cost": {"perHour": "1.0"},
    }
    soon, later = NOW + timedelta(seconds=15), NOW + timedelta(seconds=60)
    same_but_cost = {**old, "cost": {"perHour": "1.1"}}
    assert not status_due(old, same_but_cost, soon, 60)
    assert status_due(old, same_but_cost, later, 60)
    moved = {**old, "lastDecision": {**old["lastDecision"], "replicas": [2]}}
    assert status_due(old, moved, soon, 60)
    flipped = {**old, "conditions": [{"type": "Ready", "status": "False", "reason": "X"}]}
    assert status_due(old, flipped, soon, 60)
    assert status_due({}, old, soon, 60)
