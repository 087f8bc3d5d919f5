"""A few policies over the bench's seeds on its batching setup, without the full bench.

`.venv/bin/python tests/bench/bench_policy_seeds.py --trace T --policy P... [--quick]
[--equal-slo BASELINE GOAL]` builds the deployment `bench_policies.py` judges (the example
as a calibrated user serving trace T declares it, under per-request batching), replays
trace T once per seed with the policies named and prints the spread table (mean (min-max))
and each policy's TTFT and ITL attainment. `--equal-slo` instead searches BASELINE's target
for a mean attainment of GOAL, as the bench's equal-SLO rows do. `make bench` runs all of it,
the scenario suite and the spot replays too; this is the part that fits a loaded machine.
"""

from __future__ import annotations

import argparse
import time

import bench_policies as bp

from costscaler.api import CapacityPool, InferenceDeployment, load_manifests
from costscaler.sim.lineup import Lineup, Settings
from costscaler.sim.report import spread_table, summarise


def main() -> int:
    """Run the replays and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trace", default="azure-llm-2023-conv", choices=bp.TRACES)
    parser.add_argument("--policy", action="append", help="default: costscaler and hpa")
    parser.add_argument("--quick", action="store_true", help="3 hours of the trace at most")
    parser.add_argument("--equal-slo", nargs=2, metavar=("BASELINE", "GOAL"))
    args = parser.parse_args()
    res = load_manifests(bp.REPO / "examples")
    example = next(
        r for r in res if isinstance(r, InferenceDeployment) and r.metadata.name == "llama-3-1-8b"
    )
    pools = [r for r in res if isinstance(r, CapacityPool)]
    deployment, notes = bp.batching_deployment(args.trace, example, args.quick)
    print("; ".join(notes), flush=True)
    lineup = Lineup(deployment, pools, Settings(serving="batching", burn_in_s=bp.BURN_IN_S))
    traces = [bp._load(args.trace, lineup, args.quick, seed) for seed in bp.SEEDS]
    started = time.process_time()
    if args.equal_slo:
        runs, note = bp._at_equal_slo(lineup, traces, args.equal_slo[0], float(args.equal_slo[1]))
        print(note)
    else:
        runs = bp._seeded(lineup, args.policy or ["costscaler", "hpa"], traces)
    meta = {"seeds": list(bp.SEEDS), "burn_in_s": bp.BURN_IN_S, "scenario": "manifest"}
    rows = summarise(runs, meta)
    print(spread_table(rows))
    for row in rows:
        keys = ("ttft_attainment", "itl_attainment", "ttft_p95_s", "itl_p95_s")
        print(row["policy"], {k: row.get(k) for k in keys})
    print(f"cpu {time.process_time() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
