"""`costscaler plan`: one decision of the engine for a stated steady load, as a table or JSON."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from costscaler.api import CapacityPool, InferenceDeployment, load_manifests
from costscaler.api.budget import OnConflict
from costscaler.core import (
    BudgetConstraint,
    Decision,
    Observations,
    decide,
    missing_pools,
    pool_views,
)
from costscaler.errors import UserError

SCRAPE_S = 15.0


def register(subparsers: Any) -> None:
    """Add the `plan` subcommand."""
    parser = subparsers.add_parser(
        "plan",
        help="decide replicas per pool for a stated load (no cluster needed)",
        description="Run the decision engine once for a steady request rate and print the plan, "
        "its cost, its SLO risk and the alternatives it weighed.",
    )
    parser.add_argument("-f", "--filename", required=True, help="InferenceDeployment YAML file")
    parser.add_argument(
        "-p", "--pools", required=True, help="CapacityPool YAML file or folder (others skipped)"
    )
    parser.add_argument("--rate", required=True, type=_rate, help="steady load, requests/s")
    parser.add_argument(
        "--current",
        action="append",
        default=[],
        metavar="POOL=N",
        help="replicas running now on a pool (repeat per pool); default none",
    )
    parser.add_argument(
        "--budget-rate",
        type=_dollars,
        metavar="DOLLARS_PER_HOUR",
        help="the burn rate a CostBudget allows this deployment, $/h (as the operator "
        "passes it); default no budget",
    )
    parser.add_argument(
        "--on-conflict",
        choices=[c.value for c in OnConflict],
        help="which wins when the SLO and --budget-rate cannot both hold (default PreferSLO)",
    )
    parser.add_argument(
        "--slo-good",
        type=_count,
        metavar="N",
        help="requests within the latency threshold in the SLO window so far (with "
        "--slo-total): the error budget sets this tick's attainment target",
    )
    parser.add_argument(
        "--slo-total", type=_count, metavar="N", help="all requests in the SLO window so far"
    )
    parser.add_argument(
        "--input-tokens",
        type=_tokens,
        metavar="N",
        help="mean prompt tokens per request: with output tokens, prices $/1M input and "
        "output tokens; default none",
    )
    parser.add_argument(
        "--output-tokens",
        type=_tokens,
        metavar="N",
        help="mean output tokens per request (default spec.workload.meanOutputTokens)",
    )
    parser.add_argument("--name", help="which InferenceDeployment, when -f holds several")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def _non_negative(unit: str) -> Callable[[str], float]:
    """An argparse type: a finite number >= 0, its error naming `unit` (req/s, $/h)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {unit} as a number, got {text!r}") from None
        if not (math.isfinite(value) and value >= 0):
            raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
        return value

    return parse


_rate, _dollars = _non_negative("requests/s"), _non_negative("$/h")
_count = _non_negative("a request count")
_tokens = _non_negative("tokens per request")


def _slo_counts(args: argparse.Namespace) -> tuple[float | None, float | None]:
    """(good, total) from --slo-good and --slo-total: both or neither, good <= total."""
    good, total = args.slo_good, args.slo_total
    if (good is None) != (total is None):
        raise UserError("--slo-good and --slo-total go together: give both counts or neither")
    if good is not None and total is not None and good > total:
        raise UserError(f"--slo-good {good:g} is more than --slo-total {total:g}")
    return good, total


def _token_rates(args: argparse.Namespace, dep: InferenceDeployment, n: int) -> dict[str, Any]:
    """Input and output tokens/s at --rate, from the tokens per request, for `Observations`
    (the engine prices $/1M input and output tokens from them)."""
    output = args.output_tokens or dep.spec.workload.mean_output_tokens
    rates: dict[str, Any] = {}
    if args.input_tokens is not None:
        rates["prompt_token_rate"] = np.full(n, args.rate * args.input_tokens)
    if output is not None:
        rates["token_rate"] = np.full(n, args.rate * output)
    return rates


def _budget(args: argparse.Namespace) -> BudgetConstraint | None:
    """The budget the operator would pass (`core.BudgetConstraint`), from the flags."""
    if args.budget_rate is None:
        if args.on_conflict is not None:
            raise UserError("--on-conflict needs --budget-rate (the allowed $/h)")
        return None
    return BudgetConstraint(args.budget_rate, OnConflict(args.on_conflict or "PreferSLO"))


def _current(items: list[str], known: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        pool, sep, count = item.partition("=")
        if not sep or not count.strip().isdigit():
            raise UserError(f"--current {item}: expected POOL=N with N a whole number >= 0")
        if pool not in known:
            raise UserError(f"--current {item}: {pool!r} is not an eligible pool ({_names(known)})")
        out[pool] = int(count)
    return out


def _names(names: list[str]) -> str:
    return ", ".join(names) or "none"


def _deployment(path: str, name: str | None) -> InferenceDeployment:
    found = [r for r in load_manifests(path) if isinstance(r, InferenceDeployment)]
    if name is not None:
        found = [d for d in found if d.metadata.name == name]
    if len(found) != 1:
        what = "no InferenceDeployment" if not found else "several InferenceDeployments"
        hint = f" named {name!r}" if name else ("; pick one with --name" if found else "")
        raise UserError(f"{path}: {what}{hint}")
    return found[0]


def run(args: argparse.Namespace) -> int:
    """Decide once for `--rate` and print the plan."""
    dep = _deployment(args.filename, args.name)
    pools = [r for r in load_manifests(args.pools) if isinstance(r, CapacityPool)]
    missing = missing_pools(dep.spec, pools)
    if missing:
        raise UserError(
            f"{args.pools}: spec.pools of {dep.metadata.name} lists {_names(missing)}, not found "
            f"among the CapacityPools given (have: {_names(sorted(p.name for p in pools))})"
        )
    eligible = [v.name for v in pool_views(dep.spec, pools)]
    if not eligible:
        raise UserError(
            f"{args.filename}: no listed pool can run {dep.metadata.name}: add a "
            "spec.workload.capacity profile for one of their accelerator types"
        )
    current = _current(args.current, eligible)
    budget = _budget(args)
    good, total = _slo_counts(args)
    window = float(dep.spec.forecast.window_seconds)
    times = np.arange(-window, SCRAPE_S / 2, SCRAPE_S)
    n = times.size
    obs = Observations(
        times=times,
        request_rate=np.full(n, args.rate),
        latency=np.full(n, math.nan),
        ready={k: np.full(n, float(v)) for k, v in current.items()},
        slo_good=good,
        slo_total=total,
        **_token_rates(args, dep, n),
    )
    # No engine state: every surplus replica's keep-alive clock starts now, and the --current
    # replicas are all ready, so moves pay make-before-break as the operator's first tick would.
    decision = decide(dep.spec, pools, obs, current, 0.0, budget=budget)
    kinds = {p.name: str(p.spec.capacity_type) for p in pools}
    if args.json:
        print(json.dumps(to_json(decision, dep.metadata.name, args.rate, budget), indent=2))
    else:
        print(table(decision, dep.metadata.name, args.rate, kinds, budget))
    return 0


def _num(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def _opt(value: float | None) -> float | None:
    return None if value is None else _num(value)


def spot_share(replicas: dict[str, int], kinds: dict[str, str]) -> float:
    """Share of replicas on Spot pools (0 with no replicas)."""
    total = sum(replicas.values())
    spot = sum(v for k, v in replicas.items() if kinds.get(k) == "Spot")
    return spot / total if total else 0.0


def to_json(
    decision: Decision, name: str, rate: float, budget: BudgetConstraint | None = None
) -> dict[str, Any]:
    """The decision as a JSON-able object (ARCHITECTURE §5); non-finite numbers become null.

    `nodes` is the nodes the replicas open per pool (a node bills whole from its first
    replica). `cost_per_hour` is the allocated cost (owned and reserved capacity at its full
    TCO, for chargeback); `marginal_cost_per_hour` what the decision pays (their capex left
    out: it is paid whether used or not), the figure plans are compared and budgets held by.
    With a budget, `budget` holds the allowed $/h and onConflict, and `budget_limited`
    whether the budget shaped the plan or the plan is past it. `attainment_target` is the
    attainment the plan was sized for (the SLO's, or moved by the error budget when the SLO
    window's counts are given); `error_budget_left` and `burn_rate` are the window's (null
    without the counts). `warm_nodes`: per pool whose nodes a NodePool launches, the warm
    spare nodes this deployment alone would keep and their $/h (the operator sizes a pool's
    spares over every deployment on it). `optimum_proven`: whether the exact search proved
    the plan optimal; `optimum_gap`: otherwise how far below its objective the optimum's may
    lie, as a share of it (0 when proven).
    """
    return {
        "deployment": name,
        "rate": rate,
        "replicas": dict(decision.replicas),
        "nodes": dict(decision.nodes),
        "warm_nodes": {
            pool: {"nodes": w.nodes, "cost_per_hour": _num(w.cost_per_hour)}
            for pool, w in decision.warm_nodes.items()
        },
        "cost_per_hour": _num(decision.cost_per_hour),
        "marginal_cost_per_hour": _num(decision.marginal_cost_per_hour),
        "slo_risk": _num(decision.slo_risk),
        "expected_attainment": _num(decision.expected_attainment),
        "violating_share": _num(decision.violating_share),
        "optimum_proven": decision.optimum_proven,
        "optimum_gap": _num(decision.optimum_gap),
        "reason": str(decision.reason),
        "message": decision.message,
        "budget": None
        if budget is None
        else {
            "allowed_per_hour": budget.allowed_per_hour,
            "on_conflict": str(budget.on_conflict),
        },
        "budget_limited": decision.budget_limited,
        "spot_limit_relaxed": decision.spot_limit_relaxed,
        "cost_per_1k_requests": _num(decision.cost_per_1k_requests),
        "cost_per_million_input_tokens": _num(decision.cost_per_million_input_tokens),
        "cost_per_million_output_tokens": _num(decision.cost_per_million_output_tokens),
        "quantile": _num(decision.quantile),
        "demand_rps": _num(decision.demand_rps),
        "horizon_s": decision.horizon_s,
        "attainment_target": _num(decision.attainment_target),
        "error_budget_left": _opt(decision.error_budget_left),
        "burn_rate": _opt(decision.burn_rate),
        "alternatives": [
            {
                "name": a.name,
                "replicas": dict(a.replicas),
                "cost_per_hour": _num(a.cost_per_hour),
                "marginal_cost_per_hour": _num(a.marginal_cost_per_hour),
                "slo_risk": _num(a.slo_risk),
            }
            for a in decision.alternatives
        ],
    }


def _pct(value: float) -> str:
    return f"{value:.2%}" if math.isfinite(value) else "unknown"


def table(
    decision: Decision,
    name: str,
    rate: float,
    kinds: dict[str, str],
    budget: BudgetConstraint | None = None,
) -> str:
    """The decision as a readable table: pools, then the alternatives."""
    reps = dict(decision.replicas)
    lines = [f"{name} at {rate:g} req/s: {decision.reason}", ""]
    nodes = dict(decision.nodes)
    lines.append(f"{'POOL':<32} {'TYPE':<9} {'REPLICAS':>8} {'NODES':>6}")
    lines += [
        f"{p:<32} {kinds.get(p, '?'):<9} {n:>8} {nodes.get(p, 0):>6}" for p, n in reps.items()
    ]
    lines.append(f"{'TOTAL':<32} {'':<9} {sum(reps.values()):>8} {sum(nodes.values()):>6}")
    lines += [
        "",
        f"cost       ${decision.cost_per_hour:.4f}/h allocated (full TCO of owned and "
        "reserved capacity, for chargeback; accelerators, fixed items, egress)",
        f"marginal   ${decision.marginal_cost_per_hour:.4f}/h paid by the decision (owned and "
        "reserved capacity at energy and per-use operations)",
        f"budget     {_budget_line(decision, budget)}",
        f"spot share {spot_share(reps, kinds):.0%}",
        f"warm nodes {_warm_line(decision)}",
        f"attainment {_pct(decision.expected_attainment)} expected ("
        f"{_pct(decision.violating_share)} of requests over the latency threshold)",
        f"SLO window {_window_line(decision)}",
        f"tokens     {_tokens_line(decision)}",
        f"reason     {decision.reason}: {decision.message}",
        "",
        f"{'ALTERNATIVE':<20} {'$/H':>10} {'MARGINAL':>10} {'OVER L':>8}  REPLICAS",
    ]
    for alt in decision.alternatives:
        plan = ", ".join(f"{p}={n}" for p, n in alt.replicas.items() if n) or "none"
        lines.append(
            f"{alt.name:<20} {alt.cost_per_hour:>10.4f} {alt.marginal_cost_per_hour:>10.4f} "
            f"{_pct(alt.slo_risk):>8}  {plan}"
        )
    return "\n".join(lines)


def _window_line(decision: Decision) -> str:
    target = f"sized for attainment {_pct(decision.attainment_target)}"
    left, burn = decision.error_budget_left, decision.burn_rate
    if left is None or burn is None:
        return f"{target} (no counts: --slo-good N --slo-total N)"
    return f"{target}; error budget left {left:.1%}, burn rate {burn:.2f}"


def _tokens_line(decision: Decision) -> str:
    per_in, per_out = (
        decision.cost_per_million_input_tokens,
        decision.cost_per_million_output_tokens,
    )
    if not (math.isfinite(per_in) and math.isfinite(per_out)):
        return "no token costs (give --input-tokens N; output defaults to meanOutputTokens)"
    return f"${per_in:.4f} per 1M input, ${per_out:.4f} per 1M output (docs/metrics.md)"


def _warm_line(decision: Decision) -> str:
    if not decision.warm_nodes:
        return "none (no pool with a nodePool, or no spare pays for itself)"
    return ", ".join(
        f"{p}={w.nodes} (${w.cost_per_hour:.4f}/h)" for p, w in decision.warm_nodes.items()
    )


def _budget_line(decision: Decision, budget: BudgetConstraint | None) -> str:
    if budget is None:
        return "none (--budget-rate)"
    gap = decision.marginal_cost_per_hour - budget.allowed_per_hour  # budgets hold marginal
    where = f"${gap:.4f}/h over" if gap > 1e-6 else "within"
    return f"${budget.allowed_per_hour:.4f}/h allowed, {budget.on_conflict}: {where}"
