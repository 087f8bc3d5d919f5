"""Where costscaler's cost goes against the oracle: one trace, seeds 1-5, from the sim's own
outputs (no guesses).

`.venv/bin/python tests/bench/bench_policy_gap.py [--trace T] [--hours H] [--policy P]...
[--miss-cost USD_PER_H]`
replays the trace as `bench_policies.py` does (scaled to PEAK_REPLICAS at its busiest
minute, the same seeds, burn-in and warm start) and prints, per policy, cost and attainment
(mean (min-max)) and, from the timeline after the burn-in: $ per pool, the median of ready
capacity over demand per minute, the share of paid replica-time on spot, and the share of
paid replica-time spent warming (replicas paid before they serve, or cancelled before).
"""

from __future__ import annotations

import argparse
import statistics

import bench_policies as bp
import numpy as np

from costscaler.api import CapacityPool, InferenceDeployment, load_manifests
from costscaler.sim.lineup import Lineup, Settings
from costscaler.sim.run import burn_in_steps


def main() -> int:
    """Run the replays and print the breakdown."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trace", default="azure-llm-2023-conv", choices=bp.TRACES)
    parser.add_argument("--hours", type=float, default=None, help="cut the trace (default 48 h)")
    parser.add_argument("--policy", action="append", help="default: costscaler and oracle")
    parser.add_argument(
        "--miss-cost",
        help="replace the example's costModel.sloMissCostPerHour ($/h, a decimal string); "
        '"0" makes the SLO a pure constraint, as the oracle and the baselines take it',
    )
    args = parser.parse_args()
    res = load_manifests(bp.REPO / "examples")
    dep = next(
        r for r in res if isinstance(r, InferenceDeployment) and r.metadata.name == "llama-3-1-8b"
    )
    if args.miss_cost is not None:
        raw = dep.model_dump(by_alias=True, mode="json")
        raw["spec"]["costModel"]["sloMissCostPerHour"] = args.miss_cost
        dep = InferenceDeployment.model_validate(raw)
    pools = [r for r in res if isinstance(r, CapacityPool)]
    lineup = Lineup(dep, pools, Settings(burn_in_s=bp.BURN_IN_S))
    if args.hours:
        bp.MAX_SPAN_S = args.hours * 3600.0
    names = args.policy or ["costscaler", "oracle"]
    price = np.array([m.replica_cost_per_hour for m in lineup.models])
    cap = np.array([m.capacity_rps for m in lineup.models])
    spot = np.array([m.spot for m in lineup.models])
    rows: dict[str, list[dict[str, object]]] = {}
    for seed in bp.SEEDS:
        tr = bp._load(args.trace, lineup, False, seed)
        burn = burn_in_steps(bp.BURN_IN_S, tr.dt, tr.steps)
        for o in lineup.run(names, tr, seed=seed, keep_timeline=True):
            row: dict[str, object] = {"cost": o.total_cost, "att": o.slo_attainment}
            if o.timeline is not None:
                held, ready = o.timeline.held[:, burn:], o.timeline.ready[:, burn:]
                k = round(60 / tr.dt)
                m = held.shape[1] // k
                demand = (tr.arrivals[burn:] / tr.dt)[: m * k].reshape(m, k).mean(axis=1)
                serving = (cap @ ready)[: m * k].reshape(m, k).mean(axis=1)
                row["pool"] = (held * price[:, None]).sum(axis=1) * tr.dt / 3600
                row["ratio"] = float(np.median(serving / np.maximum(demand, 1e-9)))
                row["spot"] = float(held[spot].sum() / held.sum())
                row["warming"] = float((held - ready).sum() / held.sum())
            rows.setdefault(o.policy, []).append(row)
    print(f"{args.trace}, seeds {bp.SEEDS[0]}-{bp.SEEDS[-1]}, burn-in {bp.BURN_IN_S:g} s")
    for name, runs in rows.items():
        cost = [float(r["cost"]) for r in runs]  # type: ignore[arg-type]
        att = [float(r["att"]) for r in runs]  # type: ignore[arg-type]
        print(
            f"{name}: cost {statistics.fmean(cost):.2f} ({min(cost):.2f}-{max(cost):.2f}) "
            f"attainment {statistics.fmean(att):.4f} ({min(att):.4f}-{max(att):.4f})"
        )
        if "pool" in runs[0]:
            per_pool = np.mean([r["pool"] for r in runs], axis=0)
            spent = ", ".join(
                f"{m.name} {v:.2f}" for m, v in zip(lineup.models, per_pool, strict=True)
            )
            mean = {
                k: statistics.fmean(float(r[k]) for r in runs) for k in ("ratio", "spot", "warming")
            }  # type: ignore[arg-type]
            print(
                f"  $ by pool: {spent}; ready capacity / demand (median per minute) "
                f"{mean['ratio']:.2f}; spot share {mean['spot']:.3f}; warming share "
                f"{mean['warming']:.3f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
