"""The exact optimum of an allocation problem: a vectorised branch and bound over pools.

Pools are assigned one at a time, cheapest $/h per req/s first. A partial plan (the counts
of the pools assigned, the rest 0) is a row; a level expands every row by every count of
the next pool at once (a matrix of rows), drops the rows no completion can make better than
the best complete plan found (the incumbent, objective J*), and goes on with the survivors,
best bound first, a chunk of rows at a time (depth first between chunks, so a good plan is
found early and memory stays bounded). Complete plans left are evaluated exactly, best
bound first. Nothing is dropped that could beat J*, so the plan returned is a minimiser of
J (`core.allocate`) over every plan within the hard bounds.

The bound. Write a plan as a partial plan p (pools assigned) plus a completion q (the rest).
Let C(x) = sum_i x_i c_i (1 - indep_loss_i) be its capacity with no burst. Then

    J(p + q) >= money(p) + money(q) + R(C(p) + C(q)),  R(C) = risk_terms(Vlow(C), O(C)),

because money (whole nodes, warm-up) is a sum over pools, the budget term is >= 0, and the
risk terms are non-decreasing in V and in the overflow, which are at least Vlow and O at the
plan's capacity (`core.risk`: every scenario has at most C(x), every pool's table is
non-decreasing in 1 / C and the pool shares sum to 1). R is non-increasing in C. Pool i's
money at x_i replicas is at least u_i x_i, u_i its price plus, when it runs none now, the
cheaper of its start tiers (a whole node costs at least its replicas' share; every replica
is new and pays f_i when the pool has free slots, s_i >= f_i when not: `allocate`'s warm is
f_i min(n, k_i) + s_i (n - k_i)+ >= f_i n; with replicas running, warm-up is >= 0). So the
rest's money is at least rho C(q) (rho the least u_i per req/s among the pools left), and
at least pmin (replicas.min - count(p))+ (pmin the least u_i left: the total must reach its
minimum). So

    J(p + q) >= money(p) + max( min_{C' >= C(p)} [rho (C' - C(p)) + R(C')],
                                pmin (min - count(p))+ ).

The inner minimum is bounded on a grid G_0 < ... < G_K of capacity (0 to the most the pools
can hold): for C(p) in cell j (G_j <= C(p) < G_{j+1}) and C' in cell k >= j, R(C') >=
R(G_{k+1}) (non-increasing) and rho (C' - C(p)) >= rho (G_k - G_{j+1}) for k > j, >= 0 for
k = j, so the inner minimum is at least

    L_j = min( R(G_{j+1}),  min_{k > j} (rho G_k + R(G_{k+1})) - rho G_{j+1} ),

together with rho (G_K - G_{j+1}) for completions past the grid's end G_K, whose risk
terms are only known to be >= 0: one suffix minimum per level (`_tables`). A row whose
bound is >= J* cannot beat J* and is dropped. Rows also go when their count passes
replicas.max or cannot reach replicas.min with what the pools left hold. The leaves' other
bounds (spot share, on-demand floor) are checked exactly (`allocate.feasible`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from costscaler.core.allocate import BoolArray, Plan, Problem, evaluate, feasible, risk_terms
from costscaler.core.risk import IntArray
from costscaler.core.types import FloatArray

GRID = 1025
REACH = 4.0  # the grid ends at this many times the largest demand sample
CHUNK = 1024  # rows of a level expanded at a time
DIVE_CHUNK = 32  # ... in the dive that finds the first incumbent
DIVE_BUDGET = 5_000  # candidate rows of that dive
LEAF_CHUNK = 512  # complete plans evaluated at a time
CLIMB_STEPS = 32  # steps of descent from the best start (`climb`)
# Candidate rows one decision may generate. Past it the search stops and returns the best
# plan found, marked not proven (`Plan.proven`). The bound is loose on wide spaces (the
# best pool's latency curve, the cheapest capacity, bursts of the pools left unseen), so
# proving there costs far more than finding: on tests/bench/bench_decide.py's 6 pools the
# proof takes 90,000-150,000 rows even from the optimum as incumbent, and no decision of
# the benchmark is proven within 20,000. The descent from the best start (`climb`) finds
# what the budget cannot: on 100 of the benchmark's 6-pool problems the plans it returns cost
# $20.6/h on average against $32.0/h for the dive's before it, and the 10 checked with a
# 2,000,000-row proof are the optimum. A decision must fit a thousand deployments in a 15 s
# tick.
MAX_CHILDREN = 20_000


@dataclass(frozen=True)
class _Level:
    """One pool's level: its index, the money and capacity of each count, what the pools
    after it can add, and the bound tables for them (one entry per grid cell, then the
    bound past the grid's end: `_Search._look`)."""

    pool: int
    spot: bool
    money: FloatArray
    capacity: FloatArray
    rest_count: int
    rest_on_demand: int
    pmin: float
    pmin_on_demand: float
    table: FloatArray
    linear: FloatArray
    falling: FloatArray  # -table over the grid's cells, increasing: `_descend` bisects it


def _money_of_counts(p: Problem, i: int, top: int) -> FloatArray:
    """money of 0..top replicas of pool i alone: whole nodes plus warm-up ($/h)."""
    k = np.arange(top + 1)
    size = int(p.node_size[i])
    out = -(-k // size) * size * float(p.price[i])
    if p.current is not None and p.start_cost is not None:
        started = np.maximum(k - int(p.current[i]), 0)
        out = out + started * float(p.start_cost[i])
        if p.fast_slots is not None:  # the first free slots pay the model load only
            free, saved = p.fast_slots
            out = out - np.minimum(started, int(free[i])) * float(saved[i])
    return np.asarray(out, dtype=np.float64)


def _tables(grid: FloatArray, bound: FloatArray, rho: float) -> FloatArray:
    """L_j per cell j of `grid` (see the module) for ratio `rho` ($/h per req/s), made
    non-increasing by a running minimum (lower, so still a bound; the search reads ranges
    of counts off it)."""
    return np.asarray(_tables_for(grid, bound, [rho])[0], dtype=np.float64)


def _tables_for(grid: FloatArray, bound: FloatArray, rhos: list[float]) -> FloatArray:
    """`_tables` for every ratio of `rhos` at once, one row each: a search needs one per
    distinct ratio of the pools left, and the rows share every numpy call."""
    nxt = bound[1:]
    out = np.empty((len(rhos), nxt.size))
    finite = [k for k, rho in enumerate(rhos) if math.isfinite(rho)]
    for k in range(len(rhos)):
        if k not in finite:
            out[k] = np.minimum.accumulate(nxt)
    if not finite:
        return out
    rho = np.array([rhos[k] for k in finite])[:, None]
    a = rho * grid[:-1] + nxt  # rho G_k + R(G_{k+1}), k = 0 .. K-1
    suffix = np.minimum.accumulate(a[:, ::-1], axis=1)[:, ::-1]  # min over k >= j
    after = np.empty_like(suffix)  # min over k > j
    after[:, :-1] = suffix[:, 1:]
    after[:, -1] = math.inf
    # Completions past the grid's end: their risk is only known to be >= 0 (`_Search.beyond`)
    # and their money >= rho (G_K - G_{j+1}). Without this term a plan that needs more
    # headroom than the grid holds (slow latency curves) was pruned by a bound above it.
    past = rho * (grid[-1] - grid[1:])
    best = np.minimum(np.minimum(nxt, after - rho * grid[1:]), past)
    out[finite] = np.minimum.accumulate(best, axis=1)
    return out


def _padded(table: FloatArray, beyond: float) -> FloatArray:
    """`table` with `beyond` appended, the bound past the grid's end: `_Search._look` then
    reads every capacity with one clipped index."""
    return np.asarray(np.append(table, beyond), dtype=np.float64)


def _blended(unit: FloatArray, eff: FloatArray, spot: BoolArray, f: float) -> float:
    """The least $/h per req/s of any mix with at most a share f of spot replicas: the LP
    min sum u_i x_i / sum e_i x_i subject to spot(x) <= f sum x has a basic optimum with at
    most two pools, one on-demand alone or a spot and an on-demand pool at share f."""
    od = ~spot
    best = float((unit[od] / np.maximum(eff[od], 1e-12)).min())
    us, es = unit[spot][:, None], eff[spot][:, None]
    uo, eo = unit[od][None, :], eff[od][None, :]
    if us.size and f > 0:
        pair = (f * us + (1.0 - f) * uo) / np.maximum(f * es + (1.0 - f) * eo, 1e-12)
        best = min(best, float(pair.min()))
    return best


class _Search:
    """One branch and bound over `p` from an incumbent (see the module)."""

    def __init__(self, p: Problem, incumbent: Plan | None, budget: int = MAX_CHILDREN) -> None:
        self.p = p
        self.best = incumbent
        self.bar = math.inf if incumbent is None else incumbent.objective
        self.left = budget
        self.stopped = False
        # When the budget stops a run: the least bound of the rows it left unexplored.
        self.open = math.inf
        self.chunk = CHUNK  # rows of a level expanded at a time (`DIVE_CHUNK` in a dive)
        eff = p.risk.bound_effective  # `effective` but with request sizes (`core.sizes`)
        tops = np.minimum(p.max_replicas, p.total_max).astype(np.int64)
        # $/h a replica of each pool adds at least: its price, plus its warm-up when the pool
        # runs none now (every replica added is then new), the cheaper tier's when the pool
        # has free slots (the first replicas pay that, the rest more: `allocate` warm).
        unit = p.price.copy()
        if p.current is not None and p.start_cost is not None:
            start = p.start_cost
            if p.fast_slots is not None:
                start = start - np.where(p.fast_slots[0] > 0, p.fast_slots[1], 0.0)
            unit = unit + np.where(p.current <= 0, start, 0.0)
        ratio = unit / np.maximum(eff, 1e-12)
        spot = p.spot.tolist()
        # On-demand pools first: the spot share then prunes spot rows as they are made.
        order = sorted(range(ratio.size), key=lambda i: (spot[i], float(ratio[i])))
        self.share = p.spot_limits
        demand = p.risk.samples[0]
        top = float(tops @ eff)
        if demand.size:
            top = min(top, REACH * float(demand.max()))
        self.grid = np.linspace(0.0, max(top, 1e-9), GRID)
        self.step = float(self.grid[1])
        low = p.risk.low(self.grid)
        bound = risk_terms(p, low, p.risk.overflow_at(self.grid))
        # The miss cost alone, linear in V: split across the burst scenarios (the module).
        linear = p.slo_miss_cost / p.divisor * low
        weights, scenario_cap = p.risk.scenarios[0], p.risk.bound_scenarios
        self.weights = weights
        self.lost = eff[:, None] - scenario_cap  # capacity each pool's replica loses per s
        # Past the grid the risk terms are only known to be >= 0.
        self.beyond = 0.0
        # Under the spot share, every plan's money is at least rho_b C (the LP of the cheapest
        # capacity with spot replicas <= f of all: at most one spot and one on-demand pool).
        self.blend: FloatArray | None = None
        if self.share and p.spot_max_fraction < 1.0:
            rho_b = _blended(unit, eff, p.spot, p.spot_max_fraction)
            blend = rho_b * self.grid[:-1] + _tables(self.grid, bound, rho_b)
            self.blend = _padded(blend, self.beyond)
        self.bound = bound
        self.rho_all = float(ratio.min())
        self.unit_min = float(unit.min())
        on_demand = unit[~p.spot]
        self.unit_min_on_demand = float(on_demand.min()) if on_demand.size else math.inf
        self.levels: list[_Level] = []
        # The tables depend on the level only through rho, the least ratio of the pools left,
        # which many levels share (on-demand ones first: rho is the cheapest spot pool's);
        # they are made together, with the root's (every pool left: `root`).
        rhos = [
            float(ratio[order[pos + 1 :]].min()) if pos + 1 < len(order) else math.inf
            for pos in range(len(order))
        ]
        distinct = sorted(set(rhos), key=rhos.index)
        made = _tables_for(self.grid, bound, [*distinct, self.rho_all])
        self.root_table = _padded(made[-1], self.beyond)
        lines = _tables_for(self.grid, linear, distinct)
        tables = {
            rho: (_padded(made[k], self.beyond), _padded(lines[k], self.beyond), -made[k])
            for k, rho in enumerate(distinct)
        }
        for pos, i in enumerate(order):
            rest = order[pos + 1 :]
            od = [j for j in rest if not spot[j]]
            rho = rhos[pos]
            self.levels.append(
                _Level(
                    pool=i,
                    spot=spot[i],
                    money=_money_of_counts(p, i, int(tops[i])),
                    capacity=np.arange(int(tops[i]) + 1, dtype=np.float64) * float(eff[i]),
                    rest_count=int(tops[rest].sum()) if rest else 0,
                    rest_on_demand=int(tops[od].sum()) if od else 0,
                    pmin=float(unit[rest].min()) if rest else math.inf,
                    pmin_on_demand=float(unit[od].min()) if od else math.inf,
                    table=tables[rho][0],
                    linear=tables[rho][1],
                    falling=tables[rho][2],
                )
            )

    def root(self) -> float:
        """A lower bound on the objective of every plan (the empty plan's bound)."""
        lv = self.levels[0]
        # Level 0's tables bound what the pools after the first add; before any pool is
        # assigned the first is left too, and it is the cheapest of its kind.
        every = replace(
            lv,
            table=self.root_table,
            pmin=self.unit_min,
            pmin_on_demand=self.unit_min_on_demand,
        )
        zero = np.zeros(1, dtype=np.int64)
        return float(self._lower(every, np.zeros(1), np.zeros(1), zero, zero)[0])

    def run(self, ceiling: float = math.inf) -> Plan | None:
        """The best plan with objective under min(ceiling, the incumbent's): the optimum when
        one is under it (None when none is)."""
        held = math.inf if self.best is None else self.best.objective
        self.bar = min(held, ceiling)
        self.open = math.inf
        n = self.p.price.size
        zero = np.zeros(1, dtype=np.int64)
        rows = np.zeros((1, n), dtype=np.int64)
        if not self._descend(0, rows, np.zeros(1), np.zeros(1), zero, zero):
            self.open = self.root()  # stopped before the root's rows were expanded
        best = self.best
        return best if best is not None and best.objective < ceiling else None

    def floor(self) -> float:
        """A lower bound on the objective of every plan under the last run's bar: the bar
        itself when the run covered its tree, else the least bound of the rows the budget
        left unexplored (every row dropped had a bound at or above the bar of its time,
        which only falls)."""
        return min(self.open, self.bar) if self.stopped else self.bar

    def _look(self, table: FloatArray, cap: FloatArray) -> FloatArray:
        """The bound of a padded `table` (`_padded`) at each capacity: its cell's, or past
        the grid's end the last entry."""
        return np.asarray(table.take(self._cells(cap)), dtype=np.float64)

    def _cells(self, cap: FloatArray) -> IntArray:
        """Each capacity's index into a padded table: its grid cell, or past the grid's end
        the last entry (one index serves every table read at those capacities)."""
        cell = (cap / self.step).astype(np.int64)
        return np.minimum(cell, GRID - 1, out=cell)

    def _lower(
        self,
        lv: _Level,
        money: FloatArray,
        cap: FloatArray,
        count: IntArray,
        spot: IntArray,
        lost: FloatArray | None = None,
        risk: FloatArray | None = None,
    ) -> FloatArray:
        """Lower bounds on the objective of every completion of each row (see the module);
        `lost`: per row, the capacity each burst scenario takes from its assigned pools;
        `risk`: the capacity table's bound of each row when the caller has it."""
        p = self.p
        if risk is None:
            risk = self._look(lv.table, cap)
        if lost is not None and self.weights.size > 1:
            left = cap[:, None] - lost  # each scenario's capacity, in place from here
            burst = lv.linear.take(self._cells(np.maximum(left, 0.0, out=left))) @ self.weights
            risk = np.maximum(risk, burst)
        need = np.maximum(p.reachable_min - count, 0)
        if self.share:
            # On-demand replicas still owed: the spot share's (spot (1 - f) / f of them) and
            # the on-demand floor's; each costs at least the cheapest on-demand replica left.
            f = p.spot_max_fraction
            owed = np.full(count.shape, min(p.on_demand_floor, p.reachable_min), dtype=np.float64)
            if f > 1e-12:  # (with f ~ 0 no row holding spot is left: `_descend`)
                owed = np.maximum(owed, np.ceil(spot * ((1.0 - f) / f) - 1e-9))
            owed = np.maximum(owed - (count - spot), 0.0)
            extra = owed * lv.pmin_on_demand if math.isfinite(lv.pmin_on_demand) else 0.0
            extra = np.where(owed > 0, extra, 0.0) + np.maximum(need - owed, 0) * (
                lv.pmin if math.isfinite(lv.pmin) else 0.0
            )
            risk = np.maximum(risk, extra)
        elif math.isfinite(lv.pmin):
            risk = np.maximum(risk, need * lv.pmin)
        return np.asarray(money + risk, dtype=np.float64)

    def _descend(
        self,
        level: int,
        rows: IntArray,
        money: FloatArray,
        cap: FloatArray,
        count: IntArray,
        spot: IntArray,
    ) -> bool:
        """Search the completions of `rows` at `level` (False: the budget ran out before
        they were expanded; the rows left unexplored otherwise add their bound to `open`)."""
        p, lv = self.p, self.levels[level]
        # The counts of this pool worth trying for each row form a range: money only grows
        # with the count (k <= hi) and the capacity bound only falls (k >= lo, `_Level.table`
        # non-increasing); the whole bound is then checked on the range alone.
        room = self.bar - money
        hi = np.searchsorted(lv.money, room, side="left") - 1
        hi = np.minimum(hi, p.total_max - count)
        first = np.searchsorted(lv.falling, -room, side="right")  # first cell under room
        reach = np.where(first < GRID - 1, self.grid[np.minimum(first, GRID - 1)], self.grid[-1])
        reach = np.where(room > self.beyond, reach, np.inf)
        step = max(lv.capacity[1] if lv.capacity.size > 1 else 1.0, 1e-12)
        lo = np.ceil((reach - cap) / step) - 1.0  # one less: rounding never drops a count
        lo = np.maximum(np.maximum(lo, 0.0), p.reachable_min - count - lv.rest_count)
        lo = np.where(np.isfinite(lo), lo, hi + 1).astype(np.int64)
        width = np.maximum(hi - lo + 1, 0)
        total = int(width.sum())
        self.left -= total
        if self.left < 0:
            self.stopped = True
            return False
        # Gathers by `take` and filters by index, never by fancy or boolean indexing: on
        # numpy 2 those are 3-20x slower on the tens of thousands of rows a search makes.
        parent = np.repeat(np.arange(rows.shape[0]), width)
        k = np.arange(total) - np.repeat(np.cumsum(width) - width - lo, width)
        m = money.take(parent) + lv.money.take(k)
        c = cap.take(parent) + lv.capacity.take(k)
        t = count.take(parent) + k
        sp = spot.take(parent) + k if lv.spot else spot.take(parent)
        cell = self._cells(c)
        risk = lv.table.take(cell)
        ok = m + risk < self.bar
        if self.share:  # the spot share must still be reachable with the on-demand left
            f = p.spot_max_fraction
            ok &= sp * (1.0 - f) <= f * (t - sp + lv.rest_on_demand) + 1e-9
        if self.blend is not None:
            ok &= self.blend.take(cell) < self.bar
        kept = np.flatnonzero(ok)
        parent, k, t, sp = parent.take(kept), k.take(kept), t.take(kept), sp.take(kept)
        m, c, risk = m.take(kept), c.take(kept), risk.take(kept)
        lost = None
        if self.weights.size > 1:  # the burst scenarios' capacity lost (`_lower`)
            lost = (rows @ self.lost).take(parent, axis=0) + np.outer(k, self.lost[lv.pool])
        lower = self._lower(lv, m, c, t, sp, lost, risk)
        keep = np.flatnonzero(lower < self.bar)
        order = keep.take(np.argsort(lower.take(keep), kind="stable"))
        last = level == len(self.levels) - 1
        size = LEAF_CHUNK if last else self.chunk
        for head in range(0, order.size, size):
            chunk = order[head : head + size]
            if self.stopped or not lower[chunk[0]] < self.bar:
                break
            child = rows.take(parent.take(chunk), axis=0)
            child[:, lv.pool] = k.take(chunk)
            if last:
                self._leaves(child)
            elif not self._descend(
                level + 1, child, m.take(chunk), c.take(chunk), t.take(chunk), sp.take(chunk)
            ):
                self.open = min(self.open, float(lower[chunk[0]]))  # the chunk was not expanded
            if self.stopped:  # the chunks after this one are left; the next's first is least
                if head + size < order.size:
                    self.open = min(self.open, float(lower[order[head + size]]))
                break
        return True

    def _leaves(self, plans: IntArray) -> None:
        ok = np.flatnonzero(feasible(self.p, plans))
        if not ok.size:
            return
        plans = plans.take(ok, axis=0)
        spend, risk, obj = evaluate(self.p, plans)
        j = int(np.argmin(obj))
        if obj[j] < self.bar:
            self.bar = float(obj[j])
            self.best = Plan(plans[j].copy(), float(spend[j]), float(risk[j]), float(obj[j]))


def climb(p: Problem, plan: Plan, steps: int = CLIMB_STEPS) -> Plan:
    """`plan` improved by steepest descent: each step takes the best of the plans one move
    away (a replica more or fewer in one pool, or one moved between two pools) while that
    lowers J, for at most `steps` steps. It only sets the branch and bound's first
    incumbent: it changes how much the search prunes, never which plans it may return."""
    n = plan.replicas.size
    eye = np.eye(n, dtype=np.int64)
    moves = np.vstack((eye, -eye, (eye[:, None, :] - eye[None, :, :]).reshape(-1, n)))
    moves = moves[moves.any(axis=1)]
    for _ in range(steps):
        near = plan.replicas[None, :] + moves
        near = near[feasible(p, near)]
        if near.shape[0] == 0:
            break
        spend, risk, obj = evaluate(p, near)
        j = int(np.argmin(obj))
        if not obj[j] < plan.objective:
            break
        plan = Plan(near[j].copy(), float(spend[j]), float(risk[j]), float(obj[j]))
    return plan


def incumbent(p: Problem, starts: list[IntArray]) -> Plan | None:
    """The best of `starts` within the hard bounds (None when none is)."""
    if not starts:
        return None
    stack = np.minimum(np.stack(starts).astype(np.int64), p.max_replicas)
    ok = feasible(p, stack)
    if not ok.any():
        return None
    stack = stack[ok]
    spend, risk, obj = evaluate(p, stack)
    j = int(np.argmin(obj))
    return Plan(stack[j].copy(), float(spend[j]), float(risk[j]), float(obj[j]))


_TOKEN_FIELDS = ("prefill_s", "prefill_share", "batch_at_itl", "kv_bound")


def groups(p: Problem) -> list[list[int]]:
    """Pools that are one pool to J, in pool order: same price, spot flag, capacity, spot
    losses, latency model (base latency, token profile) and warm-up charge, one replica per
    node and no bursts. J depends on such pools only through their total (see `optimum`);
    a pool alone is a group of one."""
    r = p.risk
    columns = [p.price, p.spot, r.capacity, r.indep_loss, r.base_latency_s]
    if p.start_cost is not None:
        columns.append(p.start_cost)
    if p.fast_slots is not None:  # the free slots may differ: `merge` sums them
        columns.append(p.fast_slots[1])
    if r.tokens is not None:
        columns += [getattr(r.tokens, name) for name in _TOKEN_FIELDS]
    if r.mix is not None:  # request sizes: one accelerator type's pools share a column
        columns += list(r.mix.y)
    # NaN (no ITL model) as a string: it must equal itself to group.
    rows = [[repr(float(v)) for v in col.tolist()] for col in columns]
    keys: dict[tuple[str, ...], list[int]] = {}
    for i in range(p.price.size):
        if r.burst_prob[i] > 0 or p.node_size[i] != 1 or p.max_replicas[i] < 0:
            key: tuple[str, ...] = (str(i),)  # its own group
        else:
            key = tuple(row[i] for row in rows)
        keys.setdefault(key, []).append(i)
    return sorted(keys.values())


def merge(p: Problem, members: list[list[int]]) -> Problem:
    """`p` with each group of `members` (`groups`) as one pool: maxima summed, running
    replicas summed as each pool can hold them (min(current_i, max_i)), the most a split
    can keep in place, and free slots summed as each pool can use them (min(free_i, max_i -
    held_i)), the most a split can start at the model load alone (`split`)."""
    first = [g[0] for g in members]
    r = p.risk
    cur = free = None
    if p.current is not None:
        tops = np.maximum(p.max_replicas, 0)
        held = np.minimum(p.current, tops)
        cur = np.array([int(held[g].sum()) for g in members], dtype=np.int64)
        if p.fast_slots is not None:
            usable = np.minimum(p.fast_slots[0], tops - held)
            free = np.array([int(usable[g].sum()) for g in members], dtype=np.int64)
    return replace(
        p,
        price=p.price[first],
        spot=p.spot[first],
        max_replicas=np.array([int(p.max_replicas[g].sum()) for g in members], dtype=np.int64),
        risk=replace(
            r,
            capacity=r.capacity[first],
            indep_loss=r.indep_loss[first],
            burst_prob=r.burst_prob[first],
            base_latency_s=r.base_latency_s[first],
            tokens=None
            if r.tokens is None
            else replace(r.tokens, **{k: getattr(r.tokens, k)[first] for k in _TOKEN_FIELDS}),
            mix=None if r.mix is None else r.mix.take(first),
        ),
        current=cur,
        start_cost=None if p.start_cost is None else p.start_cost[first],
        per_node=None if p.per_node is None else p.per_node[first],
        free_slots=free,
        fast_start_cost=None if p.fast_start_cost is None else p.fast_start_cost[first],
    )


def split(p: Problem, members: list[list[int]], merged: IntArray) -> IntArray:
    """A merged plan's replicas back on the pools of each group: first as many as each pool
    runs now (up to its maximum), in pool order, then onto each pool's free slots, then the
    rest filling pools in order. No split pays less warm-up (each pool pays for its replicas
    past what it runs, the cheaper tier first), and every split has the same spend, capacity
    and violating share (`groups`)."""
    out = np.zeros(p.price.size, dtype=np.int64)
    cur = p.current if p.current is not None else np.zeros(p.price.size, dtype=np.int64)
    tops = np.maximum(p.max_replicas, 0)
    held = np.minimum(cur, tops)
    fast = held if p.fast_slots is None else np.minimum(held + p.fast_slots[0], tops)
    for g, total in zip(members, merged.tolist(), strict=True):
        left = total
        for cap in (held[g], fast[g], tops[g]):
            for i, c in zip(g, cap.tolist(), strict=True):
                more = min(max(c - int(out[i]), 0), left)
                out[i] += more
                left -= more
    return out


def optimum(p: Problem, starts: list[IntArray] | None = None, budget: int | None = None) -> Plan:
    """The plan minimising J within every hard bound (`core.allocate`), exactly.

    `starts` are plans to begin from (the better, the fewer rows the search keeps); they do
    not change the result's objective. Ceilings from the root's lower bound up, doubling,
    keep the tree narrow when no start is near the optimum. `budget`: the candidate rows
    the search may make (default `MAX_CHILDREN`, read at the call); past it the best plan
    found is returned, `proven=False`, with the gap its search proved (`Plan.gap`). With no
    plan within the hard bounds (replicas.min beyond what the pools hold), the pools'
    maxima: the caller reports the shortfall.

    Pools that differ in nothing J sees (`groups`: zones of one instance type, say) are
    searched as one pool (`merge`), an exact reduction of the tree, and the plan is split
    back deterministically (`split`)."""
    if budget is None:
        budget = MAX_CHILDREN
    members = groups(p)
    if len(members) < p.price.size:
        merged = merge(p, members)
        folded = [np.array([int(s[g].sum()) for g in members]) for s in starts or []]
        found = _optimum(merged, folded, budget)
        x = split(p, members, found.replicas)
        spend, risk, obj = evaluate(p, x[None, :])
        return Plan(x, float(spend[0]), float(risk[0]), float(obj[0]), found.proven, found.gap)
    return _optimum(p, starts, budget)


def _optimum(p: Problem, starts: list[IntArray] | None, budget: int) -> Plan:
    """`optimum` on a problem with no pools to merge."""
    start = incumbent(p, starts or [])
    # The starts are sized by rules of thumb; a few steps of descent from the best of them
    # reach plans the budgeted search does not (tests/bench/results.md, decide section).
    search = _Search(p, None if start is None else climb(p, start), budget)
    # A lower bound on every plan's J, raised by each run: what `Plan.gap` reports.
    floor = root = search.root()
    if start is None:
        # No start within the bounds: a dive first, few rows a level and best bound first,
        # reaches complete plans within a fraction of the budget and leaves an incumbent
        # that prunes the proof. After the descent it only spends rows: on the decide
        # benchmark and the servegen replay it found no better plan and proved none more,
        # at up to half the search's CPU (tests/bench/results.md, decide section).
        search.chunk, search.left = DIVE_CHUNK, DIVE_BUDGET
        dived = search.run()
        if dived is not None and not search.stopped:
            return dived  # the dive covered the whole tree under its bar: proven, not redone
        floor = max(floor, search.floor())
    search.chunk, search.left, search.stopped = CHUNK, budget, False
    first = search.best
    # A far incumbent (a start past the SLO prices its penalty) prunes nothing: search under
    # ceilings from the root's bound up, doubling; the first plan found under a ceiling is
    # the optimum, since every plan under it was in the tree.
    ceiling = max(root, 1e-6) * 1.25
    while first is None or (first.risk > p.risk_floor and ceiling < first.objective):
        found = search.run(ceiling)
        if found is not None and not search.stopped:
            return found
        floor = max(floor, search.floor())
        if search.stopped or not math.isfinite(ceiling):
            break
        ceiling = ceiling * 2.0 if ceiling < 1e12 else math.inf
    if not search.stopped:
        search.run()
        floor = max(floor, search.floor())
    found = search.best
    if found is None:
        x = np.minimum(p.max_replicas, p.total_max).astype(np.int64)
        spend, risk, obj = evaluate(p, x[None, :])
        found = Plan(x, float(spend[0]), float(risk[0]), float(obj[0]))
    if not search.stopped:
        return found
    return replace(found, proven=False, gap=_gap(found.objective, floor))


def _gap(objective: float, floor: float) -> float:
    """The relative gap between a plan's objective and a lower bound on the optimum's."""
    if not math.isfinite(objective):
        return math.inf
    return max(objective - floor, 0.0) / max(abs(objective), 1e-12)


def brute_force(p: Problem) -> Plan | None:
    """Every plan evaluated (small problems only: the tests' reference)."""
    tops = np.minimum(p.max_replicas, p.total_max) + 1
    every = np.indices(tops.tolist()).reshape(tops.size, -1).T.astype(np.int64)
    every = every[feasible(p, every)]
    if every.shape[0] == 0:
        return None
    spend, risk, obj = evaluate(p, every)
    j = int(np.argmin(obj))
    return Plan(every[j], float(spend[j]), float(risk[j]), float(obj[j]))
