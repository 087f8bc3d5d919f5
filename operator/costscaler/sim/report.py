"""Reporting: outcomes as JSON-able rows, a markdown table, and the PNG (the only writer).

The plot has three panels: demand against ready capacity (req/s) per policy, ready replicas
per pool for the first multi-pool policy (or the first policy), and cumulative cost ($).
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from costscaler.sim.pools import PoolModel
from costscaler.sim.run import Latencies, Outcome
from costscaler.sim.traces import Trace

COLUMNS = (
    "policy",
    "total_cost",
    "cost_per_1k_requests",
    "cost_per_million_tokens",
    "slo_attainment",
    "requests",
    "idle_accelerator_hours",
    "scale_events",
    "p99_latency_s",
)


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: undefined numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def as_row(outcome: Outcome) -> dict[str, Any]:
    """One outcome as the `--json` object (ARCHITECTURE §5 keys, plus replica cost, the
    total with owned and reserved nodes at their marginal cost, and the latency percentiles:
    `p50_latency_s`, `p95_latency_s` end to end, `ttft_*` and `itl_*` with per-request serving, and
    `ttft_attainment` / `itl_attainment` when the SLO declares those thresholds, and for
    an oracle row its block length `oracle_block_s`)."""
    row = {k: _clean(getattr(outcome, k)) for k in COLUMNS}
    row["replica_cost"] = _clean(outcome.replica_cost)
    row["marginal_cost"] = _clean(outcome.marginal_cost)
    for key in LATENCY:
        row[key] = _clean(getattr(outcome.latency, key))
    row["oracle_block_s"] = outcome.oracle_block_s
    return row


LATENCY = tuple(f.name for f in fields(Latencies) if f.name != "p99_latency_s")
NUMBERS = (*COLUMNS[1:], "replica_cost", "marginal_cost", *LATENCY, "oracle_block_s")


def summarise(runs: list[list[Outcome]], meta: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per policy over several seeds' runs: the mean of each number, its spread.

    `runs[i]` holds seed i's outcomes; rows follow the first seed's order. Each row has the
    `as_row` keys as means over the seeds where the value is defined (null where none is),
    `min` and `max` objects with the same keys, and `meta` (seeds, burn-in, scenario).
    """
    names = [o.policy for o in runs[0]]
    out = []
    for name in names:
        rows = [as_row(o) for run in runs for o in run if o.policy == name]
        row: dict[str, Any] = {"policy": name}
        low: dict[str, Any] = {}
        high: dict[str, Any] = {}
        for key in NUMBERS:
            values = [r[key] for r in rows if r[key] is not None]
            row[key] = sum(values) / len(values) if values else None
            low[key] = min(values) if values else None
            high[key] = max(values) if values else None
        out.append({**row, "min": low, "max": high, **meta})
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def table(outcomes: list[Outcome]) -> str:
    """A markdown table of the outcomes (money in $, latency in s)."""
    return spread_table([as_row(o) for o in outcomes])


def _spread(row: dict[str, Any], key: str) -> str:
    """`mean (min-max)` when the seeds differ, else the one value."""
    value = _cell(row[key])
    low, high = row.get("min", {}).get(key), row.get("max", {}).get(key)
    if key == "policy" or low is None or high is None or low == high:
        return value
    return f"{value} ({_cell(low)}-{_cell(high)})"


def spread_table(rows: list[dict[str, Any]]) -> str:
    """A markdown table of rows from `as_row` or `summarise` (mean (min-max) over seeds)."""
    head = "| " + " | ".join(COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(_spread(r, k) for k in COLUMNS) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def _minutes(values: NDArray[np.float64], per: int) -> NDArray[np.float64]:
    """Mean over consecutive groups of `per` steps (plots need a few thousand points)."""
    n = values.shape[-1] // per * per
    return np.asarray(values[..., :n].reshape(*values.shape[:-1], -1, per).mean(axis=-1))


def plot(outcomes: list[Outcome], trace: Trace, pools: list[PoolModel], path: str | Path) -> None:
    """Write the PNG for the outcomes that kept a timeline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [o for o in outcomes if o.timeline is not None]
    per = max(1, round(60 / trace.dt), trace.steps // 4000)  # one point a minute at most
    hours = _minutes(np.arange(trace.steps) * trace.dt / 3600, per)
    fig, (ax_load, ax_pool, ax_cost) = plt.subplots(3, 1, figsize=(11, 10), sharex=True)
    ax_load.plot(hours, _minutes(trace.arrivals / trace.dt, per), color="black", lw=0.8,
                 label="demand")  # fmt: skip
    mu = np.array([p.capacity_rps for p in pools])
    for o in runs:
        assert o.timeline is not None
        ax_load.plot(hours, _minutes(mu @ o.timeline.ready, per), lw=0.9, label=o.policy)
        ax_cost.plot(hours, _minutes(o.timeline.cumulative_cost, per), lw=1.0, label=o.policy)
    if runs:
        mixed = next((o for o in runs if o.policy == "costscaler"), runs[0])
        assert mixed.timeline is not None
        ready = _minutes(mixed.timeline.ready.astype(np.float64), per)
        ax_pool.stackplot(hours, ready, labels=[p.name for p in pools])
        ax_pool.set_title(f"ready replicas per pool: {mixed.policy}", fontsize=9)
    ax_load.set_ylabel("req/s")
    ax_load.set_title(f"{trace.name}: demand and ready capacity", fontsize=9)
    ax_pool.set_ylabel("replicas")
    ax_cost.set_ylabel("cumulative cost ($)")
    ax_cost.set_xlabel("hours")
    for ax in (ax_load, ax_pool, ax_cost):
        ax.legend(fontsize=7, loc="upper left", ncol=3)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
