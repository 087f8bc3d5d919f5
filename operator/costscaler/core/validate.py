"""Is a window of observations fit to act on? The engine holds the allocation when it is not.

Only the latest sample decides whether to act (older bad samples are skipped by the forecast,
the calibrator and the hazard update). It is bad when it is missing, stale (older than
`STALE_AFTER_S`), from the future, or has a request rate or replica count that is NaN,
infinite or negative, or a latency or token rate that is infinite or negative.

A NaN latency is "not measured", not bad data: a latency quantile over a scrape window with no
finished requests is NaN (Prometheus `histogram_quantile`), which happens at low traffic all
the time. The request rate sizes the plan; latency only feeds the calibrator, which skips it.
"""

from __future__ import annotations

import math

from costscaler.core.types import FloatArray, Observations

STALE_AFTER_S = 120.0
CLOCK_SKEW_S = 5.0


def check_shapes(obs: Observations) -> None:
    """Raise ValueError when arrays do not line up with `times` (a caller bug, not bad data)."""
    n = obs.times.shape
    named = [("request_rate", obs.request_rate), ("latency", obs.latency)]
    optional = ("token_rate", "ttft", "itl", "queue_depth", "kv_cache_usage", "prompt_token_rate")
    for name in optional:
        arr = getattr(obs, name)
        if arr is not None:
            named.append((name, arr))
    for group, arrays in (("ready", obs.ready), ("warming", obs.warming), ("lost", obs.lost)):
        named.extend((f"{group}[{k}]", v) for k, v in arrays.items())
    for name, arr in named:
        if arr.shape != n:
            raise ValueError(f"observations.{name}: shape {arr.shape}, expected {n} like times")


def problem(obs: Observations, now: float) -> str | None:
    """What is wrong with the latest sample, for people, or None when it can be acted on."""
    check_shapes(obs)
    if obs.times.size == 0:
        return "no samples in the observation window"
    last = float(obs.times[-1])
    if not math.isfinite(last):
        return "the latest sample has no timestamp"
    if now - last > STALE_AFTER_S:
        return f"the latest sample is {now - last:.0f} s old (stale after {STALE_AFTER_S:.0f} s)"
    if last - now > CLOCK_SKEW_S:
        return f"the latest sample is {last - now:.0f} s in the future (clock skew?)"
    rate = float(obs.request_rate[-1])
    if not (math.isfinite(rate) and rate >= 0):
        return f"request rate is {rate} (expected a finite number >= 0)"
    lat = float(obs.latency[-1])
    if math.isinf(lat) or lat < 0:
        return f"latency is {lat} s (expected a finite number >= 0, or NaN when not measured)"
    if obs.token_rate is not None:
        tok = float(obs.token_rate[-1])
        if math.isinf(tok) or tok < 0:
            return f"token rate is {tok}"
    for group, arrays in (("ready", obs.ready), ("warming", obs.warming), ("lost", obs.lost)):
        for pool, arr in arrays.items():
            if not _count_ok(arr):
                return f"{group} replicas of pool {pool} is {float(arr[-1])}"
    return None


def _count_ok(arr: FloatArray) -> bool:
    value = float(arr[-1])
    return math.isfinite(value) and value >= 0
