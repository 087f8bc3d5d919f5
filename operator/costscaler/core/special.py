"""The few special functions the engine needs, in numpy: the operator imports no scipy.

scipy.special and scipy.optimize cost the operator 37.5 MB of resident memory at import
(scipy.optimize pulls in scipy.linalg and scipy.sparse, scipy.special its array-API layer and
numpy.testing) for four functions: the normal CDF, the regularised incomplete gamma at the
arguments the latency model reads, log-gamma (the standard library's `math.lgamma`) and a
scalar root finder. The other three are here, to scipy's accuracy: tests/unit/core/
test_special.py checks them against scipy (a test dependency) to 1e-12.

- `ndtr`: the normal CDF through erf and erfc, with the rational approximations of the Cephes
  Math Library (S. L. Moshier, release 2.2, 1992: `ndtr.c`), which scipy also evaluates:
  erf(x) = x T(x^2) / U(x^2) for |x| < 1, erfc(x) = exp(-x^2) P(x) / Q(x) for 1 <= x < 8 and
  exp(-x^2) R(x) / S(x) beyond (relative error under 6e-14 as published).
- `gammainc_series`: P(a, x), the regularised lower incomplete gamma, for 0 <= x <= a + 1 by
  its power series x^a e^-x / Gamma(a + 1) sum_n x^n / ((a + 1) ... (a + n)), whose terms
  are all positive (no cancellation) and fall at least as fast as x / (a + n) < 1; the
  prefactor through Stirling's series for large a (`_log_gamma_ratio`).
- `brentq`: Brent's bracketing root finder (R. P. Brent, Algorithms for Minimization without
  Derivatives, 1973, ch. 4), in the form scipy's `optimize.brentq` runs, with its stopping
  rule |step| < (xtol + rtol |x|) / 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from costscaler.core.types import FloatArray

# Cephes ndtr.c: erfc on [1, 8) (P / Q), on [8, inf) (R / S), erf on [0, 1) (T / U); the
# leading coefficient of Q, S and U is 1. Highest power first.
_P = (
    2.46196981473530512524e-10, 5.64189564831068821977e-1, 7.46321056442269912687e0,
    4.86371970985681366614e1, 1.96520832956077098242e2, 5.26445194995477358631e2,
    9.34528527171957607540e2, 1.02755188689515710272e3, 5.57535335369399327526e2,
)  # fmt: skip
_Q = (
    1.0, 1.32281951154744992508e1, 8.67072140885989742329e1, 3.54937778887819891062e2,
    9.75708501743205489753e2, 1.82390916687909736289e3, 2.24633760818710981792e3,
    1.65666309194161350182e3, 5.57535340817727675546e2,
)  # fmt: skip
_R = (
    5.64189583547755073984e-1, 1.27536670759978104416e0, 5.01905042251180477414e0,
    6.16021097993053585195e0, 7.40974269950448939160e0, 2.97886665372100240670e0,
)  # fmt: skip
_S = (
    1.0, 2.26052863220117276590e0, 9.39603524938001434673e0, 1.20489539808096656605e1,
    1.70814450747565897222e1, 9.60896809063285878198e0, 3.36907645100081516050e0,
)  # fmt: skip
_T = (
    9.60497373987051638749e0, 9.00260197203842689217e1, 2.23200534594684319226e3,
    7.00332514112805075473e3, 5.55923013010394962768e4,
)  # fmt: skip
_U = (
    1.0, 3.35617141647503099647e1, 5.21357949780152679795e2, 4.59432382970980127987e3,
    2.26290000613890934246e4, 4.92673942608635921086e4,
)  # fmt: skip
_MAXLOG = 7.09782712893383996843e2  # log of the largest double: exp(-x^2) underflows past it


def _stack(*polys: tuple[float, ...]) -> list[FloatArray]:
    """Coefficient columns (highest power first), the rows left-padded with zeros to one
    degree, so one Horner pass evaluates every polynomial at once."""
    degree = max(len(p) for p in polys)
    rows = np.array([(0.0,) * (degree - len(p)) + p for p in polys])
    return [np.ascontiguousarray(rows[:, k : k + 1]) for k in range(degree)]


def _horner(coefficients: list[FloatArray], args: FloatArray) -> FloatArray:
    acc = np.repeat(coefficients[0], args.shape[1], axis=1)
    for c in coefficients[1:]:
        np.multiply(acc, args, out=acc)
        np.add(acc, c, out=acc)
    return acc


# `ndtr`'s stacked passes: P, Q at |x| and T, U at x^2 always; R, S only past |x| = 8.
_PQTU = _stack(_P, _Q, _T, _U)
_RS = _stack(_R, _S)
_ERFC_UNDERFLOW = math.sqrt(_MAXLOG)  # erfc is 0 in doubles beyond (Cephes' cut-off)


def ndtr(z: FloatArray, out: FloatArray | None = None) -> FloatArray:
    """Phi(z), the standard normal CDF, elementwise (into `out` when given); NaN stays NaN.

    Cephes' scheme: 1/2 + erf(x) / 2 for |x| < 1 (x = z / sqrt 2), else erfc(|x|) / 2 (or
    1 minus it for z > 0), so the lower tail keeps its relative accuracy. The polynomials run
    as stacked Horner passes: this sits on the engine's hot path, called on small arrays.
    """
    z = np.asarray(z, dtype=np.float64)
    x = z.reshape(1, -1) * math.sqrt(0.5)
    # erfc's argument, >= 1 (|x| < 1 takes the erf branch) and short of exp(-x^2)'s underflow
    a = np.clip(np.abs(x), 1.0, _ERFC_UNDERFLOW)
    inner_x = np.clip(x, -1.0, 1.0)  # erf's argument; clipped so an infinite z stays finite
    args = np.concatenate((a, a, inner_x * inner_x, inner_x * inner_x))
    p, q, t, u = _horner(_PQTU, args)
    ratio = p / q
    far = a[0] >= 8.0
    if far.any():
        r, s = _horner(_RS, args[:2])
        ratio = np.where(far, r / s, ratio)
    half_tail = 0.5 * np.exp(-a[0] * a[0]) * ratio
    half_tail[a[0] >= _ERFC_UNDERFLOW] = 0.0
    x = x[0]
    result = np.where(x > 0.0, 1.0 - half_tail, half_tail)
    inner = np.abs(x) < 1.0
    result[inner] = 0.5 + 0.5 * (x[inner] * t[inner] / u[inner])
    result[np.isnan(x)] = np.nan
    if out is None:
        return np.asarray(result.reshape(z.shape), dtype=np.float64)
    out[...] = result.reshape(z.shape)
    return out


# Stirling's series of log Gamma(a + 1) - (a log a - a + log(2 pi a) / 2), in powers of 1 / a^2
# after the first 1 / a: its next term is under 1e-16 for a >= 10.
_STIRLING = (1.0 / 1188.0, -1.0 / 1680.0, 1.0 / 1260.0, -1.0 / 360.0, 1.0 / 12.0)


def _log_gamma_ratio(a: float, x: FloatArray) -> FloatArray:
    """log(x^a e^-x / Gamma(a + 1)) for x > 0.

    Directly for a < 10. Beyond, a log x - x - log Gamma(a + 1) cancels terms of size a and
    would lose a x 1e-16 (3e-10 relative at the API's 100,000 slots), so it is evaluated as
    a (log t - (t - 1)) - (log Gamma(a + 1) - a log a + a) with t = x / a: the first by the
    series of log(1 + d) - d near t = 1 (d = t - 1), the second by Stirling's series.
    """
    if a < 10.0:
        return np.asarray(a * np.log(x) - x - math.lgamma(a + 1.0), dtype=np.float64)
    d = (x - a) / a
    near = np.abs(d) < 0.5
    dn = np.where(near, d, 0.0)
    term = dn * dn
    series = -term / 2.0
    for k in range(3, 60):  # |d| < 1/2: 0.5^60 / 60 is below a rounding error
        term = term * -dn
        series -= term / k
    far = np.log(np.where(near, 1.0, x / a)) - np.where(near, 0.0, d)
    inv2 = 1.0 / (a * a)
    correction = 0.0
    for c in _STIRLING:
        correction = correction * inv2 + c
    stirling = 0.5 * math.log(2.0 * math.pi * a) + correction / a
    return np.asarray(a * np.where(near, series, far) - stirling, dtype=np.float64)


def gammainc_series(a: float, x: FloatArray) -> FloatArray:
    """P(a, x), the regularised lower incomplete gamma, for a > 0 and 0 <= x <= a + 1.

    The latency model reads it only there (x = a rho with rho < 1, and Erlang B's
    Q(m + 1, x) = 1 - P(m + 1, x) for x < m, where Q > 1/2): that is where the power series
    converges fastest, and it is all the function covers.
    """
    x = np.asarray(x, dtype=np.float64)
    if not a > 0 or not math.isfinite(a):
        raise ValueError(f"gammainc_series: the shape a must be positive and finite, not {a}")
    if x.size and not (np.all(x >= 0.0) and np.all(x <= a + 1.0)):
        raise ValueError(
            f"gammainc_series: x must lie in [0, a + 1] = [0, {a + 1.0}] (the series' range); "
            f"got values in [{np.nanmin(x)}, {np.nanmax(x)}]"
        )
    total = np.ones_like(x)
    term = np.ones_like(x)
    n = 0
    # Terms fall by x / (a + n) <= (a + 1) / (a + n): at most a few sqrt(a) terms before they
    # are a rounding error of the sum; the cap only guards the loop.
    while n < 100_000:
        n += 1
        term *= x / (a + n)
        total += term
        if not np.any(term > total * 1e-17):
            break
    positive = x > 0.0
    safe = np.where(positive, x, 1.0)
    with np.errstate(under="ignore"):
        prefactor = np.exp(_log_gamma_ratio(a, safe))
    return np.asarray(np.where(positive, np.minimum(prefactor * total, 1.0), 0.0), np.float64)


def brentq(
    f: Callable[[float], float],
    lo: float,
    hi: float,
    xtol: float = 2e-12,
    rtol: float = 4.0 * np.finfo(float).eps,
    maxiter: int = 100,
) -> float:
    """A root of `f` in [lo, hi], where f(lo) and f(hi) differ in sign, to within
    (xtol + rtol |x|) / 2: Brent's method, inverse quadratic or secant steps inside the
    bracket, bisection whenever a step would not shrink it fast enough."""
    if not xtol > 0 or not rtol > 0:
        raise ValueError(f"brentq: xtol ({xtol}) and rtol ({rtol}) must be positive")
    x_pre, x_cur = float(lo), float(hi)
    f_pre, f_cur = f(x_pre), f(x_cur)
    if f_pre == 0.0:
        return x_pre
    if f_cur == 0.0:
        return x_cur
    if math.copysign(1.0, f_pre) == math.copysign(1.0, f_cur):
        raise ValueError(f"brentq: f({lo}) = {f_pre} and f({hi}) = {f_cur} have the same sign")
    x_blk = f_blk = s_pre = s_cur = 0.0
    for _ in range(maxiter):
        if (
            f_pre != 0.0
            and f_cur != 0.0
            and (math.copysign(1.0, f_pre) != math.copysign(1.0, f_cur))
        ):
            x_blk, f_blk = x_pre, f_pre
            s_pre = s_cur = x_cur - x_pre
        if abs(f_blk) < abs(f_cur):
            # Keep the best estimate in x_cur, the other end of the bracket in x_blk.
            x_pre, x_cur, x_blk = x_cur, x_blk, x_cur
            f_pre, f_cur, f_blk = f_cur, f_blk, f_cur
        delta = (xtol + rtol * abs(x_cur)) / 2.0
        s_bis = (x_blk - x_cur) / 2.0
        if f_cur == 0.0 or abs(s_bis) < delta:
            return x_cur
        if abs(s_pre) > delta and abs(f_cur) < abs(f_pre):
            if x_pre == x_blk:  # secant
                s_try = -f_cur * (x_cur - x_pre) / (f_cur - f_pre)
            else:  # inverse quadratic
                d_pre = (f_pre - f_cur) / (x_pre - x_cur)
                d_blk = (f_blk - f_cur) / (x_blk - x_cur)
                s_try = -f_cur * (f_blk * d_blk - f_pre * d_pre) / (d_blk * d_pre * (f_blk - f_pre))
            if 2.0 * abs(s_try) < min(abs(s_pre), 3.0 * abs(s_bis) - delta):
                s_pre, s_cur = s_cur, s_try
            else:
                s_pre = s_cur = s_bis
        else:
            s_pre = s_cur = s_bis
        x_pre, f_pre = x_cur, f_cur
        x_cur += s_cur if abs(s_cur) > delta else (delta if s_bis > 0 else -delta)
        f_cur = f(x_cur)
    raise RuntimeError(f"brentq: no convergence in {maxiter} iterations (last x = {x_cur})")
