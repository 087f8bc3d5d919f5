"""Request-size-aware allocation (issue 17, item 3) against the integer optimum, by brute force.

`--melange` runs the issue's check on the Llama-2-7B profiles built from the Mélange paper
(`melange_profiles.py`, examples/melange): `costscaler plan` (its `main`, in process) at
0.5-64 req/s for the paper's three workloads (Arena, PubMed, Mixed) and two TPOT SLOs (120 ms,
40 ms), against the integer optimum at the plan's own demand (`demand_rps`), with the saving
of the mix against the best single GPU type next to the paper's (App. C). The profiles are
deterministic, so there are no seeds.

Without `--melange`, the check runs on synthetic profiles built from REFERENCE.md's
figures: four accelerator types (L4, A10G, A100-80GB, H100) at their on-demand prices (§3),
decode tokens/s at a batch of 32 from §6, prefill at 8 x decode, and a KV cache (24 GB or
80 GB less 14 GB of Llama-2-7B weights, 0.5 MB a token) that caps the batch of long
requests: a batch of n = KV / (I + O) < 32 sequences decodes at n / 32 of the rate. A
request of I prompt and O output tokens then takes I / P + O / D' replica-seconds, and its
bucket's capacity is the inverse. Nine buckets (prompts of about 128, 1,000 and 4,000 tokens
x outputs of about 32, 250 and 1,000); each seed draws the mix (Dirichlet), prices within
+-15 % and capacities within +-20 %.

For each seed and each rate R in 0.5-64 req/s, `Planner.decide` plans on one sample at R
(a wider demand quantile than `costscaler plan --rate R`, which sees a whole window) and
the plan's cost is compared with the integer optimum at the plan's own demand (the
decision's demand_rps) and at the plan's own capacity (C of its replicas): Melange's integer
program, solved by scipy's MILP (HiGHS) independently of `core.sizes`. Also reported: what
mixing saves against the best single accelerator type (the engine's own plan on that type
alone), and the plan's capacity over its demand.

Run: `python tests/bench/bench_sizes.py [--seeds 5]`: one row per rate (mean, min and max
over the seeds); `--melange`: one row per workload, SLO and rate (tests/bench/results.md).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import itertools
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import melange_profiles as mp
import numpy as np
import yaml
from scipy import optimize

from costscaler.api import CapacityPool, InferenceDeployment, load_manifests, parse_resource
from costscaler.cli import main as cli_main
from costscaler.core import Observations, Planner, PoolView, Settings, pool_views

MELANGE = Path(__file__).resolve().parents[2] / "examples" / "melange"
MELANGE_RATES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)

# (type, $/h on demand, decode tokens/s at batch 32, KV-cache tokens)
TYPES = [
    ("L4", 0.805, 400.0, (24 - 14) * 2048),
    ("A10G", 1.006, 650.0, (24 - 14) * 2048),
    ("A100-80GB", 3.673, 1750.0, (80 - 14) * 2048),
    ("H100", 98.32 / 8, 3000.0, (80 - 14) * 2048),
]
INPUT = (128, 1000, 4000)
OUTPUT = (32, 250, 1000)
RATES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
THRESHOLD_S = 60.0  # end-to-end latency threshold: long requests take tens of seconds


def profiles(rng: np.random.Generator) -> tuple[list[PoolView], np.ndarray]:
    """One seed's pools (per-bucket capacity, req/s) and the mix's shares."""
    pools = []
    for name, price, decode, kv in TYPES:
        rates = []
        for i, o in itertools.product(INPUT, OUTPUT):
            batch = min(kv / (i + o), 32.0)
            # Replica-seconds a request takes (`core.tokens`), decode at the batch's rate.
            rates.append(1.0 / (i / (8.0 * decode) + o / (decode * batch / 32.0)))
        jitter = rng.uniform(0.8, 1.2, len(rates))
        pools.append(
            PoolView(
                name,
                spot=False,
                replica_cost_per_hour=price * float(rng.uniform(0.85, 1.15)),
                capacity_rps=1.0,
                cold_start_s=300.0,
                base_latency_s=THRESHOLD_S / 4.0,
                bucket_rps=tuple(float(r) for r in np.array(rates) * jitter),
            )
        )
    share = rng.dirichlet(np.ones(len(INPUT) * len(OUTPUT)))
    return pools, share


def lp_capacity(rates: np.ndarray, share: np.ndarray, x: np.ndarray) -> float:
    """Req/s of the mix `x` replicas serve with each size routed freely (scipy's HiGHS); a
    rate of 0 is a size the type cannot serve."""
    n, b = rates.shape
    inv = np.where(rates > 0, 1.0 / np.where(rates > 0, rates, 1.0), 0.0)
    cost = np.zeros(n * b + 1)
    cost[-1] = -1.0
    a_eq = np.zeros((b, n * b + 1))
    for j in range(b):
        a_eq[j, [i * b + j for i in range(n)]] = 1.0
        a_eq[j, -1] = -share[j]
    a_ub = np.zeros((n, n * b + 1))
    for i in range(n):
        a_ub[i, [i * b + j for j in range(b)]] = inv[i]
    bounds = [(0.0, None if r > 0 else 0.0) for r in rates.ravel()] + [(0.0, None)]
    res = optimize.linprog(cost, A_ub=a_ub, b_ub=x, A_eq=a_eq, b_eq=np.zeros(b), bounds=bounds)
    return float(-res.fun)


def integer_optimum(pools: list[PoolView], share: np.ndarray, demand: float) -> float:
    """$/h of the cheapest replica counts whose size-aware capacity covers `demand`:
    Melange's integer program (integer replicas x_g, req/s f_gb of size b on type g,
    sum_g f_gb = demand s_b, sum_b f_gb / c_gb <= x_g; f_gb = 0 where c_gb = 0: type g
    cannot serve size b), solved by scipy's HiGHS."""
    rates = np.array([p.bucket_rps for p in pools])
    price = np.array([p.replica_cost_per_hour for p in pools])
    n, b = rates.shape
    inv = np.where(rates > 0, 1.0 / np.where(rates > 0, rates, 1.0), 0.0)
    cost = np.concatenate((price, np.zeros(n * b)))
    serve = np.zeros((b, n + n * b))
    time = np.zeros((n, n + n * b))
    for g in range(n):
        time[g, g] = -1.0
        time[g, n + g * b : n + (g + 1) * b] = inv[g]
        for j in range(b):
            serve[j, n + g * b + j] = 1.0
    res = optimize.milp(
        cost,
        constraints=[
            optimize.LinearConstraint(serve, demand * share, demand * share),
            optimize.LinearConstraint(time, -np.inf, 0.0),
        ],
        integrality=np.concatenate((np.ones(n), np.zeros(n * b))),
        bounds=optimize.Bounds(
            0.0, np.concatenate((np.full(n, np.inf), np.where(rates.ravel() > 0, np.inf, 0.0)))
        ),
    )
    assert res.status == 0, res.message
    return float(res.fun)


def plan(pools: list[PoolView], share: np.ndarray, rate: float) -> tuple[float, float, np.ndarray]:
    """(the engine's $/h, its demand, its replicas per pool) planning on one sample at
    `rate` req/s."""
    names = tuple(f"b{j}" for j in range(share.size))
    settings = Settings(
        latency_threshold_s=THRESHOLD_S,
        replicas_max=400,
        size_names=names,
        size_shares=tuple(float(s) for s in share),
    )
    d = Planner(pools, settings).decide(
        Observations.single(3600.0, rate), {}, 3600.0, alternatives=False
    )
    x = np.array([d.replicas[p.name] for p in pools], dtype=np.float64)
    return d.cost_per_hour, d.demand_rps, x


def melange_doc(workload: str, slo: str) -> dict[str, Any]:
    """The example's InferenceDeployment for `workload` ('arena', 'pubmed', 'mixed') at the
    TPOT SLO `slo` ('120ms', '40ms'): its shares, its profiles, and the sizes, buckets and
    pools that are left with no requests or no capacity left out (the API wants shares > 0
    and at least one bucket per capacity entry)."""
    docs = yaml.safe_load_all((MELANGE / "llama-2-7b-melange.yaml").read_text())
    doc: dict[str, Any] = copy.deepcopy(next(d for d in docs if d))
    work = doc["spec"]["workload"]
    share = mp.shares(workload)
    names = mp.bucket_names()
    keep = {n for n, s in zip(names, share, strict=True) if s > 0}
    work["requestSizes"] = [
        {**size, "share": float(f"{s:.4g}")}
        for size, s in zip(work["requestSizes"], share, strict=True)
        if size["name"] in keep
    ]
    prof = mp.profiles(slo)
    capacity, accelerators = [], set()
    for gpu, entry in zip(mp.GPUS, work["capacity"], strict=True):
        buckets = [
            {"size": n, "requestsPerSecond": float(r)}
            for n, r in zip(names, prof[gpu.name], strict=True)
            if r > 0 and n in keep
        ]
        if buckets:
            served = mp.mix_rate(prof[gpu.name], share)
            entry = {**entry, "buckets": buckets}
            entry["requestsPerSecond"] = float(f"{served:.4g}") if served > 0 else 0.01
            capacity.append(entry)
            accelerators.add(gpu.accelerator)
    work["capacity"] = capacity
    pools = {p.name: p for p in load_manifests(MELANGE) if isinstance(p, CapacityPool)}
    doc["spec"]["pools"] = [
        ref
        for ref in doc["spec"]["pools"]
        if pools[ref["name"]].spec.accelerator.type in accelerators
    ]
    return doc


def cli_plan(doc: dict[str, Any], rate: float) -> dict[str, Any]:
    """`costscaler plan -f <doc> -p examples/melange --rate <rate> --json`, in process."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "deployment.yaml"
        path.write_text(yaml.safe_dump(doc))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            pools = str(MELANGE / "pools.yaml")
            code = cli_main(["plan", "-f", str(path), "-p", pools, "--rate", str(rate), "--json"])
    if code != 0:
        raise RuntimeError(f"costscaler plan exited {code}")
    plan: dict[str, Any] = json.loads(out.getvalue())
    return plan


def melange_check(doc: dict[str, Any], rate: float) -> dict[str, float]:
    """The plan at `rate` against the integer optimum at its own demand: its $/h, demand,
    capacity (the routing LP on its replicas) and the optimum's, the best single type's $/h
    at that demand (Mélange's baseline), and the mix's share of requests."""
    plan = cli_plan(doc, rate)
    res = parse_resource(doc, "melange.yaml")
    assert isinstance(res, InferenceDeployment)
    every = [p for p in load_manifests(MELANGE) if isinstance(p, CapacityPool)]
    views = pool_views(res.spec, every)
    rates = np.array([v.bucket_rps for v in views])
    share = np.array([s.share for s in res.spec.workload.request_sizes or []])
    share = share / share.sum()
    x = np.array([plan["replicas"][v.name] for v in views], dtype=np.float64)
    demand = float(plan["demand_rps"])
    single = [
        integer_optimum([v], share, demand) if np.all(v.bucket_rps or ()) else np.inf for v in views
    ]
    return {
        "cost": float(plan["cost_per_hour"]),
        "demand": demand,
        "capacity": lp_capacity(rates, share, x),
        "optimum": integer_optimum(views, share, demand),
        "single": float(min(single)),
        "proven": float(bool(plan["optimum_proven"])),
    }


def melange_main() -> None:
    """Print the `--melange` table (see the module)."""
    print(
        "| workload | TPOT SLO | req/s | demand | C / D | plan $/h | optimum $/h | plan vs "
        "optimum | best single type $/h | saving (optimum) | saving (plan) | paper's saving |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for slo in mp.SLOS:
        for workload in ("arena", "pubmed", "mixed"):
            doc = melange_doc(workload, slo)
            paper = dict(zip(mp.RATES, mp.PAPER_SAVINGS[(workload, slo)], strict=True))
            for rate in MELANGE_RATES:
                r = melange_check(doc, rate)
                theirs = f"{paper[int(rate)]:.1f} %" if rate in paper else "-"
                print(
                    f"| {workload} | {slo} | {rate:g} | {r['demand']:.3f} "
                    f"| {r['capacity'] / r['demand']:.3f} | {r['cost']:.3f} | {r['optimum']:.3f} "
                    f"| {r['cost'] / r['optimum'] - 1.0:+.2%} | {r['single']:.3f} "
                    f"| {1.0 - r['optimum'] / r['single']:.1%} "
                    f"| {1.0 - r['cost'] / r['single']:.1%} | {theirs} |"
                )


def main() -> None:
    """Print the table (see the module)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--melange", action="store_true", help="the Mélange profiles' check")
    args = parser.parse_args()
    if args.melange:
        melange_main()
        return
    rows: dict[float, list[tuple[float, float, float, float]]] = {r: [] for r in RATES}
    for seed in range(args.seeds):
        pools, share = profiles(np.random.default_rng(seed))
        rates = np.array([p.bucket_rps for p in pools])
        for rate in RATES:
            spend, demand, x = plan(pools, share, rate)
            capacity = lp_capacity(rates, share, x)
            at_demand = spend / integer_optimum(pools, share, demand) - 1.0
            at_capacity = spend / integer_optimum(pools, share, capacity) - 1.0
            single = min(plan([p], share, rate)[0] for p in pools)
            rows[rate].append((at_demand, at_capacity, 1.0 - spend / single, capacity / demand))
    print(
        f"seeds {args.seeds}; engine $/h over the integer optimum at its demand and at its "
        "plan's own capacity; saving against the best single type; capacity / demand"
    )
    print("| req/s | over optimum at demand | over optimum at capacity | saving | C / D |")
    print("|---:|---:|---:|---:|---:|")
    for rate in RATES:
        cols = list(zip(*rows[rate], strict=True))
        cells = [f"{statistics.mean(c):+.1%} ({min(c):+.1%} to {max(c):+.1%})" for c in cols[:3]]
        ratio = cols[3]
        print(
            f"| {rate:g} | {' | '.join(cells)} "
            f"| {statistics.mean(ratio):.2f} ({min(ratio):.2f} to {max(ratio):.2f}) |"
        )


if __name__ == "__main__":
    main()
