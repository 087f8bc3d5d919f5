"""How the replayed world differs from the manifest: a scenario, named in every output.

- `capacity_error`: true capacity over declared, every pool (0.8: replicas serve 20 % less
  than their profiles say; with per-request serving, the hardware runs that much slower).
- `cold_start_tail`: cold starts (node, then model load) are drawn per node and per replica
  as declared x exp(|N(0, s)|), so the declared figure is the fastest and `cold_start_tail`
  is the 95th percentile's multiple of it (1: exactly as declared).
- `stockouts`: (start s, duration s) spans with no spot capacity in any spot pool: the
  live spot replicas get their notice so they are gone at the start, and no spot replica
  can be placed until the end (requests wait unpaid, reported unplaced).
- `outages`: metrics outages, each (start s, duration s, kind): `down` (Prometheus
  unreachable: queries fail), `gap` (no samples: queries return nothing), `nan` (samples
  are NaN), `stale` (the series keep their value from the outage's start).

Every policy meets an outage through its own documented behaviour (`ClusterView.metrics`):
the HPA holds its count when the metric is unavailable, KEDA falls back to its fallback
replicas after `failureThreshold` failed polls or holds, and reads an empty result as 0 with
`ignoreNullValues` (its default), costscaler's engine holds on bad data, Knative's KPA reads
its queue-proxies (not Prometheus) and static reads nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

OutageKind = Literal["down", "gap", "nan", "stale"]
OUTAGE_KINDS: tuple[OutageKind, ...] = ("down", "gap", "nan", "stale")
Z95 = 1.959964  # a half-normal's 95th percentile


@dataclass(frozen=True)
class Outage:
    """A metrics outage: from `start_s` for `duration_s` seconds, of one kind."""

    start_s: float
    duration_s: float
    kind: OutageKind = "down"


@dataclass(frozen=True)
class Scenario:
    """The world a replay runs in when it is not the manifest (see the module docstring)."""

    name: str = "manifest"
    capacity_error: float = 1.0
    cold_start_tail: float = 1.0
    stockouts: tuple[tuple[float, float], ...] = ()
    outages: tuple[Outage, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.capacity_error > 0:
            raise ValueError(f"capacity_error must be > 0, got {self.capacity_error}")
        if not self.cold_start_tail >= 1:
            raise ValueError(f"cold_start_tail must be >= 1, got {self.cold_start_tail}")
        for start, duration in self.stockouts:
            if start < 0 or duration <= 0:
                raise ValueError(f"stockout ({start}, {duration}): start >= 0, duration > 0")
        for o in self.outages:
            if o.start_s < 0 or o.duration_s <= 0 or o.kind not in OUTAGE_KINDS:
                raise ValueError(
                    f"outage {o}: start >= 0, duration > 0, kind one of {', '.join(OUTAGE_KINDS)}"
                )

    def as_json(self) -> dict[str, Any]:
        """The scenario as the JSON output names it."""
        return asdict(self)

    def cold_multiplier(self, rng: np.random.Generator) -> float:
        """One cold start's multiple of the declared one (1 when there is no tail)."""
        if self.cold_start_tail == 1:
            return 1.0
        sigma = math.log(self.cold_start_tail) / Z95
        return float(math.exp(abs(rng.normal(0.0, sigma))))

    def metrics_at(self, now_s: float) -> tuple[OutageKind | None, float]:
        """The outage kind at `now_s` (None: metrics fine) and when that outage began."""
        for o in self.outages:
            if o.start_s <= now_s < o.start_s + o.duration_s:
                return o.kind, o.start_s
        return None, now_s


MANIFEST = Scenario()


def scenario_from(data: dict[str, Any], where: str) -> Scenario:
    """A scenario from a parsed `--scenario` file; errors name the file and the field."""
    known = {"name", "capacityError", "coldStartTail", "stockouts", "outages"}
    extra = set(data) - known
    if extra:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(extra))}; use {known}")
    try:
        stockouts = tuple(
            (float(s["startSeconds"]), float(s["durationSeconds"]))
            for s in data.get("stockouts", [])
        )
        outages = tuple(
            Outage(float(o["startSeconds"]), float(o["durationSeconds"]), o.get("kind", "down"))
            for o in data.get("outages", [])
        )
        return Scenario(
            name=str(data.get("name", "scenario")),
            capacity_error=float(data.get("capacityError", 1.0)),
            cold_start_tail=float(data.get("coldStartTail", 1.0)),
            stockouts=stockouts,
            outages=outages,
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"{where}: stockouts and outages need startSeconds and durationSeconds ({exc})"
        ) from exc
