"""The engine's per-decision hot paths (numpy, or plain Python where arrays are tiny) against
independent references: the formulas written out directly (numpy over whole arrays, or a
loop per sample), and the properties each must hold. These were compiled C until issue #13;
the references are the formulas the C replayed, so the same decisions follow."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from core_helpers import OD, planner, steady
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtr
from test_properties import FAST, planners, rates

from costscaler.core import Planner
from costscaler.core.allocate import Problem, feasible, fits
from costscaler.core.capacity import replicas_needed
from costscaler.core.fill import cheapest_on_demand, fill, max_spot
from costscaler.core.forecast import LEVEL_SPANS_S, MIN_ERRORS, _best_level, forecast
from costscaler.core.step import learn, problem
from costscaler.core.stock import STALL_FACTOR, stalled
from costscaler.core.types import EngineState


def _problem(pl: Planner, rate: float) -> Problem:
    """The allocation problem a decision builds for a steady `rate` (req/s)."""
    obs = steady(rate)
    state = learn(pl, obs, EngineState())
    return problem(pl, state, forecast(obs.times, obs.request_rate, pl.horizon_s))


# --- bounds ---------------------------------------------------------------------------------


def reference_feasible(p, plans):
    """`allocate.feasible` as its docstring writes it, numpy over the whole batch."""
    total = plans.sum(axis=1)
    ok = ((plans >= 0) & (plans <= p.max_replicas)).all(axis=1)
    ok &= (total >= p.reachable_min) & (total <= p.total_max)
    if p.spot_limits or p.spot_relaxed:
        spot = plans @ p.spot_count
        share = np.floor(p.spot_max_fraction * total + 1e-9)
        if p.spot_relaxed:  # on-demand quota forces spot past its share (issue #14)
            share = np.maximum(share, total - p.on_demand_capacity)
        ok &= spot <= share
        ok &= total - spot >= np.minimum(p.on_demand_floor, total)
    return ok


bounds = st.tuples(
    st.lists(st.integers(-1, 12), min_size=4, max_size=4),  # pool maxima (-1: none fits)
    st.integers(0, 30),  # replicas.min
    st.integers(0, 40),  # replicas.max
    st.floats(0.0, 1.0),  # spot.maxFraction
    st.integers(0, 6),  # minOnDemandReplicas
)


@settings(FAST, max_examples=300)
@given(planners(), bounds, st.integers(0, 2**32 - 1))
def test_the_bounds_check_is_the_formula_and_fits_agrees_per_row(pl, bound, seed):
    """Pool maxima, replica bounds and spot limits drawn apart from the planner's, so that
    the strict, relaxed and absent spot limits, totals past every table entry, and negative
    maxima all occur; `fits` (plain Python, one plan) agrees with `feasible` row by row."""
    maxima, lo, hi, fraction, od_min = bound
    p = _problem(pl, 10.0)
    n = p.price.size
    p = replace(
        p,
        max_replicas=np.array(maxima[:n], dtype=np.int64),
        total_min=lo,
        total_max=hi,
        spot_max_fraction=fraction,
        min_on_demand=od_min,
    )
    # Counts from -1 to one past each pool's maximum: most plans are near the bounds.
    high = np.maximum(p.max_replicas, 0) + 2
    plans = np.random.default_rng(seed).integers(-1, high, size=(60, n))
    got = feasible(p, plans)
    assert got.tolist() == reference_feasible(p, plans).tolist()
    assert [fits(p, row) for row in plans] == got.tolist()


def test_no_plans_are_an_empty_answer():
    p = _problem(planner([OD]), 5.0)
    assert feasible(p, np.zeros((0, 1), dtype=np.int64)).tolist() == []


# --- demand ---------------------------------------------------------------------------------


@FAST
@given(planners(), rates, st.lists(st.floats(-10.0, 200.0) | st.just(math.nan), max_size=40))
def test_the_exceedance_and_the_bound_are_the_formulas(pl, rate, caps):
    """P(D > c) = sum_i w_i Phi((s_i - c) / h); the bound counts a sample at or above c as
    1/2, and a capacity that is not a number reads 1/2 per sample (it prunes nothing)."""
    d = _problem(pl, rate).risk.demand
    c = np.array(caps, dtype=np.float64)
    z = (d.samples - c[:, None]) / d.bandwidth
    want = ndtr(z) @ d.weights
    np.testing.assert_allclose(d.exceedance(c), want, rtol=1e-12, atol=1e-15)
    bound = np.where(z < 0, ndtr(z), 0.5) @ d.weights
    np.testing.assert_allclose(d.exceedance(c, bound=True), bound, rtol=1e-12, atol=1e-15)
    assert d.exceedance(np.zeros((2, 3))).shape == (2, 3)


def reference_quantile(d, q):
    """`DemandForecast.quantile`'s two-pass search over the exceedance, numpy throughout."""
    unit = np.linspace(0.0, 1.0, 33)
    top = float(d.samples[-1]) + 8.0 * d.bandwidth
    lo, hi = 0.0, top
    value = lo
    for first in (True, False):
        grid = top * unit if first else lo + (hi - lo) * unit
        ex = d.exceedance(grid)
        k = int(np.searchsorted(-ex, -(1.0 - q), side="right"))
        if k == 0 or k >= grid.size:
            return lo if k == 0 else hi
        lo, hi = float(grid[k - 1]), float(grid[k])
        share = (ex[k - 1] - (1.0 - q)) / max(float(ex[k - 1] - ex[k]), 1e-300)
        value = lo + (hi - lo) * min(max(share, 0.0), 1.0)
    return value


@FAST
@given(planners(), rates, st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4))
def test_the_quantile_is_the_numpy_search_and_inverts_the_exceedance(pl, rate, qs):
    """Several q on one forecast (the first pass is shared between them), each to the bit;
    and P(D > quantile(q)) is 1 - q to within the search's resolution."""
    d = _problem(pl, rate).risk.demand
    for q in [*qs, *(min(q + 1e-6, 1.0) for q in qs)]:  # the latter in the same bracket
        value = d.quantile(q)
        assert value == reference_quantile(d, q)
        if 0.0 < value < float(d.samples[-1]) + 8.0 * d.bandwidth:
            assert abs(float(d.exceedance(np.array([value]))[0]) - (1.0 - q)) < 1e-3


def reference_best_level(r, dt, trend, lag):
    """`forecast._best_level` span by span, as numpy (one span at a time)."""
    fit = min(lag, max(1, r.size - MIN_ERRORS))
    widen = math.sqrt(lag / fit)
    csum = np.concatenate(([0.0], np.cumsum(r)))
    idx = np.arange(1, r.size + 1)
    scored = []
    for span in LEVEL_SPANS_S:
        m = max(1, round(span / dt))
        lo = np.maximum(idx - m, 0)
        level = (csum[idx] - csum[lo]) / (idx - lo) + trend * (min(m, r.size) - 1) * dt / 2.0
        errors = r[fit:] - (level[:-fit] + trend * fit * dt) if r.size > fit else np.zeros(0)
        errors = errors * widen
        score = float(errors @ errors) / errors.size if errors.size >= MIN_ERRORS else math.inf
        scored.append((score, level, errors))
    _, level, errors = min(scored, key=lambda s: s[0])
    return level, errors


@settings(FAST, max_examples=200)
@given(
    st.lists(st.floats(0.0, 100.0), min_size=1, max_size=300),
    st.sampled_from([5.0, 15.0, 60.0]),
    st.floats(-0.05, 0.05),
    st.integers(1, 40),
)
def test_the_level_is_the_numpy_formulas_to_the_bit(rates_, dt, trend, lag):
    r = np.array(rates_)
    level, errors = _best_level(r, dt, trend, lag)
    want_level, want_errors = reference_best_level(r, dt, trend, lag)
    assert level.tobytes() == want_level.tobytes()
    assert errors.tobytes() == want_errors.tobytes()


# --- starts ---------------------------------------------------------------------------------


class _Filler:
    """The merit-order filler, replica by replica (the engine's before it was compiled)."""

    def __init__(self, p):
        self.p = p
        self.eff, self.spot, self.cap = p.as_lists
        self.x = [0] * len(self.eff)
        self.total = self.nspot = 0
        self.rps = 0.0
        self.limits = p.spot_limits and p.spot_max_fraction < 1.0

    def spot_room(self):
        if not self.limits:
            return 1 << 40
        f = self.p.spot_max_fraction
        return max(0, math.floor((f * self.total - self.nspot) / (1.0 - f) + 1e-9))

    def add(self, i, want):
        if want <= 0:
            return 0
        room = min(self.cap[i] - self.x[i], self.p.total_max - self.total)
        k = max(0, min(want, room, self.spot_room() if self.spot[i] else room))
        self.x[i] += k
        self.total += k
        self.nspot += k if self.spot[i] else 0
        self.rps += k * self.eff[i]
        return k

    def need(self, i, demand):
        gap = demand - self.rps
        return 0 if gap <= 1e-9 else max(1, replicas_needed(gap, self.eff[i]))


def reference_fill(p, demand_rps, order, use_spot):
    f, idx = _Filler(p), order.tolist()
    want = p.on_demand_floor if p.spot_limits else 0
    for i in idx:
        if not f.spot[i]:
            want -= f.add(i, want)
    for _ in range(2):
        for i in idx:
            if f.rps >= demand_rps - 1e-9:
                break
            if use_spot or not f.spot[i]:
                f.add(i, f.need(i, demand_rps))
    for i in idx:
        if f.total >= p.reachable_min:
            break
        if use_spot or not f.spot[i]:
            f.add(i, p.reachable_min - f.total)
    return f.x


def reference_cheapest_on_demand(p):
    f = _Filler(p)
    order = [i for i in p.merit.tolist() if not f.spot[i]]
    for i in order:
        f.add(i, f.need(i, p.floor_demand))
    cap = p.risk.capacity.tolist()
    for i in sorted(order, key=lambda i: -float(p.price[i])):
        while f.x[i] > 0 and f.total > p.reachable_min and f.rps - cap[i] >= p.floor_demand:
            f.x[i] -= 1
            f.total -= 1
            f.rps -= cap[i]
    for i in order:
        if f.total >= p.reachable_min:
            break
        f.add(i, p.reachable_min - f.total)
    return f.x


@settings(FAST, max_examples=300)
@given(planners(), rates, st.floats(0.0, 150.0), st.booleans())
def test_the_fill_and_the_on_demand_plan_are_the_reference_ones(pl, rate, demand, spot):
    prob = _problem(pl, rate)
    assert fill(prob, demand, prob.merit, use_spot=spot).tolist() == reference_fill(
        prob, demand, prob.merit, spot
    )
    assert cheapest_on_demand(prob).tolist() == reference_cheapest_on_demand(prob)


def _spot_plan(p, order, total):
    """The most-spot plan of `total` replicas (`fill.max_spot`'s docstring)."""
    x = [0] * p.price.size
    limits = p.spot_limits
    share = math.floor(p.spot_max_fraction * total + 1e-9) if limits else total
    floor = min(p.on_demand_floor, total) if limits else 0
    caps = p.max_replicas.tolist()
    spot = [i for i in order.tolist() if p.spot[i]]
    other = [i for i in order.tolist() if not p.spot[i]]
    for pools, count in ((spot, min(share, total - floor)), (other, total)):
        count -= sum(x)
        for i in pools:
            x[i] = min(caps[i], max(count, 0))
            count -= x[i]
    return x


@settings(FAST, max_examples=200)
@given(planners(), rates, st.floats(0.0, 150.0))
def test_the_max_spot_start_is_the_fewest_replicas_that_cover(pl, rate, demand):
    """By exhaustion over every total instead of bisection: the plan is the most-spot plan
    of the least total whose capacity covers the demand (or of replicas.max, if none)."""
    prob = _problem(pl, rate)
    eff = prob.surviving.tolist()

    def covers(x):
        return sum(k * e for k, e in zip(x, eff, strict=True)) >= demand - 1e-9

    totals = range(prob.reachable_min, prob.total_max + 1)
    least = next((t for t in totals if covers(_spot_plan(prob, prob.merit, t))), None)
    want = _spot_plan(prob, prob.merit, prob.total_max if least is None else least)
    assert max_spot(prob, demand, prob.merit).tolist() == want


# --- stalls ---------------------------------------------------------------------------------


def reference_stalled(times, ready, warming, cold_start_s):
    """`stock.stalled` as a scan, sample by sample: NaN counts are 0, a NaN time is skipped."""
    out = []
    for i in range(ready.shape[0]):
        last, stuck = -math.inf, False
        for k in range(times.size):
            w = 0.0 if math.isnan(warming[i, k]) else warming[i, k]
            r = 0.0 if math.isnan(ready[i, k]) else ready[i, k]
            before = 0.0 if k == 0 or math.isnan(ready[i, k - 1]) else ready[i, k - 1]
            if (w <= 0 or k == 0 or r > before) and times[k] > last:
                last = times[k]
            stuck |= w > 0 and times[k] - last > STALL_FACTOR * cold_start_s[i]
        out.append(stuck)
    return out


counts = st.sampled_from([0.0, 1.0, 2.0, 3.0, math.nan])


@settings(FAST, max_examples=300)
@given(st.data(), st.integers(1, 4), st.integers(1, 30))
def test_the_stall_scan_is_the_loop_nan_times_included(data, n, t):
    times = np.cumsum(data.draw(st.lists(st.floats(0.0, 60.0), min_size=t, max_size=t)))
    lost = np.array(data.draw(st.lists(st.booleans(), min_size=t, max_size=t)))
    times = np.where(lost & data.draw(st.booleans()), math.nan, times)
    grid = st.lists(st.lists(counts, min_size=t, max_size=t), min_size=n, max_size=n)
    ready, warming = np.array(data.draw(grid)), np.array(data.draw(grid))
    cold = np.array(data.draw(st.lists(st.floats(0.0, 120.0), min_size=n, max_size=n)))
    got = stalled(times, ready, warming, cold).tolist()
    assert got == reference_stalled(times, ready, warming, cold)
