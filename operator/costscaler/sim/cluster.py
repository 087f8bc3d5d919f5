"""The cluster twin: replicas per pool with cold starts, release and spot interruptions.

Each replica is paid from the step it is requested to the step it ends and serves from the
step it is ready. Replicas pack onto a pool's nodes, `replicas_per_node` each: a new replica
takes the next free slot, on a node that may itself still be starting, and when every open
node is full it opens a new one that is ready after `node_cold_s`; either way it then loads
the model (`load_s`); a scenario may draw both from a heavy tail above the declared ones.
A node emptied by releases is gone (consolidation), and the run bills
whole nodes (`run`). Replica counts per step are kept as
difference arrays (+1 where an interval starts, -1 where it ends), so a run of steps between
two decisions is one cumulative sum: the twin never loops over steps.

Spot interruptions come from a seeded Poisson clock per replica (the pool's rate per
instance-hour), optionally with part of that hazard as seeded pool-wide bursts (`SpotBursts`:
real GPU spot losses come in correlated bursts, ../shared/spot/README.md), or from a
replayed capacity trace, or from a scenario's stock-outs (`sim.scenario`; a drop in
`available` preempts that many spot replicas; while `available` is 0 no new spot replica
can be had: the request waits, unpaid, like a pod Pending on a node that never launches,
and `unplaced` reports it as the node layer reports a launch that failed for want of
capacity). On the notice the ReplicaSet creates a replacement at once while the doomed
replica keeps serving until it is reclaimed.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from costscaler.sim.pools import PoolModel
from costscaler.sim.scenario import MANIFEST, Scenario
from costscaler.sim.traces import SpotTrace

IntArray = NDArray[np.int64]
ALL = 1 << 30  # a drop that takes every live replica (a stock-out)


@dataclass
class _Replica:
    """One replica: steps it is paid from, serves from, and (once known) ends at."""

    pool: int
    request: int
    ready: int
    end: int | None = None
    dying: bool = False


@dataclass(frozen=True)
class SpotReplay:
    """A capacity trace laid on the step grid: drops per step and where capacity is 0.

    `next_open[t]` is the first step >= t with spot capacity, or `steps` when none is left.
    """

    drops: dict[int, int]
    next_open: IntArray

    @staticmethod
    def from_trace(trace: SpotTrace, steps: int, dt: float) -> SpotReplay:
        """Lay `trace` on `steps` steps of `dt` s, repeating it when the run is longer."""
        span = float(trace.time_s[-1] - trace.time_s[0]) + (
            float(np.median(np.diff(trace.time_s))) if trace.time_s.size > 1 else dt
        )
        clock = (np.arange(steps) * dt) % span + trace.time_s[0]
        row = np.searchsorted(trace.time_s, clock, side="right") - 1
        avail = trace.available[np.maximum(row, 0)]
        loss = np.maximum(np.concatenate(([0], avail[:-1] - avail[1:])), 0)
        drops = {int(t): int(loss[t]) for t in np.flatnonzero(loss)}
        open_steps = np.flatnonzero(avail > 0)
        idx = np.searchsorted(open_steps, np.arange(steps))
        nxt = np.append(open_steps, steps)[idx]
        return SpotReplay(drops, nxt.astype(np.int64))


@dataclass(frozen=True)
class SpotBursts:
    """Correlated spot losses: `share` of each spot pool's declared hazard comes as bursts.

    Bursts reach a pool as a seeded Poisson process at `share x rate / size` per hour; each
    reclaims every live replica of the pool with probability `size` (with the pool's notice),
    so a replica's mean hazard stays the declared rate while losses cluster in time. The
    rest of the hazard, `(1 - share) x rate`, stays independent per replica. `share` 0 is
    the independent model alone; None (the default) is each pool's own burst share
    (`PoolModel.burst_share`, its `interruption.burstShare`), the share the engine prices.
    """

    share: float | None = None
    size: float = 0.5

    def __post_init__(self) -> None:
        share_ok = self.share is None or 0 <= self.share <= 1
        if not share_ok or not 0 < self.size <= 1:
            raise ValueError("SpotBursts: share must be in [0, 1] and size in (0, 1]")

    def share_of(self, model: PoolModel) -> float:
        """The share of `model`'s hazard that comes as bursts in this run."""
        return model.burst_share if self.share is None else self.share


@dataclass
class ClusterTwin:
    """Replicas of one deployment across its pools, on a grid of `steps` steps of `dt` s."""

    pools: list[PoolModel]
    steps: int
    dt: float
    seed: int = 0
    replays: dict[int, SpotReplay] = field(default_factory=dict)
    # Independent losses unless a run asks for bursts (`run.simulate` passes the pools' own).
    bursts: SpotBursts = field(default_factory=lambda: SpotBursts(0.0))
    scale_events: int = 0
    scenario: Scenario = MANIFEST

    def __post_init__(self) -> None:
        n = len(self.pools)
        # Difference arrays of ready (0) and paid (1) replicas, summed together per stretch.
        self._marks = np.zeros((2, n, self.steps + 1), dtype=np.int64)
        self._ready, self._held = self._marks[0], self._marks[1]
        self._base = np.zeros((2, n, 1), dtype=np.int64)
        self._live: list[list[_Replica]] = [[] for _ in range(n)]
        self._nodes: list[list[int]] = [[] for _ in range(n)]  # open nodes' ready steps
        self._events: list[tuple[int, int, str, int, int, _Replica | None]] = []
        self._seq = 0
        self._rngs = [
            np.random.default_rng(np.random.SeedSequence([self.seed, i, 7])) for i in range(n)
        ]
        self._desired = [0] * n
        self.lost = [0] * n  # spot replicas reclaimed so far, per pool
        for p, replay in self.replays.items():
            for step, count in replay.drops.items():
                notice = max(0, step - self._steps_of(self.pools[p].notice_s))
                self._push(notice, "drop", p, None, count)
        self._burst_rngs = {
            p: np.random.default_rng(np.random.SeedSequence([self.seed, p, 13]))
            for p, m in enumerate(self.pools)
            if m.spot and m.interruption_rate_per_hour > 0 and p not in self.replays
        }
        for p in self._burst_rngs:
            if self.bursts.share_of(self.pools[p]) > 0:
                self._schedule_bursts(p)
        self._cold_rngs = [
            np.random.default_rng(np.random.SeedSequence([self.seed, i, 17])) for i in range(n)
        ]
        # Stock-outs: every spot replica gets its notice to be gone at the start; none can be
        # placed until the end (`add` moves the request there, unpaid).
        self._stockouts = [
            (self._steps_of(start), self._steps_of(start + length))
            for start, length in self.scenario.stockouts
        ]
        for start, _ in self._stockouts:
            for p, m in enumerate(self.pools):
                if m.spot and start < self.steps:
                    notice = max(0, start - self._steps_of(m.notice_s))
                    self._push(notice, "drop", p, None, ALL)

    def _schedule_bursts(self, pool: int) -> None:
        """Draw the pool's burst times for the whole run (one seeded stream per pool)."""
        model, rng = self.pools[pool], self._burst_rngs[pool]
        share = self.bursts.share_of(model)
        mean_s = 3600.0 * self.bursts.size / (share * model.interruption_rate_per_hour)
        clock = rng.exponential(mean_s)
        while (kill := max(1, self._steps_of(clock))) < self.steps:
            self._push(max(0, kill - self._steps_of(model.notice_s)), "burst", pool, None, kill)
            clock += rng.exponential(mean_s)

    def _steps_of(self, seconds: float) -> int:
        return math.ceil(seconds / self.dt - 1e-9)

    def _push(self, step: int, kind: str, pool: int, rep: _Replica | None, n: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._events, (step, self._seq, kind, pool, n, rep))

    def _mark(self, arr: NDArray[np.int64], pool: int, step: int, delta: int) -> None:
        arr[pool, min(step, self.steps)] += delta

    def add(self, pool: int, step: int, warm: bool = False) -> None:
        """Request one replica at `step` (`warm`: ready at once, for a run's initial state)."""
        model = self.pools[pool]
        replay = self.replays.get(pool)
        if replay is not None and step < self.steps:
            step = int(replay.next_open[step])
        if model.spot:  # from the stock-out's notice on, no new spot capacity either
            lead = self._steps_of(model.notice_s)
            for start, end in self._stockouts:
                step = end if start - lead <= step < end else step
        rep = _Replica(pool, step, self._slot(pool, step, warm))
        self._live[pool].append(rep)
        self._mark(self._held, pool, step, 1)
        self._mark(self._ready, pool, rep.ready, 1)
        rate = model.interruption_rate_per_hour * (1.0 - self.bursts.share_of(model))
        if model.spot and rate > 0 and replay is None:
            life = self._rngs[pool].exponential(3600.0 / rate)
            kill = step + max(1, self._steps_of(life))
            if kill < self.steps:
                self._push(max(step, kill - self._steps_of(model.notice_s)), "notice", pool, rep)
                self._push(kill, "kill", pool, rep)

    def _slot(self, pool: int, step: int, warm: bool) -> int:
        """The step a replica requested at `step` is ready: its node's ready step (a new node
        when every open one is full) plus the model load; at once when `warm`."""
        model, alive = self.pools[pool], len(self._live[pool])
        nodes, k = self._nodes[pool], model.replicas_per_node
        del nodes[-(-alive // k) :]  # packed: nodes past the live replicas' were emptied
        draw = self.scenario.cold_multiplier
        if alive // k >= len(nodes):
            cold = 0.0 if warm else model.node_cold_s * draw(self._cold_rngs[pool])
            nodes.append(step + self._steps_of(cold))
        if warm:
            return step
        load = model.load_s * draw(self._cold_rngs[pool])
        return max(step, nodes[alive // k]) + self._steps_of(load)

    def _end(self, rep: _Replica, step: int) -> None:
        if rep.end is not None:
            return
        rep.end = step
        self._mark(self._held, rep.pool, max(rep.request, step), -1)
        self._mark(self._ready, rep.pool, max(rep.ready, step), -1)
        if rep in self._live[rep.pool]:
            self._live[rep.pool].remove(rep)

    def _doom(self, rep: _Replica, step: int) -> None:
        """A notice: the replica leaves the ReplicaSet's count and is replaced at once."""
        if rep.end is not None or rep.dying:
            return
        rep.dying = True
        self._live[rep.pool].remove(rep)
        self.add(rep.pool, step)

    @property
    def desired(self) -> list[int]:
        """Replicas asked for per pool (the Deployments' spec.replicas)."""
        return list(self._desired)

    def start(self, replicas: list[int], warm: bool = True) -> None:
        """The run's initial state: `replicas[p]` replicas per pool, requested at step 0.

        `warm`: they serve at once; otherwise they go through their cold start first.
        """
        for p, n in enumerate(replicas):
            cap = self.pools[p].max_replicas
            n = n if cap is None else min(n, cap)
            for _ in range(n):
                self.add(p, 0, warm=warm)
            self._desired[p] = n

    def set_desired(self, step: int, desired: list[int]) -> None:
        """Scale every pool to `desired[p]` replicas at `step` (clamped to the pool's quota).

        Scale-down removes the replicas a ReplicaSet removes first: not yet ready, newest first.
        """
        for p, want in enumerate(desired):
            cap = self.pools[p].max_replicas
            want = max(0, want if cap is None else min(want, cap))
            if want != self._desired[p]:
                self.scale_events += 1
                self._desired[p] = want
            live = self._live[p]
            while len(live) < want:
                self.add(p, step)
            if len(live) > want:
                order = sorted(live, key=lambda r: (r.ready <= step, -r.request))
                for rep in order[: len(live) - want]:
                    self._end(rep, step)

    def _run_events(self, until: int) -> None:
        while self._events and self._events[0][0] < until:
            step, _, kind, pool, count, rep = heapq.heappop(self._events)
            if kind == "notice" and rep is not None:
                self._doom(rep, step)
            elif kind == "kill" and rep is not None and rep.end is None:
                self.lost[pool] += 1
                self._end(rep, step)
            elif kind == "drop":
                kill = step + self._steps_of(self.pools[pool].notice_s)
                victims = sorted(self._live[pool], key=lambda r: r.ready)[:count]
                self._reclaim(victims, step, kill)
            elif kind == "burst":
                live = list(self._live[pool])
                hit = self._burst_rngs[pool].random(len(live)) < self.bursts.size
                self._reclaim([r for r, h in zip(live, hit, strict=True) if h], step, count)

    def _reclaim(self, victims: list[_Replica], notice: int, kill: int) -> None:
        """Notice to `victims` at step `notice` (replaced at once), reclaimed at `kill`."""
        for victim in victims:
            self._doom(victim, notice)
            self._push(kill, "kill", victim.pool, victim)

    def advance(self, start: int, stop: int) -> tuple[IntArray, IntArray]:
        """Ready and paid replicas per pool for steps [start, stop): arrays of shape (P, n).

        Call with consecutive ranges; decisions for `start` must already be applied.
        """
        self._run_events(stop)
        counts = np.cumsum(self._marks[:, :, start:stop], axis=2) + self._base
        if stop > start:
            self._base = counts[:, :, -1:]
        return counts[0], counts[1]

    def unplaced(self, step: int) -> list[int]:
        """Replicas per pool waiting at `step` for capacity a spot trace says is not there
        (the operator's unfulfillable signal: Pending past grace, or failed to launch)."""
        return [sum(1 for r in live if r.request > step) for live in self._live]

    def counts(self, step: int) -> tuple[list[int], list[int]]:
        """Replicas per pool at `step` as a cluster reports them: (ready, warming)."""
        ready = [sum(1 for r in live if r.ready <= step) for live in self._live]
        return ready, [len(live) - n for live, n in zip(self._live, ready, strict=True)]
