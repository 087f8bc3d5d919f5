"""What cluster-up hands Karpenter: offerings priced from the pools, and node classes whose
nodes register only after the pool's node cold start (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster import karpenter
from cluster.nodes import load_pools

ROOT = Path(__file__).resolve().parents[3]
POOLS = load_pools(ROOT / "examples" / "pools")


def _offers(types: list[dict], name: str) -> dict[tuple[str, str], float]:
    entry = next(t for t in types if t["name"] == name)
    return {
        (o["Requirements"][0]["values"][0], o["Requirements"][1]["values"][0]): o["Price"]
        for o in entry["offerings"]
    }


def test_offerings_carry_the_pools_prices_per_capacity_type_and_zone() -> None:
    types = karpenter.instance_types(POOLS)
    names = {t["name"] for t in types}
    # Cloud pools only: the on-prem H100 servers are always on and never launched.
    assert names == {"g5.xlarge", "g6.xlarge", "p4d.24xlarge"}
    g6 = _offers(types, "g6.xlarge")
    assert g6[("on-demand", "test-zone-a")] == pytest.approx(0.805)
    assert g6[("spot", "test-zone-c")] == pytest.approx(0.40)
    assert len(g6) == 2 * len(karpenter.ZONES)
    p4d = next(t for t in types if t["name"] == "p4d.24xlarge")
    assert p4d["resources"]["nvidia.com/gpu"] == "8"
    assert {cap for cap, _ in _offers(types, "p4d.24xlarge")} == {"on-demand"}


def test_a_pool_pinned_to_a_zone_is_offered_there_only() -> None:
    pool = POOLS[0].model_copy(deep=True)
    pool.spec.placement.node_selector[karpenter.ZONE_LABEL] = "test-zone-b"
    offers = _offers(karpenter.instance_types([pool]), str(pool.spec.instance_type))
    assert [zone for _, zone in offers] == ["test-zone-b"]


def test_pools_disagreeing_on_gpus_per_instance_type_name_the_field() -> None:
    first = next(p for p in POOLS if p.spec.instance_type == "g6.xlarge")
    other = first.model_copy(deep=True)
    other.spec.accelerator.count_per_node = 4
    with pytest.raises(RuntimeError, match="countPerNode"):
        karpenter.instance_types([first, other])


def test_node_classes_register_nodes_after_each_pools_cold_start() -> None:
    classes = {c["metadata"]["name"]: c["spec"] for c in karpenter.node_classes(POOLS, None)}
    assert classes["g6-xlarge-l4-spot"] == {"nodeRegistrationDelay": "160s"}
    assert classes["p4d-24xlarge-a100-ondemand"] == {"nodeRegistrationDelay": "240s"}
    # The shared class waits the longest; owned pools launch nothing, so get no class.
    assert classes["default"] == {"nodeRegistrationDelay": "240s"}
    assert "onprem-h100" not in classes


def test_a_cold_start_override_applies_to_every_class() -> None:
    classes = karpenter.node_classes(POOLS, 12.0)
    assert {c["spec"]["nodeRegistrationDelay"] for c in classes} == {"12s"}
