"""A replay's per-step record when requests are served one by one (`sim.batching`).

The twin's ready replicas drive a `batching.Serving` step by step as the replay records
them; each request's arrival, TTFT, mean inter-token latency and end-to-end latency are kept
in completion order, so window reads (what a policy's metrics see) and the run's totals and
percentiles are exact over requests. Requests carry the trace's token counts where it has
them (both columns full); otherwise they are drawn (seeded) from `TokenDraw`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from costscaler.api import InferenceDeployment
from costscaler.sim.batching import (
    Arrivals,
    Finished,
    Hardware,
    Router,
    Serving,
    hardware,
    idle_prefill_s,
    kv_bound,
    steady_state,
)
from costscaler.sim.policy import VIEW_EDGES_S
from costscaler.sim.pools import PoolModel
from costscaler.sim.traces import Trace

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class TokenDraw:
    """Token counts for requests a trace gives none for: log-normal, clipped to the context.

    Output: mean `mean_output` (the deployment's `workload.meanOutputTokens`, else 250, the
    example's chat figure). Input: median `median_input` 1,020 tokens, the conversation
    prompts' median reported for the Azure LLM inference traces (Patel et al., Splitwise,
    ISCA 2024). Both with log-sigma `sigma` 1.0 (long right tails) and input + output within
    `max_context` tokens (the example's `--max-model-len`).
    """

    mean_output: float = 250.0
    median_input: float = 1020.0
    sigma: float = 1.0
    max_context: int = 8192

    def means(self) -> tuple[float, float]:
        """Mean input and output tokens of the draws (log-normal means, before clipping)."""
        return self.median_input * math.exp(self.sigma**2 / 2), self.mean_output

    def draw(self, rng: np.random.Generator, n: int) -> tuple[FloatArray, FloatArray]:
        """Input and output tokens of `n` requests."""
        s = self.sigma
        out = np.ceil(rng.lognormal(math.log(self.mean_output) - s * s / 2, s, n))
        out = np.clip(out, 1, self.max_context // 2)
        inp = np.ceil(rng.lognormal(math.log(self.median_input), s, n))
        return np.clip(inp, 1, self.max_context - out), out


def requests(trace: Trace, tokens: TokenDraw, seed: int) -> tuple[FloatArray, ...]:
    """Every request's arrival time (s, sorted), input and output tokens: the trace's own
    where it lists them, else whole requests spread uniformly (seeded) over each step with
    `tokens` drawn for them."""
    if trace.requests is not None:
        r = trace.requests
        return r.time_s, r.input_tokens, r.output_tokens
    rng = np.random.default_rng(np.random.SeedSequence([seed, 29]))
    # whole requests: fractional arrivals (a scaled fluid trace) carry over
    cum = np.floor(np.concatenate(([0.0], np.cumsum(trace.arrivals))) + 1e-9)
    counts = np.diff(cum).astype(np.int64)
    step = np.repeat(np.arange(trace.steps), counts)
    t_s = np.sort((step + rng.random(step.size)) * trace.dt)
    inp, out = tokens.draw(rng, step.size)
    return t_s, inp, out


@dataclass(frozen=True)
class ServingSetup:
    """How requests are served in a replay: hardware per pool, router, token draws, the
    latency thresholds (TTFT and ITL only when the SLO declares them)."""

    hardware: tuple[Hardware, ...]
    router: Router = "least"
    tokens: TokenDraw = TokenDraw()
    ttft_s: float | None = None
    itl_s: float | None = None

    def met(self, done: Finished, threshold_s: float) -> NDArray[np.bool_]:
        """Which requests meet every objective the SLO states: end-to-end latency within
        `threshold_s`, and TTFT and mean ITL within theirs when declared (the API's rule)."""
        ok = done.e2e_s <= threshold_s
        if self.ttft_s is not None:
            ok &= done.ttft_s <= self.ttft_s
        if self.itl_s is not None:
            ok &= done.itl_s <= self.itl_s
        return np.asarray(ok, dtype=np.bool_)


class ServingRecord:
    """The run's per-step record with requests served one by one; same reads as `Record`."""

    def __init__(
        self,
        trace: Trace,
        pools: list[PoolModel],
        setup: ServingSetup,
        threshold_s: float,
        seed: int,
    ) -> None:
        n, dt, zero = trace.steps, trace.dt, np.zeros(1)
        if len(setup.hardware) != len(pools):
            raise ValueError(f"{len(setup.hardware)} hardware entries for {len(pools)} pools")
        self.dt, self.threshold_s, self.setup = dt, threshold_s, setup
        self.arrived = np.concatenate((zero, np.cumsum(trace.arrivals)))
        tokens = trace.output_tokens
        self.cum_tokens = None if tokens is None else np.concatenate((zero, np.cumsum(tokens)))
        self.ready = np.zeros((len(pools), n), dtype=np.int64)
        self.held = np.zeros((len(pools), n), dtype=np.int64)
        self.busy = np.zeros((len(pools), n))
        self.cum_met = np.zeros(n + 1)
        self.cum_done = np.zeros(n + 1, dtype=np.int64)
        self.in_flight = np.zeros(n)
        self.serving = Serving(list(setup.hardware), dt, setup.router)
        self.t_s, self.inp, self.out = requests(trace, setup.tokens, seed)
        self.first = np.searchsorted(self.t_s, np.arange(trace.steps + 1) * trace.dt)
        self._cum_inp = np.concatenate((zero, np.cumsum(self.inp)))
        self._done: list[Finished] = []

    def store(self, t: int, ready: IntArray, held: IntArray) -> None:
        """Record replicas for steps [t, t + width) and serve those steps."""
        stop = t + ready.shape[1]
        self.ready[:, t:stop], self.held[:, t:stop] = ready, held
        serving, pool_of = self.serving, None
        for i in range(ready.shape[1]):
            step = t + i
            if i == 0 or (ready[:, i] != ready[:, i - 1]).any():
                serving.set_ready(ready[:, i])
                pool_of = np.asarray(serving.slot_pool, dtype=np.int64)
            lo, hi = self.first[step], self.first[step + 1]
            stats = serving.step(step, Arrivals(self.t_s[lo:hi], self.inp[lo:hi], self.out[lo:hi]))
            fin = stats.finished
            self._done.append(fin)
            met = self.setup.met(fin, self.threshold_s)
            self.cum_met[step + 1] = self.cum_met[step] + float(met.sum())
            self.cum_done[step + 1] = self.cum_done[step] + fin.e2e_s.size
            self.in_flight[step] = stats.in_system
            if pool_of is not None and pool_of.size:
                self.busy[:, step] = np.bincount(pool_of, stats.busy, minlength=self.busy.shape[0])

    def sync(self, upto: int) -> None:
        """Nothing to do: steps are served as they are recorded (the same seam as `Record`)."""

    def completed(self, lo: int, hi: int) -> float:
        """Requests completed in steps [lo, hi)."""
        return float(self.cum_done[hi] - self.cum_done[lo])

    def in_system(self, lo: int, hi: int) -> float:
        """Mean requests waiting or running at the end of steps [lo, hi)."""
        return float(self.in_flight[lo:hi].mean()) if hi > lo else 0.0

    def prompt_tokens(self, lo: int, hi: int) -> float:
        """Input tokens of the requests that arrived in steps [lo, hi)."""
        return float(self._cum_inp[self.first[hi]] - self._cum_inp[self.first[lo]])

    def token_latency(
        self, kind: Literal["ttft", "itl"], quantile: float, lo: int, hi: int
    ) -> float:
        """TTFT or mean ITL (s) at `quantile` of requests completed in steps [lo, hi); NaN
        when none was. Requests given up never reach the server's histograms: left out."""
        parts = [f.ttft_s if kind == "ttft" else f.itl_s for f in self._done[lo:hi]]
        values = np.concatenate(parts) if parts else np.zeros(0)
        values = values[np.isfinite(values)]
        return float(np.quantile(values, quantile)) if values.size else math.nan

    def histogram(self, lo: int, hi: int, edges_s: ArrayLike | None = None) -> FloatArray:
        """Cumulative end-to-end latency counts at `edges_s` of requests completed in steps
        [lo, hi) (default: the view's edges)."""
        edges = np.asarray(VIEW_EDGES_S if edges_s is None else edges_s, dtype=np.float64)
        parts = [f.e2e_s for f in self._done[lo:hi]]
        e2e = np.concatenate(parts) if parts else np.zeros(0)
        return np.searchsorted(np.sort(e2e), edges, side="right").astype(np.float64)

    def finished(self, burn: int) -> Finished:
        """Every request completed from step `burn` on that arrived from then on."""
        parts = self._done[burn:]
        if not parts:
            return Finished(*(np.zeros(0) for _ in range(4)))
        fields = [
            np.concatenate([getattr(f, k) for f in parts]) for k in Finished.__dataclass_fields__
        ]
        done = Finished(*fields)
        keep = done.arrival_s >= burn * self.dt
        return Finished(*(getattr(done, k)[keep] for k in Finished.__dataclass_fields__))


def batching_profiles(
    deployment: InferenceDeployment,
    tokens: TokenDraw,
    params: dict[str, Any],
    means: tuple[float, float] | None = None,
) -> tuple[InferenceDeployment, list[str]]:
    """The deployment with each capacity profile declaring what the batching model serves
    for requests of `tokens`' mean size (or `means`, mean input and output tokens: a
    trace's own), and notes on what changed.

    Per profile on an accelerator `params` (the parsed accelerators.json) describes:
    requests/s and decode tokens/s are the closed-loop throughput at the batch the KV cache
    holds (`kv_bound`, `steady_state`), the base latency one request's end to end on an idle
    replica, prefill tokens/s the compute rate, and the KV bound the concurrent sequences.
    A profile whose idle latency (end to end, TTFT or ITL) reaches the SLO's threshold for
    it is dropped (that accelerator cannot meet it); others are left as declared. A replay
    that declares more than its replicas serve builds queues to the client timeout, which is
    neither what a calibrated user runs nor cheap to simulate.
    """
    inp, out = tokens.means() if means is None else means
    slo = deployment.spec.slo
    threshold = slo.latency.threshold_seconds
    kept, notes = [], []
    for prof in deployment.spec.workload.capacity:
        if prof.accelerator not in params["accelerators"]:
            kept.append(prof)
            continue
        hw = hardware(params, prof.accelerator, prof.accelerators_per_replica)
        batch = max(1, kv_bound(hw, inp, out))
        tokens_per_s, _ = steady_state(hw, batch, inp, out)
        idle_tokens_per_s, idle_itl = steady_state(hw, 1, inp, out)
        base = out / idle_tokens_per_s
        rps = tokens_per_s / out
        idle_ttft = idle_prefill_s(hw, inp)
        missed = [
            f"one request takes {took:.2f} s idle >= the {limit:g} s {what}"
            for what, took, limit in (
                ("threshold", base, threshold),
                ("TTFT threshold", idle_ttft, slo.ttft.threshold_seconds if slo.ttft else None),
                ("ITL threshold", idle_itl, slo.itl.threshold_seconds if slo.itl else None),
            )
            if limit is not None and took >= limit
        ]
        if missed:
            notes.append(f"{prof.accelerator}: dropped, " + "; ".join(missed))
            continue
        notes.append(
            f"{prof.accelerator}: {prof.requests_per_second:g} -> {rps:.2f} req/s, base "
            f"latency {prof.base_latency_seconds} -> {base:.1f} s"
        )
        kept.append(
            prof.model_copy(
                update={
                    "requests_per_second": rps,
                    "tokens_per_second": tokens_per_s,
                    "base_latency_seconds": base,
                    "prefill_tokens_per_second": 1.0 / hw.compute_s,
                    "decode_tokens_per_second": tokens_per_s,
                    "max_concurrent_sequences": batch,
                }
            )
        )
    if not kept:
        raise ValueError(
            "spec.workload.capacity: no accelerator meets spec.slo.latency.thresholdSeconds "
            f"({threshold:g} s) for {inp:.0f}-token prompts and {out:.0f}-token answers"
        )
    data = deployment.model_dump(by_alias=True, exclude_none=True)
    data["spec"]["workload"]["capacity"] = [
        p.model_dump(by_alias=True, exclude_none=True) for p in kept
    ]
    return InferenceDeployment.model_validate(data), notes


def token_slo(deployment: InferenceDeployment, longest_output: int) -> InferenceDeployment:
    """The deployment with its end-to-end threshold set to what its TTFT and ITL objectives
    allow the longest answer: TTFT + ITL x (`longest_output` - 1) seconds.

    An LLM service states its objectives per token (time to first token, time per output
    token): a fixed end-to-end threshold would fail every long answer however idle the
    replica (at 0.035 s a token an A10G takes 8.8 s for 250 tokens, 28 s for 790). With the
    end-to-end objective implied by the token objectives, a request meets the SLO when its
    TTFT and ITL do, and the API's end-to-end field (always required) adds nothing.
    """
    slo = deployment.spec.slo
    if slo.ttft is None or slo.itl is None:
        raise ValueError(
            "spec.slo: a token SLO needs both spec.slo.ttft and spec.slo.itl; declare them "
            "(e.g. ttft {quantile: 0.95, thresholdSeconds: 2}, itl {quantile: 0.95, "
            "thresholdSeconds: 0.1})"
        )
    if longest_output < 1:
        raise ValueError(f"longest_output must be >= 1 token, got {longest_output}")
    threshold = slo.ttft.threshold_seconds + slo.itl.threshold_seconds * (longest_output - 1)
    data = deployment.model_dump(by_alias=True, exclude_none=True)
    data["spec"]["slo"]["latency"]["thresholdSeconds"] = threshold
    return InferenceDeployment.model_validate(data)
