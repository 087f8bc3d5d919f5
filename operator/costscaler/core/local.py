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
    """The best of `starts`; when none is within the SLO floor, those within the bounds also
    enter with their one-replica-more neighbours, so the search does not start past it."""
    best, short = _best(p, np.stack(starts))
    if short.shape[0] and best.risk > p.risk_floor:
        n = short.shape[1]
        grown = (short[:, None, :] + np.eye(n, dtype=np.int64)[None, :, :]).reshape(-1, n)
        other, _ = _best(p, grown)
        best = other if other.objective < best.objective else best
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
