"""The compiled kernels left (`core/_kernels.c`: the branch and bound's and the risk's) against
the numpy formulas they replace: the level loop keeps exactly the partial plans the bounds of
`core/exact.py` keep, to the bit, and gives up at the same points; a plan's spend, risk and
objective agree to rounding (numpy summed with BLAS, in an order of its own). The hot paths
that are numpy again are checked in test_formulas.py."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from core_helpers import OD, planner
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.special import ndtr
from test_exact import _problem
from test_properties import FAST, planners, rates

from costscaler.core import Planner, _kernels
from costscaler.core.allocate import HARD, SOFT, evaluate
from costscaler.core.exact import Tree
from costscaler.core.local import first_plan
from costscaler.core.step import start_plans

# Columns of a level row (the C enum's order).
PRICE, CAP, SPOT, TOP, CUR, START, TWIN, RATIO, RATIO_PAST, SPOT_CAP, OD_PRICE, OD_CAP, POOL = (
    range(13)
)


def _at(table: np.ndarray, step: float, capacity: np.ndarray) -> np.ndarray:
    cell = np.minimum(capacity / step, table.size - 1).astype(np.intp)
    return table[cell]


def reference(best, max_nodes, total_max, per_od, per_spot, levels, step, tables):
    """The level loop as numpy, formula for formula (the engine's before it was compiled)."""
    n = levels.shape[0]
    rows = np.zeros((1, 4))
    lower = np.zeros(1)
    links = []
    for level in range(n):
        lv = levels[level]
        price, top = lv[PRICE], int(lv[TOP])
        room = np.floor((best - rows[:, 0]) / price) if price > 0 else np.full(len(rows), top)
        if lv[TWIN] > 0:
            room = np.minimum(room, links[-1][1])
        width = int(min(max(float(room.max(initial=-1.0)), -1.0), top)) + 1
        parent, counts = np.nonzero(np.arange(width) <= room[:, None])
        if parent.size > 4 * max_nodes:
            return None
        step_row = np.array([price, lv[CAP], 1.0, 1.0 if lv[SPOT] > 0 else 0.0])
        new = rows[parent] + counts[:, None] * step_row
        new[:, 0] += np.maximum(counts - int(lv[CUR]), 0) * lv[START]
        c, od, spot = new[:, 1], new[:, 2] - new[:, 3], new[:, 3]
        still = _at(tables[level], step, c)
        if lv[RATIO_PAST] > lv[RATIO]:
            allowance = lv[SPOT_CAP] * np.maximum(od * per_od - spot, 0.0)
            within = np.maximum(still, _at(tables[2 * n], step, c + allowance))
            past = lv[RATIO] * allowance + _at(tables[n + level], step, c + allowance)
            still = np.minimum(within, past)
        owed = np.ceil(spot * per_spot - 1e-9) - od
        if lv[OD_PRICE] < math.inf:
            owed = np.maximum(owed, 0.0)
            companion = owed * lv[OD_PRICE] + _at(tables[level], step, c + owed * lv[OD_CAP])
        else:
            companion = np.where(owed > 0, math.inf, 0.0)
        low = new[:, 0] + np.maximum(still, companion)
        keep = np.flatnonzero((low < best - 1e-9) & (new[:, 2] <= total_max))
        if keep.size > max_nodes:
            return None
        rows, lower = new[keep], low[keep]
        links.append((parent[keep], counts[keep]))
    plans = np.zeros((len(rows), n), dtype=np.int64)
    at = np.arange(len(rows))
    for level in range(n - 1, -1, -1):
        parent, counts = links[level]
        plans[:, int(levels[level, POOL])] = counts[at]
        at = parent[at]
    return plans, lower


def _grow(best, max_nodes, total_max, per_od, per_spot, levels, step, tables):
    out = _kernels.grow(
        best,
        max_nodes,
        total_max,
        per_od,
        per_spot,
        levels,
        step,
        tables,
        tables.shape[1],
        levels.shape[0],
    )
    if out is None:
        return None
    plans = np.frombuffer(out[0], dtype=np.int64).reshape(-1, levels.shape[0])
    return plans, np.frombuffer(out[1], dtype=np.float64)


@settings(FAST, max_examples=300)
@given(
    planners(),
    rates,
    st.lists(st.integers(0, 8), min_size=4, max_size=4),
    st.floats(0.5, 1.5),
    st.sampled_from([1, 2, 8, 64, 1024]),
)
def test_the_compiled_loop_keeps_what_the_numpy_formulas_keep(pl, rate, cur, scale, max_nodes):
    """Same plans, same bounds bit for bit, and None exactly where numpy gives up: small node
    budgets make the give-up points part of the property. The bar is around the best start's
    objective, where the engine searches."""
    prob = _problem(pl, rate, cur[: len(pl.names)])
    first = first_plan(prob, start_plans(pl, prob, rate, prob.current))
    assume(math.isfinite(first.objective))
    t = Tree(prob)
    args = (
        first.objective * scale,
        max_nodes,
        prob.total_max,
        t.per_od,
        t.per_spot,
        t.levels,
        t.bound.step,
        t.tables,
    )
    want, got = reference(*args), _grow(*args)
    assert (want is None) == (got is None)
    if want is not None and got is not None:
        assert np.array_equal(want[0], got[0])
        assert want[1].tobytes() == got[1].tobytes()


def _one_level(cap: float, table: list[float], top: int = 3) -> np.ndarray:
    """One on-demand pool at 1 $/h per replica, nothing left after it."""
    row = [1.0, cap, 0.0, float(top), 0.0, 0.0, 0.0, math.inf, math.inf, 0.0, math.inf, 0.0, 0.0]
    return np.array([row])


def test_a_capacity_far_past_the_bound_grid_reads_its_last_cell():
    """Found by hypothesis in CI: with spot.maxFraction near 0 a partial plan owes up to 1e12
    on-demand replicas per spot one, its capacity over the grid step overflowed the integer
    cast, and the bound read the first cell (the highest risk), pruning plans it must not."""
    table = [1e9, 5.0, 0.0]
    tables = np.array([table] * 3)
    for cap in (1e13, 1e30):
        got = _grow(10.0, 16, 10, math.inf, 0.0, _one_level(cap, table), 1.0, tables)
        assert got is not None
        # count 0 reads the first cell (1e9: pruned); 1..3 read the last one (0: kept)
        assert got[0][:, 0].tolist() == [1, 2, 3]
        assert got[1].tolist() == [1.0, 2.0, 3.0]
    # 0 x inf is NaN: a capacity that is not a number reads the weakest bound, the last
    # cell, so it prunes nothing (numpy's cast made it an index error or a wrong cell)
    got = _grow(10.0, 16, 10, math.inf, 0.0, _one_level(math.inf, table), 1.0, tables)
    assert got is not None and got[0][:, 0].tolist() == [0, 1, 2, 3]


def test_it_gives_up_on_too_many_children_or_too_many_plans_kept():
    tables = np.zeros((3, 3))
    wide = _one_level(1.0, [0.0] * 3, top=8)  # 9 children, all kept
    assert _grow(100.0, 2, 10, math.inf, 0.0, wide, 1.0, tables) is None  # 9 > 4 x 2
    assert _grow(100.0, 3, 10, math.inf, 0.0, wide, 1.0, tables) is None  # 9 kept > 3
    got = _grow(100.0, 9, 10, math.inf, 0.0, wide, 1.0, tables)
    assert got is not None and got[0][:, 0].tolist() == list(range(9))


def test_buffers_of_the_wrong_shape_or_type_are_refused_by_name():
    prob = _problem(planner([OD]), 5.0)
    t = Tree(prob)
    cells = t.tables.shape[1]
    with pytest.raises(ValueError, match="levels: expected 13 contiguous float64"):
        _kernels.grow(1.0, 8, 4, 0.0, 0.0, t.levels[:, :5].copy(), 1.0, t.tables, cells, 1)
    with pytest.raises(ValueError, match="tables: expected"):
        _kernels.grow(1.0, 8, 4, 0.0, 0.0, t.levels, 1.0, t.tables.astype(np.float32), cells, 1)
    with pytest.raises(ValueError, match="must be positive"):
        _kernels.grow(1.0, 0, 4, 0.0, 0.0, t.levels, 1.0, t.tables, cells, 1)


def reference_scenarios(r):
    """`RiskModel._scenarios` as numpy (the engine's before it was plain Python)."""
    idx = np.flatnonzero(r.burst_prob > 0)
    q = r.burst_prob[idx]
    none = float(np.prod(1.0 - q))
    single = none * q / (1.0 - q)
    rest = max(0.0, 1.0 - none - float(single.sum()))
    weights = np.concatenate(([none], single, [rest]))
    lose = np.zeros((r.capacity.size, idx.size + 2))
    lose[idx, np.arange(1, idx.size + 1)] = 1.0
    lose[idx, -1] = 1.0
    f = r.indep_loss
    shift = r.capacity[:, None] * (lose + (f - 1.0)[:, None])
    variance = r.capacity * r.capacity * (f * (1.0 - f))
    return weights, shift, variance, r.demand.weights


@settings(FAST, max_examples=200)
@given(
    st.lists(
        st.tuples(st.floats(0.5, 10.0), st.floats(0.0, 1.0), st.floats(0.0, 0.99)),
        min_size=1,
        max_size=20,
    )
)
def test_the_scenarios_are_the_numpy_formulas_to_the_bit(pools):
    prob = _problem(planner([OD]), 5.0)
    cap, loss, burst = (np.array(c) for c in zip(*pools, strict=True))
    r = replace(prob.risk, capacity=cap, indep_loss=loss, burst_prob=burst)
    weights, shift, variance, _ = reference_scenarios(r)
    got = r.columns(*(np.zeros(cap.size),) * 4)
    assert r._scenarios[0].tobytes() == weights.tobytes()
    assert got[:, 5:].tobytes() == shift.tobytes()
    assert got[:, 1].tobytes() == variance.tobytes()


def reference_evaluate(p, plans):
    """`allocate.evaluate` as numpy (the engine's before it was compiled)."""
    r = p.risk
    weights, shift, variance, kernel = reference_scenarios(r)
    sd = np.sqrt(r.demand.bandwidth**2 + plans @ variance)[:, None, None]
    d, left = r.demand.samples, -(plans @ shift)[:, :, None]
    term = ndtr((d - left) / sd)
    # A burst scenario counts the late share of its outage, 1 - grace C' / (D - C'), plus
    # the drain of its backlog, (D - C' - grace C) / (C - D), never less than the no-burst
    # term (`core.risk`).
    over, full = d - left, left[:, :1, :]
    spare = full - d
    with np.errstate(divide="ignore", invalid="ignore"):
        late = np.where(left <= 0, 1.0, np.maximum(0.0, 1.0 - r.grace * left / over))
        drain = np.where(spare > 0, np.maximum(0.0, (over - r.grace * full) / spare), 1.0)
    miss = np.where(over <= 0, 0.0, late + drain)
    burst = np.maximum(term[:, :1, :], miss)
    term[:, 1:, :] = np.where(d > 0, burst[:, 1:, :], term[:, 1:, :])
    risk = np.minimum(np.maximum((term @ kernel) @ weights, 0.0), 1.0)
    spend = plans @ p.price
    missing = np.maximum(p.floor_demand - plans @ p.surviving, 0.0) / max(p.floor_demand, 1e-9)
    over_floor = np.where(risk > p.risk_floor, risk - p.risk_floor + missing, 0.0)
    floor_w, budget_w = (HARD, SOFT) if p.prefer_slo else (SOFT, HARD)
    money = spend
    if p.current is not None and p.start_cost is not None:
        money = money + np.maximum(plans - p.current, 0) @ p.start_cost
    obj = money + p.slo_miss_cost * risk + floor_w * over_floor
    if math.isfinite(p.budget):
        obj = obj + budget_w * np.maximum(spend - p.budget, 0.0)
    return spend, risk, obj


@FAST
@given(
    planners(),
    rates,
    st.lists(st.integers(0, 8), min_size=4, max_size=4),
    st.booleans(),
    st.none() | st.floats(0.0, 50.0),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_the_compiled_evaluate_agrees_with_the_numpy_formulas(
    pl, rate, cur, warm, budget, prefer_slo, seed
):
    prob = _problem(pl, rate, cur[: len(pl.names)] if warm else None)
    prob = replace(prob, budget=math.inf if budget is None else budget, prefer_slo=prefer_slo)
    plans = np.random.default_rng(seed).integers(0, 12, size=(17, len(pl.names)))
    got, want = evaluate(prob, plans), reference_evaluate(prob, plans)
    # The risk agrees to 1e-12 and enters the objective times the floor's weight (up to
    # HARD): the objective agrees to that weight times 1e-12 (a drawn plan 1.8e-12 apart).
    weight = HARD if prefer_slo else SOFT
    for g, w, atol in zip(got, want, (1e-12, 1e-12, 1e-12 * weight), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=atol)
    np.testing.assert_allclose(prob.risk.of(plans), want[1], rtol=1e-12, atol=1e-12)


def test_no_plans_evaluate_to_empty_arrays():
    prob = _problem(planner([OD]), 5.0)
    spend, risk, obj = evaluate(prob, np.zeros((0, 1), dtype=np.int64))
    assert spend.size == risk.size == obj.size == 0


def test_the_evaluate_kernel_refuses_plans_that_are_not_int64():
    prob = _problem(planner([OD]), 5.0)
    d, weights = prob.risk.demand, prob.risk._scenarios[0]
    plans = np.ones((2, 1), dtype=np.int32)
    args = (d.samples, d.weights, weights, 2, 1, weights.size, d.weights.size, d.bandwidth)
    with pytest.raises(ValueError, match="plans: expected 2 contiguous int64"):
        _kernels.evaluate(plans, prob.columns, *args, 0.0, 1.0, 0.0, 0.0, math.inf, 0.0, False)


def reference_tables(grid, cost, rho):
    """`RiskCost.tables` as numpy (the engine's before it was compiled)."""
    upper = cost[1:]
    r = np.asarray(rho, dtype=np.float64)[:, None]
    finite = np.isfinite(r)
    r = np.where(finite, r, 0.0)
    later = grid[:-1] * r + upper
    after = np.minimum.accumulate(later[:, ::-1], axis=1)[:, ::-1][:, 1:]
    after = np.concatenate((after, np.full((r.shape[0], 1), math.inf)), axis=1)
    out = np.where(finite, np.minimum(upper, after - grid[1:] * r), upper)
    return np.concatenate((out, np.zeros((r.shape[0], 1))), axis=1)


@FAST
@given(planners(), rates)
def test_the_compiled_bound_tables_match_the_numpy_formulas_to_the_bit(pl, rate):
    t = Tree(_problem(pl, rate))
    rho = [*t.levels[:, RATIO], *t.levels[:, RATIO_PAST], math.inf, 0.0, 1e-3]
    got = t.bound.tables(rho)
    assert got.tobytes() == reference_tables(t.bound.grid, t.bound.cost, rho).tobytes()


def _after(values, op, empty):
    out = [empty] * len(values)
    acc = empty
    for i in range(len(values) - 1, 0, -1):
        acc = values[i] if i == len(values) - 1 else op(acc, values[i])
        out[i - 1] = acc
    return out


def reference_levels(p, cap, cur, start):
    """`Tree`'s level rows in Python (the engine's before `_kernels.setup`)."""
    ratio_all = p.price / np.maximum(cap, 1e-12)
    r = p.risk
    sig = list(
        zip(
            *(ratio_all.tolist(), p.price.tolist(), cap.tolist(), p.spot.tolist()),
            *(r.indep_loss.tolist(), r.burst_prob.tolist(), p.max_replicas.tolist()),
            *(cur.tolist(), start.tolist()),
            strict=True,
        )
    )
    order = sorted(range(len(sig)), key=lambda i: sig[i])
    twin = [k > 0 and sig[order[k]] == sig[order[k - 1]] for k in range(len(order))]
    f = p.spot_max_fraction
    limited = p.spot_limits and f < 1.0
    per_spot = min((1.0 - f) / f, 1e12) if limited and f > 0.0 else 0.0
    per_od = f / (1.0 - f) if limited else math.inf
    spot = [bool(p.spot[i]) for i in order]
    price = [float(p.price[i]) for i in order]
    c = [float(cap[i]) for i in order]
    ratio = [pr / max(ci, 1e-12) for pr, ci in zip(price, c, strict=True)]
    inf = math.inf
    best = _after(ratio, min, inf)
    past = _after([inf if s else x for s, x in zip(spot, ratio, strict=True)], min, inf)
    od_price = _after([inf if s else x for s, x in zip(spot, price, strict=True)], min, inf)
    od_cap = _after([0.0 if s else x for s, x in zip(spot, c, strict=True)], max, 0.0)
    spot_cap = _after([x if s else 0.0 for s, x in zip(spot, c, strict=True)], max, 0.0)
    if limited and f > 0.0 and any(spot) and not all(spot):
        n = len(order)
        pair, running = [inf] * n, inf
        for m in range(n - 1, -1, -1):
            for other in range(m, n):
                a, b = (m, other) if spot[m] else (other, m)
                if spot[a] and not spot[b]:
                    v = (price[a] + per_spot * price[b]) / (c[a] + per_spot * c[b])
                    running = min(running, v)
            pair[m] = running
        past = [min(x, nxt) for x, nxt in zip(past, [*pair[1:], inf], strict=True)]
    has_spot = _after([1.0 if s else 0.0 for s in spot], max, 0.0)
    ratio_past = [
        pa if hs > 0 and limited else b for pa, hs, b in zip(past, has_spot, best, strict=True)
    ]
    rows = [
        [
            *(price[lv], c[lv], 1.0 if spot[lv] else 0.0),
            float(min(p.max_replicas[i], p.total_max)),
            *(float(cur[i]), float(start[i]), 1.0 if twin[lv] else 0.0),
            *(best[lv], ratio_past[lv], spot_cap[lv], od_price[lv], od_cap[lv], float(i)),
        ]
        for lv, i in enumerate(order)
    ]
    return np.array(rows), per_od, per_spot


@settings(FAST, max_examples=200)
@given(planners(), rates, st.lists(st.integers(0, 8), min_size=4, max_size=4), st.booleans())
def test_the_compiled_levels_are_the_python_ones_to_the_bit(pl, rate, cur, twins):
    if twins:  # identical pools, so that the twin flags are exercised
        pl = Planner(
            [replace(pl.pools[0], name=f"p{i}") for i in range(len(pl.pools))], pl.settings
        )
    prob = _problem(pl, rate, cur[: len(pl.names)])
    t = Tree(prob)
    rows, per_od, per_spot = reference_levels(prob, t.cap, prob.current, prob.start_cost)
    assert t.levels.tobytes() == rows.tobytes()
    assert (t.per_od, t.per_spot) == (per_od, per_spot)
