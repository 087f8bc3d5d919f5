"""An HPA (or KEDA) over spot and on-demand capacity, placed as a node autoscaler places it.

The setup a platform team picks instead of costscaler ("HPA + Karpenter with spot"): one
Deployment scaled by an HPA or KEDA, whose pods land on a NodePool that allows both
capacity types of one instance family. Placement follows what such a cluster does with a
topology spread or two weighted Deployments: an on-demand base of `base` replicas, then a
fixed `spot_share` of the rest on spot, the cheapest spot pool with the on-demand pool's
accelerator. When spot pods cannot be placed (no capacity: Pending, a failed launch), the
spot share goes on demand for `ICE_TTL_S` (Karpenter caches an offering that returned
insufficient capacity as unavailable for 3 minutes, then tries it again).

The autoscaler sees one Deployment: ready, warming and desired replicas summed over both
pools, and its target in the on-demand pool's rated capacity (the same replicas either way).
The base and the share default to the deployment's own spot limits (`spec.spot`), those
costscaler obeys.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from costscaler.sim.hpa import HPA, KEDA
from costscaler.sim.policy import ClusterView
from costscaler.sim.pools import PoolModel

ICE_TTL_S = 180.0  # Karpenter's unavailable-offerings cache


def spot_partner(models: list[PoolModel], on_demand: int) -> int | None:
    """The cheapest spot pool (per request/s) with the on-demand pool's accelerator."""
    want = models[on_demand].accelerator
    spot = [i for i, m in enumerate(models) if m.spot and m.accelerator == want]
    return min(spot, key=lambda i: models[i].cost_per_capacity) if spot else None


def split(total: int, base: int, spot_share: float, unplaced: int = 0) -> tuple[int, int]:
    """(on-demand, spot) replicas for `total`: the base on demand, `spot_share` of the rest
    on spot (rounded down), and spot replicas that cannot be placed moved to on demand."""
    spot = max(0, math.floor((total - base) * spot_share + 1e-9))
    moved = min(unplaced, spot)
    return total - spot + moved, spot - moved


@dataclass
class Placed:
    """`inner` (an HPA or KEDA on pool index 0 of a one-pool view) over pools `on_demand`
    and `spot` of the run, placed by `split`."""

    inner: HPA | KEDA
    on_demand: int
    spot: int
    base: int
    spot_share: float
    name: str = "hpa-karpenter-spot"
    interval_s: float = 0.0

    def __post_init__(self) -> None:
        self.interval_s = self.inner.interval_s  # the inner autoscaler's sync period
        self._spot_out_until = -1.0

    def _view(self, view: ClusterView) -> ClusterView:
        both = (self.on_demand, self.spot)
        return dataclasses.replace(
            view,
            pools=[view.pools[self.on_demand]],
            ready=[sum(view.ready[i] for i in both)],
            warming=[sum(view.warming[i] for i in both)],
            desired=[sum(view.desired[i] for i in both)],
            lost=[sum(view.lost[i] for i in both)],
            unplaced=[],
        )

    def _place(self, view: ClusterView, total: int) -> list[int]:
        """Place a change of the count: pods stay where they run (a ReplicaSet moves none);
        new pods go where the split wants more, spot only while its offering is not cached
        unavailable; removals come from the side over its share; spot pods that cannot be
        placed move on demand."""
        od, spot = view.desired[self.on_demand], view.desired[self.spot]
        stuck = view.unplaced[self.spot] if view.unplaced else 0
        if stuck:
            self._spot_out_until = view.now_s + ICE_TTL_S
            od, spot = od + stuck, spot - stuck
        _, want_spot = split(total, self.base, self.spot_share)
        if total > od + spot:
            add = total - od - spot
            open_ = view.now_s >= self._spot_out_until
            more = min(add, max(0, want_spot - spot)) if open_ else 0
            od, spot = od + add - more, spot + more
        elif total < od + spot:
            drop = od + spot - total
            less = min(drop, max(0, spot - want_spot))
            od, spot = od - (drop - less), spot - less
        out = [0] * len(view.pools)
        out[self.on_demand], out[self.spot] = od, spot
        return out

    def initial(self, view: ClusterView) -> list[int]:
        """The inner autoscaler takes over the summed count; placed at once."""
        return self._place(view, self.inner.initial(self._view(view))[0])

    def decide(self, view: ClusterView) -> list[int]:
        """One sync of the inner autoscaler on the summed view, then placement."""
        return self._place(view, self.inner.decide(self._view(view))[0])
