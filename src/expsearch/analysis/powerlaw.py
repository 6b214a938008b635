"""Power-law fits of a cumulative-best curve: AP*(N) = a - b*N^(-c), and its rivals.

    fit_power_law(running_best(values), a_max=1.0)  # AP*(N) = a - b*N^(-c), a <= 1
    fit_power_law_many(curves, a_max=1.0)           # the same for many curves (rows) at once
    compare_models(best)                            # power law vs exponential vs logarithmic

AP*(N) = max_{i<=N} y_i over the finished experiments in completion order
(N = 1..n). For a fixed exponent c the model is linear in (a, b), so every fit
is variable projection: a grid over c, a golden-section refinement, then (for
one curve) a scipy least-squares polish that also gives standard errors.
fit_power_law and compare_models return a dict with status "ok" or
"insufficient_data" and no NaN; fit_power_law_many returns arrays, NaN where a
curve has no fit. convergence.py and baselines.py build on these fits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from expsearch.analysis.result import insufficient, ok

C_MIN, C_MAX = 1e-3, 10.0
C_GRID = np.geomspace(C_MIN, C_MAX, 161)  # 40 points a decade; golden section does the rest
GOLDEN_STEPS = 26  # shrinks a two-cell bracket (~0.115 in ln c) below 1e-6
AT_BOUND = 1e-4  # relative distance of c from a grid edge that counts as "at the edge"
CHUNK_ELEMENTS = 2**21  # curve values per chunk: keeps temporaries small and in cache
LOG_2PI = math.log(2 * math.pi)


def running_best(values: Any) -> np.ndarray:
    """Cumulative maximum along the last axis (a curve, or curves as rows)."""
    return np.maximum.accumulate(np.asarray(values, dtype=float), axis=-1)


# --- variable projection: y = a - b*exp(-c*u), u = ln N (power law) or N (exponential) ---


def _stats(w: np.ndarray, y_centred: np.ndarray, axis: int) -> tuple:
    """Sums that fix the best (a, b) for each c; w = x - 1 with x = exp(-c*u).

    expm1 keeps x - 1 exact for small c, where x is ~1 and its variance would
    otherwise vanish in cancellation.
    """
    n = w.shape[axis]
    sw = w.sum(axis=axis)
    if axis == 0:  # one c per column, shared by all curves: one matrix product
        centred = w - sw / n
        return sw + n, np.einsum("ij,ij->j", centred, centred), y_centred @ w
    vxx = np.einsum("ij,ij->i", w, w) - sw**2 / n
    return sw + n, vxx, np.einsum("ij,ij->i", w, y_centred)


def _solve(sx, vxx, vxy, ybar, ss_tot, n, a_max):
    """Least-squares (a, b, rss) for given c, on the line a = a_max where a would exceed it."""
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = vxy / vxx
        a = ybar - slope * sx / n
        b = -slope
        rss = ss_tot - vxy * slope
        if a_max is not None:
            # For fixed c the problem is a convex quadratic in (a, b): if its
            # optimum breaks a <= a_max, the bounded optimum lies on a = a_max.
            sxx = vxx + sx**2 / n
            sxz = sx * (a_max - ybar) - vxy
            over = a > a_max
            a = np.where(over, a_max, a)
            b = np.where(over, sxz / sxx, b)
            rss = np.where(over, ss_tot + n * (a_max - ybar) ** 2 - sxz**2 / sxx, rss)
    return a, b, np.maximum(rss, 0.0)


def _varpro(y: np.ndarray, u: np.ndarray, grid: np.ndarray, a_max: float | None) -> dict:
    """Best (a, b, c) for each row of y: a grid over ln c, then golden section."""
    m, n = y.shape
    ybar = y.mean(axis=1)
    yc = y - ybar[:, None]
    ss_tot = np.einsum("ij,ij->i", yc, yc)
    w_grid = np.expm1(-np.outer(u, grid))
    sx, vxx, vxy = _stats(w_grid, yc, axis=0)
    _, _, rss = _solve(sx, vxx, vxy, ybar[:, None], ss_tot[:, None], n, a_max)
    rss = np.where(np.isfinite(rss), rss, np.inf)
    k = np.argmin(rss, axis=1)

    t_grid = np.log(grid)
    lo = t_grid[np.maximum(k - 1, 0)]
    hi = t_grid[np.minimum(k + 1, len(grid) - 1)]
    buffer = np.empty((m, n))

    def evaluate(t: np.ndarray) -> tuple:
        np.multiply(-np.exp(t)[:, None], u, out=buffer)
        np.expm1(buffer, out=buffer)
        return _solve(*_stats(buffer, yc, axis=1), ybar, ss_tot, n, a_max)

    # Golden section, one new evaluation per curve and step; R^2(c) is
    # unimodal within two grid cells of the grid's best point.
    ratio = (math.sqrt(5) - 1) / 2
    t1, t2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    f1, f2 = evaluate(t1)[2], evaluate(t2)[2]
    for _ in range(GOLDEN_STEPS):
        left = f1 <= f2  # the minimum lies in [lo, t2]
        hi, lo = np.where(left, t2, hi), np.where(left, lo, t1)
        t_new = np.where(left, hi - ratio * (hi - lo), lo + ratio * (hi - lo))
        f_new = evaluate(t_new)[2]
        t1, t2, f1, f2 = (
            np.where(left, t_new, t2),
            np.where(left, t1, t_new),
            np.where(left, f_new, f2),
            np.where(left, f1, f_new),
        )
    t = np.where(f1 <= f2, t1, t2)
    t = np.where(np.minimum(f1, f2) <= rss[np.arange(m), k], t, t_grid[k])
    a, b, rss_best = evaluate(t)
    c = np.exp(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1 - rss_best / ss_tot
    edge = (np.abs(t - t_grid[0]) < AT_BOUND) | (np.abs(t - t_grid[-1]) < AT_BOUND)
    # A flat curve (SS_tot = 0) has no R^2 and any (b, c) fits it.
    bad = (np.ptp(y, axis=1) == 0) | ~np.isfinite(ss_tot)
    nan = np.where(bad, np.nan, 1.0)
    return {
        "a": a * nan,
        "b": b * nan,
        "c": c * nan,
        "r2": r2 * nan,
        "rss": rss_best * nan,
        "c_at_bound": edge & ~bad,
    }


def fit_power_law_many(curves: Any, *, a_max: float | None = None) -> dict[str, np.ndarray]:
    """Fit AP*(N) = a - b*N^(-c) to every row of a 2-D array (N = 1..n along rows).

    Returns arrays a, b, c, r2, rss (NaN for a flat or non-finite curve) and
    c_at_bound. Vectorised: no Python loop over curves, rows are taken in chunks.
    """
    y = np.atleast_2d(np.asarray(curves, dtype=float))
    m, n = y.shape
    u = np.log(np.arange(1, n + 1, dtype=float))
    rows = max(1, CHUNK_ELEMENTS // max(n, 1))
    parts = [_varpro(y[i : i + rows], u, C_GRID, a_max) for i in range(0, m, rows)]
    if not parts:
        return {key: np.empty(0) for key in ("a", "b", "c", "r2", "rss", "c_at_bound")}
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


# --- single-curve fits with scipy, started from variable projection ---


def _check_curve(best: Any, min_points: int) -> tuple[np.ndarray | None, dict | None]:
    y = np.asarray(best, dtype=float).ravel()
    if len(y) < min_points:
        return None, insufficient(
            f"a convergence fit needs at least {min_points} finished experiments; got {len(y)}",
            n_points=len(y),
        )
    if not np.all(np.isfinite(y)):
        return None, insufficient("the curve has NaN or infinite values", n_points=len(y))
    if np.ptp(y) == 0:
        return None, insufficient(
            "the curve is flat (SS_tot = 0): the first experiment was already the best, "
            "so there is no approach to fit",
            n_points=len(y),
        )
    return y, None


def _information(rss: float, n: int, k: int, y: np.ndarray) -> tuple[float, float]:
    """AIC and BIC as -2 log-likelihood of the Gaussian MLE plus penalty (statsmodels' OLS convention)."""
    # An exact fit would give log(0); rounding error is the smallest meaningful rss.
    floor = n * (np.finfo(float).eps * max(1.0, float(np.max(np.abs(y))))) ** 2
    base = n * math.log(max(rss, floor) / n) + n * (1 + LOG_2PI)
    return base + 2 * k, base + k * math.log(n)


def _fit_saturating(
    y: np.ndarray, u: np.ndarray, grid: np.ndarray, a_max: float | None
) -> dict[str, Any]:
    """y = a - b*exp(-c*u) by least squares (c on the grid's range), with standard errors."""
    n = len(y)
    start = _varpro(y[None], u, grid, a_max)
    a0, b0, c0 = (float(start[key][0]) for key in ("a", "b", "c"))
    on_bound = a_max is not None and a0 >= a_max
    c_lo, c_hi = float(grid[0]), float(grid[-1])

    # With the bound active, a is fixed at a_max and only (b, c) are free.
    def unpack(p: np.ndarray) -> tuple[float, float, float]:
        return (a_max, p[0], p[1]) if on_bound else (p[0], p[1], p[2])

    def residuals(p: np.ndarray) -> np.ndarray:
        a, b, c = unpack(p)
        return a - b * np.exp(-c * u) - y

    def jacobian(p: np.ndarray) -> np.ndarray:
        _, b, c = unpack(p)
        x = np.exp(-c * u)
        columns = [-x, b * u * x] if on_bound else [np.ones(n), -x, b * u * x]
        return np.column_stack(columns)

    a_hi = np.inf if a_max is None else a_max
    lower = [-np.inf, c_lo] if on_bound else [-np.inf, -np.inf, c_lo]
    upper = [np.inf, c_hi] if on_bound else [a_hi, np.inf, c_hi]
    x0 = [b0, c0] if on_bound else [min(a0, a_hi), b0, c0]
    x0 = np.clip(x0, lower, upper)
    solution = least_squares(
        residuals,
        x0,
        jac=jacobian,
        bounds=(lower, upper),
        x_scale="jac",
        xtol=1e-12,
        ftol=1e-12,
        gtol=1e-12,
    )
    p = solution.x if np.sum(residuals(solution.x) ** 2) <= np.sum(residuals(x0) ** 2) else x0
    a, b, c = (float(v) for v in unpack(p))
    rss = float(np.sum(residuals(p) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))

    se: dict[str, float | None] = {"a": None, "b": None, "c": None}
    names = ["b", "c"] if on_bound else ["a", "b", "c"]
    jac = jacobian(p)
    information = jac.T @ jac
    note = None
    if n <= len(names):
        note = "no residual degrees of freedom"
    elif np.linalg.cond(information) > 1e12:
        note = "the Jacobian is (nearly) singular: parameters are not separately identified"
    else:
        covariance = rss / (n - len(names)) * np.linalg.inv(information)
        se.update(
            {
                name: float(math.sqrt(max(v, 0.0)))
                for name, v in zip(names, np.diag(covariance), strict=True)
            }
        )
    if on_bound:
        note = "a is at its bound, so it has no standard error"
    aic, bic = _information(rss, n, 3, y)
    fit = {
        "a": a,
        "b": b,
        "c": c,
        "r2": 1 - rss / ss_tot,
        "rss": rss,
        "n_points": n,
        "k": 3,
        "se": se,
        "aic": aic,
        "bic": bic,
        "c_at_bound": bool(min(abs(math.log(c / c_lo)), abs(math.log(c / c_hi))) < AT_BOUND),
    }
    if note:
        fit["se_note"] = note
    if a_max is not None:
        fit["a_max"] = a_max
        fit["bound_binds"] = bool(abs(a - a_max) <= 1e-9 * max(1.0, abs(a_max)))
    return fit


def fit_power_law(best: Any, *, a_max: float | None = None, min_points: int = 5) -> dict[str, Any]:
    """AP*(N) = a - b*N^(-c) fitted to a cumulative-best curve; a <= a_max when given.

    c is kept in [1e-3, 10] (`c_at_bound` when it ends at an edge); standard
    errors come from the Jacobian (None, with `se_note`, where not defined).
    """
    y, problem = _check_curve(best, min_points)
    if problem:
        return problem
    u = np.log(np.arange(1, len(y) + 1, dtype=float))
    return ok(model="a - b*N^(-c)", **_fit_saturating(y, u, C_GRID, a_max))


def compare_models(best: Any, *, min_points: int = 5) -> dict[str, Any]:
    """Power law, exponential and logarithmic curves fitted to one curve, ranked by AIC/BIC."""
    y, problem = _check_curve(best, min_points)
    if problem:
        return problem
    n = len(y)
    steps = np.arange(1, n + 1, dtype=float)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    power = _fit_saturating(y, np.log(steps), C_GRID, None)
    # exp(-c*N): c*n from 0.01 (nearly a straight line) to c = 10 (a single step).
    exponential = _fit_saturating(y, steps, np.geomspace(0.01 / n, 10.0, 201), None)
    design = np.column_stack([np.ones(n), np.log(steps)])
    (a_log, b_log), *_ = np.linalg.lstsq(design, y, rcond=None)
    rss_log = float(np.sum((design @ [a_log, b_log] - y) ** 2))

    models: dict[str, dict[str, Any]] = {}
    for name, formula, params, rss, k in (
        ("power", "a - b*N^(-c)", _abc(power), power["rss"], 3),
        ("exponential", "a - b*exp(-c*N)", _abc(exponential), exponential["rss"], 3),
        ("logarithmic", "a + b*ln(N)", {"a": float(a_log), "b": float(b_log)}, rss_log, 2),
    ):
        aic, bic = _information(rss, n, k, y)
        models[name] = {
            "formula": formula,
            **params,
            "rss": rss,
            "k": k,
            "r2": 1 - rss / ss_tot,
            "aic": aic,
            "bic": bic,
        }
    low_aic = min(model["aic"] for model in models.values())
    for model in models.values():
        model["delta_aic"] = model["aic"] - low_aic
    return ok(
        n_points=n,
        models=models,
        best_by_aic=min(models, key=lambda name: models[name]["aic"]),
        best_by_bic=min(models, key=lambda name: models[name]["bic"]),
    )


def _abc(fit: Mapping[str, Any]) -> dict[str, Any]:
    return {key: fit[key] for key in ("a", "b", "c", "c_at_bound")}
