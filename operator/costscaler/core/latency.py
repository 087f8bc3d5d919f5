"""Latency versus load for one replica: the share of its requests over the SLO threshold.

Model (per pool, i.e. per accelerator profile). A continuously batching model server holds
up to m requests in flight; each takes the idle latency b seconds. As a queue that is
M/M/m (Poisson arrivals, exponential service, m servers) with saturation rate mu (req/s):

    c  = rated req/s of one replica (`requestsPerSecond`, corrected by the calibrator): as
         the API defines it, the rate at which the replica still meets the latency SLO,
         i.e. its q-quantile latency (q = `slo.latency.quantile`) is the threshold L there;
    m  = max(1, mu b) concurrent slots (continuous: Erlang's formulas hold for real m);
    s  = m / mu, the service time of one request (= b whenever mu b >= 1);
    mu = the saturation rate, above c: the least mu with v_mu(c) <= 1 - q (`saturation`;
         v_mu(c) = 1 - q there, unless a single slot just faster than L already meets it
         with room). The profile states where the SLO is just met, not where the replica
         saturates; the latency slack L - b and the queue's shape place the saturation.

For per-replica arrival rate lambda (req/s) below mu a request's latency is s plus its wait
W, and P(W > t) = ErlangC(m, lambda s) exp(-(mu - lambda) t), so the share over L is

    v_mu(lambda) = ErlangC(m, lambda s) x exp(-(mu - lambda) (L - s))   for lambda < mu,
                   1 for lambda >= mu,

dimensionless, in [0, 1], non-decreasing in lambda, 1 - q at the rated rate c and 1 at mu
(ErlangC(m, m) = 1). The engine reads it at the rated utilisation u = lambda / c, from 0 up
to the headroom h = mu / c (> 1). ErlangC(m, a) = B / (1 - (a / m)(1 - B)) with Erlang B in
closed form for real m, B(m, a) = Poisson(m; a) / Q(m + 1, a), Q the regularised upper
incomplete gamma (`core.special`: 1 - P(m + 1, a), a < m).

The calibrator (`core.capacity`) moves c from observed (load, latency quantile) samples:
it finds the load at which the observed quantile crosses L, which is c by this definition,
and mu follows from the calibrated c, so the whole curve moves with it.

Assumptions: the router sends requests to the replica with the fewest outstanding, in
proportion to rated capacity, so every ready replica of a plan runs at the same rated
utilisation D / C (demand over the plan's rated capacity); a replica past saturation makes
every request late (a backlog only grows); L > b (a pool whose idle latency is already over
the threshold is rejected by the API: `workload.capacity[].baseLatencySeconds`). When the
profile states no base latency, b = `DEFAULT_BASE_SHARE` x L: half the threshold, the middle
of the slack an SLO usually leaves (the example's 6-8 s against 15 s).

`curve` tabulates v on a uniform grid of lambda / mu from 0 to 1 once per pool (it depends
on c, b, L and q only); the engine interpolates it linearly at (D / C) / h, so the model it
optimises is that piecewise linear curve, which is non-decreasing like v.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from costscaler.core.special import brentq, gammainc_series
from costscaler.core.types import FloatArray

DEFAULT_BASE_SHARE = 0.5
DEFAULT_QUANTILE = 0.95  # the API's default `slo.latency.quantile`
GRID = 1025  # utilisation points of a curve, u = 0 .. 1


def default_base_latency(threshold_s: float) -> float:
    """The idle latency (s) assumed for a profile that states none (see the module)."""
    return DEFAULT_BASE_SHARE * threshold_s


def erlang_c(m: float, a: FloatArray) -> FloatArray:
    """P(wait > 0) in M/M/m at offered load `a` (erlangs) for real m >= 1; 1 for a >= m."""
    a = np.asarray(a, dtype=np.float64)
    out = np.ones_like(a)
    ok = (a > 0) & (a < m)
    x = a[ok]
    log_pois = m * np.log(x) - x - math.lgamma(m + 1.0)
    b = np.exp(log_pois) / (1.0 - gammainc_series(m + 1.0, x))
    out[ok] = b / (1.0 - (x / m) * (1.0 - b))
    out[a <= 0] = 0.0
    return out


def violating(
    u: FloatArray, saturation_rps: float, base_s: float, threshold_s: float
) -> FloatArray:
    """v: the share of requests over `threshold_s` of an M/M/m replica that saturates at
    `saturation_rps` (mu in the module), at utilisation `u` = lambda / mu."""
    if not threshold_s > base_s > 0 or not saturation_rps > 0:
        raise ValueError(
            f"latency model needs 0 < base latency ({base_s} s) < threshold ({threshold_s} s) "
            f"and a positive saturation rate ({saturation_rps} req/s)"
        )
    u = np.asarray(u, dtype=np.float64)
    m = max(1.0, saturation_rps * base_s)
    service_s = m / saturation_rps
    if service_s >= threshold_s:  # a slot is slower than the threshold: every request misses
        return np.ones_like(u)
    slack = threshold_s - service_s
    waits = erlang_c(m, m * np.clip(u, 0.0, 1.0))
    tail = np.exp(-saturation_rps * np.clip(1.0 - u, 0.0, 1.0) * slack)
    return np.asarray(np.where(u >= 1.0, 1.0, np.minimum(waits * tail, 1.0)), dtype=np.float64)


@lru_cache(maxsize=512)
def _saturation(rated_rps: float, base_s: float, threshold_s: float, quantile: float) -> float:
    def excess(mu: float) -> float:
        return float(violating(np.array([rated_rps / mu]), mu, base_s, threshold_s)[0]) - (
            1.0 - quantile
        )

    # v_mu(c) falls from 1 at mu = c towards 0 as mu grows (with a step where a slot's
    # service time passes under L): widen the bracket to a sign change; brentq then finds
    # the least mu that meets the quantile.
    hi = 2.0 * rated_rps
    while excess(hi) > 0.0:
        hi *= 2.0
    return float(brentq(excess, rated_rps, hi, xtol=1e-12 * rated_rps, rtol=1e-12))


def saturation(rated_rps: float, base_s: float, threshold_s: float, quantile: float) -> float:
    """mu (req/s): the saturation rate of a replica whose `quantile` latency is `threshold_s`
    at its rated rate `rated_rps` (see the module); memoised per pool model."""
    if not threshold_s > base_s > 0 or not rated_rps > 0 or not 0.0 < quantile < 1.0:
        raise ValueError(
            f"latency model needs 0 < base latency ({base_s} s) < threshold ({threshold_s} s), "
            f"a positive rated rate ({rated_rps} req/s) and a quantile in (0, 1) ({quantile})"
        )
    if not math.isfinite(rated_rps * base_s * threshold_s):
        raise ValueError("latency model: rated rate, base latency and threshold must be finite")
    return _saturation(float(rated_rps), float(base_s), float(threshold_s), float(quantile))


def headroom(rated_rps: float, base_s: float, threshold_s: float, quantile: float) -> float:
    """h = mu / c: the rated utilisation at which the replica saturates (> 1)."""
    return saturation(rated_rps, base_s, threshold_s, quantile) / rated_rps


@lru_cache(maxsize=512)
def _curve(rated_rps: float, base_s: float, threshold_s: float, quantile: float) -> FloatArray:
    mu = saturation(rated_rps, base_s, threshold_s, quantile)
    out = violating(np.linspace(0.0, 1.0, GRID), mu, base_s, threshold_s)
    # Monotone by construction; the running maximum removes float noise at u ~ 0.
    out = np.maximum.accumulate(out)
    out.setflags(write=False)
    return out


def curve(
    rated_rps: float, base_s: float, threshold_s: float, quantile: float = DEFAULT_QUANTILE
) -> FloatArray:
    """v on `GRID` points of lambda / mu from 0 to 1 (read-only, memoised per pool model):
    index k is the rated utilisation k / (GRID - 1) x `headroom`."""
    saturation(rated_rps, base_s, threshold_s, quantile)  # validates
    return _curve(float(rated_rps), float(base_s), float(threshold_s), float(quantile))


# Time to first token and inter-token latency (issue 17), for pools with a token profile.
#
# A request waits for a batch slot, then its prompt prefills, then it decodes one token per
# iteration, as `sim.batching` serves it. With the mix's mean prompt of I tokens and output
# of O tokens, a replica with prefill rate P and decode rate D (tokens/s, summed over the
# batch, at the largest batch B* = D x ITL threshold that meets the ITL objective) spends
# I / P + O / D seconds of its time per request: c = 1 / (I / P + O / D) req/s saturates it
# (`core.tokens.capacity`), a share f = (I / P) c of its time prefilling.
#
# TTFT = wait for one of m slots + prefill time I / P. The wait is the M/M/m one above, with
# m the KV-cache bound (`maxConcurrentSequences`; else the end-to-end model's slots), so
#
#     v_ttft(u) = ErlangC(m, m u) x exp(-c (1 - u) (L_ttft - I / P)).
#
# ITL. Decode runs in the time prefill leaves, 1 - f u, so its load is
# rho(u) = u (1 - f) / (1 - f u), which reaches 1 at saturation: at rho the batch averages
# B* rho. Sequences in decode are taken as Poisson in number (many independent requests,
# each decoding a while), and a request's iterations run slower than the threshold when the
# batch it sees passes B*. A request sees the batch size-biased (N with probability
# n P(N = n) / E N), so the share over is P(Poisson(B* rho) >= B*) = P(B*, B* rho), the
# regularised lower incomplete gamma (`core.special.gammainc_series`), continuous in B*:
#
#     v_itl(u) = P(B*, B* rho(u))  for u < 1,  1 for u >= 1  (a backlog fills the batch).
#
# When the KV cache holds no more than B* sequences (m <= B*), the batch never passes B*
# below saturation: v_itl is 0 there. Both curves are non-decreasing in u and in [0, 1].


def ttft_violating(
    u: FloatArray, rated_rps: float, slots: float, prefill_s: float, threshold_s: float
) -> FloatArray:
    """v_ttft(u): the share of a replica's requests whose time to first token (the wait for
    one of `slots` batch slots, then `prefill_s` of prefill) passes `threshold_s`."""
    if not rated_rps > 0 or not slots >= 1 or not prefill_s >= 0 or not threshold_s > 0:
        raise ValueError(
            f"TTFT model needs a positive rated rate ({rated_rps} req/s), slots >= 1 "
            f"({slots}), prefill time >= 0 ({prefill_s} s) and a positive threshold "
            f"({threshold_s} s)"
        )
    u = np.asarray(u, dtype=np.float64)
    if prefill_s >= threshold_s:  # the mean prompt alone takes longer than the threshold
        return np.ones_like(u)
    waits = erlang_c(slots, slots * np.clip(u, 0.0, 1.0))
    tail = np.exp(-rated_rps * np.clip(1.0 - u, 0.0, 1.0) * (threshold_s - prefill_s))
    return np.asarray(np.where(u >= 1.0, 1.0, np.minimum(waits * tail, 1.0)), dtype=np.float64)


def itl_violating(
    u: FloatArray, prefill_share: float, batch_at_itl: float, slots: float = math.inf
) -> FloatArray:
    """v_itl(u): the share of a replica's requests decoding at a batch past `batch_at_itl`
    (B*, the largest batch that meets the ITL threshold), with `prefill_share` (f) of a
    saturated replica's time spent prefilling and at most `slots` sequences at once."""
    if not 0.0 <= prefill_share < 1.0 or not batch_at_itl > 0 or not slots >= 1:
        raise ValueError(
            f"ITL model needs a prefill share in [0, 1) ({prefill_share}), a positive batch "
            f"at the ITL threshold ({batch_at_itl}) and slots >= 1 ({slots})"
        )
    u = np.asarray(u, dtype=np.float64)
    under = np.clip(u, 0.0, 1.0)
    if slots <= batch_at_itl:  # the KV cache stops the batch before it slows past the SLO
        return np.asarray(np.where(u >= 1.0, 1.0, 0.0), dtype=np.float64)
    rho = under * (1.0 - prefill_share) / (1.0 - prefill_share * under)
    over = gammainc_series(batch_at_itl, batch_at_itl * rho)
    return np.asarray(np.where(u >= 1.0, 1.0, over), dtype=np.float64)


@lru_cache(maxsize=512)
def _token_curve(
    rated_rps: float,
    base_s: float,
    threshold_s: float,
    quantile: float,
    slots: float,
    prefill_s: float,
    prefill_share: float,
    ttft: tuple[float, float] | None,
    itl: tuple[float, float, float] | None,
) -> FloatArray:
    mu = saturation(rated_rps, base_s, threshold_s, quantile)
    g = np.linspace(0.0, 1.0, GRID)  # lambda / mu, as `curve`
    u = g * (mu / rated_rps)  # lambda / c: decode's load, saturated at the token capacity c
    out = violating(g, mu, base_s, threshold_s)
    if ttft is not None:
        threshold, weight = ttft
        v = ttft_violating(g, mu, slots, prefill_s, threshold)
        out = np.maximum(out, np.minimum(weight * v, 1.0))
    if itl is not None:
        batch, weight, kv_bound = itl
        v = itl_violating(u, prefill_share, batch, kv_bound)
        out = np.maximum(out, np.minimum(weight * v, 1.0))
    out = np.maximum.accumulate(out)
    out.setflags(write=False)
    return out


def token_curve(
    rated_rps: float,
    base_s: float,
    threshold_s: float,
    slots: float,
    prefill_s: float,
    prefill_share: float,
    ttft: tuple[float, float] | None,
    itl: tuple[float, float, float] | None,
    quantile: float = DEFAULT_QUANTILE,
) -> FloatArray:
    """The pool's curve with every objective stated, on `curve`'s grid of lambda / mu: at
    each load the largest of the end-to-end share (`violating`, saturating at mu),
    `ttft` = (threshold s, weight) x v_ttft (waiting for one of `slots` in the same queue,
    saturating at mu) and `itl` = (B*, weight, KV-cache bound or inf) x v_itl read at
    lambda / c (decode's batch reaches B* at the token capacity c, so it is 1 past it), each
    weighted share capped at 1 (`core.tokens` says why the largest and what the weights
    are). Read-only, memoised."""
    values = (rated_rps, base_s, threshold_s, slots, prefill_s, prefill_share)
    if not all(math.isfinite(x) for x in values):
        raise ValueError("token latency model: every parameter must be finite")
    saturation(rated_rps, base_s, threshold_s, quantile)  # validates
    r, b, t, m, p, f = (float(x) for x in values)
    return _token_curve(r, b, t, float(quantile), m, p, f, ttft, itl)
