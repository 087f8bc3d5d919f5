"""Error-budget control over the SLO window: this tick's attainment target from the budget left.

An SLO is a share over a period: `spec.slo.attainment` a of the requests in the rolling
window W (`spec.slo.window`, s) within the latency threshold. From the realised counts over
the window so far, G good and N total (requests, from the latency histogram), the engine
derives:

- attainment so far G / N;
- burn rate (B / N) / (1 - a), B = N - G the bad requests: 1 spends the budget exactly as
  fast as the SLO allows, above 1 faster (the SRE convention);
- error budget left 1 - B / ((1 - a) E): the share of the window's allowed bad requests not
  yet spent, 1 with none spent, 0 at the target, negative past it (to -inf). E = max(N,
  lambda W) is the requests the window holds when full (`expected`, the law's own below):
  N once the window is as old as its period, more while it is younger. The allowance is
  the period's, so a deployment's start-up (requests that arrive while its first replicas
  load, all bad) spends a share of the week's allowance, as it does, and does not read as a
  budget overspent 16 to 90 times (azure-conv's replays, 5 to 15 minutes in, before this:
  1,600 bad of 2,800 requests at 0.99 is -56) while the next week's requests are still to
  come. The control law below reads the same E, so the target and the budget shown agree.

Control law. The surplus S = G - a_r N (requests; a_r = a + RESERVE (1 - a) keeps a tenth of
the budget unspent) is spent, or a deficit recovered, over the next half window: during
those W/2 seconds half of the counted requests leave the rolling window (assumed of its
average quality: the counts say nothing of when the bad ones came) and about lambda W/2 new
ones arrive, lambda W/2 at the rate lambda (req/s) expected. Solving "the window at t + W/2
is at a_r" for the attainment tau of the new requests gives

    tau = a_r - S / (lambda W),    lambda W = max(N, forecast rate x W),

clipped to [floor, cap]: floor = max(a - RELAX (1 - a), a / 2) (at most twice the allowed
miss rate), cap = 1 - (1 - a) / TIGHTEN (at most a tenth of it; a = 1 gives 1). So the
target relaxes below a when the budget left is large against the requests still to come
and tightens above a when the window is burning it; unknown counts give tau = a.

Why it is safe: per tick of length dt <= W/2 the surplus becomes S (1 - 2 dt / W) when the
new requests meet tau exactly (better when they beat it): it never changes sign, so a window
at or above a_r stays there, and one below it converges back (and crosses a, which is below
a_r, in finite time) unless the cap binds. `tests/unit/core/test_errorbudget.py` checks both,
and that tau falls as the budget left grows. The window's own count N is the expected
traffic of the next window (a daily cycle averages out over it), unless the forecast rate
says more: a young window (the deployment is newer than W) holds fewer requests than its
traffic will bring, and is then paced by the forecast instead of being spent too fast. An
expectation above the arrivals only slows the spending and the recovery.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RESERVE = 0.1  # share of the error budget the law never plans to spend
RELAX = 1.0  # the target may allow up to (1 + RELAX) x the SLO's miss rate
TIGHTEN = 10.0  # ... and must allow at least 1 / TIGHTEN of it


@dataclass(frozen=True)
class ErrorBudget:
    """The window so far: attainment G/N, budget left and burn rate (None when unknown).

    With counts known but no request in the window, nothing was spent: budget left 1, burn
    rate 0, attainment unknown.
    """

    attainment: float | None
    left: float | None
    burn_rate: float | None


UNKNOWN = ErrorBudget(None, None, None)


def counts(good: float | None, total: float | None) -> tuple[float, float] | None:
    """(good, total) as usable counts, or None when unknown (missing, non-finite, negative).

    Good is clipped to [0, total]: counts that come from `increase()` over a histogram's
    buckets are extrapolated per bucket and can pass the total by a fraction of a request.
    """
    if good is None or total is None:
        return None
    if not (math.isfinite(good) and math.isfinite(total)) or good < 0 or total < 0:
        return None
    return min(good, total), total


def expected(total: float, window_s: float, rate_rps: float) -> float:
    """Requests the window holds when full (requests): max(`total`, `rate_rps` x `window_s`).

    `total` is the window's count so far; the rate (req/s) x the window W (s) is what a full
    window brings at the forecast rate. A rate or window that is not a positive finite
    number adds nothing: the count so far stands.
    """
    if not (math.isfinite(window_s) and window_s > 0 and math.isfinite(rate_rps)):
        return total
    return max(total, rate_rps * window_s)


def spent(
    target: float, good: float | None, total: float | None, full: float | None = None
) -> ErrorBudget:
    """Attainment so far, budget left and burn rate for SLO attainment `target` (0-1].

    `full` is the requests the window holds when full (`expected`); None or below the count
    so far takes the count, as for a window as old as its period. The budget left is the
    share of the allowance of `full` requests not yet spent; the burn rate and attainment
    are the requests so far.
    """
    known = counts(good, total)
    if known is None:
        return UNKNOWN
    g, n = known
    if n <= 0:
        return ErrorBudget(None, 1.0, 0.0)
    bad_share = (n - g) / n
    allowed = 1.0 - target
    if allowed <= 0:  # a target of 1 allows no bad request
        burn = 0.0 if bad_share == 0 else math.inf
        return ErrorBudget(g / n, 1.0 if bad_share == 0 else -math.inf, burn)
    burn = bad_share / allowed
    held = n if full is None or not math.isfinite(full) else max(n, full)
    return ErrorBudget(g / n, 1.0 - (n - g) / (allowed * held), burn)


def bounds(target: float) -> tuple[float, float]:
    """(floor, cap) of the attainment target the law may set for SLO attainment `target`."""
    allowed = 1.0 - target
    return max(target - RELAX * allowed, target / 2), 1.0 - allowed / TIGHTEN


def attainment_target(
    target: float, window_s: float, good: float | None, total: float | None, rate_rps: float
) -> float:
    """This tick's attainment target from the error budget (see the module docstring).

    `target` is the SLO attainment a (0-1], `window_s` the rolling window W (s), `good` and
    `total` the requests within the threshold and all requests in the window so far (None
    when unknown), `rate_rps` the forecast request rate (req/s).
    Unknown counts, or a window or rate that is not a positive finite number, give `target`.
    """
    known = counts(good, total)
    if known is None or not (math.isfinite(window_s) and window_s > 0):
        return target
    if not math.isfinite(rate_rps) or rate_rps < 0:
        return target
    g, n = known
    reserved = target + RESERVE * (1.0 - target)
    surplus = g - reserved * n
    floor, cap = bounds(target)
    # N >= G > 0 whenever the surplus is not 0, so the full window's count is then positive.
    tau = reserved if surplus == 0 else reserved - surplus / expected(n, window_s, rate_rps)
    return min(max(tau, floor), cap)
