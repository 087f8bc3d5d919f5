"""SLO risk with spot losses: bursts, independence across pools, and the demand band."""

from __future__ import annotations

import numpy as np
import pytest

from costscaler.core.forecast import forecast
from costscaler.core.risk import RiskModel

T = np.arange(240) * 15.0


def _model(burst: float = 0.0, indep: float = 0.0, rate: float = 10.0) -> RiskModel:
    demand = forecast(T, np.full(240, rate), 300.0)
    spot = np.array([0.0, 1.0, 1.0])
    return RiskModel(np.full(3, 2.0), spot * indep, spot * burst, demand)


@pytest.mark.parametrize(
    ("plan", "lo", "hi"),
    [
        pytest.param([0, 0, 0], 0.999, 1.0, id="no-capacity"),
        pytest.param([4, 0, 0], 0.9, 1.0, id="short"),
        pytest.param([5, 0, 0], 0.3, 0.7, id="at-the-mean"),
        pytest.param([9, 0, 0], 0.0, 1e-6, id="ample"),
    ],
)
def test_on_demand_risk_is_the_demand_exceedance(plan: list[int], lo: float, hi: float):
    risk = _model().of(np.array([plan]))[0]
    assert lo <= risk <= hi


def test_zero_demand_needs_no_capacity():
    assert _model(rate=0.0).of(np.array([[0, 0, 0]]))[0] == 0.0


def test_spreading_spot_across_pools_lowers_risk():
    # 14 req/s of capacity for ~6 req/s: a burst in one pool of the spread plan leaves 10.
    m = _model(burst=0.05, indep=0.02, rate=6.0)
    together, spread = m.of(np.array([[3, 4, 0], [3, 2, 2]]))
    assert spread < together


def test_spot_risk_exceeds_on_demand_risk_for_the_same_capacity():
    m = _model(burst=0.05, indep=0.02)
    on_demand, spot = m.of(np.array([[7, 0, 0], [3, 2, 2]]))
    assert spot > on_demand


def test_marginal_risk_is_largest_near_the_demand():
    m = _model()
    near = m.marginal(np.array([5, 0, 0]))[0]
    far = m.marginal(np.array([12, 0, 0]))[0]
    assert near > far >= 0.0
