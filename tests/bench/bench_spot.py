"""Spot benchmark: costscaler under independent Poisson losses, Poisson with bursts, and the
real capacity traces, over several seeds (issue #14: the bench measures what the engine
prices).

`.venv/bin/python tests/bench/bench_spot.py [--trace NAME] [--hours H] [--seeds N]` prints a
markdown table of total cost, cost per 1k requests and SLO attainment (mean, min-max over
seeds 1..N). Poisson with bursts offers `hazard.DEFAULT_BURST_SHARE` of each spot pool's
hazard as pool-wide bursts (the example pools leave `burstShare` unset, so it is the share
the engine prices); the replay reads ../shared/spot at run time (never copied).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

from bench_policies import PEAK_REPLICAS, REPO, TRACES, _replays, _trace_file

from costscaler.api import CapacityPool, InferenceDeployment, load_manifests
from costscaler.sim.cluster import SpotBursts
from costscaler.sim.lineup import Lineup, Settings
from costscaler.sim.static import peak_rate
from costscaler.sim.traces import Trace, load_trace

SHARE = 0.6  # hazard.DEFAULT_BURST_SHARE, stated so the script also runs on older engines
SCENARIOS = ("Poisson, independent", "Poisson with bursts", "spot trace replay")


def _load(name: str, lineup: Lineup, hours: float, seed: int) -> Trace:
    raw = load_trace(_trace_file(name), duration_s=hours * 3600, seed=seed)
    scale = (
        PEAK_REPLICAS * lineup.models[lineup.single].capacity_rps / peak_rate(raw.arrivals, raw.dt)
    )
    return load_trace(_trace_file(name), scale=scale, duration_s=hours * 3600, seed=seed)


def _spread(values: list[float], fmt: str) -> str:
    return f"{statistics.fmean(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def main() -> int:
    """Run every scenario over the seeds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trace", default="azure-llm-2023-conv", choices=TRACES)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    resources = load_manifests(REPO / "examples")
    deployment = next(
        r
        for r in resources
        if isinstance(r, InferenceDeployment) and r.metadata.name == "llama-3-1-8b"
    )
    pools = [r for r in resources if isinstance(r, CapacityPool)]
    results: dict[str, list[tuple[float, float, float]]] = {s: [] for s in SCENARIOS}
    started, hours = time.perf_counter(), 0.0
    for seed in range(1, args.seeds + 1):
        for scenario in SCENARIOS:
            share = SHARE if scenario == "Poisson with bursts" else 0.0
            lineup = Lineup(deployment, pools, replace(Settings(), bursts=SpotBursts(share)))
            trace = _load(args.trace, lineup, args.hours, seed)
            hours = trace.steps * trace.dt / 3600  # the trace may be shorter than asked
            replays = _replays(lineup, trace) if scenario == "spot trace replay" else None
            out = lineup.run(["costscaler"], trace, seed=seed, replays=replays)[0]
            results[scenario].append(
                (out.total_cost, out.cost_per_1k_requests or float("nan"), out.slo_attainment)
            )
    print(
        f"{args.trace}, {hours:.1f} h, seeds 1-{args.seeds}, costscaler "
        f"({time.perf_counter() - started:.0f} s)\n"
    )
    print("| spot losses | total cost $ | $ per 1k requests | SLO attainment |")
    print("|---|---|---|---|")
    for scenario, rows in results.items():
        cost, per_1k, attained = (list(c) for c in zip(*rows, strict=True))
        print(
            f"| {scenario} | {_spread(cost, '.2f')} | {_spread(per_1k, '.4f')} | "
            f"{_spread(attained, '.4f')} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
