"""PoolView: eligibility, prices (cloud and owned TCO), quotas and cold starts from the API."""

from __future__ import annotations

from pathlib import Path

import pytest

from costscaler.api import CapacityPool, CapacityProfile, InferenceDeployment, load_manifests
from costscaler.core import missing_pools, pool_views
from costscaler.core.pools import node_hourly

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture(scope="module")
def examples() -> tuple[InferenceDeployment, dict[str, CapacityPool]]:
    resources = load_manifests(EXAMPLES)
    dep = next(
        r
        for r in resources
        if isinstance(r, InferenceDeployment) and r.metadata.name == "llama-3-1-8b"
    )
    return dep, {r.name: r for r in resources if isinstance(r, CapacityPool)}


@pytest.mark.parametrize(
    ("pool", "expected"),
    [
        pytest.param("g6-xlarge-l4-ondemand", 0.805, id="cloud-on-demand"),
        pytest.param("g6-xlarge-l4-spot", 0.40, id="cloud-spot"),
        pytest.param("onprem-h100", 10.1252, id="owned-tco"),
    ],
)
def test_node_hourly(examples, pool: str, expected: float):
    assert node_hourly(examples[1][pool]) == pytest.approx(expected, abs=1e-4)


def _with(dep: InferenceDeployment, pools: list[dict[str, object]], profiles: list[dict]):
    workload = dep.spec.workload.model_copy(
        update={"capacity": [*dep.spec.workload.capacity, *map(_profile, profiles)]}
    )
    refs = [dep.spec.pools[0].model_copy(update=p) for p in pools]
    return dep.spec.model_copy(update={"pools": refs, "workload": workload})


def _profile(fields: dict) -> CapacityProfile:
    return CapacityProfile.model_validate(fields)


def test_owned_pool_prices_a_replica_at_its_share_of_the_node(examples):
    dep, pools = examples
    spec = _with(
        dep,
        [{"name": "onprem-h100", "max_replicas": None}],
        [{"accelerator": "H100-80GB", "requestsPerSecond": 12.0, "acceleratorsPerReplica": 2}],
    )
    (view,) = pool_views(spec, list(pools.values()))
    assert view.replica_cost_per_hour == pytest.approx(10.1252 * 2 / 8, abs=1e-4)
    assert view.max_replicas == 2 * (8 // 2)  # maxNodes x replicas per node
    assert view.cold_start_s == 0 + dep.spec.workload.model_load_seconds
    assert not view.spot and view.interruption_rate_per_hour == 0.0


def test_eligibility_and_quotas(examples):
    dep, pools = examples
    views = {v.name: v for v in pool_views(dep.spec, list(pools.values()))}
    assert "onprem-h100" not in views  # not listed in spec.pools
    assert views["p4d-24xlarge-a100-ondemand"].max_replicas == 16  # min(16, 4 nodes x 8)
    assert views["g6-xlarge-l4-spot"].interruption_rate_per_hour == 0.3
    assert views["g6-xlarge-l4-spot"].cold_start_s == 160 + 120


def test_a_replica_larger_than_a_node_is_not_eligible(examples):
    dep, pools = examples
    big = _profile({"accelerator": "L4", "requestsPerSecond": 1.0, "acceleratorsPerReplica": 2})
    workload = dep.spec.workload.model_copy(update={"capacity": [big]})
    spec = dep.spec.model_copy(update={"workload": workload})
    assert pool_views(spec, list(pools.values())) == []  # L4 nodes carry one GPU


def test_missing_pools_are_named(examples):
    dep, pools = examples
    have = [pools["g6-xlarge-l4-spot"]]
    assert "g5-xlarge-a10g-ondemand" in missing_pools(dep.spec, have)
    assert missing_pools(dep.spec, list(pools.values())) == []
