"""Committed capacity is sunk: owned and reserved pools compete at their marginal cost.

Issue 14, item 5. An OnPrem pool's capex (and a reservation) is paid whether its nodes serve
or not, so decisions price them at energy plus per-use operations, use them first up to
their size, and views show the allocated TCO beside the marginal cost the decision paid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from costscaler.api import CapacityPool, InferenceDeployment
from costscaler.core import Observations, decide, pool_views
from costscaler.core.cost import HOURS_PER_MONTH
from costscaler.core.pools import node_hourly, node_marginal_hourly

OWNED, CLOUD = "onprem-l4", "cloud-l4"
# 20000 $ over 36 months + 300 W x 1.4 x 0.12 $/kWh + 150 $/month.
CAPEX = 20000 / (36 * HOURS_PER_MONTH)
ENERGY = 0.3 * 1.4 * 0.12
TCO = CAPEX + ENERGY + 150 / HOURS_PER_MONTH  # 1.017 $/h, above the cloud's 0.805


def _pool(name: str, spec: dict[str, Any]) -> CapacityPool:
    base = {"accelerator": {"type": "L4"}, "coldStart": {"nodeSeconds": 90}}
    return CapacityPool.model_validate(
        {"apiVersion": "costscaler.dev/v1alpha1", "kind": "CapacityPool",
         "metadata": {"name": name}, "spec": {**base, **spec}}
    )  # fmt: skip


OWNERSHIP = {
    "purchasePrice": "20000",
    "amortizationMonths": 36,
    "powerWatts": 300,
    "pue": 1.4,
    "electricityPerKWh": "0.12",
    "operationsPerMonth": "150",
}
ONPREM = _pool(OWNED, {"capacityType": "OnPrem", "ownership": OWNERSHIP, "limits": {"maxNodes": 4}})
ON_DEMAND = _pool(CLOUD, {"capacityType": "OnDemand", "price": {"hourly": "0.805"}})


def _deployment(pools: list[str]) -> InferenceDeployment:
    return InferenceDeployment.model_validate(
        {
            "apiVersion": "costscaler.dev/v1alpha1",
            "kind": "InferenceDeployment",
            "metadata": {"name": "llm", "namespace": "default"},
            "spec": {
                "targetRef": None,
                "template": {"spec": {"containers": [{"name": "m", "image": "m:1"}]}},
                "slo": {"latency": {"quantile": 0.95, "thresholdSeconds": 15}},
                "workload": {
                    "modelLoadSeconds": 120,
                    "capacity": [{"accelerator": "L4", "requestsPerSecond": 1.6}],
                },
                "pools": [{"name": n} for n in pools],
                "replicas": {"min": 1, "max": 40},
                "costModel": {"sloMissCostPerHour": "50"},
            },
        }
    )


def _steady(rate: float, ready: dict[str, int], now: float = 7200.0) -> Observations:
    times = now - 15.0 * np.arange(240)[::-1]
    return Observations(
        times=times,
        request_rate=np.full(240, rate),
        latency=np.full(240, 0.5),
        ready={k: np.full(240, float(v)) for k, v in ready.items()},
    )


def test_owned_node_costs_energy_and_per_use_operations_at_the_margin():
    assert node_hourly(ONPREM) == pytest.approx(TCO)
    assert node_marginal_hourly(ONPREM) == pytest.approx(ENERGY)
    assert node_marginal_hourly(ON_DEMAND) == node_hourly(ON_DEMAND) == pytest.approx(0.805)
    used = ONPREM.model_copy(deep=True)
    used.spec.ownership.operations_per_node_hour = "0.05"  # type: ignore[union-attr]
    assert node_marginal_hourly(used) == pytest.approx(ENERGY + 0.05)
    assert node_hourly(used) == pytest.approx(TCO + 0.05)


def test_owned_gpus_are_used_first_up_to_their_size():
    """Before: all 5 replicas on the cloud ($4.92/h TCO), the 4 owned L4s idle though paid."""
    dep = _deployment([OWNED, CLOUD])
    d = decide(dep.spec, [ONPREM, ON_DEMAND], _steady(6.0, {}), {}, 7200.0)
    # Every owned L4 first; the cloud adds what the queueing slack still needs.
    assert d.replicas[OWNED] == 4 and d.replicas[CLOUD] >= 1
    cloud = d.replicas[CLOUD]
    assert d.marginal_cost_per_hour == pytest.approx(4 * ENERGY + 0.805 * cloud)
    assert d.cost_per_hour == pytest.approx(4 * TCO + 0.805 * cloud)  # allocated, chargeback
    chosen = d.alternatives[0]
    assert chosen.cost_per_hour == pytest.approx(d.cost_per_hour)
    assert chosen.marginal_cost_per_hour == pytest.approx(d.marginal_cost_per_hour)


def test_owned_gpus_are_not_released_to_save_money_that_is_not_saved():
    """Before: at half the load the plan kept the cloud replica and released 2 owned GPUs."""
    dep = _deployment([OWNED, CLOUD])
    running = {OWNED: 4, CLOUD: 1}
    d = decide(dep.spec, [ONPREM, ON_DEMAND], _steady(3.0, running), running, 7200.0)
    plans = {a.name: dict(a.replicas) for a in d.alternatives}
    target = plans.get("without-keep-alive", plans["chosen"])
    assert target[CLOUD] == 0 and target[OWNED] >= 3


def test_a_reservation_caps_the_pool_at_its_commitment():
    reserved = _pool(
        "reserved-l4",
        {
            "capacityType": "Reserved",
            "ownership": {**OWNERSHIP, "powerWatts": 0},
            "commitment": {"count": 3, "termMonths": 12},
            "limits": {"maxNodes": 10},
        },
    )
    dep = _deployment(["reserved-l4"])
    (view,) = pool_views(dep.spec, [reserved])
    assert view.max_replicas == 3
    assert view.decision_cost_per_hour == 0.0
    assert view.replica_cost_per_hour == pytest.approx(CAPEX + 150 / HOURS_PER_MONTH)
