"""Requests served as an LLM server serves them: a router, continuous batching per replica.

Each request carries input and output tokens. A router sends it, when it arrives, to a ready
replica: the one with the fewest outstanding requests (`least`, ties to the lowest index) or
the next in turn (`round-robin`). Each replica runs continuous batching as vLLM does:

- Admission is first come, first served while the KV cache holds the request's whole context
  (input + output tokens, reserved up front) and fewer than `max_seqs` run: the KV cache
  bounds the batch, and a request that does not fit waits at its replica.
- An iteration processes every running sequence's next token plus a chunk of waiting prompt
  tokens (up to `chunk_tokens` in all). It lasts max(memory time, compute time): memory
  time streams the weights once and the batch's KV cache (decode is bandwidth-bound),
  compute time is the tokens processed times the time per token (prefill is
  compute-bound). Step time is thus a function of the batch's tokens per
  accelerator; the parameters come from datasheets and a published sweep
  (`accelerators.json`), never from the deployment's declared capacity.
- Prefill comes before decode: within a step of `dt` seconds a replica first works through
  its admitted prompts (mixed with decode iterations of the running sequences), then decodes.
  A prompt's first token comes when its prefill ends (TTFT); later tokens one iteration
  apart (ITL: the request's mean time per output token after the first).

The model is fluid within a step (iterations of one length per phase) and vectorised across
replicas and in-flight requests: a step is a few dozen numpy calls whatever the load.
Requests on a replica that goes away (scale-down, spot loss) are sent again by the client:
they keep their arrival time and start over on another replica. A request still waiting for
a batch `timeout_s` (600 s) after it arrived is given up: it leaves at infinite latency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Router = Literal["least", "round-robin"]
# Clients give up on a request not yet in a batch after this long (s): it counts as late,
# and a replay of an overloaded deployment keeps a bounded queue.
TIMEOUT_S = 600.0
ROUTERS: tuple[Router, ...] = ("least", "round-robin")
# Rows of the in-flight request table: arrival (s), input and output tokens, prompt tokens
# left to prefill, output tokens generated, TTFT (s; NaN until the first token).
_ARR, _INP, _OUT, _PRE, _GEN, _TTFT = range(6)
_FIELDS = 6


@dataclass(frozen=True)
class Hardware:
    """One replica's serving parameters (seconds and tokens).

    `weight_read_s`: streaming the weights once, the floor of every iteration; `kv_read_s`:
    reading one context token's KV cache; `compute_s`: the forward pass of one token;
    `kv_tokens`: KV-cache capacity; `max_seqs` and `chunk_tokens`: the engine's batch limits.
    """

    name: str
    weight_read_s: float
    kv_read_s: float
    compute_s: float
    kv_tokens: int
    max_seqs: int
    chunk_tokens: int

    def slower(self, speed: float) -> Hardware:
        """The same replica serving at `speed` x these rates (a truth unlike the datasheet)."""
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        return replace(
            self,
            weight_read_s=self.weight_read_s / speed,
            kv_read_s=self.kv_read_s / speed,
            compute_s=self.compute_s / speed,
        )

    def decode_iteration_s(self, batch: float, context_tokens: float) -> float:
        """Seconds of one decode iteration of `batch` sequences holding `context_tokens`."""
        memory = self.weight_read_s + self.kv_read_s * context_tokens
        return max(memory, self.compute_s * batch)


def hardware(params: dict[str, Any], accelerator: str, count: int = 1) -> Hardware:
    """A replica of `count` accelerators of type `accelerator` (tensor parallel: bandwidth,
    FLOPs and memory add up) from the parsed `accelerators.json`; a clear error if unknown."""
    known = params["accelerators"]
    if accelerator not in known:
        raise ValueError(
            f"accelerator {accelerator!r} has no serving parameters (have: "
            f"{', '.join(sorted(known))}); add its datasheet figures to sim/accelerators.json"
        )
    hw, model, engine = known[accelerator], params["model"], params["engine"]
    bandwidth = float(hw["bandwidth_bytes_per_s"]) * count * float(engine["bandwidth_efficiency"])
    flops = float(hw["bf16_flops"]) * count * float(engine["compute_efficiency"])
    memory = float(hw["memory_bytes"]) * count * float(engine["gpu_memory_utilization"])
    free = memory - float(model["weight_bytes"]) - float(engine["reserved_bytes"])
    kv_tokens = int(free // float(model["kv_bytes_per_token"]))
    if kv_tokens <= 0:
        raise ValueError(f"{accelerator} x{count}: the model's weights leave no KV cache")
    return Hardware(
        name=accelerator,
        weight_read_s=float(model["weight_bytes"]) / bandwidth,
        kv_read_s=float(model["kv_bytes_per_token"]) / bandwidth,
        compute_s=float(model["flops_per_token"]) / flops,
        kv_tokens=kv_tokens,
        max_seqs=int(engine["max_num_seqs"]),
        chunk_tokens=int(engine["max_num_batched_tokens"]),
    )


@dataclass(frozen=True)
class Arrivals:
    """Requests arriving in one step: arrival times (s, sorted) and token counts."""

    time_s: FloatArray
    input_tokens: FloatArray
    output_tokens: FloatArray


@dataclass(frozen=True)
class Finished:
    """Requests completed in one step: arrival time, TTFT, mean ITL and end-to-end (s)."""

    arrival_s: FloatArray
    ttft_s: FloatArray
    itl_s: FloatArray
    e2e_s: FloatArray


@dataclass(frozen=True)
class StepStats:
    """One step of the serving model: what finished, what is in the system, who was busy.

    `in_system`: requests waiting or running at the end of the step; `running`: of them,
    admitted to a batch; `busy`: per replica slot, the share of the step it had work;
    `slot`, `input_tokens`, `output_tokens`: per finished request, the replica slot that
    served it (-1: never placed) and its tokens.
    """

    finished: Finished
    in_system: int
    running: int
    busy: FloatArray
    slot: IntArray
    input_tokens: FloatArray
    output_tokens: FloatArray


_FINISHED = ("arrival_s", "ttft_s", "itl_s", "e2e_s")
_NONE = np.zeros(0)
_NOBODY = (Finished(_NONE, _NONE, _NONE, _NONE), np.zeros(0, dtype=np.int64), _NONE, _NONE)


def _group_starts(groups: IntArray) -> NDArray[np.bool_]:
    """True where a run of equal, sorted group ids begins."""
    first = np.empty(groups.size, dtype=bool)
    first[:1] = True
    np.not_equal(groups[1:], groups[:-1], out=first[1:])
    return first


def _group_cumsum(
    values: FloatArray, groups: IntArray, starts: NDArray[np.bool_] | None = None
) -> FloatArray:
    """Inclusive running sums of non-negative `values` restarting at each group (sorted);
    `starts`: `_group_starts(groups)` if already at hand."""
    total = values.cumsum()
    first = _group_starts(groups) if starts is None else starts
    base = np.where(first, total - values, 0.0)
    return np.asarray(total - np.maximum.accumulate(base), dtype=np.float64)


def _group_runmax(
    values: FloatArray, groups: IntArray, starts: NDArray[np.bool_] | None = None
) -> FloatArray:
    """Running maximum of `values` restarting at each group (groups sorted); `starts` as
    for `_group_cumsum`."""
    if values.size == 0:
        return values
    rank = (_group_starts(groups) if starts is None else starts).cumsum() - 1
    span = 2.0 * (float(np.abs(values).max()) + 1.0)
    return np.asarray(np.maximum.accumulate(values + rank * span) - rank * span, np.float64)


def route(outstanding: IntArray, count: int, router: Router, turn: int) -> IntArray:
    """Replica index (into `outstanding`) for each of `count` requests in arrival order.

    `least`: each goes to the replica with the fewest outstanding requests at that moment
    (ties to the lowest index), the ones before it counted; `round-robin`: replicas in turn
    from `turn`.
    """
    n = outstanding.size
    if count == 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    if router == "round-robin":
        return np.asarray((turn + np.arange(count)) % n, dtype=np.int64)
    top = int(outstanding.min()) + count
    room = np.maximum(0, top - outstanding)
    reps = np.repeat(np.arange(n), room)
    levels = np.repeat(outstanding, room) + (
        np.arange(reps.size) - np.repeat(np.cumsum(room) - room, room)
    )
    order = np.lexsort((reps, levels))[:count]
    return np.asarray(reps[order], dtype=np.int64)


class Serving:
    """Requests in flight over a changing set of replicas, advanced one step at a time.

    `slots` grow as replicas appear; `set_ready(counts)` makes `counts[p]` replicas of pool
    p ready (newest removed first, their requests sent again) and `step(t, arrivals)` serves
    step t.
    """

    def __init__(
        self,
        hardware: list[Hardware],
        dt: float,
        router: Router = "least",
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        if router not in ROUTERS:
            raise ValueError(f"router must be one of {', '.join(ROUTERS)}, got {router!r}")
        self.pools, self.dt, self.router, self.timeout_s = hardware, dt, router, timeout_s
        self.turn = 0
        self.alive: list[list[int]] = [[] for _ in hardware]  # slot ids per pool, oldest first
        self.slot_pool: list[int] = []
        self.free: list[int] = []
        self._arrays(0)
        # Requests in flight, one column each (rows _ARR.._TTFT), in arrival order, in
        # buffers that grow by doubling: a step appends, gathers and compacts a few arrays
        # rather than one per field.
        self._buf = np.zeros((_FIELDS, 256))
        self._rep_buf = np.full(256, -1, dtype=np.int64)
        self._adm_buf = np.zeros(256, dtype=bool)
        self._count = 0
        self._views()

    def _views(self) -> None:
        """Point the in-flight views at the first `_count` columns of the buffers."""
        n = self._count
        self._q, self._rep, self._adm = self._buf[:, :n], self._rep_buf[:n], self._adm_buf[:n]

    def _arrays(self, n: int) -> None:
        """Per-slot parameter arrays for `n` slots (rebuilt when slots change)."""
        hw = [self.pools[p] for p in self.slot_pool[:n]]
        self.w = np.array([h.weight_read_s for h in hw])
        self.kvr = np.array([h.kv_read_s for h in hw])
        self.k = np.array([h.compute_s for h in hw])
        self.kv = np.array([h.kv_tokens for h in hw], dtype=np.float64)
        self.seqs = np.array([h.max_seqs for h in hw], dtype=np.float64)
        self.chunk = np.array([h.chunk_tokens for h in hw], dtype=np.float64)
        self.up = np.zeros(n, dtype=bool)
        for slots in self.alive:
            self.up[slots] = True
        self.ups = self.up.nonzero()[0]

    def set_ready(self, counts: list[int] | IntArray) -> None:
        """Make `counts[p]` replicas of each pool ready; requests on removed ones start over."""
        gone: list[int] = []
        added: list[int] = []
        for p, want in enumerate(counts):
            slots = self.alive[p]
            gone += slots[int(want) :][::-1]
            added += [p] * max(0, int(want) - len(slots))
        self.reconfigure(gone, added)

    def reconfigure(self, gone: list[int], added: list[int]) -> list[int]:
        """Remove the replicas in slots `gone` (their requests start over) and add one ready
        replica of each pool in `added`; returns the new replicas' slots, in that order."""
        for slot in gone:
            self.alive[self.slot_pool[slot]].remove(slot)
        new: list[int] = []
        for p in added:
            if self.free:
                slot = self.free.pop()
                self.slot_pool[slot] = p
            else:
                slot = len(self.slot_pool)
                self.slot_pool.append(p)
            self.alive[p].append(slot)
            new.append(slot)
        if gone:
            self.free.extend(gone)
            hit = np.isin(self._rep, gone)
            self._rep[hit] = -1
            self._adm[hit] = False
            q = self._q
            q[_PRE, hit] = q[_INP, hit]
            q[_GEN, hit] = 0.0
            q[_TTFT, hit] = np.nan
        if gone or added:
            self._arrays(len(self.slot_pool))
        return new

    def per_slot(self) -> tuple[IntArray, IntArray, FloatArray]:
        """Per replica slot now: requests running (admitted to its batch), requests waiting
        at it, and the share of its KV cache reserved (0 for a slot with no replica)."""
        size = len(self.slot_pool)
        placed = self._rep >= 0
        reps, adm = self._rep[placed], self._adm[placed]
        running = np.bincount(reps[adm], minlength=size)
        waiting = np.bincount(reps[~adm], minlength=size)
        reserve = (self._q[_INP] + self._q[_OUT])[placed]
        used = np.bincount(reps[adm], reserve[adm], minlength=size)
        kv = np.where(self.up, used / np.maximum(self.kv, 1.0), 0.0) if size else used
        return running.astype(np.int64), waiting.astype(np.int64), np.asarray(kv, np.float64)

    @property
    def in_system(self) -> int:
        """Requests waiting or running now."""
        return self._count

    def _append(self, new: Arrivals) -> None:
        n = new.time_s.size
        if n == 0:
            return
        lo, hi = self._count, self._count + n
        if hi > self._rep_buf.size:
            size = max(hi, 2 * self._rep_buf.size)
            buf = np.zeros((_FIELDS, size))
            buf[:, :lo] = self._q
            rep = np.full(size, -1, dtype=np.int64)
            rep[:lo] = self._rep
            adm = np.zeros(size, dtype=bool)
            adm[:lo] = self._adm
            self._buf, self._rep_buf, self._adm_buf = buf, rep, adm
        b = self._buf
        b[_ARR, lo:hi] = new.time_s
        b[_INP, lo:hi] = new.input_tokens
        b[_OUT, lo:hi] = np.maximum(1.0, new.output_tokens)
        b[_PRE, lo:hi] = new.input_tokens
        b[_GEN, lo:hi] = 0.0
        b[_TTFT, lo:hi] = np.nan
        self._rep_buf[lo:hi] = -1
        self._adm_buf[lo:hi] = False
        self._count = hi
        self._views()

    def _compact(self, keep: NDArray[np.bool_]) -> None:
        """Keep the in-flight requests where `keep`, in order."""
        idx = keep.nonzero()[0]
        n = idx.size
        self._buf[:, :n] = self._q[:, idx]
        self._rep_buf[:n] = self._rep[idx]
        self._adm_buf[:n] = self._adm[idx]
        self._count = n
        self._views()

    def _route(self) -> None:
        waiting = (self._rep < 0).nonzero()[0]
        ups = self.ups
        if waiting.size == 0 or ups.size == 0:
            return
        counts = np.bincount(self._rep[self._rep >= 0], minlength=self.up.size)[ups]
        pick = route(counts.astype(np.int64), waiting.size, self.router, self.turn)
        self.turn = (self.turn + waiting.size) % ups.size
        self._rep[waiting] = ups[pick]

    def _admit(self, order: IntArray, reps: IntArray) -> None:
        """First come, first served per replica while the KV cache and `max_seqs` allow.

        `order`: the placed requests sorted by replica (`reps`), FIFO within each. Only the
        first `max_seqs - running` waiting at a replica can be admitted, so the KV-cache sums
        run over those candidates alone (token counts are whole: the sums are exact).
        """
        q, adm = self._q, self._adm[order]
        size = self.up.size
        tokens = q[_INP, order] + q[_OUT, order]
        ran_reps = reps[adm]
        used = np.bincount(ran_reps, tokens[adm], minlength=size)
        running = np.bincount(ran_reps, minlength=size).astype(np.float64)
        waits = ~adm
        wait, wait_reps = order[waits], reps[waits]
        pos = np.arange(wait.size)
        rank = pos - np.maximum.accumulate(np.where(_group_starts(wait_reps), pos, 0))
        cand = rank < (self.seqs - running)[wait_reps]
        g = wait_reps[cand]
        fits = _group_cumsum(tokens[waits][cand], g) <= (self.kv - used)[g]
        self._adm[wait[cand][fits]] = True

    def _give_up(self, t0: float) -> tuple[Finished, IntArray, FloatArray, FloatArray] | None:
        """Requests still waiting for a batch `timeout_s` after they arrived: the client gives
        up; they leave as finished at infinite latency (late by any threshold). With the slot
        each waited at (-1: none) and their input and output tokens; None if there are none."""
        q = self._q
        # Arrival order is kept (appended in order, compacted in order): none is old enough
        # unless the first is.
        if not self._count or t0 - q[_ARR, 0] <= self.timeout_s:
            return None
        old = ~self._adm & (t0 - q[_ARR] > self.timeout_s)
        if not old.any():
            return None
        inf = np.full(int(old.sum()), np.inf)
        gone = Finished(q[_ARR, old], inf, inf, inf)
        slots, inp, out = self._rep[old], q[_INP, old], q[_OUT, old]
        self._compact(~old)
        return gone, slots, inp, out

    def step(self, t: int, new: Arrivals) -> StepStats:
        """Serve step t (from t x dt to (t + 1) x dt) with `new` arriving in it."""
        dt, t0, size = self.dt, t * self.dt, self.up.size
        gave_up = self._give_up(t0)
        self._append(new)
        self._route()
        placed = (self._rep >= 0).nonzero()[0]
        if placed.size == 0:
            gone, gone_slot, gone_inp, gone_out = gave_up or _NOBODY
            return StepStats(gone, self.in_system, 0, np.zeros(size), gone_slot, gone_inp, gone_out)
        # Stable by replica (FIFO within each): 16-bit keys sort in linear time (radix).
        keys = self._rep[placed]
        order = placed[np.argsort(keys.astype(np.int16) if size < 2**15 else keys, kind="stable")]
        self._admit(order, self._rep[order])
        # Only admitted requests are served; the rest wait unchanged, so the step works on
        # the running batch alone however long the queues grow.
        order = order[self._adm[order]]
        reps = self._rep[order]
        q = self._q
        arr, inp, out, pre, gen, ttft_was = q[:, order]
        decoding = pre <= 0
        prefilling = ~decoding
        batch = np.bincount(reps[decoding], minlength=size).astype(np.float64)
        context = np.bincount(reps, inp + gen, minlength=size)
        memory = self.w + self.kvr * context
        chunk = np.maximum(1.0, self.chunk - batch)
        # Phase 1: iterations carrying every running sequence's token and a prompt chunk,
        # until the admitted prompts are prefilled, in order; a prompt starts no earlier than
        # it arrives (a max-plus recursion over each replica's queue).
        it1 = np.maximum(memory, self.k * (batch + chunk))
        pi = prefilling.nonzero()[0]
        g = reps[pi]
        per_token = (it1 / chunk)[g]
        starts = _group_starts(g)
        work = pre[pi]
        cum = _group_cumsum(work, g, starts)
        arrive = np.maximum(arr[pi] - t0, 0.0)
        done_at = cum * per_token + _group_runmax(arrive - (cum - work) * per_token, g, starts)
        began = done_at - work * per_token
        processed = np.minimum(np.maximum((dt - began) / per_token, 0.0), work)
        finish_pre = np.zeros(order.size, dtype=bool)
        finish_pre[pi] = done_at <= dt
        t1 = np.minimum(dt, np.bincount(g, processed * per_token, minlength=size))[reps]
        left = pre.copy()
        left[pi] = work - processed
        start = np.zeros(order.size)
        start[pi] = np.minimum(done_at, dt)
        # Phase 2: decode-only iterations of everything prefilled.
        batch2 = batch + np.bincount(reps[finish_pre], minlength=size)
        # Positive (the weights' read) everywhere; read only at replicas decoding something.
        it2 = np.maximum(memory, self.k * batch2)
        active = decoding | finish_pre
        gen_from = np.where(finish_pre, 1.0, gen)
        rem = out - gen_from
        it1_r, it2_r = it1[reps], it2[reps]
        in1 = np.maximum(0.0, t1 - start) / it1_r
        late = np.maximum(t1, start)
        in2 = np.maximum(0.0, dt - late) / it2_r
        end1 = start + rem * it1_r
        end2 = late + np.maximum(0.0, rem - in1) * it2_r
        end = np.where(rem <= in1, end1, end2)
        done = active & (end <= dt)
        new_gen = gen_from + np.where(active, in1 + in2, 0.0)
        # Write back, then drop what finished.
        ttft = np.where(finish_pre, t0 + start - arr, ttft_was)
        q[_PRE, order] = np.where(finish_pre, 0.0, left)
        q[_GEN, order] = np.minimum(new_gen, out)
        q[_TTFT, order] = ttft
        e2e = t0 + end[done] - arr[done]
        ttft_fin = np.minimum(ttft[done], e2e)
        out_fin = out[done]
        itl = np.where(out_fin > 1, (e2e - ttft_fin) / np.maximum(1.0, out_fin - 1.0), 0.0)
        busy = np.zeros(size)
        busy[reps] = 1.0
        served: tuple[NDArray[Any], ...] = (
            arr[done],
            ttft_fin,
            itl,
            e2e,
            reps[done],
            inp[done],
            out_fin,
        )
        if gave_up is not None:
            gone, gone_slot, gone_inp, gone_out = gave_up
            earlier = (*(getattr(gone, k) for k in _FINISHED), gone_slot, gone_inp, gone_out)
            served = tuple(np.concatenate(pair) for pair in zip(earlier, served, strict=True))
        keep = np.empty(self._count, dtype=bool)
        keep.fill(True)
        keep[order[done]] = False
        self._compact(keep)
        running = int(self._adm.sum())
        return StepStats(Finished(*served[:4]), self.in_system, running, busy, *served[4:])


def steady_state(
    hw: Hardware, concurrency: int, input_tokens: float, output_tokens: float
) -> tuple[float, float]:
    """Closed-loop throughput (output tokens/s) and TPOT (s) of `concurrency` clients sending
    fixed-size requests back to back, from the same iteration model (a benchmark's setup).

    Per request cycle every client's prompt is prefilled once, in iterations of `chunk`
    prompt tokens that also advance the other running sequences by one token each.
    """
    batch = float(concurrency)
    context = batch * (input_tokens + output_tokens / 2)
    memory = hw.weight_read_s + hw.kv_read_s * context
    decode = max(memory, hw.compute_s * batch)
    chunk = max(1.0, hw.chunk_tokens - batch)
    prefill = max(memory, hw.compute_s * (batch + chunk))
    iterations = batch * input_tokens / chunk  # prompt iterations per cycle
    carried = iterations * (batch - 1) / batch  # of them, those that decode a given request
    cycle = iterations * prefill + max(0.0, output_tokens - 1 - carried) * decode
    return batch * output_tokens / cycle, (cycle - input_tokens / chunk * prefill) / (
        output_tokens - 1
    )


def kv_bound(hw: Hardware, input_tokens: float, output_tokens: float) -> int:
    """Most requests of this size one replica batches at once (KV cache, then max_seqs)."""
    return int(min(hw.max_seqs, math.floor(hw.kv_tokens / (input_tokens + output_tokens))))


def idle_prefill_s(hw: Hardware, input_tokens: float) -> float:
    """Seconds to prefill one prompt of `input_tokens` on an idle replica (its TTFT there):
    iterations of one chunk each, as `Serving.step` runs them."""
    chunk = float(hw.chunk_tokens)
    iteration = max(hw.weight_read_s + hw.kv_read_s * input_tokens / 2, hw.compute_s * chunk)
    return input_tokens / chunk * iteration
