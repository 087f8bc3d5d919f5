"""Break-even keep-alive (ski rental): when to release replicas the plan no longer needs.

Holding an idle replica of pool i costs its price c_i ($/h) for as long as it is held (rent).
Releasing it and needing it back costs a re-acquisition (buy): the cold start T_i paid while
warming, c_i x T_i, plus the SLO misses of serving without it meanwhile, s x delta_i x T_i,
where s is the SLO miss cost per violating share ($/h over 1 - attainment) and delta_i the
violating share one replica of pool i removes from
the allocation held now (`RiskModel.marginal` at the current replicas), under the demand
forecast over the horizon — whose band already prices how likely demand is to come back.
A deep surplus removes no risk (delta ~ 0) and is held one cold start; a thin one, held
longer. The deterministic ski-rental rule holds a surplus replica until the rent paid equals
the buy price, then releases it:

    hold_i [s] = buy_i / c_i = T_i x (1 + s x delta_i / c_i)

which never costs more than twice what an oracle that knew when demand returns would pay.
The rule is per replica: each surplus replica has its own clock (`idle_since`: per pool,
the times at which its surplus replicas became surplus, oldest first), started when the
plan stops needing it. A surplus that grows replica by replica as demand ebbs releases them
one by one, each after its own break-even, not all at the first one's; when demand takes
some back, the oldest clocks stop (those replicas are in use again). The clocks live in
`EngineState` so they survive restarts. A clock can expire while another pool's new
replicas still warm (the surplus started before the plan moved), so releases are also
bounded by make-before-break (`make_before_break`): ready replicas are released only as far
as the capacity left serving still covers what the plan will serve once its new replicas
are ready.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from costscaler.core.risk import IntArray
from costscaler.core.types import FloatArray


def hold_seconds(
    cold_start_s: FloatArray, price: FloatArray, slo_miss_cost: float, marginal_risk: FloatArray
) -> FloatArray:
    """Break-even hold time per pool (s); infinite for a pool that costs nothing to hold."""
    safe = np.where(price > 0, price, 1.0)
    hold = cold_start_s * (1.0 + slo_miss_cost * marginal_risk / safe)
    return np.asarray(np.where(price > 0, hold, np.inf), dtype=np.float64)


def apply(
    names: tuple[str, ...],
    target: IntArray,
    current: IntArray,
    idle_since: Mapping[str, Sequence[float]],
    now: float,
    hold_s: FloatArray,
) -> tuple[IntArray, dict[str, tuple[float, ...]]]:
    """Replicas after holding surplus within its break-even time, and the updated clocks.

    Pool i's surplus current - target keeps one clock per replica (see the module
    docstring); the replicas whose clock has run `hold_s[i]` are released, the others held.
    """
    final = target.copy()
    clocks: dict[str, tuple[float, ...]] = {}
    for i, name in enumerate(names):
        surplus = int(current[i] - target[i])
        if surplus <= 0:
            continue
        since = sorted(min(t, now) for t in idle_since.get(name, ()))[-surplus:]
        since = [*since, *([now] * (surplus - len(since)))]
        expired = sum(1 for t in since if now - t >= hold_s[i])
        final[i] = current[i] - expired
        if expired < surplus:
            clocks[name] = tuple(since[expired:])
    return final, clocks


def make_before_break(
    final: IntArray,
    current: IntArray,
    ready: IntArray,
    target: IntArray,
    capacity: FloatArray,
    order: NDArray[np.intp],
) -> IntArray:
    """`final` with released ready replicas put back while the plan's new capacity warms.

    Until warming replicas serve, what serves is sum_i min(final_i, ready_i) x capacity_i.
    Releasing a ready replica below min(what serves now, what `target` will serve) trades
    serving capacity for capacity that is not there yet: the queue pays for the gap. Ready
    replicas released by `final` (below `current`) are restored in `order` (cheapest per
    req/s first) until the serving capacity reaches that level; a pool whose replicas are
    all ready releases freely once the plan is served.
    """
    out = final.copy()
    serving_now = float(np.minimum(current, ready) @ capacity)
    need = min(serving_now, float(target @ capacity)) - 1e-9
    serving = float(np.minimum(out, ready) @ capacity)
    for i in order.tolist():
        while serving < need and out[i] < min(current[i], ready[i]):
            out[i] += 1
            serving += float(capacity[i])
    return out
