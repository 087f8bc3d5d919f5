"""Types of the compiled level loop (`_levels.c`); `exact.solve` is its one caller."""

from costscaler.core.types import FloatArray

def grow(
    best: float,
    max_nodes: int,
    total_max: int,
    per_od: float,
    per_spot: float,
    levels: FloatArray,
    step: float,
    tables: FloatArray,
    cells: int,
    n: int,
    /,
) -> tuple[bytes, bytes] | None:
    """The complete plans left and their lower bounds (int64 rows of `n` counts and float64
    bounds, as bytes), or None when a level holds more than `max_nodes` partial plans."""
