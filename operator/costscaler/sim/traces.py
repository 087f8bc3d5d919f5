"""Trace loading: the only module of sim/ that reads files (traces, and the serving model's
accelerator data, `load_accelerators`).

Two request formats (ARCHITECTURE §5): per-request `timestamp_s,input_tokens,output_tokens`
(token columns may be empty) and rate series `window_start_s,window_len_s,rate_rps,
active_clients`, replayed as seeded Poisson arrivals per step. Spot capacity traces are
`time_s,available,target`. Malformed input raises `TraceError` naming file, line and column.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from costscaler.errors import UserError

REQUEST_HEADER = ("timestamp_s", "input_tokens", "output_tokens")
RATE_HEADER = ("window_start_s", "window_len_s", "rate_rps", "active_clients")
SPOT_HEADER = ("time_s", "available", "target")


class TraceError(UserError):
    """A trace file is missing or malformed; the message names file, line and column."""


@dataclass(frozen=True)
class Requests:
    """Each request of a per-request trace: arrival (s from the replay's start), tokens."""

    time_s: NDArray[np.float64]
    input_tokens: NDArray[np.float64]
    output_tokens: NDArray[np.float64]


@dataclass(frozen=True)
class Trace:
    """Arrivals per step of `dt` seconds, from `start_s` of the original trace.

    `output_tokens` is the output tokens of each step's arrivals, or None when the trace has
    no token counts (rate series, or empty token columns). `requests`: every request with
    its time and tokens when the trace lists them (None: rate series or no token columns).
    """

    name: str
    dt: float
    start_s: float
    arrivals: NDArray[np.float64]
    output_tokens: NDArray[np.float64] | None
    requests: Requests | None = None

    @property
    def steps(self) -> int:
        """Number of steps."""
        return int(self.arrivals.size)

    def after(self, steps: int) -> Trace:
        """The trace from step `steps` on (a burn-in cut off)."""
        tokens = None if self.output_tokens is None else self.output_tokens[steps:]
        requests = None
        if self.requests is not None:
            r, cut = self.requests, steps * self.dt
            keep = r.time_s >= cut
            requests = Requests(r.time_s[keep] - cut, r.input_tokens[keep], r.output_tokens[keep])
        start = self.start_s + steps * self.dt
        return Trace(self.name, self.dt, start, self.arrivals[steps:], tokens, requests)


@dataclass(frozen=True)
class SpotTrace:
    """Spot capacity over time: `available` of `target` instances up from `time_s` on."""

    time_s: NDArray[np.float64]
    available: NDArray[np.int64]
    target: NDArray[np.int64]


def _rows(path: Path, header: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) after checking the header; errors name file and line."""
    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise TraceError(f"{path}: cannot read ({exc.strerror}); check the path") from exc
    with handle:
        reader = csv.reader(handle)
        first = next(reader, None)
        if first is None or tuple(c.strip() for c in first) != header:
            raise TraceError(f"{path}:1: header must be {','.join(header)!r}, got {first!r}")
        for row in reader:
            if row:
                if len(row) != len(header):
                    raise TraceError(
                        f"{path}:{reader.line_num}: expected {len(header)} columns "
                        f"({','.join(header)}), got {len(row)}"
                    )
                yield reader.line_num, row


def _number(path: Path, line: int, row: list[str], col: int, header: tuple[str, ...]) -> float:
    """Parse one finite, non-negative number, or raise naming file, line and column."""
    text = row[col].strip()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise TraceError(
            f"{path}:{line}:{col + 1}: column {header[col]} must be a non-negative number, "
            f"got {text!r}"
        )
    return value


def detect_format(path: Path) -> str:
    """'requests' or 'rates' from the header line; a clear error for anything else."""
    try:
        with path.open(newline="") as handle:
            first = next(csv.reader(handle), [])
    except OSError as exc:
        raise TraceError(f"{path}: cannot read ({exc.strerror}); check the path") from exc
    header = tuple(c.strip() for c in first)
    if header == REQUEST_HEADER:
        return "requests"
    if header == RATE_HEADER:
        return "rates"
    raise TraceError(
        f"{path}:1: unknown trace header {first!r}; expected {','.join(REQUEST_HEADER)!r} "
        f"or {','.join(RATE_HEADER)!r}"
    )


def _requests(
    path: Path,
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None, NDArray[np.float64] | None]:
    """Timestamps, input and output tokens of a request trace (a token column is None when
    any of its cells is empty)."""
    times: list[float] = []
    tokens: list[float] = []
    inputs: list[float] = []
    have_tokens = have_inputs = True
    last = 0.0
    for line, row in _rows(path, REQUEST_HEADER):
        t = _number(path, line, row, 0, REQUEST_HEADER)
        if t < last:
            raise TraceError(f"{path}:{line}:1: timestamps must not decrease ({t} < {last})")
        last = t
        times.append(t)
        if row[1].strip() == "":
            have_inputs = False
        else:  # a corrupt cell means a corrupt file, even once the column is incomplete
            inputs.append(_number(path, line, row, 1, REQUEST_HEADER))
        if row[2].strip() == "":
            have_tokens = False
        elif have_tokens:
            tokens.append(_number(path, line, row, 2, REQUEST_HEADER))
    if not times:
        raise TraceError(f"{path}: the trace has no requests")
    return (
        np.asarray(times),
        np.asarray(inputs) if have_inputs else None,
        np.asarray(tokens) if have_tokens else None,
    )


def _rates(path: Path) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Window starts, lengths and rates (req/s) of a rate series."""
    rows = [
        (
            _number(path, line, row, 0, RATE_HEADER),
            _number(path, line, row, 1, RATE_HEADER),
            _number(path, line, row, 2, RATE_HEADER),
        )
        for line, row in _rows(path, RATE_HEADER)
    ]
    if not rows:
        raise TraceError(f"{path}: the rate series has no windows")
    start, length, rate = (np.asarray(c) for c in zip(*rows, strict=True))
    return start, length, rate


def load_trace(
    path: str | Path,
    *,
    dt: float = 1.0,
    scale: float = 1.0,
    start_s: float = 0.0,
    duration_s: float | None = None,
    seed: int = 0,
) -> Trace:
    """Read a trace as arrivals per step; `scale` multiplies the rate (seeded).

    Per-request traces are binned by timestamp; with `scale` K each request appears
    floor(K) times plus once more with probability frac(K), keeping the bursts' shape. Rate
    series draw Poisson(rate x K x dt) arrivals per step. `start_s`/`duration_s` cut a slice.
    """
    if dt <= 0 or scale <= 0 or start_s < 0 or (duration_s is not None and duration_s <= 0):
        raise TraceError("dt, --scale and --duration must be positive and --start non-negative")
    file = Path(path)
    rng = np.random.default_rng(seed)
    if detect_format(file) == "requests":
        times, inputs, tokens = _requests(file)
        if start_s > times[-1]:
            raise TraceError(f"{file}: --start {start_s} is past the last request ({times[-1]} s)")
        last = start_s + (math.floor((times[-1] - start_s) / dt) + 1) * dt  # step with the last
        end = last if duration_s is None else min(last, start_s + duration_s)
        copies = np.floor(scale) + (rng.random(times.size) < scale - np.floor(scale))
        keep = (times >= start_s) & (times < end)
        steps = max(1, math.ceil((end - start_s) / dt))
        index = ((times[keep] - start_s) // dt).astype(np.int64)
        arrivals = np.bincount(index, copies[keep], steps).astype(np.float64)
        out: NDArray[np.float64] | None = None
        requests = None
        if tokens is not None:
            out = np.bincount(index, copies[keep] * tokens[keep], steps).astype(np.float64)
            if inputs is not None:
                each = np.repeat(np.flatnonzero(keep), copies[keep].astype(np.int64))
                requests = Requests(times[each] - start_s, inputs[each], tokens[each])
        name = file.parent.name or file.name
        return Trace(name, dt, start_s, arrivals, out, requests)
    wstart, wlen, rate = _rates(file)
    span = float((wstart + wlen).max())
    end = span if duration_s is None else min(span, start_s + duration_s)
    if end <= start_s:
        raise TraceError(f"{file}: --start {start_s} is past the trace's end ({span} s)")
    mids = start_s + (np.arange(math.ceil((end - start_s) / dt)) + 0.5) * dt
    which = np.searchsorted(wstart, mids, side="right") - 1
    inside = (which >= 0) & (mids < (wstart + wlen)[np.maximum(which, 0)])
    lam = np.where(inside, rate[np.maximum(which, 0)], 0.0) * scale * dt
    return Trace(file.parent.name or file.name, dt, start_s, rng.poisson(lam).astype(float), None)


def load_spot_trace(path: str | Path) -> SpotTrace:
    """Read a spot capacity trace `time_s,available,target` (times increasing)."""
    file = Path(path)
    rows = [
        tuple(_number(file, line, row, c, SPOT_HEADER) for c in range(3))
        for line, row in _rows(file, SPOT_HEADER)
    ]
    if not rows:
        raise TraceError(f"{file}: the spot trace has no rows")
    t, avail, target = (np.asarray(c) for c in zip(*rows, strict=True))
    if np.any(np.diff(t) <= 0):
        line = int(np.argmax(np.diff(t) <= 0)) + 3
        raise TraceError(f"{file}:{line}:1: time_s must increase")
    return SpotTrace(t, avail.astype(np.int64), target.astype(np.int64))


ACCELERATORS = Path(__file__).with_name("accelerators.json")


def load_accelerators(path: str | Path = ACCELERATORS) -> dict[str, Any]:
    """The per-request serving model's data: model, engine and per-accelerator figures."""
    file = Path(path)
    try:
        data: dict[str, Any] = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise TraceError(f"{file}: cannot read the accelerator data ({exc})") from exc
    for key in ("model", "engine", "accelerators"):
        if key not in data:
            raise TraceError(f"{file}: missing the {key!r} section")
    return data
