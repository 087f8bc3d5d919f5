"""Median time of `costscaler.core.decide` for 1, 6 and 20 pools (target: <= 1 ms at 6 pools).

Run as a script (`make bench`). Each case replays a noisy diurnal load tick by tick, 15 s
apart, with a 1-hour window of observations and the previous decision's replicas and state,
as the operator and the simulator call it. Prints a table; with `--json PATH` also writes the
figures there (tests/bench/results-decide.json by convention).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import numpy as np

from costscaler.api import CapacityPool, InferenceDeployment, parse_resource
from costscaler.core import Observations, decide

TICK_S = 15.0
WINDOW = 240
WARMUP = 50
CALLS = 2000
ACCELERATORS = [("L4", 0.805, 1.6), ("A10G", 1.006, 2.6), ("A100-40GB", 4.1, 7.0)]


def _pool(i: int) -> CapacityPool:
    acc, price, _ = ACCELERATORS[i % len(ACCELERATORS)]
    spot = i % 2 == 1
    spec: dict[str, Any] = {
        "accelerator": {"type": acc, "countPerNode": 1},
        "capacityType": "Spot" if spot else "OnDemand",
        "price": {"hourly": f"{price * (0.45 if spot else 1.0) * (1 + 0.01 * i):.4f}"},
        "coldStart": {"nodeSeconds": 120 + 10 * i},
        "limits": {"maxNodes": 40},
    }
    if spot:
        spec["interruption"] = {"ratePerHour": 0.3}
    doc = {"apiVersion": "costscaler.dev/v1alpha1", "kind": "CapacityPool"}
    resource = parse_resource({**doc, "metadata": {"name": f"pool-{i}"}, "spec": spec})
    assert isinstance(resource, CapacityPool)
    return resource


def _deployment(n: int) -> InferenceDeployment:
    doc = {
        "apiVersion": "costscaler.dev/v1alpha1",
        "kind": "InferenceDeployment",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {
            "template": {"spec": {"containers": [{"name": "m", "image": "m"}]}},
            "slo": {"latency": {"quantile": 0.95, "thresholdSeconds": 10}},
            "workload": {
                "modelLoadSeconds": 120,
                "capacity": [
                    {"accelerator": a, "requestsPerSecond": rps} for a, _, rps in ACCELERATORS
                ],
            },
            "pools": [{"name": f"pool-{i}"} for i in range(n)],
            "spot": {"maxFraction": 0.6, "minOnDemandReplicas": 1},
            "replicas": {"min": 1, "max": 60},
            "costModel": {"sloMissCostPerHour": "50"},
        },
    }
    resource = parse_resource(doc)
    assert isinstance(resource, InferenceDeployment)
    return resource


def _load(steps: int, seed: int) -> np.ndarray:
    t = np.arange(steps) * TICK_S
    rng = np.random.default_rng(seed)
    base = 25 + 15 * np.sin(2 * np.pi * t / 86400.0)
    return np.maximum(base * (1 + 0.1 * rng.standard_normal(steps)), 0.0)


def bench(n_pools: int, calls: int = CALLS) -> dict[str, float]:
    """Time `decide` over `calls` consecutive ticks: wall median and p90, CPU median (ms),
    and what was decided: the share of decisions proven optimal, the mean $/h and the mean
    violating share (a faster engine must not buy its time with worse plans).

    CPU time (this thread's) is what the engine costs; wall time adds what other processes
    take from it on a busy machine.
    """
    dep, pools = _deployment(n_pools), [_pool(i) for i in range(n_pools)]
    rate = _load(WINDOW + WARMUP + calls, seed=n_pools)
    times = np.arange(rate.size) * TICK_S
    current: dict[str, int] = {}
    state = None
    samples, cpu, proven, spend, share = [], [], [], [], []
    for k in range(WINDOW, rate.size):
        lo = k - WINDOW + 1
        obs = Observations(
            times=times[lo : k + 1],
            request_rate=rate[lo : k + 1],
            latency=np.full(WINDOW, 2.0),
            ready={p: np.full(WINDOW, float(v)) for p, v in current.items()},
        )
        start, start_cpu = time.perf_counter(), time.thread_time()
        d = decide(dep.spec, pools, obs, current, float(times[k]), state)
        elapsed, used = time.perf_counter() - start, time.thread_time() - start_cpu
        if k >= WINDOW + WARMUP:
            samples.append(elapsed * 1e3)
            cpu.append(used * 1e3)
            proven.append(d.optimum_proven)
            spend.append(d.cost_per_hour)
            share.append(d.violating_share)
        current, state = dict(d.replicas), d.state
    samples.sort()
    return {
        "pools": n_pools,
        "calls": len(samples),
        "median_ms": statistics.median(samples),
        "p90_ms": samples[int(0.9 * len(samples))],
        "median_cpu_ms": statistics.median(cpu),
        "proven_share": statistics.mean(proven),
        "mean_cost_per_hour": statistics.mean(spend),
        "mean_violating_share": statistics.mean(share),
    }


def main() -> None:
    """Print the table (and write JSON with --json PATH)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--calls", type=int, default=CALLS, help="timed calls per case")
    args = parser.parse_args()
    rows = [bench(n, args.calls) for n in (1, 6, 20)]
    print(
        f"{'pools':>5} {'calls':>6} {'median ms':>10} {'p90 ms':>8} {'median CPU ms':>14} "
        f"{'proven':>7} {'mean $/h':>9} {'mean V':>9}"
    )
    for r in rows:
        print(
            f"{r['pools']:>5} {r['calls']:>6} {r['median_ms']:>10.3f} {r['p90_ms']:>8.3f} "
            f"{r['median_cpu_ms']:>14.3f} {r['proven_share']:>7.2f} "
            f"{r['mean_cost_per_hour']:>9.3f} {r['mean_violating_share']:>9.6f}"
        )
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (wall time is noisy)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
