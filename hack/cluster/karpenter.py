"""Karpenter's KWOK provider on the local cluster: the instance types it may launch (from the
CapacityPools' instance types, capacity types and prices) and the node classes whose nodes
register only after the pool's node cold start.

Owned pools (Reserved, OnPrem) and pools without an instance type get no offering: their
nodes are always on, so cluster-up pre-creates them as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cluster.nodes import CAPACITY_TYPE_LABELS, HOST_RESOURCES
from costscaler.api import CapacityPool
from costscaler.api.pool import CLOUD_PRICED

NODE_CLASS = "default"
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
ZONE_LABEL = "topology.kubernetes.io/zone"
# Zones every offering is sold in unless the pool's placement pins one.
ZONES = ("test-zone-a", "test-zone-b", "test-zone-c")
SYSTEM_NAMESPACE = "karpenter"


def launchable(pool: CapacityPool) -> bool:
    """Whether Karpenter can launch nodes for the pool: a cloud-priced instance type."""
    return pool.spec.instance_type is not None and pool.spec.capacity_type in CLOUD_PRICED


def _zones(pool: CapacityPool) -> tuple[str, ...]:
    zone = pool.spec.placement.node_selector.get(ZONE_LABEL)
    return (zone,) if zone else ZONES


def instance_types(pools: Iterable[CapacityPool]) -> list[dict[str, Any]]:
    """The INSTANCE_TYPES_FILE_PATH list: one entry per instance type, one offering per
    capacity type and zone at the pool's price (the lowest when pools share one)."""
    types: dict[str, dict[str, Any]] = {}
    prices: dict[tuple[str, str, str], float] = {}
    for pool in pools:
        if not launchable(pool) or pool.spec.price is None:
            continue
        name = str(pool.spec.instance_type)
        gpus = str(pool.spec.accelerator.count_per_node)
        entry = types.setdefault(
            name,
            {
                "name": name,
                "architecture": "amd64",
                "operatingSystems": ["linux"],
                "resources": dict(HOST_RESOURCES, **{"nvidia.com/gpu": gpus}),
                "offerings": [],
            },
        )
        if entry["resources"]["nvidia.com/gpu"] != gpus:
            raise RuntimeError(
                f"pools disagree on the accelerators of {name}: "
                f"{entry['resources']['nvidia.com/gpu']} and {gpus} "
                f"(pool {pool.name}: spec.accelerator.countPerNode)"
            )
        capacity = CAPACITY_TYPE_LABELS[str(pool.spec.capacity_type)]
        for zone in _zones(pool):
            key = (name, capacity, zone)
            price = float(pool.spec.price.hourly)
            prices[key] = min(price, prices.get(key, price))
    for (name, capacity, zone), price in sorted(prices.items()):
        types[name]["offerings"].append(
            {
                "Price": price,
                "Available": True,
                "Requirements": [
                    {"key": CAPACITY_TYPE_LABEL, "operator": "In", "values": [capacity]},
                    {"key": ZONE_LABEL, "operator": "In", "values": [zone]},
                ],
            }
        )
    return [types[name] for name in sorted(types)]


def node_classes(pools: Iterable[CapacityPool], override: float | None) -> list[dict[str, Any]]:
    """KWOKNodeClasses whose nodes register only after a node cold start: one per launchable
    pool, named after it, with its coldStart.nodeSeconds, and `default` with the longest.

    The node object appears when the delay is over, as a real instance's kubelet registers
    only once booted: until then the pods stay Pending. `override` sets every delay.
    """
    delays = {
        pool.name: float(pool.spec.cold_start.node_seconds) if override is None else override
        for pool in pools
        if launchable(pool)
    }
    delays[NODE_CLASS] = max(delays.values(), default=0.0) if override is None else override
    return [
        {
            "apiVersion": "karpenter.kwok.sh/v1alpha1",
            "kind": "KWOKNodeClass",
            "metadata": {"name": name},
            "spec": {"nodeRegistrationDelay": f"{round(seconds)}s"},
        }
        for name, seconds in sorted(delays.items())
    ]


def environment(
    kubeconfig: str, instance_types_file: str, metrics_port: int, health_port: int
) -> dict[str, str]:
    """The settings Karpenter reads from its environment."""
    return {
        "KUBECONFIG": kubeconfig,
        "INSTANCE_TYPES_FILE_PATH": instance_types_file,
        "DISABLE_LEADER_ELECTION": "true",
        "SYSTEM_NAMESPACE": SYSTEM_NAMESPACE,
        "METRICS_PORT": str(metrics_port),
        "HEALTH_PROBE_PORT": str(health_port),
        "FEATURE_GATES": "CapacityBuffer=true",
        "LOG_LEVEL": "info",
    }
