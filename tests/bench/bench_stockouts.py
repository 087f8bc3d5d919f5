"""Spot stock-outs: held-out spot capacity traces against on-demand only, over seeds.

Run `.venv/bin/python tests/bench/bench_stockouts.py [--seeds 1,2,3,4,5] [--hours 48]`.
servegen-m-large is scaled as in bench_policies (its busiest minute needs 24 rated replicas
of the cheapest on-demand pool); the example Llama deployment's two spot pools replay
capacity traces that bench_policies does not use (../shared/spot, read at run time, never
copied). Prints attainment and total cost per trace pair: mean, min, max over the seeds,
and per seed. The same replay, one seed: `costscaler simulate --trace
../shared/traces/servegen-m-large/rates.csv -f examples/deployments/llama-3-1-8b-vllm.yaml
-p examples/pools --policy costscaler --seed S --duration 172800 --scale K --spot-trace
g6-xlarge-l4-spot=CSV --spot-trace g5-xlarge-a10g-spot=CSV` (K printed per seed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from costscaler.api import CapacityPool, InferenceDeployment, load_manifests
from costscaler.sim.cluster import SpotReplay
from costscaler.sim.lineup import Lineup
from costscaler.sim.static import peak_rate
from costscaler.sim.traces import load_spot_trace, load_trace

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
TRACE = SHARED / "traces" / "servegen-m-large" / "rates.csv"
POOLS = ("g6-xlarge-l4-spot", "g5-xlarge-a10g-spot")
ONE, FOUR = "aws-p3.2xlarge-1node-2023-04", "aws-p3.2xlarge-4node-2023-08"
HELD_OUT = {
    "1node us-east-1c + us-west-2b": (f"{ONE}/us-east-1c.csv", f"{ONE}/us-west-2b.csv"),
    "1node us-east-1f + us-west-2c": (f"{ONE}/us-east-1f.csv", f"{ONE}/us-west-2c.csv"),
    "4node us-east-1f + 1node us-west-2c": (f"{FOUR}/us-east-1f.csv", f"{ONE}/us-west-2c.csv"),
}


def main() -> int:
    """Run every seed, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--hours", type=float, default=48.0)
    args = parser.parse_args()
    resources = load_manifests(REPO / "examples")
    dep = next(
        r
        for r in resources
        if isinstance(r, InferenceDeployment) and r.metadata.name == "llama-3-1-8b"
    )
    lineup = Lineup(dep, [r for r in resources if isinstance(r, CapacityPool)])
    names = [m.name for m in lineup.models]
    rows: dict[str, list[tuple[float, float]]] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        raw = load_trace(TRACE, duration_s=args.hours * 3600, seed=seed)
        scale = 24 * lineup.models[lineup.single].capacity_rps / peak_rate(raw.arrivals, raw.dt)
        trace = load_trace(TRACE, scale=scale, duration_s=args.hours * 3600, seed=seed)
        print(f"seed {seed}: --scale {scale:.6g}", flush=True)
        od = lineup.run(["costscaler-ondemand"], trace, seed=seed)[0]
        rows.setdefault("on-demand only", []).append((od.slo_attainment, od.total_cost))
        for label, rels in HELD_OUT.items():
            replays = {
                names.index(pool): SpotReplay.from_trace(
                    load_spot_trace(SHARED / "spot" / rel), trace.steps, trace.dt
                )
                for pool, rel in zip(POOLS, rels, strict=True)
            }
            out = lineup.run(["costscaler"], trace, seed=seed, replays=replays)[0]
            rows.setdefault(label, []).append((out.slo_attainment, out.total_cost))
    for label, found in rows.items():
        att, cost = np.array([a for a, _ in found]), np.array([c for _, c in found])
        seeds = " ".join(f"{a:.4f}" for a in att)
        print(
            f"{label:38s} attainment {att.mean():.4f} (min {att.min():.4f}, max "
            f"{att.max():.4f}) cost ${cost.mean():.1f} | per seed {seeds}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
