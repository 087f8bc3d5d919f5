"""Whole nodes: a pool's node holds `replicas_per_node` replicas and bills whole from its first.

A pool's node carries countPerNode accelerators and a replica uses acceleratorsPerReplica of
them, so k = floor(countPerNode / acceleratorsPerReplica) replicas share one node, and

    spend(x) = sum_i P_i x ceil(x_i / k_i)      [$/h; P_i the node's $/h]

is a step function. The search (`core.exact`, compiled) works on per-replica prices: it
prices each replica at P_i / k_i, a lower bound on its share that is exact for plans whose
nodes are full. `repack` makes the plan exact at whole-node spend (`objective`):

- for each count of nodes n_i of the pools with k_i > 1, the node spend is fixed and their
  replicas cost only their warm-up, so the per-replica search is exact again with their
  prices 0 and their maxima n_i k_i (`by_nodes`, counts by node spend, cheapest first, until
  the node spend alone reaches the best objective); the best of these is the optimum;
- a partly filled node is paid whole, so its empty slots are free capacity: `fill` puts
  replicas on them as far as the bounds allow (a paid node is preferred to a new one).

tests/unit/core/test_nodes.py checks the result against every plan of small problems. With
k = 1 everywhere (one replica per node) nothing changes: the plans are the search's.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from costscaler.core import allocate, exact
from costscaler.core.allocate import HARD, SOFT, Plan, Problem
from costscaler.core.risk import IntArray
from costscaler.core.types import FloatArray

MAX_COUNTS = 24  # node-count searches per decision (each one exact search)


def counts(replicas: IntArray, per_node: IntArray) -> IntArray:
    """Nodes each pool opens: ceil(replicas / replicas per node)."""
    return np.asarray(-(-replicas // per_node), dtype=np.int64)


def empty(replicas: IntArray, per_node: IntArray) -> IntArray:
    """Replica slots paid but unused: nodes x replicas per node - replicas (per pool)."""
    return np.asarray(counts(replicas, per_node) * per_node - replicas, dtype=np.int64)


def objective(
    p: Problem, plans: IntArray, per_node: IntArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(spend, risk, objective) of each plan with whole nodes paid (`allocate.evaluate` plus
    each empty slot at its pool's per-replica price; the budget's penalty on that spend)."""
    spend, risk, obj = allocate.evaluate(p, plans)
    whole = spend + empty(plans, per_node) @ p.price
    budget_w = SOFT if p.prefer_slo else HARD
    if np.isfinite(p.budget):
        over = np.maximum(whole - p.budget, 0.0) - np.maximum(spend - p.budget, 0.0)
        obj = obj + budget_w * over
    return whole, risk, obj + (whole - spend)


def fill(p: Problem, plan: IntArray, per_node: IntArray) -> IntArray:
    """`plan` with each pool's open nodes filled, as far as the bounds allow.

    On-demand pools first (they never push the spot share past its limit), each raised to
    min(nodes x replicas per node, its maximum), or by less when replicas.max or the spot
    limits stop it: the replicas added cost nothing, their nodes are paid already.
    """
    if per_node.max() == 1:  # one replica per node: no free slot anywhere
        return plan
    x = plan.copy()
    top = np.minimum(counts(plan, per_node) * per_node, p.max_replicas)
    for i in np.lexsort((np.arange(x.size), p.spot)):
        for k in range(int(top[i]), int(x[i]), -1):
            trial = x.copy()
            trial[i] = k
            if allocate.fits(p, trial):
                x = trial
                break
    return x


def by_nodes(p: Problem, starts: list[IntArray], per_node: IntArray) -> list[IntArray]:
    """The optimum for each node count of the multi-replica-node pools, cheapest counts first.

    With n_i nodes open on pool i, its node spend sum_i n_i P_i is fixed and its replicas cost
    only their warm-up: search the problem with those pools' replicas free (price 0) and at
    most n_i k_i, the budget lowered by the node spend. Counts are tried in order of node
    spend, and stop once the node spend alone reaches the best objective found (no plan with
    more nodes can beat it) or after `MAX_COUNTS` searches (the plans found so far stand).
    """
    multi = np.flatnonzero(per_node > 1)
    k = per_node[multi]
    node_price = p.price[multi] * k
    tops = -(-np.minimum(p.max_replicas[multi], p.total_max) // k)
    grid = np.indices((tops + 1).tolist()).reshape(multi.size, -1).T
    spend = grid @ node_price
    order = np.argsort(spend, kind="stable")[:MAX_COUNTS]
    price = p.price.copy()
    price[multi] = 0.0
    found: list[IntArray] = []
    best = math.inf
    for row in order:
        fixed = float(spend[row])
        if fixed >= best:
            break
        maxima = p.max_replicas.copy()
        maxima[multi] = np.minimum(grid[row] * k, maxima[multi])
        q = replace(p, price=price, max_replicas=maxima, budget=p.budget - fixed)
        plan = exact.optimum_or_search(q, [np.minimum(s, maxima) for s in starts], True)[0]
        if allocate.fits(p, plan.replicas):
            found.append(plan.replicas)
            best = min(best, plan.objective + fixed)
    return found


def repack(p: Problem, target: Plan, starts: list[IntArray], per_node: IntArray) -> Plan:
    """The best of `target`, its filled nodes, the optimum per node count (`by_nodes`) and,
    for each pool whose last node `target` leaves part-empty, the plan searched without that
    node (a fallback when `MAX_COUNTS` stops `by_nodes`); objective at whole-node spend. Its
    `spend` is the per-replica spend (`allocate.evaluate`), as for every plan:
    `core.billing` adds the empty slots."""
    if per_node.max() == 1:
        return target
    x = target.replicas
    plans = [x, fill(p, x, per_node), *by_nodes(p, starts, per_node)]
    for i in np.flatnonzero(x % per_node):
        maxima = p.max_replicas.copy()
        maxima[i] = x[i] // per_node[i] * per_node[i]
        capped = replace(p, max_replicas=maxima)
        heads = [np.minimum(s, maxima) for s in [*starts, x]]
        found = exact.optimum_or_search(capped, heads, attempt=True)[0].replicas
        plans += [found, fill(p, found, per_node)]
    stack = np.stack(plans)
    ok = allocate.feasible(p, stack)
    _, _, obj = objective(p, stack, per_node)
    obj = np.where(ok, obj, np.inf)
    best = stack[int(np.argmin(obj))]
    return allocate.plan_of(p, best)
