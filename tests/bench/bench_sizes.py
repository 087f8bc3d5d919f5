"""Request-size-aware allocation (issue 17, item 3) against the integer optimum, by brute force.

Mélange's published Llama-2-7B profiles are not in the repository (REFERENCE.md cites the
paper's results only), so the check runs on synthetic profiles built from REFERENCE.md's
figures: four accelerator types (L4, A10G, A100-80GB, H100) at their on-demand prices (§3),
decode tokens/s at a batch of 32 from §6, prefill at 8 x decode, and a KV cache (24 GB or
80 GB less 14 GB of Llama-2-7B weights, 0.5 MB a token) that caps the batch of long
requests: a batch of n = KV / (I + O) < 32 sequences decodes at n / 32 of the rate. A
request of I prompt and O output tokens then takes I / P + O / D' replica-seconds, and its
bucket's capacity is the inverse. Nine buckets (prompts of about 128, 1,000 and 4,000 tokens
x outputs of about 32, 250 and 1,000); each seed draws the mix (Dirichlet), prices within
+-15 % and capacities within +-20 %.

For each seed and each rate R in 0.5-64 req/s, `Planner.decide` plans on one sample at R
(what `costscaler plan --rate R` does) and the plan's cost is compared with the integer
optimum at the plan's own demand (the decision's demand_rps) and at the plan's own capacity
(C of its replicas): Melange's integer program, solved by scipy's MILP (HiGHS) independently
of `core.sizes`. Also reported: what mixing saves against the best single accelerator type
(the engine's own plan on that type alone), and the plan's capacity over its demand.

Run: `python tests/bench/bench_sizes.py [--seeds 5]`. Prints one row per rate (mean, min
and max over the seeds).
"""

from __future__ import annotations

import argparse
import itertools
import statistics

import numpy as np
from scipy import optimize

from costscaler.core import Observations, Planner, PoolView, Settings

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


def main() -> None:
    """Print the table (see the module)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
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
