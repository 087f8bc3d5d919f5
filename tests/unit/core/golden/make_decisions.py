"""Write tests/unit/core/golden/decisions.json: 200 decisions from a seeded generator.

Each case holds its inputs (pools, settings, a window of request rates, the replicas running)
and what `Planner.decide` returned (replicas, violating share, marginal $/h, reason).
`tests/unit/core/test_golden.py` replays every case and requires the same decision, so "the
same decisions" is checkable by anyone. Regenerate only when a change of decisions is
intended, and say why in the commit:

    .venv/bin/python tests/unit/core/golden/make_decisions.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from costscaler.core import Observations, Planner, PoolView, Settings

HERE = Path(__file__).parent
CASES = 200
SEED = 13
SAMPLES = 80
TICK_S = 15.0


def _case(rng: np.random.Generator) -> dict[str, Any]:
    """Random inputs: 1-6 pools, a threshold with room for queueing, a noisy ramp."""
    threshold = float(round(rng.uniform(1.0, 20.0), 3))
    pools = []
    for i in range(int(rng.integers(1, 7))):
        spot = bool(rng.random() < 0.4)
        pools.append(
            {
                "name": f"p{i}",
                "spot": spot,
                "replica_cost_per_hour": float(round(rng.uniform(0.2, 5.0), 4)),
                "capacity_rps": float(round(rng.uniform(0.5, 10.0), 3)),
                "cold_start_s": float(round(rng.uniform(30.0, 600.0), 1)),
                "max_replicas": int(rng.integers(2, 16)),
                "interruption_rate_per_hour": float(round(rng.uniform(0.0, 1.0), 3))
                if spot
                else 0.0,
                "replicas_per_node": int(rng.choice([1, 1, 2, 4])),
                "base_latency_s": float(round(rng.uniform(0.1, 0.8) * threshold, 3)),
            }
        )
    settings = {
        "latency_threshold_s": threshold,
        "attainment": float(rng.choice([0.95, 0.99, 0.995])),
        "slo_miss_cost_per_hour": float(round(rng.uniform(1.0, 200.0), 2)),
        "replicas_min": int(rng.integers(0, 3)),
        "replicas_max": int(rng.integers(4, 30)),
        "spot_max_fraction": float(rng.choice([0.3, 0.5, 0.8, 1.0])),
        "min_on_demand": int(rng.integers(0, 2)),
    }
    level, slope = rng.uniform(0.0, 40.0), rng.uniform(-0.01, 0.02)
    t = np.arange(SAMPLES) * TICK_S
    rates = np.maximum(level + slope * t + rng.normal(0.0, 0.1 * level + 0.1, SAMPLES), 0.0)
    current = {p["name"]: int(rng.integers(0, 5)) for p in pools}
    return {
        "pools": pools,
        "settings": settings,
        "rates": [round(float(r), 4) for r in rates],
        "current": current,
    }


def replay(case: dict[str, Any]) -> dict[str, Any]:
    """What `Planner.decide` returns for one case's inputs (the fields the file keeps)."""
    pools = [PoolView(**p) for p in case["pools"]]
    planner = Planner(pools, Settings(**case["settings"]))
    rates = np.array(case["rates"], dtype=np.float64)
    times = 3600.0 + np.arange(rates.size) * TICK_S
    ready = {n: np.full(rates.size, float(v)) for n, v in case["current"].items()}
    obs = Observations(
        times=times, request_rate=rates, latency=np.full(rates.size, np.nan), ready=ready
    )
    d = planner.decide(obs, case["current"], float(times[-1]), alternatives=False)
    return {
        "replicas": dict(d.replicas),
        "violating_share": d.violating_share,
        "marginal_cost_per_hour": d.marginal_cost_per_hour,
        "reason": str(d.reason),
    }


def main() -> None:
    """Generate the cases, decide each, and write the file."""
    rng = np.random.default_rng(SEED)
    cases = []
    for _ in range(CASES):
        case = _case(rng)
        case["decision"] = replay(case)
        cases.append(case)
    # One case a line: a change of decisions shows as the lines of the cases it changed.
    head = json.dumps({"seed": SEED, "command": "tests/unit/core/golden/make_decisions.py"})
    lines = [json.dumps(c, sort_keys=True) for c in cases]
    body = ",\n  ".join(lines)
    (HERE / "decisions.json").write_text(f'{head[:-1]}, "cases": [\n  {body}\n]}}\n')


if __name__ == "__main__":
    main()
