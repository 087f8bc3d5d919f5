"""The error-budget law (`core.errorbudget`): safe spending, monotone, neutral when unknown."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from core_helpers import OD, planner, steady
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from costscaler.core.errorbudget import RESERVE, attainment_target, bounds, expected, spent

targets = st.floats(0.5, 0.9999)
windows = st.floats(3600.0, 90 * 86400.0)
rates = st.floats(0.01, 1e4)


@given(
    a=targets,
    window=windows,
    rate=rates,
    fill=st.floats(0.0, 1.0),
    spare=st.floats(0.0, 1.0),
    ticks=st.integers(1, 60),
    dt_share=st.floats(1e-4, 0.5),
    beat=st.floats(0.0, 1.0),
)
@settings(max_examples=400, deadline=None)
def test_meeting_every_target_keeps_the_window_at_or_above_the_slo(
    a: float,
    window: float,
    rate: float,
    fill: float,
    spare: float,
    ticks: int,
    dt_share: float,
    beat: float,
) -> None:
    # Property (i): a window at or above its target, whose ticks each serve their requests
    # at (or above) the target the law sets, ends every tick at or above the SLO. The
    # window is rolling: each tick a share dt/W of its counts leaves (at its average
    # attainment) and rate x dt new requests arrive.
    total = fill * rate * window  # a young or a full window
    reserved = a + RESERVE * (1 - a)
    good = reserved * total + spare * (1 - reserved) * total  # surplus >= 0
    dt = dt_share * window
    for _ in range(ticks):
        tau = attainment_target(a, window, good, total, rate)
        keep = 1 - dt / window
        arrivals = rate * dt
        good, total = good * keep + (tau + beat * (1 - tau)) * arrivals, total * keep + arrivals
        assert good >= a * total - 1e-9 * total
        assert good <= total * (1 + 1e-12)


@given(a=targets, rate=rates, deficit=st.floats(0.0, 1.0))
@settings(max_examples=300, deadline=None)
def test_a_window_below_the_slo_comes_back_when_the_cap_does_not_bind(
    a: float, rate: float, deficit: float
) -> None:
    # Property (i), the other side: a window below the SLO (not so far that the cap binds)
    # is back at or above it within three windows when every tick meets its target.
    window = 7 * 86400.0
    total = rate * window
    good = (a - deficit * (1 - a)) * total
    dt = window / 100
    for _ in range(300):
        tau = attainment_target(a, window, good, total, rate)
        assume(tau < bounds(a)[1])
        keep = 1 - dt / window
        good, total = good * keep + tau * rate * dt, total * keep + rate * dt
    assert good >= a * total


@given(
    a=targets,
    window=windows,
    total=st.floats(1.0, 1e9),
    rate=st.floats(0.0, 1e4),
    shares=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
)
def test_the_target_falls_as_the_budget_left_grows(
    a: float, window: float, total: float, rate: float, shares: tuple[float, float]
) -> None:
    # Property (ii): more budget left (more good requests of the same total), a lower target.
    low, high = sorted(shares)
    worse, better = spent(a, low * total, total), spent(a, high * total, total)
    assert worse.left is not None and better.left is not None
    assert worse.left <= better.left
    tau_worse = attainment_target(a, window, low * total, total, rate)
    tau_better = attainment_target(a, window, high * total, total, rate)
    assert tau_better <= tau_worse
    floor, cap = bounds(a)
    assert floor <= tau_better <= tau_worse <= cap < 1


@given(a=targets, window=windows, rate=rates, known=st.floats(0.0, 1e6))
def test_unknown_counts_leave_the_target_at_the_slo(
    a: float, window: float, rate: float, known: float
) -> None:
    # Property (iii): without both counts there is nothing to spend or recover.
    for good, total in ((None, known), (known, None), (None, None), (math.nan, known)):
        assert attainment_target(a, window, good, total, rate) == a
        assert spent(a, good, total) == spent(a, None, None)
    assert attainment_target(a, window, known, known + 1, math.nan) == a


def test_burn_rate_and_budget_left_are_the_sre_ones() -> None:
    # 5 bad requests in 1,000 at a 99 % target: half the budget spent, burning at 0.5.
    so_far = spent(0.99, 995.0, 1000.0)
    assert so_far.attainment == pytest.approx(0.995)
    assert so_far.burn_rate == pytest.approx(0.5)
    assert so_far.left == pytest.approx(0.5)
    past = spent(0.99, 970.0, 1000.0)  # 30 bad: three times the budget
    assert past.burn_rate == pytest.approx(3.0) and past.left == pytest.approx(-2.0)
    assert spent(0.99, 0.0, 0.0) == type(so_far)(None, 1.0, 0.0)
    assert spent(1.0, 10.0, 10.0).left == 1.0 and spent(1.0, 9.0, 10.0).burn_rate == math.inf
    # Extrapolated bucket counts may pass the total by a fraction: good is clipped to it.
    assert spent(0.99, 1000.4, 1000.0).attainment == 1.0


def test_a_young_windows_start_up_spends_a_share_of_the_periods_budget() -> None:
    # A 7-day window 3 minutes old at 25 req/s, 1,600 of its 2,800 requests bad while the
    # first replicas loaded (azure-conv's replay): the period's allowance is 1 % of the
    # 15.1 million requests a full window holds, not of the 2,800 so far (-56 before).
    week, rate = 7 * 86400.0, 25.0
    full = expected(2800.0, week, rate)
    assert full == pytest.approx(rate * week)
    young = spent(0.99, 1200.0, 2800.0, full)
    assert young.left == pytest.approx(1 - 1600 / (0.01 * rate * week))
    assert young.burn_rate == pytest.approx(1600 / 2800 / 0.01)  # the rate is the SRE one
    assert young.attainment == pytest.approx(1200 / 2800)
    assert spent(0.99, 1200.0, 2800.0).left == pytest.approx(1 - 1600 / 28.0)
    # A full window's count stands (traffic fell at night: the rate does not shrink it).
    assert expected(rate * week, week, rate / 10) == rate * week
    assert spent(0.99, 970.0, 1000.0, 500.0).left == pytest.approx(-2.0)
    # No usable rate or window adds nothing.
    for bad in (math.nan, math.inf):
        assert expected(2800.0, week, bad) == 2800.0 and expected(2800.0, bad, rate) == 2800.0


@given(a=targets, share=st.floats(0.0, 1.0), total=st.floats(1.0, 1e9), more=st.floats(0, 1e3))
@settings(max_examples=300, deadline=None)
def test_the_budget_left_grows_with_the_requests_still_to_come(
    a: float, share: float, total: float, more: float
) -> None:
    # The allowance of a fuller window is larger: the budget left never falls as the full
    # window's count grows, stays at or below 1, and is the SRE figure at the count so far.
    good = share * total
    so_far = spent(a, good, total)
    grown = spent(a, good, total, total * (1 + more))
    assert grown.left is not None and so_far.left is not None
    assert so_far.left <= grown.left + 1e-12 <= 1 + 1e-12
    assert spent(a, good, total, total) == so_far
    assert grown.burn_rate == so_far.burn_rate and grown.attainment == so_far.attainment


def test_targets_relax_with_budget_and_tighten_past_it() -> None:
    a, week, rate = 0.99, 7 * 86400.0, 10.0
    full = rate * week
    floor, cap = bounds(a)
    assert (floor, cap) == (pytest.approx(0.98), pytest.approx(0.999))
    assert attainment_target(a, week, full, full, rate) == pytest.approx(0.982)
    assert attainment_target(a, week, 0.99 * full, full, rate) == pytest.approx(0.992)
    assert attainment_target(a, week, 0.98 * full, full, rate) == cap
    # Traffic fell to a tenth: the window's own count paces the spending, not the rate.
    assert attainment_target(a, week, full, full, rate / 10) == pytest.approx(0.982)
    # A young window (a tenth of the week's traffic so far) is paced by the forecast rate.
    assert attainment_target(a, week, full / 10, full / 10, rate) == pytest.approx(0.9901)


def test_the_engine_sizes_for_the_budget_target() -> None:
    # Wired through `core.step`: a spent budget provisions more than a healthy one, and
    # the decision reports the target and the budget.
    pl = planner([OD], replicas_max=100)
    week = pl.settings.slo_window_s
    assert week == 7 * 86400.0
    window = steady(40.0)

    def at(good_share: float | None) -> tuple[int, float, float | None]:
        total = 40.0 * week
        good = None if good_share is None else good_share * total
        obs = replace(window, slo_good=good, slo_total=None if good is None else total)
        d = pl.decide(obs, {}, 3600.0)
        return d.total_replicas, d.attainment_target, d.error_budget_left

    plain, healthy, burnt = at(None), at(1.0), at(0.95)
    assert plain[1] == 0.99 and plain[2] is None
    assert healthy[1] < 0.99 < burnt[1]
    assert healthy[2] == pytest.approx(1.0) and burnt[2] == pytest.approx(-4.0)
    assert healthy[0] <= plain[0] <= burnt[0] and healthy[0] < burnt[0]
    # A young window's bad start-up (57 % of 2,800 requests) spends a share of the week's
    # allowance at the forecast rate: the decision reports about 0.99 left, not -56.
    young = replace(window, slo_good=1200.0, slo_total=2800.0)
    d = pl.decide(young, {}, 3600.0)
    assert d.error_budget_left == pytest.approx(1 - 1600 / (0.01 * 40.0 * week), rel=0.05)
    assert d.burn_rate == pytest.approx(1600 / 2800 / 0.01)
