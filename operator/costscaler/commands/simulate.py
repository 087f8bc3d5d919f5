"""`costscaler simulate`: replay a trace through costscaler, the baselines and the oracle.

Prints a table (or `--json`: one object per policy) of total cost, cost per 1k requests and
per 1M tokens, SLO attainment, requests, idle accelerator-hours, scale events and p99: the
mean over `--seeds` seeds with its min and max, after `--burn-in`, every policy starting
from the same allocation.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from costscaler.api import CapacityPool, InferenceDeployment, OnConflict, load_manifests
from costscaler.errors import UserError
from costscaler.sim.batching import ROUTERS
from costscaler.sim.budget import SimBudget
from costscaler.sim.cluster import SpotBursts, SpotReplay
from costscaler.sim.lineup import ORACLES, POLICIES, SERVING, Lineup, Settings
from costscaler.sim.report import plot, spread_table, summarise
from costscaler.sim.scenario import MANIFEST, Outage, Scenario, scenario_from
from costscaler.sim.traces import load_spot_trace, load_trace


def register(subparsers: Any) -> None:
    """Add the `simulate` subcommand."""
    p = subparsers.add_parser("simulate", help="replay a trace through the autoscaling policies")
    p.add_argument("--trace", required=True, help="trace.csv or rates.csv")
    p.add_argument("-f", "--file", required=True, help="InferenceDeployment YAML")
    p.add_argument("-p", "--pools", required=True, help="CapacityPool YAML file or folder")
    p.add_argument(
        "--policy",
        action="append",
        choices=POLICIES + ORACLES,
        help="policy to run (repeatable; default: all)",
    )
    p.add_argument("--scale", type=float, default=1.0, help="multiply the trace's rate")
    p.add_argument("--seed", type=int, default=0, help="seed for arrivals and interruptions")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="run seeds --seed .. --seed + N - 1 and report the mean, min and max of each figure",
    )
    p.add_argument(
        "--burn-in",
        type=float,
        default=0.0,
        metavar="S",
        help="replay but leave the first S seconds out of every figure (and the oracle's bound)",
    )
    p.add_argument(
        "--start-replicas",
        type=int,
        default=None,
        metavar="N",
        help="every policy starts from N replicas on the cheapest on-demand pool (default: the "
        "rated replicas the trace's first minute needs, within spec.replicas)",
    )
    p.add_argument("--start", type=float, default=0.0, help="start at this second of the trace")
    p.add_argument("--duration", type=float, default=None, help="replay this many seconds")
    p.add_argument("--step", type=float, default=1.0, help="time step in s (at most 1)")
    p.add_argument(
        "--spot-trace",
        action="append",
        default=[],
        metavar="POOL=PATH",
        help="replay a spot capacity trace for a pool instead of Poisson interruptions",
    )
    p.add_argument(
        "--spot-burst-share",
        type=float,
        default=None,
        help="share (0-1) of each Poisson spot pool's hazard that comes as correlated "
        "pool-wide bursts (real GPU spot losses cluster); 0: independent per replica; "
        "default: each pool's interruption.burstShare (0.6 unset), as the engine prices it",
    )
    p.add_argument(
        "--spot-burst-size",
        type=float,
        default=0.5,
        help="with --spot-burst-share: chance (0-1] that a burst reclaims each replica",
    )
    p.add_argument(
        "--cold-start",
        action="store_true",
        help="the common starting replicas pay their cold start at t=0 (default: they serve "
        "from t=0, as when every policy takes over the same running deployment)",
    )
    p.add_argument(
        "--rate-window",
        type=float,
        default=60.0,
        help="range (s) of the request-rate and latency queries of costscaler, HPA and KEDA; "
        "bursts shorter than it are averaged away",
    )
    p.add_argument("--hpa-target", type=float, default=0.7, help="HPA target utilisation")
    p.add_argument("--keda-target", type=float, default=0.7, help="KEDA threshold / capacity")
    p.add_argument("--kpa-target", type=float, default=0.7, help="KPA target utilisation")
    p.add_argument(
        "--budget",
        type=float,
        help="enforce a CostBudget of this amount over the replayed span on the costscaler "
        "policies (as the operator does: the burn rate left over the time left)",
    )
    p.add_argument(
        "--on-conflict",
        choices=[c.value for c in OnConflict],
        default=OnConflict.PREFER_BUDGET.value,
        help="with --budget: which gives way when the SLO and the budget conflict",
    )
    p.add_argument(
        "--serving",
        choices=SERVING,
        default="batching",
        help="batching (default): requests one by one with their tokens, continuous batching "
        "per replica on its accelerator's published figures (sim/accelerators.json), TTFT "
        "and inter-token latency; fluid: one queue at the profiles' declared capacity (faster; "
        "for accelerators without serving figures, and where the oracle must be a bound)",
    )
    p.add_argument(
        "--router",
        choices=ROUTERS,
        default="least",
        help="with --serving batching: least outstanding requests, or round-robin",
    )
    p.add_argument(
        "--scenario",
        metavar="FILE",
        help="YAML or JSON scenario: name, capacityError, coldStartTail, stockouts and "
        "outages ([{startSeconds, durationSeconds, kind}]); the flags below override it",
    )
    p.add_argument(
        "--capacity-error",
        type=float,
        default=None,
        help="true capacity of every pool relative to its declared profile (0.8: 20%% less)",
    )
    p.add_argument(
        "--cold-start-tail",
        type=float,
        default=None,
        help="cold starts drawn from a heavy tail: the 95th percentile's multiple of the "
        "declared ones (the declared are the fastest; 1: as declared)",
    )
    p.add_argument(
        "--stockout",
        action="append",
        default=[],
        metavar="START:DURATION",
        help="no spot capacity in any spot pool from START for DURATION seconds (repeatable)",
    )
    p.add_argument(
        "--metrics-outage",
        action="append",
        default=[],
        metavar="START:DURATION[:KIND]",
        help="a metrics outage (repeatable); KIND: down (Prometheus unreachable, default), "
        "gap (no samples), nan (NaN samples), stale (values frozen)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--plot", metavar="PNG", help="write a plot")
    p.set_defaults(func=run)


def _deployment(path: str) -> InferenceDeployment:
    found = [r for r in load_manifests(path) if isinstance(r, InferenceDeployment)]
    if len(found) != 1:
        raise UserError(f"-f {path}: expected one InferenceDeployment, found {len(found)}")
    return found[0]


def _replays(specs: list[str], lineup: Lineup, steps: int, dt: float) -> dict[int, SpotReplay]:
    names = [m.name for m in lineup.models]
    out: dict[int, SpotReplay] = {}
    for item in specs:
        pool, sep, path = item.partition("=")
        if not sep or pool not in names or not lineup.models[names.index(pool)].spot:
            raise UserError(
                f"--spot-trace {item!r}: expected POOL=PATH with POOL one of the deployment's "
                f"spot pools ({', '.join(m.name for m in lineup.models if m.spot) or 'none'})"
            )
        out[names.index(pool)] = SpotReplay.from_trace(load_spot_trace(path), steps, dt)
    return out


def run(args: argparse.Namespace) -> int:
    """Replay and print the comparison."""
    if not 0 < args.step <= 1:
        raise UserError("--step must be in (0, 1] seconds")
    for flag in ("hpa_target", "keda_target", "kpa_target"):
        if not 0 < getattr(args, flag) <= 1.5:
            raise UserError(f"--{flag.replace('_', '-')} must be in (0, 1.5]")
    if args.seeds < 1:
        raise UserError("--seeds must be at least 1")
    if args.start_replicas is not None and args.start_replicas < 0:
        raise UserError("--start-replicas must be 0 or more")
    pools = [r for r in load_manifests(args.pools) if isinstance(r, CapacityPool)]
    seeds = list(range(args.seed, args.seed + args.seeds))
    traces = [
        load_trace(
            args.trace,
            dt=args.step,
            scale=args.scale,
            start_s=args.start,
            duration_s=args.duration,
            seed=seed,
        )
        for seed in seeds
    ]
    span_s = traces[0].steps * traces[0].dt
    if not 0 <= args.burn_in < span_s:
        raise UserError(f"--burn-in must be >= 0 and shorter than the replay ({span_s:g} s)")
    if args.budget is not None and not args.budget > 0:
        raise UserError("--budget must be a positive amount")
    budget = (
        SimBudget(args.budget, span_s, OnConflict(args.on_conflict))
        if args.budget is not None
        else None
    )
    share = args.spot_burst_share
    if (share is not None and not 0 <= share <= 1) or not 0 < args.spot_burst_size <= 1:
        raise UserError("--spot-burst-share must be in [0, 1] and --spot-burst-size in (0, 1]")
    if not args.step <= args.rate_window <= 3600:
        raise UserError("--rate-window must be between --step and 3600 seconds")
    settings = Settings(
        args.hpa_target,
        args.keda_target,
        args.kpa_target,
        budget,
        rate_window_s=args.rate_window,
        bursts=SpotBursts(args.spot_burst_share, args.spot_burst_size),
        warm_start=not args.cold_start,
        start_replicas=args.start_replicas,
        burn_in_s=args.burn_in,
        serving=args.serving,
        router=args.router,
        scenario=_scenario_of(args),
    )
    lineup = Lineup(_deployment(args.file), pools, settings)
    names = args.policy or list(POLICIES + ORACLES)
    runs = []
    for seed, trace in zip(seeds, traces, strict=True):
        replays = _replays(args.spot_trace, lineup, trace.steps, trace.dt)
        keep = bool(args.plot) and seed == seeds[0]
        runs.append(lineup.run(names, trace, seed=seed, replays=replays, keep_timeline=keep))
    if args.plot:
        plot(runs[0], traces[0], lineup.models, args.plot)
    start = lineup.start(traces[0])
    meta = {
        "seeds": seeds,
        "burn_in_s": args.burn_in,
        "start": {
            "pool": lineup.models[lineup.single].name,
            "replicas": start.replicas[lineup.single],
            "warm": start.warm,
        },
        "scenario": {**settings.scenario.as_json(), **_setup(args)},
    }
    rows = summarise(runs, meta)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"seeds {seeds[0]}-{seeds[-1]}, burn-in {args.burn_in:g} s: mean (min-max)")
        print(spread_table(rows))
    return 0


def _span(text: str, flag: str, kinds: bool = False) -> tuple[float, float, str]:
    """START:DURATION[:KIND] of a flag, or a clear error naming it."""
    parts = text.split(":")
    try:
        if len(parts) not in ((2, 3) if kinds else (2,)):
            raise ValueError
        kind = parts[2] if len(parts) == 3 else "down"
        return float(parts[0]), float(parts[1]), kind
    except ValueError:
        form = "START:DURATION[:KIND]" if kinds else "START:DURATION"
        raise UserError(f"{flag} {text!r}: expected {form} in seconds") from None


def _scenario_of(args: argparse.Namespace) -> Scenario:
    """The scenario from --scenario, then the flags; errors name the flag or the file."""
    base = MANIFEST
    if args.scenario:
        try:
            data = yaml.safe_load(Path(args.scenario).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise UserError(f"--scenario {args.scenario}: cannot read ({exc})") from exc
        if not isinstance(data, dict):
            raise UserError(f"--scenario {args.scenario}: expected a mapping of fields")
        try:
            base = scenario_from(data, args.scenario)
        except ValueError as exc:
            raise UserError(str(exc)) from exc
    stockouts = [_span(s, "--stockout")[:2] for s in args.stockout]
    outages = [Outage(*_span(o, "--metrics-outage", kinds=True)) for o in args.metrics_outage]  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    if args.capacity_error is not None:
        changes["capacity_error"] = args.capacity_error
    if args.cold_start_tail is not None:
        changes["cold_start_tail"] = args.cold_start_tail
    if stockouts:
        changes["stockouts"] = (*base.stockouts, *stockouts)
    if outages:
        changes["outages"] = (*base.outages, *outages)
    if changes and base.name == MANIFEST.name:
        changes["name"] = "flags"
    try:
        return replace(base, **changes)
    except ValueError as exc:
        raise UserError(f"scenario: {exc}") from exc


def _setup(args: argparse.Namespace) -> dict[str, Any]:
    """How the replay was set up besides the scenario, named for the JSON output."""
    return {
        "spot_burst_share": args.spot_burst_share,
        "spot_burst_size": args.spot_burst_size,
        "spot_traces": list(args.spot_trace),
        "cold_start": args.cold_start,
        "serving": args.serving,
        "router": args.router if args.serving == "batching" else None,
    }
