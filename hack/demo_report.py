"""The demo's report: cost views in markdown and a PNG of demand, capacity per pool and cost."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import matplotlib

matplotlib.use("Agg")  # before pyplot: the demo runs headless
import matplotlib.pyplot as plt

HOURS_PER_MONTH = 730


class SampleLike(Protocol):
    """What the report reads of a live-table sample (see demo.Sample)."""

    t: float
    demand: float | None
    replicas: dict[str, int]
    p99: float | None
    cost_per_hour: float
    reason: str
    nodes: int
    launching: int
    warm: int


def _plot(path: Path, samples: list[SampleLike], pools: list[str], speed: float) -> None:
    minutes = [s.t * speed / 60 for s in samples]
    fig, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    axes[0].plot(minutes, [s.demand or 0.0 for s in samples], color="black")
    axes[0].set_ylabel("demand (req/s)")
    axes[1].stackplot(
        minutes, [[s.replicas.get(p, 0) for s in samples] for p in pools], labels=pools
    )
    axes[1].plot(minutes, [s.nodes + s.launching for s in samples], color="black",
                 linestyle="--", label="Managed pool's nodes (launched)")  # fmt: skip
    axes[1].set_ylabel("ready replicas")
    axes[1].legend(loc="upper left", fontsize=7)
    step_s = (samples[1].t - samples[0].t) * speed if len(samples) > 1 else 0.0
    cumulative, total = [], 0.0
    for s in samples:
        total += s.cost_per_hour * step_s / 3600
        cumulative.append(total)
    axes[2].plot(minutes, cumulative, color="tab:red")
    axes[2].set_ylabel("cumulative cost ($)")
    axes[2].set_xlabel("trace minutes")
    fig.suptitle("costscaler demo: demand, capacity per pool, cost")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _views(samples: list[SampleLike], speed: float, threshold: float) -> dict[str, str]:
    step_h = (samples[1].t - samples[0].t) * speed / 3600 if len(samples) > 1 else 0.0
    cost = sum(s.cost_per_hour for s in samples) * step_h
    hours = step_h * len(samples)
    requests = sum((s.demand or 0.0) for s in samples) * step_h * 3600
    measured = [s.p99 for s in samples if s.p99 is not None]
    within = sum(1 for p in measured if p <= threshold)
    mean = cost / hours if hours else 0.0
    return {
        "trace time replayed": f"{hours * 60:.1f} min",
        "total cost": f"${cost:.2f}",
        "mean cost per hour": f"${mean:.2f}/h",
        "projected monthly at that rate": f"${mean * HOURS_PER_MONTH:,.0f}",
        "requests served": f"{requests:,.0f}",
        "cost per 1k requests": f"${cost / requests * 1000:.4f}" if requests else "-",
        "samples with p99 within the SLO": f"{within} of {len(measured)}",
    }


def _node_hours(samples: list[SampleLike], speed: float) -> dict[str, str]:
    """Node-hours of the Managed pool, in trace hours: launched (Ready or still launching,
    as a cloud bills from launch) and warm spares, and the most nodes at once."""
    step_h = (samples[1].t - samples[0].t) * speed / 3600 if len(samples) > 1 else 0.0
    launched = sum(s.nodes + s.launching for s in samples) * step_h
    return {
        "node-hours launched": f"{launched:.2f}",
        "of which warm spare node-hours": f"{sum(s.warm for s in samples) * step_h:.2f}",
        "nodes at most (ready + launching)": str(
            max((s.nodes + s.launching for s in samples), default=0)
        ),
    }


def write_report(
    out: Path,
    doc: dict[str, Any],
    samples: list[SampleLike],
    speed: float,
    status: dict[str, Any],
    budget: dict[str, Any],
    chargeback: str,
    now: datetime,
    managed: str,
) -> Path:
    """Write `out/report.md` and `out/demo.png`; return the markdown's path."""
    out.mkdir(parents=True, exist_ok=True)
    pools = [p["name"] for p in doc["spec"]["pools"]]
    threshold = float(doc["spec"]["slo"]["latency"]["thresholdSeconds"])
    _plot(out / "demo.png", samples, pools, speed)
    cost = status.get("cost") or {}
    decision = status.get("lastDecision") or {}
    lines = [
        "# costscaler demo report",
        "",
        f"Written {now:%Y-%m-%d %H:%M} UTC by `make demo`: {doc['metadata']['name']} in Enforce",
        f"mode, trace replayed at {speed:g}x by the load twin, one row every "
        f"{samples[1].t - samples[0].t if len(samples) > 1 else 0:.0f} s. Money is per trace hour.",
        "",
        "## Cost views",
        "",
        "| view | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in _views(samples, speed, threshold).items()),
        f"| cost per 1M tokens (operator, last tick) | {cost.get('perMillionTokens', '-')} |",
        f"| idle accelerator-hours (operator) | {cost.get('idleAcceleratorHours', '-')} |",
        f"| budget team-ml: spent / forecast (wall time) | {budget.get('spent', '-')} / "
        f"{budget.get('forecast', '-')} |",
        "",
        f"## Nodes of {managed} (Managed: Karpenter launches them)",
        "",
        "| view | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in _node_hours(samples, speed).items()),
        "",
        "## Last decision",
        "",
        f"{decision.get('reason', '-')}: {decision.get('message', '')}",
        "",
        "| plan | replicas | $/h | SLO risk |",
        "|---|---|---|---|",
        *(
            f"| {a['name']} | "
            + ", ".join(f"{r['pool']}={r['replicas']}" for r in a.get("replicas", []))
            + f" | {a['costPerHour']} | "
            + ("unknown" if a.get("sloRisk") is None else f"{a['sloRisk']:.3f}")
            + " |"
            for a in decision.get("alternatives", [])
        ),
        "",
        "## Chargeback (`costscaler report`)",
        "",
        "```",
        chargeback.strip() or "(no output)",
        "```",
        "",
        "![demand, capacity per pool and cost](demo.png)",
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
