"""The violating share: the latency model, spot losses, the demand band, and its properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_properties import FAST

from costscaler.core import latency
from costscaler.core.forecast import forecast
from costscaler.core.risk import RiskModel

T = np.arange(240) * 15.0


def _model(
    burst: float = 0.0, indep: float = 0.0, rate: float = 10.0, base: float = 5.0
) -> RiskModel:
    demand = forecast(T, np.full(240, rate), 300.0)
    spot = np.array([0.0, 1.0, 1.0])
    return RiskModel(np.full(3, 2.0), spot * indep, spot * burst, demand, np.full(3, base), 10.0)


@pytest.mark.parametrize(
    ("plan", "lo", "hi"),
    [
        pytest.param([0, 0, 0], 1.0, 1.0, id="no-capacity-misses-every-request"),
        pytest.param([4, 0, 0], 0.5, 1.0, id="past-saturation"),
        pytest.param([5, 0, 0], 0.03, 0.1, id="at-the-rated-rate-the-quantile-misses"),
        pytest.param([7, 0, 0], 1e-4, 1e-2, id="queueing"),
        pytest.param([20, 0, 0], 0.0, 1e-6, id="ample"),
    ],
)
def test_on_demand_violating_share_follows_utilisation(plan: list[int], lo: float, hi: float):
    share = _model().of(np.array([plan]))[0]
    assert lo <= share <= hi


def test_zero_demand_misses_nothing():
    assert _model(rate=0.0).of(np.array([[0, 0, 0]]))[0] == 0.0


def test_spreading_spot_across_pools_lowers_the_share():
    m = _model(burst=0.05, indep=0.02, rate=6.0)
    together, spread = m.of(np.array([[3, 4, 0], [3, 2, 2]]))
    assert spread < together


def test_spot_misses_more_than_on_demand_of_the_same_capacity():
    m = _model(burst=0.05, indep=0.02)
    on_demand, spot = m.of(np.array([[8, 0, 0], [4, 2, 2]]))
    assert spot > on_demand


def test_the_last_replica_is_worth_most_near_saturation():
    m = _model()
    near = m.marginal(np.array([7, 0, 0]))[0]
    far = m.marginal(np.array([16, 0, 0]))[0]
    assert near > far >= 0.0


@FAST
@given(
    st.floats(0.05, 50.0),
    st.floats(0.02, 0.98),
    st.floats(0.05, 60.0),
    st.floats(0.5, 0.999),
)
def test_the_rated_rate_just_meets_the_slo(rated: float, share: float, threshold: float, q: float):
    """Issue 13: `requestsPerSecond` is the rate at which a replica meets the latency SLO, so
    there the share over the threshold is (at most) 1 - quantile and the replica saturates
    above it.
    The model treated it as the saturation rate (v = 1), which ran an A10G at <= 84 % and an
    L4 at <= 70 % of what the manifest says they serve."""
    base = share * threshold
    mu = latency.saturation(rated, base, threshold, q)
    assert mu > rated

    def v(saturation: float) -> float:
        return float(
            latency.violating(np.array([rated / saturation]), saturation, base, threshold)[0]
        )

    # The least saturation at which the rated rate meets the quantile: just below it, it
    # misses (a single slot slower than the threshold misses every request, so the least
    # may already meet it with room).
    assert v(mu) <= 1.0 - q + 1e-6
    assert v(mu * (1.0 - 1e-6)) >= 1.0 - q - 1e-6
    curve = latency.curve(rated, base, threshold, q)
    assert curve[-1] == 1.0 and (np.diff(curve) >= 0.0).all()


def test_erlang_c_matches_the_integer_formula():
    m, a = 4, 3.0
    terms = [a**k / np.prod(np.arange(1, k + 1)) for k in range(m)]
    top = a**m / np.prod(np.arange(1, m + 1)) * m / (m - a)
    assert latency.erlang_c(float(m), np.array([a]))[0] == pytest.approx(
        top / (sum(terms) + top), rel=1e-12
    )


@FAST
@given(
    st.floats(0.2, 20.0),
    st.floats(0.05, 0.95),
    st.floats(1.0, 30.0),
    st.floats(0.0, 80.0),
    st.floats(0.0, 0.2),
)
def test_more_capacity_never_misses_more_in_one_pool(rated, base_share, threshold, rate, burst):
    """Property (issue 13): V in [0, 1], non-increasing in a single pool's replicas; the
    expected attainment a decision reports is 1 - V."""
    demand = forecast(T, np.full(240, rate), 300.0)
    m = RiskModel(
        np.array([rated]),
        np.array([burst / 2]),
        np.array([burst]),
        demand,
        np.array([base_share * threshold]),
        threshold,
    )
    share = m.of(np.arange(60)[:, None])
    assert ((share >= 0.0) & (share <= 1.0)).all()
    assert (np.diff(share) <= 1e-12).all()


def test_a_base_latency_at_the_threshold_is_refused():
    with pytest.raises(ValueError, match="base latency"):
        latency.violating(np.array([0.5]), 2.0, 10.0, 10.0)
