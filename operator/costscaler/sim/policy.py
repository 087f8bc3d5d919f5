"""The policy seam: what an autoscaler may see at a tick, and what it returns.

A policy sees what it would see in a cluster: replicas per pool (ready and warming), the
replicas it asked for, and load metrics over windows that end now. `ClusterView` only
exposes the past; the offline oracle is not a policy (it lives in `sim.oracle`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from costscaler.sim.pools import PoolModel
from costscaler.sim.scenario import OutageKind

# Bucket edges a Prometheus histogram might have (s): 15 % apart from 50 ms to ~2 h.
VIEW_EDGES_S = 0.05 * 1.15 ** np.arange(82)
EDGE_LAST = VIEW_EDGES_S.size - 1


class ServerMetrics(Protocol):
    """What an LLM server exports that the fluid model cannot produce (`sim.serving`)."""

    def prompt_tokens(self, lo: int, hi: int) -> float:
        """Input tokens of the requests that arrived in steps [lo, hi)."""
        ...

    def token_latency(
        self, kind: Literal["ttft", "itl"], quantile: float, lo: int, hi: int
    ) -> float:
        """TTFT or mean ITL (s) at `quantile` of requests completed in steps [lo, hi); NaN
        when none was."""
        ...


@dataclass(frozen=True)
class ClusterView:
    """The cluster at step `step`, as metrics and the API server report it.

    `cum_arrivals[i]` / `cum_met[i]` / `cum_tokens[i]` are totals over steps [0, i); `lost`
    counts spot replicas reclaimed so far per pool; `completed(lo, hi)` the requests whose
    latency was measured in steps [lo, hi) and `in_system(lo, hi)` the mean requests in
    service or waiting, both brought up to `step` by `sync(step)` before any read;
    `histogram(lo, hi)` gives the cumulative latency counts at `VIEW_EDGES_S` of steps
    [lo, hi) (synced).
    Only steps before `step` are ever read, so a policy cannot look ahead. `unplaced`: per
    pool, replicas the cluster cannot place now (no spot capacity), as the operator sees
    Pending pods past their grace. `metrics`: a metrics outage now (`sim.scenario`), since
    step `metrics_since`: Prometheus reads (`rate`, `token_rate`, `attainment`,
    `latency_quantile`, `prompt_token_rate`, `token_latency`) are NaN while it is `down`, a
    `gap` or `nan`, and as of `metrics_since` while `stale`; `concurrency` (Knative's
    queue-proxies) is unaffected. `server`: the LLM server's own metrics when requests are
    served one by one (`sim.serving`), else None.
    """

    step: int
    dt: float
    pools: list[PoolModel]
    ready: list[int]
    warming: list[int]
    desired: list[int]
    cum_arrivals: NDArray[np.float64]
    cum_met: NDArray[np.float64]
    cum_tokens: NDArray[np.float64] | None
    lost: list[int]
    completed: Callable[[int, int], float]
    in_system: Callable[[int, int], float]
    histogram: Callable[[int, int], NDArray[np.float64]]
    sync: Callable[[int], None]
    unplaced: list[int] = field(default_factory=list)
    metrics: OutageKind | None = None
    metrics_since: int = 0
    server: ServerMetrics | None = None

    @property
    def now_s(self) -> float:
        """Seconds since the start of the run."""
        return self.step * self.dt

    def _window(self, window_s: float) -> tuple[int, float]:
        steps = max(1, round(window_s / self.dt))
        lo = max(0, self.step - steps)
        return lo, (self.step - lo) * self.dt

    def _prometheus(self, window_s: float) -> tuple[int, int, float] | None:
        """The window Prometheus answers for, (lo, hi, span), or None when it cannot."""
        if self.metrics in ("down", "gap", "nan"):
            return None
        hi = self.metrics_since if self.metrics == "stale" else self.step
        steps = max(1, round(window_s / self.dt))
        lo = max(0, hi - steps)
        return lo, hi, (hi - lo) * self.dt

    def rate(self, window_s: float) -> float:
        """Arrivals per second over the last `window_s` seconds (Prometheus `rate`); 0 at t=0,
        NaN in an outage without data."""
        got = self._prometheus(window_s)
        if got is None:
            return math.nan
        lo, hi, span = got
        if span <= 0:
            return 0.0
        return float(self.cum_arrivals[hi] - self.cum_arrivals[lo]) / span

    def token_rate(self, window_s: float) -> float | None:
        """Output tokens per second over the window, or None when the trace has no tokens
        (NaN in an outage without data)."""
        got = self._prometheus(window_s)
        if self.cum_tokens is None:
            return None
        if got is None:
            return math.nan
        lo, hi, span = got
        if span <= 0:
            return None
        return float(self.cum_tokens[hi] - self.cum_tokens[lo]) / span

    def attainment(self, window_s: float) -> float | None:
        """Share of the window's arrivals within the latency threshold; None with no arrivals
        (NaN in an outage without data)."""
        got = self._prometheus(window_s)
        if got is None:
            return math.nan
        lo, hi, _ = got
        self.sync(hi)
        n = float(self.cum_arrivals[hi] - self.cum_arrivals[lo])
        if n <= 0:
            return None
        return float(self.cum_met[hi] - self.cum_met[lo]) / n

    def slo_counts(self, window_s: float) -> tuple[float, float] | None:
        """Requests within the latency threshold and all requests measured over the window
        (the SLO histogram's `le` bucket and count); None in an outage without data."""
        got = self._prometheus(window_s)
        if got is None:
            return None
        lo, hi, _ = got
        self.sync(hi)
        return float(self.cum_met[hi] - self.cum_met[lo]), self.completed(lo, hi)

    def concurrency(self, window_s: float) -> float:
        """Mean requests in the system over the window: in service (Little) plus waiting.

        What Knative's queue-proxies and activator report (requests buffered by the activator
        while pods start count too).
        """
        lo, span = self._window(window_s)
        if span <= 0:
            return 0.0
        self.sync(self.step)
        return self.in_system(lo, self.step)

    def latency_quantile(self, quantile: float, window_s: float) -> float:
        """The latency (s) at `quantile` of requests started in the window (to 15 %).

        NaN when none started, as a histogram quantile of no requests is undefined, and in an
        outage without data.
        """
        got = self._prometheus(window_s)
        if got is None:
            return math.nan
        lo, hi, _ = got
        counts = self.histogram(lo, hi)
        total = self.completed(lo, hi)
        if total <= 0:
            return math.nan
        return float(VIEW_EDGES_S[min(int(np.searchsorted(counts, quantile * total)), EDGE_LAST)])

    def prompt_token_rate(self, window_s: float) -> float | None:
        """Input tokens per second over the window (the server's prompt-token counter), or
        None when requests are not served one by one (NaN in an outage without data)."""
        if self.server is None:
            return None
        got = self._prometheus(window_s)
        if got is None:
            return math.nan
        lo, hi, span = got
        return self.server.prompt_tokens(lo, hi) / span if span > 0 else math.nan

    def token_latency(
        self, kind: Literal["ttft", "itl"], quantile: float, window_s: float
    ) -> float | None:
        """TTFT or ITL (s) at `quantile` of the requests completed in the window, as the
        server's histogram gives it; None when requests are not served one by one, NaN when
        none completed and in an outage without data."""
        if self.server is None:
            return None
        got = self._prometheus(window_s)
        if got is None:
            return math.nan
        lo, hi, _ = got
        return self.server.token_latency(kind, quantile, lo, hi)


class Policy(Protocol):
    """An autoscaler: desired replicas per pool (in `view.pools` order) at each tick."""

    name: str
    interval_s: float

    def initial(self, view: ClusterView) -> list[int]:
        """Desired replicas per pool at step 0, taking over `view.desired` with no metrics yet.

        Every policy of a comparison starts from the same allocation (`run.Start`); an
        autoscaler that reacts to load holds it until its first tick, a static plan asks for
        its own count at once.
        """
        ...

    def decide(self, view: ClusterView) -> list[int]:
        """Desired replicas per pool now."""
        ...


def one_pool(pools: list[PoolModel], pool: int, replicas: int) -> list[int]:
    """A desired vector with `replicas` on pool index `pool` and 0 elsewhere."""
    return [replicas if i == pool else 0 for i in range(len(pools))]
