"""Policy benchmark: shared traces through every policy, at equal SLO attainment.

Run by `make bench` (or `.venv/bin/python tests/bench/bench_policies.py [--quick] [--all]
[--trace T] [--serving fluid] [--out DIR]`; the default runs DEFAULT_TRACES, `--all` every
shared trace). Requests are served one by one with continuous batching (`--serving
batching`, the default) against an SLO stated per token, as an LLM service states it: the
example's TTFT and ITL objectives, its end-to-end threshold the one they imply for the
longest answer (`sim.serving.token_slo`), and capacity profiles declaring what the batching
model serves for the trace's own token mix (`sim.serving.batching_profiles`), as a
calibrated user declares them. Each trace is scaled so its busiest minute needs
PEAK_REPLICAS rated replicas of the Karpenter baselines' on-demand pool (the cheapest
on-demand pool with a spot twin; with fluid serving, the cheapest on-demand pool) and
replayed with seeds SEEDS (figures: mean, min and max), a BURN_IN_S burn-in and one warm
start for every policy. Spot pools run with Poisson interruptions, a share of them as
pool-wide bursts (each pool's `interruption.burstShare`, 0.6 unset: the share the engine
prices), again without bursts, and replayed from real capacity traces in ../shared/spot
(read at run time, never copied). Every baseline (HPA, KEDA and KPA on one pool, HPA and
KEDA with Karpenter over spot and on-demand) is searched over its target until its mean
attainment matches costscaler's, so costs compare at equal SLO; the scenario suite
(`suite`) then runs costscaler, HPA + Karpenter at that target and the oracle in a world
unlike the manifest. Writes tests/bench/results.json and results.md after every trace, and
one PNG per trace.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from costscaler.api import CapacityPool, InferenceDeployment, load_manifests
from costscaler.sim.cluster import SpotBursts, SpotReplay
from costscaler.sim.lineup import ORACLES, POLICIES, SERVING, Lineup, Settings
from costscaler.sim.report import plot, spread_table, summarise
from costscaler.sim.run import Outcome
from costscaler.sim.scenario import Outage, Scenario
from costscaler.sim.serving import TokenDraw, batching_profiles, token_slo
from costscaler.sim.static import peak_rate
from costscaler.sim.traces import Trace, load_accelerators, load_spot_trace, load_trace

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
OUT = REPO / "tests" / "bench"
PEAK_REPLICAS = 24
SEEDS = (1, 2, 3, 4, 5)
# Left out of every figure: the first 10 minutes, over twice the example's longest cold
# start (node and model load), so no figure rests on how a run was started.
BURN_IN_S = 600.0
# The equal-SLO search: targets over the metric's range (request rate per replica may be
# set above rated capacity), bisected until the mean attainment is this close to the goal.
TARGET_RANGE = (0.05, 3.0)
TOLERANCE = 0.0005
MAX_BISECTIONS = 14
# Long rate series are cut to two days: a costscaler decision takes milliseconds, and the
# benchmark must finish in minutes on two cores.
MAX_SPAN_S = 2 * 86400.0
TRACES = ("azure-llm-2023-code", "azure-llm-2023-conv", "servegen-mm-image", "servegen-m-large")
# The default run: five seeds of every policy, the equal-SLO searches and the scenario suite
# on all four traces take hours on two shared cores; `--all` runs them all.
DEFAULT_TRACES = ("azure-llm-2023-conv", "servegen-mm-image")
SPOT = {
    "g6-xlarge-l4-spot": "aws-p3.2xlarge-4node-2023-08/us-east-2a.csv",
    "g5-xlarge-a10g-spot": "aws-p3.2xlarge-4node-2023-08/us-west-2c.csv",
}
BASELINES = {
    "hpa": "hpa_utilisation",
    "keda": "keda_utilisation",
    "kpa": "kpa_utilisation",
    "hpa-karpenter-spot": "hpa_utilisation",
    "keda-karpenter-spot": "keda_utilisation",
}


def _trace_file(name: str) -> Path:
    folder = SHARED / "traces" / name
    return next(p for p in (folder / "trace.csv", folder / "rates.csv") if p.exists())


def _span(quick: bool) -> float:
    return 3 * 3600.0 if quick else MAX_SPAN_S


def _load(name: str, lineup: Lineup, quick: bool, seed: int) -> Trace:
    """The trace scaled so the busiest minute needs PEAK_REPLICAS rated replicas of the
    Karpenter baselines' on-demand pool (the scale is set on seed 1's draw, so every seed
    replays the same rate)."""
    span = _span(quick)
    raw = load_trace(_trace_file(name), duration_s=span, seed=SEEDS[0])
    home = lineup.single if lineup.family is None else lineup.family
    rated = lineup.models[home].capacity_rps
    scale = PEAK_REPLICAS * rated / peak_rate(raw.arrivals, raw.dt)
    return load_trace(_trace_file(name), scale=scale, duration_s=span, seed=seed)


def batching_deployment(
    name: str, deployment: InferenceDeployment, quick: bool
) -> tuple[InferenceDeployment, list[str]]:
    """The example as a calibrated user serving trace `name` declares it: its end-to-end
    threshold implied by its TTFT and ITL objectives for the longest answer (the trace's
    own, else the token draw's), and profiles declaring what the batching model serves at
    the trace's mean prompt and answer (else the draw's means). Returns notes on both."""
    draw = TokenDraw(mean_output=deployment.spec.workload.mean_output_tokens or 250.0)
    raw = load_trace(_trace_file(name), duration_s=_span(quick), seed=SEEDS[0])
    means, longest = None, draw.max_context // 2
    if raw.requests is not None and raw.requests.output_tokens.size:
        r = raw.requests
        means = (float(r.input_tokens.mean()), float(r.output_tokens.mean()))
        longest = int(r.output_tokens.max())
    sloped = token_slo(deployment, longest)
    declared, notes = batching_profiles(sloped, draw, load_accelerators(), means)
    inp, out = means or draw.means()
    threshold = sloped.spec.slo.latency.threshold_seconds
    head = (
        f"mean {inp:.0f} input and {out:.0f} output tokens, longest answer {longest}: "
        f"end-to-end threshold {threshold:g} s"
    )
    return declared, [head, *notes]


def _replays(lineup: Lineup, trace: Trace) -> dict[int, SpotReplay]:
    names = [m.name for m in lineup.models]
    return {
        names.index(pool): SpotReplay.from_trace(
            load_spot_trace(SHARED / "spot" / rel), trace.steps, trace.dt
        )
        for pool, rel in SPOT.items()
        if pool in names
    }


def _seeded(
    lineup: Lineup, names: list[str], traces: list[Trace], seeds: tuple[int, ...] = SEEDS, **kw: Any
) -> list[list[Outcome]]:
    """`lineup.run` once per seed (trace i drawn with seeds[i])."""
    return [lineup.run(names, t, seed=seed, **kw) for seed, t in zip(seeds, traces, strict=True)]


def _mean(runs: list[list[Outcome]], key: str = "slo_attainment") -> float:
    return statistics.fmean(float(getattr(run[0], key)) for run in runs)


def _tuned(lineup: Lineup, name: str, target: float, traces: list[Trace]) -> list[list[Outcome]]:
    """Baseline `name` with its target set to `target`, over every seed."""
    settings = replace(lineup.settings, **{BASELINES[name]: target})
    tuned = Lineup(lineup.deployment, lineup.pools, settings)
    runs = _seeded(tuned, [name], traces)
    return [[replace(run[0], policy=f"{name}@{target:.3f}")] for run in runs]


def _at_equal_slo(
    lineup: Lineup, traces: list[Trace], name: str, goal: float
) -> tuple[list[list[Outcome]], str]:
    """The baseline's target whose mean attainment over the seeds matches `goal`.

    Attainment falls as the target rises: bisect the target over the metric's whole range,
    TARGET_RANGE, MAX_BISECTIONS times, keeping the highest target whose mean attainment is
    at least the goal less TOLERANCE. Returns the runs and a note: how close it came, or that
    even the lowest target cannot reach the goal.
    """
    lo, hi = TARGET_RANGE
    low = _tuned(lineup, name, lo, traces)
    if _mean(low) < goal - TOLERANCE:
        return low, f"cannot reach {goal:.4f}: {_mean(low):.4f} at target {lo}"
    best = low
    # No early stop on the first target within the tolerance: where attainment saturates
    # near the goal, many targets are within it, and the cheapest is the highest of them.
    for _ in range(MAX_BISECTIONS):
        mid = (lo + hi) / 2
        runs = _tuned(lineup, name, mid, traces)
        if _mean(runs) >= goal - TOLERANCE:
            lo, best = mid, runs
        else:
            hi = mid
    gap = _mean(best) - goal
    return best, f"target {best[0][0].policy.split('@')[1]}, attainment {gap:+.4f} from the goal"


def suite(span_s: float) -> list[Scenario]:
    """The scenario suite, placed after the burn-in: capacity 20 % below declared, cold starts
    with a 2x tail, a 2 h spot stock-out and a 10 min Prometheus outage from the middle of
    the measured span (a stock-out past the end is cut short)."""
    mid = BURN_IN_S + (span_s - BURN_IN_S) / 2
    return [
        Scenario("capacity -20 %", capacity_error=0.8),
        Scenario("cold-start tail x2", cold_start_tail=2.0),
        Scenario("2 h spot stock-out", stockouts=((mid, 7200.0),)),
        Scenario("10 min metrics outage", outages=(Outage(mid, 600.0, "down"),)),
    ]


def _in_scenario(
    lineup: Lineup, traces: list[Trace], scenario: Scenario, hpa_target: float
) -> list[dict[str, Any]]:
    """costscaler, HPA + Karpenter with spot at its equal-SLO target and the oracle, in one
    scenario over every seed."""
    settings = replace(lineup.settings, scenario=scenario, hpa_utilisation=hpa_target)
    world = Lineup(lineup.deployment, lineup.pools, settings)
    runs = _seeded(world, ["costscaler", "hpa-karpenter-spot", "oracle"], traces)
    suffix = f" ({scenario.name})"
    hpa = f"@{hpa_target:.3f}"
    label = [
        [
            replace(o, policy=o.policy + (hpa if "karpenter" in o.policy else "") + suffix)
            for o in run
        ]
        for run in runs
    ]
    meta = {"seeds": list(SEEDS), "burn_in_s": BURN_IN_S, "scenario": scenario.as_json()}
    return summarise(label, meta)


def bench_trace(
    name: str,
    deployment: InferenceDeployment,
    pools: list[CapacityPool],
    quick: bool,
    serving: str,
    out: Path,
) -> dict[str, object]:
    """All policies on one trace over every seed; returns the JSON record, writes the PNG."""
    declared: list[str] = []
    if serving == "batching":
        deployment, declared = batching_deployment(name, deployment, quick)
    lineup = Lineup(deployment, pools, Settings(burn_in_s=BURN_IN_S, serving=serving))
    traces = [_load(name, lineup, quick, seed) for seed in SEEDS]
    started = time.perf_counter()
    runs = _seeded(lineup, [*POLICIES, *ORACLES], traces[:1], SEEDS[:1], keep_timeline=True)
    plot(runs[0], traces[0], lineup.models, out / f"{name}.png")
    runs += _seeded(lineup, [*POLICIES, *ORACLES], traces[1:], SEEDS[1:])
    goal = statistics.fmean(
        o.slo_attainment for run in runs for o in run if o.policy == "costscaler"
    )
    groups = [runs]
    notes = []
    for baseline in BASELINES:
        equal, note = _at_equal_slo(lineup, traces, baseline, goal)
        groups.append(equal)
        notes.append(f"{baseline}: {note}")
    replayed = [
        [replace(o, policy=f"{o.policy} (spot replay)") for o in lineup.run(
            ["costscaler", "oracle"], t, seed=seed, replays=_replays(lineup, t)
        )]
        for seed, t in zip(SEEDS, traces, strict=True)
    ]  # fmt: skip
    alone = Lineup(deployment, pools, replace(lineup.settings, bursts=SpotBursts(0.0)))
    independent = [
        [replace(o, policy=f"{o.policy} (Poisson, no bursts)") for o in run]
        for run in _seeded(alone, ["costscaler"], traces)
    ]
    groups += [independent, replayed]
    meta = {"seeds": list(SEEDS), "burn_in_s": BURN_IN_S, "scenario": "manifest"}
    rows = [row for g in groups for row in summarise(g, meta)]
    searched = zip(BASELINES, groups[1 : 1 + len(BASELINES)], strict=True)
    tuned = {n: float(g[0][0].policy.split("@")[1]) for n, g in searched}
    for scenario in suite(traces[0].steps * traces[0].dt):
        rows += _in_scenario(lineup, traces, scenario, tuned["hpa-karpenter-spot"])
    return {
        "trace": name,
        "serving": serving,
        "declared": declared,
        "hours": traces[0].steps * traces[0].dt / 3600,
        "scale_peak_replicas": PEAK_REPLICAS,
        "seconds": round(time.perf_counter() - started, 1),
        "equal_slo": notes,
        "rows": rows,
        "table": spread_table(rows),
    }


def _write(records: list[dict[str, object]], out: Path) -> None:
    """results.json and results.md in `out` for the traces done so far."""
    (out / "results.json").write_text(json.dumps(records, indent=2) + "\n")
    lines = [
        "# Policy benchmark (`make bench`)",
        "",
        "Command: `.venv/bin/python tests/bench/bench_policies.py` (`make bench`; `--all` for "
        "every shared trace: the default runs two to fit two cores); "
        f"seeds {SEEDS[0]}-{SEEDS[-1]}, mean (min-max); the "
        f"first {BURN_IN_S:g} s of each run left out; every policy starts from the same warm "
        "replicas; traces scaled so the busiest minute needs "
        f"{PEAK_REPLICAS} rated replicas of the cheapest on-demand pool. Rows `name@t` are "
        "a baseline at the target t whose mean attainment matches costscaler's (searched "
        "over 0.05-3.0); rows `(scenario)` are the suite: capacity 20 % below declared, cold "
        "starts with a 2x tail, a 2 h spot stock-out, a 10 min Prometheus outage, the last "
        "two from the middle of the measured span.",
        "",
    ]
    for r in records:
        lines += [
            f"## {r['trace']} ({r['hours']:.1f} h, {r['serving']} serving)",
            "",
            *(["Declared: " + "; ".join(r["declared"]) + ".", ""] if r["declared"] else []),  # type: ignore[arg-type]
            str(r["table"]),
            "",
            "Equal SLO: " + "; ".join(r["equal_slo"]) + ".",  # type: ignore[arg-type]
            "",
            f"![{r['trace']}]({r['trace']}.png)",
            "",
        ]
    (out / "results.md").write_text("\n".join(lines))


def main() -> int:
    """Run the benchmark and write results.json, results.md and the PNGs."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 hours of each trace at most")
    parser.add_argument("--trace", action="append", choices=TRACES, help="only these traces")
    parser.add_argument("--all", action="store_true", help="every shared trace")
    parser.add_argument(
        "--serving", choices=SERVING, default="batching", help="serving model (default batching)"
    )
    parser.add_argument(
        "--out", type=Path, default=OUT, help="folder for results.json, results.md and PNGs"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    resources = load_manifests(REPO / "examples")
    deployment = next(
        r
        for r in resources
        if isinstance(r, InferenceDeployment) and r.metadata.name == "llama-3-1-8b"
    )
    pools = [r for r in resources if isinstance(r, CapacityPool)]
    records = []
    for name in args.trace or (TRACES if args.all else DEFAULT_TRACES):
        record = bench_trace(name, deployment, pools, args.quick, args.serving, args.out)
        print(f"## {name} ({record['hours']:.1f} h, {record['seconds']} s)\n\n{record['table']}\n")
        print("equal SLO: " + "; ".join(record["equal_slo"]) + "\n")
        records.append(record)
        _write(records, args.out)  # after every trace: a run cut short keeps what it finished
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
