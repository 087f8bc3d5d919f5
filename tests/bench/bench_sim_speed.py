"""Simulator speed: 14 days of servegen-m-large at 1 s steps through `costscaler`.

Run by `make bench` (or `.venv/bin/python tests/bench/bench_sim_speed.py [--runs N]
[--days D] [--policy P ...] [--serving batching]`; several policies: a run is all of them,
one after the other). The trace is scaled as in bench_policies.py (the busiest minute
needs 24 rated replicas of the cheapest on-demand pool). Each run is timed whole (wall and
process CPU); `core.decide` is timed apart by wrapping the name the costscaler policy calls,
and the policy's tick likewise, so the CPU splits into the engine (`decide`), everything
else (`rest`), and rest's two parts: the policy's own work around the engine (`glue`:
sampling metrics, with the queue run up to the tick when latency is read, and building
observations) and the rest of the replay (`twin`: replicas, events, totals). Prints every
run and the median of each column; the target is 60 s wall for the whole run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from costscaler.api import CapacityPool, InferenceDeployment, load_manifests
from costscaler.sim import engine_policy
from costscaler.sim.lineup import SERVING, Lineup, Settings
from costscaler.sim.run import simulate
from costscaler.sim.serving import TokenDraw, batching_profiles, token_slo
from costscaler.sim.static import peak_rate
from costscaler.sim.traces import Trace, load_accelerators, load_trace

REPO = Path(__file__).resolve().parents[2]
TRACE = REPO.parent / "shared" / "traces" / "servegen-m-large" / "rates.csv"
PEAK_REPLICAS = 24
SEED = 1
COLUMNS = ("wall_s", "cpu_s", "decide_cpu_s", "rest_cpu_s", "glue_cpu_s", "twin_cpu_s")


class _Timed:
    """A stand-in for `decide` that adds up the wall and CPU time spent inside it."""

    def __init__(self, inner: Callable[..., Any]) -> None:
        self.inner, self.wall, self.cpu, self.calls = inner, 0.0, 0.0, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        w, c = time.perf_counter(), time.process_time()
        try:
            return self.inner(*args, **kwargs)
        finally:
            self.wall += time.perf_counter() - w
            self.cpu += time.process_time() - c
            self.calls += 1


def _lineup(serving: str) -> Lineup:
    """The example deployment; with batching, its SLO stated per token as bench_policies.py
    states it (`token_slo`) and its profiles declaring what the batching model serves
    (`batching_profiles`), as a calibrated user's would."""
    resources = load_manifests(REPO / "examples")
    deployment = next(
        r
        for r in resources
        if isinstance(r, InferenceDeployment) and r.metadata.name == "llama-3-1-8b"
    )
    pools = [r for r in resources if isinstance(r, CapacityPool)]
    if serving == "batching":
        draw = TokenDraw(mean_output=deployment.spec.workload.mean_output_tokens or 250.0)
        deployment = token_slo(deployment, draw.max_context // 2)
        deployment, notes = batching_profiles(deployment, draw, load_accelerators())
        print("declared capacity from the batching model: " + "; ".join(notes))
    return Lineup(deployment, pools, Settings(serving=serving))


def _trace(days: float) -> Trace:
    """The trace at the same load whatever the serving model: scaled by the example's
    declared capacity (as bench_policies.py scales it)."""
    span = days * 86400.0
    raw = load_trace(TRACE, duration_s=span, seed=SEED)
    lineup = _lineup("fluid")
    rated = lineup.models[lineup.single].capacity_rps
    scale = PEAK_REPLICAS * rated / peak_rate(raw.arrivals, raw.dt)
    return load_trace(TRACE, scale=scale, duration_s=span, seed=SEED)


def one_run(lineup: Lineup, trace: Trace, policy: str) -> dict[str, float]:
    """Time one replay; `decide_*` is the time inside `core.decide`, `rest_*` the remainder."""
    timed = _Timed(engine_policy.decide)
    engine_policy.decide = timed  # type: ignore[assignment]
    chosen = lineup.policy(policy, trace)
    tick = _Timed(chosen.decide)
    chosen.decide = tick  # type: ignore[method-assign]
    try:
        w, c = time.perf_counter(), time.process_time()
        start = lineup.start(trace)
        out = simulate(
            trace,
            lineup.models,
            chosen,
            lineup.costs,
            seed=SEED,
            start=start,
            serving=lineup.serving,
        )
        wall, cpu = time.perf_counter() - w, time.process_time() - c
    finally:
        engine_policy.decide = timed.inner
    print(
        f"  {policy}: cost {out.total_cost:.2f} attainment {out.slo_attainment:.4f} "
        f"decide calls {timed.calls}"
    )
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "decide_cpu_s": timed.cpu,
        "rest_cpu_s": cpu - timed.cpu,
        "glue_cpu_s": tick.cpu - timed.cpu,
        "twin_cpu_s": cpu - tick.cpu,
    }


def main() -> int:
    """Time `--runs` replays and print each and the medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="replays to time (median)")
    parser.add_argument("--days", type=float, default=14.0, help="days of the trace")
    parser.add_argument(
        "--policy", action="append", help="policy to replay (repeatable; default costscaler)"
    )
    parser.add_argument("--serving", choices=SERVING, default="fluid", help="serving model")
    args = parser.parse_args()
    lineup = _lineup(args.serving)
    trace = _trace(args.days)
    print(
        f"servegen-m-large, {trace.steps * trace.dt / 86400:.1f} days, {trace.steps} steps, "
        f"serving {args.serving}"
    )
    runs = []
    for _ in range(args.runs):
        each = [one_run(lineup, trace, p) for p in args.policy or ["costscaler"]]
        runs.append({k: sum(r[k] for r in each) for k in COLUMNS})
    print("| run | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for i, r in enumerate(runs, 1):
        print(f"| {i} | " + " | ".join(f"{r[k]:.1f}" for k in COLUMNS) + " |")
    med = {k: statistics.median(r[k] for r in runs) for k in COLUMNS}
    print("| median | " + " | ".join(f"{med[k]:.1f}" for k in COLUMNS) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
