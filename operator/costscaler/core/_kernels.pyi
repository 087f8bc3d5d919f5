"""Types of the compiled level loop (`_kernels.c`); `exact.solve` is its one caller."""

from costscaler.core.risk import IntArray
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

def evaluate(
    plans: IntArray,
    pools: FloatArray,
    samples: FloatArray,
    kernel: FloatArray,
    weights: FloatArray,
    count: int,
    n: int,
    scenarios: int,
    g: int,
    bandwidth: float,
    floor_demand: float,
    risk_floor: float,
    slo_miss_cost: float,
    floor_weight: float,
    budget: float,
    budget_weight: float,
    warm: bool,
    grace: float = 0.0,
    /,
) -> bytes:
    """`count` float64 spends, then risks, then objectives (`RiskModel.evaluate`)."""

def stalled(
    times: FloatArray,
    ready: FloatArray,
    warming: FloatArray,
    wait: FloatArray,
    n: int,
    t: int,
    /,
) -> bytes:
    """Per pool, 1 when it stalled in the window (`stock.stalled`), else 0."""

def feasible(
    plans: IntArray,
    maxima: IntArray,
    spot: IntArray,
    count: int,
    n: int,
    reachable_min: int,
    total_max: int,
    limits: bool,
    fraction: float,
    on_demand_floor: int,
    /,
) -> bytes:
    """Per plan, 1 when it is within every hard bound (`allocate.feasible`), else 0."""

def tables(grid: FloatArray, cost: FloatArray, rho: FloatArray, cells: int, rows: int, /) -> bytes:
    """`rows` x `cells` float64: the bound per grid cell for each ratio (`RiskCost.tables`)."""

def exceedance(
    samples: FloatArray,
    weights: FloatArray,
    capacity: FloatArray,
    g: int,
    count: int,
    bandwidth: float,
    bound: bool,
    /,
) -> bytes:
    """`count` float64: P(demand > c) per capacity c, or with `bound` the risk bound R(c)."""

def quantile(
    samples: FloatArray,
    weights: FloatArray,
    g: int,
    bandwidth: float,
    top: float,
    unit: FloatArray,
    points: int,
    q: float,
    /,
) -> float:
    """The demand exceeded with probability 1 - q (`DemandForecast.quantile`)."""

def setup(
    pools: FloatArray, n: int, total_max: int, fraction: float, limited: bool, /
) -> tuple[bytes, float, float]:
    """The level rows (`grow`'s columns, as bytes), `per_od` and `per_spot` (`exact.Tree`)."""

def best_level(
    rate: FloatArray,
    n: int,
    span0: int,
    span1: int,
    span2: int,
    dt: float,
    trend: float,
    fit: int,
    widen: float,
    min_errors: int,
    /,
) -> tuple[bytes, bytes]:
    """The best span's levels and errors, float64 bytes (`forecast._best_level`)."""

def start(
    eff: FloatArray,
    caps: IntArray,
    order: IntArray,
    spot: IntArray,
    n: int,
    total_max: int,
    reachable_min: int,
    spot_limits: bool,
    fraction: float,
    on_demand_floor: int,
    demand: float,
    mode: int,
    /,
) -> bytes:
    """`n` int64: a start (`fill.fill`: mode 0, 1 on-demand only; `fill.max_spot`: 2)."""
