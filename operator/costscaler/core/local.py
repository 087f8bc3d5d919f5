"""The local search: the best of the starts, then the best single move at a time.

From the starts (`core.fill`, the current allocation), the best plan within the bounds is
improved by moves of one replica (add, remove, move between two pools, or swap one big
replica for the small ones that carry as much) until none lowers the objective J
(`allocate.evaluate`). Its plan is the branch and bound's incumbent (`core.exact`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from costscaler.core.allocate import MAX_STEPS, Plan, Problem, evaluate, feasible, money
from costscaler.core.risk import IntArray

_REPAIRS = 32


@lru_cache(maxsize=64)
def _moves(capacity: tuple[float, ...]) -> IntArray:
    """Every +1, -1 and move-one-between-two-pools step, one per row; and, where one replica
    of pool i outweighs one of pool j, the swap of one i for the ceil(c_i / c_j) replicas of
    j that carry as much (and back). Without it, trading big replicas for small ones passes
    through plans short of capacity, and the search stops at a dearer plan."""
    n = len(capacity)
    eye = np.eye(n, dtype=np.int64)
    rows = [eye, -eye]
    if n > 1:
        i, j = np.nonzero(~np.eye(n, dtype=bool))
        rows.append(eye[j] - eye[i])
        cap = np.array(capacity)
        k = np.ceil(cap[i] / cap[j] - 1e-9).astype(np.int64)
        big = k > 1
        swap = k[big, None] * eye[j[big]] - eye[i[big]]
        rows.extend((swap, -swap))
    return np.concatenate(rows)


def _best(p: Problem, plans: IntArray) -> tuple[Plan, IntArray]:
    """The best plan among `plans`, and those within the hard bounds but past the floor."""
    ok = feasible(p, plans)
    spend, risk, obj = evaluate(p, plans)
    k = int(np.argmin(np.where(ok, obj, np.inf)))
    plan = Plan(plans[k], float(spend[k]), float(risk[k]), float(obj[k]) if ok[k] else math.inf)
    return plan, plans[ok & (risk > p.risk_floor)]


def first_plan(p: Problem, starts: list[IntArray]) -> Plan:
    """The best of `starts`; those within the bounds but past the SLO floor also enter with
    their one-replica-more neighbours, so the search does not start past it, nor from a
    dear start when a cheap one (most spot) misses the floor by one replica: a far
    incumbent widens the exact search's tree until it gives up."""
    best, short = _best(p, np.stack(starts))
    if short.shape[0]:
        n = short.shape[1]
        grown = (short[:, None, :] + np.eye(n, dtype=np.int64)[None, :, :]).reshape(-1, n)
        other, _ = _best(p, grown)
        best = other if other.objective < best.objective else best
        if other.risk > p.risk_floor or math.isinf(other.objective):
            start = short[int(np.argmin(evaluate(p, short)[2]))]
            best = _repair(p, start, _repair(p, start, best, per_dollar=False), per_dollar=True)
    return best


def _repair(p: Problem, plan: IntArray, best: Plan, per_dollar: bool) -> Plan:
    """Add replicas to `plan` (past the SLO floor) until it is within it, each time the one
    that lowers J most (`per_dollar`: per $/h; far from the floor the cheapest capacity,
    near it the hedge across pools), and return the better of it and `best`: from a start
    that misses the floor by a few replicas, the search would otherwise begin at a dear
    plan, and a far incumbent widens the exact search's tree until it gives up."""
    eye = np.eye(plan.size, dtype=np.int64)
    obj = float(evaluate(p, plan[None, :])[2][0])
    for _ in range(_REPAIRS):
        cand = plan + eye
        ok = feasible(p, cand)
        spend, risk, objs = evaluate(p, cand)
        within = ok & (risk <= p.risk_floor)
        if within.any():
            k = int(np.argmin(np.where(within, objs, np.inf)))
            if objs[k] < best.objective:
                best = Plan(cand[k], float(spend[k]), float(risk[k]), float(objs[k]))
            break
        gain = np.where(
            ok, (obj - objs) / (np.maximum(p.price, 1e-9) if per_dollar else 1.0), -np.inf
        )
        k = int(np.argmax(gain))
        if not gain[k] > 0:
            break
        plan, obj = cand[k], float(objs[k])
    return best


def search(p: Problem, starts: list[IntArray]) -> Plan:
    """Local search from the best start (`first_plan`): best single move at a time until
    none lowers J."""
    return descend(p, first_plan(p, starts))


def descend(p: Problem, best: Plan) -> Plan:
    """Best single move at a time from `best` until none lowers J."""
    moves = _moves(tuple(p.risk.capacity.tolist()))
    eye = np.eye(moves.shape[1], dtype=np.int64)
    stuck = False
    for _ in range(MAX_STEPS):
        cand = best.replicas + moves
        if stuck:
            # At a local optimum: one replica less anywhere, then any move (a trade of two
            # replicas for one that no single move reaches without crossing the floor).
            less = best.replicas - eye[best.replicas > 0]
            cand = (less[:, None, :] + moves[None, :, :]).reshape(-1, moves.shape[1])
        cand = cand[feasible(p, cand)]
        cand = cand[money(p, cand) < best.objective - 1e-9]  # risk only adds: skip the rest
        spend, risk, obj = evaluate(p, cand)
        k = int(np.argmin(obj)) if cand.shape[0] else -1
        if k < 0 or not obj[k] < best.objective - 1e-9:
            if stuck:
                break
            stuck = True
            continue
        best, stuck = Plan(cand[k], float(spend[k]), float(risk[k]), float(obj[k])), False
    return best
