"""Whole nodes: a pool's node holds `replicas_per_node` replicas and bills whole from its first.

A pool's node carries countPerNode accelerators and a replica uses acceleratorsPerReplica of
them, so k = floor(countPerNode / acceleratorsPerReplica) replicas share one node, and

    spend(x) = sum_i P_i x ceil(x_i / k_i)      [$/h; P_i the node's $/h]

is a step function, which the objective pays (`allocate.nodes_spend`) and the exact search
minimises directly (`core.exact`). A partly filled node is paid whole, so its empty slots
are free capacity: `fill` puts replicas on them as far as the bounds allow.
"""

from __future__ import annotations

import numpy as np

from costscaler.core import allocate
from costscaler.core.allocate import Problem
from costscaler.core.risk import IntArray


def counts(replicas: IntArray, per_node: IntArray) -> IntArray:
    """Nodes each pool opens: ceil(replicas / replicas per node)."""
    return np.asarray(-(-replicas // per_node), dtype=np.int64)


def empty(replicas: IntArray, per_node: IntArray) -> IntArray:
    """Replica slots paid but unused: nodes x replicas per node - replicas (per pool)."""
    return np.asarray(counts(replicas, per_node) * per_node - replicas, dtype=np.int64)


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
