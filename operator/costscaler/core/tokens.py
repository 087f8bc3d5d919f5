"""Tokens in the engine (issue 17): the request mix, capacity at it, and the TTFT/ITL objectives.

Units: tokens, tokens/s, req/s, seconds; shares dimensionless.

Demand in tokens. The forecast stays on requests/s and the engine multiplies it by the mix:
the mean prompt (input) and output tokens per request, the ratio of the token rates to the
request rate summed over the last `MIX_WINDOW_S` of samples (`observed_mix`). Prefill demand
is then D x I tokens/s and decode demand D x O, so total plus mix is the token forecast. The
mix reacts within a sample or two: a shift to longer prompts changes it before the request
rate moves.

Capacity in tokens. A replica whose accelerator has a token profile (prefill P and decode D
tokens/s, `workload.capacity[]`) spends I / P + O / D seconds of its time on a request of the
mix, so it saturates at

    c = 1 / (I / P + O / D)  req/s                                        (`capacity`),

which replaces the declared `requestsPerSecond` while token rates are observed (the declared
figure is for the usual mix, which this one is measured instead of assumed). Pools without a
token profile, and every pool while the server reports no token rates, keep the declared
figure: a deployment without token profiles decides exactly as before. The calibrator's
correction multiplies c as it does the declared figure.

TTFT and ITL in the violating share. For each pool the engine's latency curve v(u)
(`core.latency`) becomes the largest, at each utilisation u, of the end-to-end share and the
stated token objectives' shares, each weighted by w_k = (1 - a) / (1 - q_k): the SLO's
attainment a over the objective's own quantile q_k (a p95 TTFT objective allows 5 % of
requests over its threshold, the attainment 1 - a; weighted, V <= 1 - a holds exactly when
each objective's share is within its quantile). Why the largest and not the share violating
any: all three are driven by the same queue (a request that waits for a slot is late for its
first token and end to end; a busy replica slows decode for all its batch), so the requests
that miss nest, and for nested sets the share missing any is the largest share. The largest
is also a lower bound on it whatever the dependence, and keeps the curve non-decreasing, so
`core.risk`'s bounds still hold. Pools with a token profile have the TTFT model (prefill time
I / P, a KV-cache bound of `maxConcurrentSequences` slots) and the ITL model (B* = D x the ITL
threshold, the batch the decode rate is stated at); a pool without one has the TTFT model
with its queueing wait alone (no prefill time is known) and no ITL model. Both need the
mix: while the server reports no token rates the engine decides on the end-to-end model
alone, exactly as for a deployment without token objectives (the TTFT and ITL series still
have to be there, or the engine holds: `core.validate`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from costscaler.core import latency
from costscaler.core.pools import PoolView
from costscaler.core.types import FloatArray, Observations

MIX_WINDOW_S = 120.0  # seconds of samples the request mix is measured over


@dataclass(frozen=True)
class TokenMix:
    """Mean prompt (`input_tokens`) and generated (`output_tokens`) tokens per request."""

    input_tokens: float
    output_tokens: float


@dataclass(frozen=True)
class TokenObjective:
    """A TTFT or ITL objective: `quantile` of it under `threshold_s` seconds."""

    threshold_s: float
    quantile: float


def observed_mix(obs: Observations, window_s: float = MIX_WINDOW_S) -> TokenMix | None:
    """The request mix over the last `window_s` seconds before the latest sample: summed
    prompt and generation token rates over the summed request rate, samples where all three
    are finite and non-negative only. None without both token series or without requests."""
    prompt, output = obs.prompt_token_rate, obs.generation_token_rate
    if prompt is None or output is None or obs.times.size == 0:
        return None
    recent = obs.times >= obs.times[-1] - window_s
    rate, p, o = obs.request_rate[recent], prompt[recent], output[recent]
    ok = np.isfinite(rate) & np.isfinite(p) & np.isfinite(o) & (rate >= 0) & (p >= 0) & (o >= 0)
    requests = float(rate[ok].sum())
    if not requests > 0:
        return None
    mix = TokenMix(float(p[ok].sum()) / requests, float(o[ok].sum()) / requests)
    if not (math.isfinite(mix.input_tokens) and math.isfinite(mix.output_tokens)):
        return None
    if mix.input_tokens + mix.output_tokens <= 0:
        return None
    return mix


def capacity(
    declared_rps: FloatArray,
    prefill_tps: FloatArray,
    decode_tps: FloatArray,
    mix: TokenMix | None,
) -> FloatArray:
    """Req/s one replica of each pool serves at `mix`: 1 / (I / P + O / D) for pools with a
    token profile (finite `prefill_tps` and `decode_tps`), `declared_rps` for the others
    and for all without a mix."""
    declared = np.asarray(declared_rps, dtype=np.float64)
    if mix is None:
        return declared
    has = np.isfinite(prefill_tps) & np.isfinite(decode_tps)
    with np.errstate(divide="ignore", invalid="ignore"):
        seconds = mix.input_tokens / prefill_tps + mix.output_tokens / decode_tps
        tokens = np.where(seconds > 0, 1.0 / np.where(seconds > 0, seconds, 1.0), np.inf)
    return np.asarray(np.where(has, tokens, declared), dtype=np.float64)


def weight(attainment: float, quantile: float) -> float:
    """w_k = (1 - a) / (1 - q_k): an objective's violating share in units of the SLO's
    allowance (1 when the attainment allows no misses: every miss then counts whole)."""
    allowed = 1.0 - attainment
    return 1.0 if allowed <= 0 else allowed / (1.0 - quantile)


@dataclass(frozen=True)
class TokenLatency:
    """What the TTFT and ITL models need per pool (arrays over pools) beside `RiskModel`'s.

    `prefill_s`: the mix's mean prompt's prefill time on an idle replica (I / P; 0 without a
    profile); `prefill_share`: the share of a saturated replica's time spent
    prefilling (I / P x c); `batch_at_itl`: B* (NaN: no ITL model for the pool); `kv_bound`:
    sequences a replica holds at once (inf when not stated). `ttft` and `itl`: the stated
    objectives, or None; `attainment`: the SLO's, for their weights.
    """

    prefill_s: FloatArray
    prefill_share: FloatArray
    batch_at_itl: FloatArray
    kv_bound: FloatArray
    ttft: TokenObjective | None
    itl: TokenObjective | None
    attainment: float

    def curve(
        self,
        i: int,
        rated_rps: float,
        base_s: float,
        threshold_s: float,
        quantile: float = latency.DEFAULT_QUANTILE,
    ) -> FloatArray:
        """Pool `i`'s latency curve with every stated objective (`latency.token_curve`), the
        end-to-end one held under `threshold_s` at `quantile`."""
        kv = float(self.kv_bound[i])
        # TTFT waits for a KV-cache slot; without the bound, for the end-to-end model's slots.
        slots = kv if math.isfinite(kv) else max(1.0, rated_rps * base_s)
        ttft = None
        if self.ttft is not None:
            ttft = (self.ttft.threshold_s, weight(self.attainment, self.ttft.quantile))
        itl = None
        batch = float(self.batch_at_itl[i])
        if self.itl is not None and math.isfinite(batch):
            itl = (batch, weight(self.attainment, self.itl.quantile), kv)
        return latency.token_curve(
            rated_rps,
            base_s,
            threshold_s,
            slots,
            float(self.prefill_s[i]),
            float(self.prefill_share[i]),
            ttft,
            itl,
            quantile,
        )


def token_latency(
    prefill_tps: FloatArray,
    decode_tps: FloatArray,
    kv_bound: FloatArray,
    mix: TokenMix | None,
    ttft: TokenObjective | None,
    itl: TokenObjective | None,
    attainment: float,
) -> TokenLatency | None:
    """The TTFT/ITL model for pools with these token profiles (NaN where none) at `mix`;
    None when neither objective is stated or no mix is observed (the end-to-end model
    alone, as before)."""
    if (ttft is None and itl is None) or mix is None:
        return None
    n = np.asarray(prefill_tps).size
    has = np.isfinite(prefill_tps) & np.isfinite(decode_tps)
    with np.errstate(divide="ignore", invalid="ignore"):
        pre = mix.input_tokens / prefill_tps
        total = pre + mix.output_tokens / decode_tps
        prefill_s = np.where(has, pre, 0.0)
        share = np.where(has & (total > 0), pre / np.where(total > 0, total, 1.0), 0.0)
    # A saturated replica that only prefills has no decode to slow: keep the share below 1.
    share = np.minimum(share, 1.0 - 1e-9)
    batch = np.full(n, math.nan)
    if itl is not None:
        batch = np.where(has, np.maximum(decode_tps * itl.threshold_s, 1.0), math.nan)
    return TokenLatency(
        prefill_s=np.asarray(prefill_s, dtype=np.float64),
        prefill_share=np.asarray(share, dtype=np.float64),
        batch_at_itl=np.asarray(batch, dtype=np.float64),
        kv_bound=np.asarray(kv_bound, dtype=np.float64),
        ttft=ttft,
        itl=itl,
        attainment=attainment,
    )


def slowest(
    latency_s: FloatArray,
    threshold_s: float,
    observed: Sequence[tuple[FloatArray | None, TokenObjective | None]],
) -> tuple[FloatArray, float]:
    """What the capacity calibrator reads as latency, and its threshold.

    `observed`: (series, objective) for TTFT and ITL, each series the objective's quantile
    per sample (s; None when not reported) and the objective None when not stated. With one
    stated and reported: per sample, the largest ratio of an objective's observed quantile
    to its threshold (the end-to-end latency's too), against a threshold of 1. A sample
    meets every objective exactly when it is at most 1, which is when V's curve
    (`TokenLatency.curve`: each share weighted by its quantile's allowance) has every
    objective within its quantile; NaN only where no objective was measured. Otherwise the
    end-to-end latency and its threshold, as they are.
    """
    ratios = [
        np.asarray(series, dtype=np.float64) / goal.threshold_s
        for series, goal in observed
        if series is not None and goal is not None
    ]
    if not ratios:
        return latency_s, threshold_s
    worst = np.asarray(latency_s, dtype=np.float64) / threshold_s
    for ratio in ratios:
        worst = np.fmax(worst, ratio)  # fmax: a NaN (not measured) gives way to a number
    return worst, 1.0


def profiles(pools: Sequence[PoolView]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(prefill tokens/s, decode tokens/s, KV-cache bound) per pool: NaN where a pool has no
    token profile, inf where it states no bound."""

    def num(value: float | None, missing: float) -> float:
        return missing if value is None else float(value)

    prefill = [num(p.prefill_tokens_per_second, math.nan) for p in pools]
    decode = [num(p.decode_tokens_per_second, math.nan) for p in pools]
    kv = [num(p.max_concurrent_sequences, math.inf) for p in pools]
    return np.array(prefill), np.array(decode), np.array(kv)
