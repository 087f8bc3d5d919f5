"""Whole nodes: a pool's node holds `replicas_per_node` replicas and bills whole from its first.

A pool's node carries countPerNode accelerators and a replica uses acceleratorsPerReplica of
them, so k = floor(countPerNode / acceleratorsPerReplica) replicas share one node, and

    spend(x) = sum_i P_i x ceil(x_i / k_i)      [$/h; P_i the node's $/h]

is a step function, which the objective pays (`allocate.nodes_spend`) and the exact search
minimises directly (`core.exact`). A partly filled node is paid whole, so its empty slots
are free capacity: `fill` puts replicas on them as far as the bounds allow.

Free slots on the cluster's nodes (`free_slots`): with a NodePool, the node layer reports
the accelerators free on each Ready node of the pool (warm spares, and nodes other replicas
fill in part). A new replica that fits there waits only the model load; the rest wait for
a node too. The warm-up charge has two tiers accordingly (`allocate`). The count is the
pool's, shared by the deployments on it: a decision that starts replicas on free slots
takes them from the count the next decisions read (`taken`), until the node layer counts
the nodes again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from costscaler.core import allocate
from costscaler.core.allocate import Problem
from costscaler.core.risk import IntArray
from costscaler.core.types import Observations

if TYPE_CHECKING:
    from costscaler.core.engine import Planner


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


def free_slots(pl: Planner, obs: Observations) -> IntArray | None:
    """Replicas that fit on each pool's Ready nodes now: per node, its free accelerators
    over the replica's (floor), summed; None when no pool has node facts
    (`Observations.free_accelerators`), 0 for a pool without them."""
    facts = obs.free_accelerators
    if not facts:
        return None
    out = np.zeros(len(pl.names), dtype=np.int64)
    for i, name in enumerate(pl.names):
        per = max(int(pl.accelerators[i]), 1)
        out[i] = sum(max(int(a), 0) // per for a in facts.get(name, ()))
    return out


def taken(free: tuple[int, ...], replicas: int, per: int) -> tuple[int, ...]:
    """Free accelerators per node after `replicas` new replicas of `per` accelerators each
    took free slots, node by node in order (as `free_slots` counts them: a node holds
    floor(free / per) of them)."""
    out, left, per = list(free), max(replicas, 0), max(per, 1)
    for i, a in enumerate(out):
        fit = min(max(a, 0) // per, left)
        out[i] -= fit * per
        left -= fit
    return tuple(out)


def slots_note(pl: Planner, obs: Observations, free: IntArray | None, started: IntArray) -> str:
    """What the message says of free slots ("" without node facts): per pool with facts,
    the slots, how long a replica started there waits against a new node, and how many of
    the plan's `started` replicas they take."""
    if free is None:
        return ""
    parts = []
    for i, name in enumerate(pl.names):
        if name not in obs.free_accelerators:
            continue
        on_slots = min(int(started[i]), int(free[i]))
        parts.append(
            f"{name} {int(free[i])} (a replica there starts in {pl.load_s[i]:.0f} s, on a new "
            f"node in {pl.cold_start_s[i]:.0f} s; {on_slots} of {int(started[i])} new on them)"
        )
    return f" Free slots on ready nodes: {'; '.join(parts)}." if parts else ""
