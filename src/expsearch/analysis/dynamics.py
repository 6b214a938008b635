"""Search dynamics: where the agents' proposals went, and how often they still improved.

    result = dynamics(table, metric="val_ap", window=50, step=10, innovation_window=50)
    result["combined"], result["agents"]["claude"]   # entropy summaries and innovation fits
    pd.DataFrame(result["jsd"]).to_csv(...)          # windowed JSD for every pair of agents
    pd.DataFrame(result["series"]).to_csv(...)       # H(t), H_arch(t), ... per experiment

The building blocks work on plain sequences too: `entropy_series(cells)`,
`windowed_entropy(cells, window)`, `jsd(p_counts, q_counts)`, `log_fit(h)` and
`innovation(values, window=...)`.

A cell is the tuple of a set of categorical config columns (ARCH, TRAIN, ALL
below). Entropy counts every experiment proposed, failed ones included: it
measures where the search went, not how it scored. Innovation counts only
finished experiments with a finite metric, in completion order.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import rel_entr, xlogy

from .powerlaw import fit_power_law, running_best
from .result import insufficient, ok
from .table import ExperimentTable

ARCH = ("backbone", "encoder", "pooling")
TRAIN = ("batch_size", "scheduler", "seq_len", "epochs")
ALL = (*ARCH, "loss", *TRAIN)
CELLS = {"ALL": ALL, "ARCH": ARCH, "TRAIN": TRAIN}

# A Bernoulli probability of exactly 1 makes a single non-improvement an
# infinite loss; the power law is capped just below it instead.
P_CAP = 1.0 - 1e-9


def _codes(cells: Sequence[Hashable] | np.ndarray) -> np.ndarray:
    values = np.empty(len(cells), dtype=object)
    values[:] = list(cells)
    codes, _ = pd.factorize(values, use_na_sentinel=False)
    return codes.astype(np.int64)


def _count_in(codes: np.ndarray, at: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """How often codes[at[i]] occurs in codes[lo[i] : hi[i] + 1], for all i at once."""
    n = len(codes)
    keys = np.sort(codes * (n + 1) + np.arange(n))  # grouped by code, then position
    base = codes[at] * (n + 1)
    return np.searchsorted(keys, base + hi, side="right") - np.searchsorted(keys, base + lo)


def entropy_series(cells: Sequence[Hashable] | np.ndarray) -> np.ndarray:
    """Cumulative configuration-space entropy H(t), t = 1..n, in nats.

    H(t) = log t - (1/t) sum_c n_t(c) log n_t(c): each step changes one count
    by one, so the sum is updated in O(1) (a cumulative sum) instead of recounting.
    """
    codes = _codes(cells)
    n = len(codes)
    if n == 0:
        return np.zeros(0)
    seen = pd.Series(codes).groupby(codes).cumcount().to_numpy() + 1  # n_t(c_t) after step t
    s = np.cumsum(xlogy(seen, seen) - xlogy(seen - 1, seen - 1))
    t = np.arange(1, n + 1)
    return _entropy(np.log(t) - s / t, np.cumsum(seen == 1))


def windowed_entropy(cells: Sequence[Hashable] | np.ndarray, window: int) -> np.ndarray:
    """Entropy of the last `window` cells at each t (the first window-1 use all t so far).

    The cumulative H(t) only ever averages over the whole history, so a phase of
    exploitation after exploration barely moves it; the windowed entropy is what
    shows exploration/exploitation cycles.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    codes = _codes(cells)
    n = len(codes)
    if n == 0:
        return np.zeros(0)
    t = np.arange(n)
    # Step t first drops the cell leaving the window, then adds cell t; each
    # changes one count by one, so sum n log n moves by a difference of x log x.
    added = _count_in(codes, t, np.maximum(t - window + 1, 0), t)  # count after adding
    delta = xlogy(added, added) - xlogy(added - 1, added - 1)
    gone = t[: max(n - window, 0)]  # leaves at step gone + window
    dropped = _count_in(codes, gone, gone, gone + window - 1)  # count before dropping
    delta[window:] -= xlogy(dropped, dropped) - xlogy(dropped - 1, dropped - 1)
    distinct = np.cumsum(added == 1)
    distinct[window:] -= np.cumsum(dropped == 1)
    size = np.minimum(t + 1, window)
    return _entropy(np.log(size) - np.cumsum(delta) / size, distinct)


def _entropy(h: np.ndarray, distinct: np.ndarray) -> np.ndarray:
    # log t - S/t leaves rounding of ~1e-16 where the answer is exactly 0 (one cell)
    # and can dip a hair below 0 elsewhere.
    return np.where(distinct == 1, 0.0, np.maximum(h, 0.0))


def jsd(
    p_counts: Mapping[Hashable, float] | Sequence[float] | np.ndarray,
    q_counts: Mapping[Hashable, float] | Sequence[float] | np.ndarray,
) -> float:
    """Jensen-Shannon divergence of two count distributions, natural log (0..log 2)."""
    if isinstance(p_counts, Mapping) or isinstance(q_counts, Mapping):
        if not (isinstance(p_counts, Mapping) and isinstance(q_counts, Mapping)):
            raise ValueError("jsd needs two count mappings or two aligned arrays, not one of each")
        keys = list(dict.fromkeys([*p_counts, *q_counts]))
        p = np.array([p_counts.get(k, 0) for k in keys], dtype=float)
        q = np.array([q_counts.get(k, 0) for k in keys], dtype=float)
    else:
        p, q = np.asarray(p_counts, dtype=float), np.asarray(q_counts, dtype=float)
        if p.shape != q.shape or p.ndim != 1:
            raise ValueError(f"jsd needs aligned 1-d count arrays, got {p.shape} and {q.shape}")
    if not (np.isfinite(p).all() and np.isfinite(q).all()) or (p < 0).any() or (q < 0).any():
        raise ValueError("jsd needs finite, non-negative counts")
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("jsd needs at least one count in each distribution")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    return float(
        min(max(0.5 * rel_entr(p, m).sum() + 0.5 * rel_entr(q, m).sum(), 0.0), math.log(2))
    )


def log_fit(h: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Least-squares fit H(t) = H0 + k log t over t = 1..n, with R^2."""
    h = np.asarray(h, dtype=float)
    n = len(h)
    if n < 3:
        return insufficient(f"a log fit needs 3 points, got {n}", n=n)
    if not np.isfinite(h).all():
        return insufficient("the series has non-finite values", n=n)
    x = np.log(np.arange(1, n + 1))
    xc, hc = x - x.mean(), h - h.mean()
    k = float(xc @ hc / (xc @ xc))
    h0 = float(h.mean() - k * x.mean())
    total = float(hc @ hc)
    if total <= 1e-24 * n:
        return insufficient("H(t) is constant, so R^2 is undefined", n=n, H0=h0, k=k)
    residual = h - h0 - k * x
    return ok(H0=h0, k=k, r2=1.0 - float(residual @ residual) / total, n=n)


def innovation(
    values: Sequence[float] | np.ndarray, *, window: int, min_points: int = 5
) -> dict[str, Any]:
    """Innovation indicator, its windowed rate, and a power-law fit of its probability.

    iota_t = 1 when y_t beats every earlier y (iota_1 = 1 by convention); the rate
    is the mean of iota over the last `window` experiments (fewer at the start).
    P(iota_t = 1) = A t^(-alpha) is fitted by Bernoulli maximum likelihood over
    t >= 2: t = 1 is an improvement by definition and carries no information.
    For i.i.d. values P(record at t) = 1/t, so alpha = 1, A = 1.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    y = np.asarray(values, dtype=float)
    if not np.isfinite(y).all():
        raise ValueError("innovation needs finite values; drop failed experiments first")
    n = len(y)
    iota = np.ones(n, dtype=np.int64)
    if n > 1:
        iota[1:] = y[1:] > np.maximum.accumulate(y)[:-1]
    total = np.concatenate([[0], np.cumsum(iota)])
    t = np.arange(1, n + 1)
    lo = np.maximum(t - window, 0)
    rate = (total[t] - total[lo]) / (t - lo)
    facts = {
        "n": n,
        "improvements": int(iota.sum()),
        "window": window,
        "indicator": iota,
        "rate": rate,
    }
    if n < max(min_points, 3):
        return insufficient(
            f"an innovation fit needs {max(min_points, 3)} points, got {n}", **facts
        )
    later = iota[1:]
    if not later.any():
        return insufficient("no experiment improved on the first, so alpha is unbounded", **facts)
    if later.all():
        # Every step improved: P = 1 at every t, i.e. A = 1, alpha = 0 exactly, on
        # the boundary of the model where no standard error exists.
        return ok(
            alpha=0.0,
            alpha_se=None,
            A=1.0,
            capped_points=n - 1,
            fit_from_t=2,
            **facts,
            note="every experiment improved on the one before: P(iota=1) = 1, no standard error",
        )
    return ok(**_power_law(later.astype(float), np.log(np.arange(2, n + 1))), fit_from_t=2, **facts)


def _power_law(y: np.ndarray, x: np.ndarray) -> dict[str, Any]:
    """Bernoulli MLE of log P = a - alpha x, P capped below 1."""

    def probability(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = np.exp(np.minimum(theta[0] - theta[1] * x, 0.0))
        capped = p >= P_CAP
        return np.minimum(p, P_CAP), capped

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        p, capped = probability(theta)
        nll = -float(xlogy(y, p).sum() + xlogy(1 - y, 1 - p).sum())
        # d loglik / d log p; a capped point no longer depends on the parameters
        g = np.where(capped, 0.0, y - (1 - y) * p / (1 - p))
        return nll, -np.array([g.sum(), -(g * x).sum()])

    fit = minimize(loss, np.array([0.0, 1.0]), jac=True, method="L-BFGS-B")
    if not fit.success:  # the cap is a kink that can stall a line search; polish without gradients
        fit = minimize(
            lambda theta: loss(theta)[0],
            fit.x,
            method="Nelder-Mead",
            options={"xatol": 1e-8, "fatol": 1e-10},
        )
    a, alpha = (float(v) for v in fit.x)
    p, capped = probability(fit.x)
    # Expected Fisher information of the uncapped points: sum p/(1-p) d(log p) d(log p)^T
    w = np.where(capped, 0.0, p / (1 - p))
    info = np.array([[w.sum(), -(w * x).sum()], [-(w * x).sum(), (w * x * x).sum()]])
    alpha_se = None
    if np.linalg.cond(info) < 1e12:
        variance = float(np.linalg.inv(info)[1, 1])
        if math.isfinite(variance) and variance > 0:
            alpha_se = math.sqrt(variance)
    out = {
        "alpha": alpha,
        "alpha_se": alpha_se,
        "A": math.exp(a),
        "capped_points": int(capped.sum()),
    }
    if not fit.success:
        out["note"] = f"optimiser did not report convergence: {fit.message}"
    elif alpha_se is None:
        out["note"] = "the information matrix is singular: no standard error"
    return out


def dynamics(
    table: ExperimentTable,
    *,
    metric: str = "val_ap",
    window: int = 50,
    step: int = 10,
    innovation_window: int = 50,
    min_points: int = 5,
) -> dict[str, Any]:
    """Entropy, change rate, log fit, windowed JSD and innovation, per agent and combined.

    Keys: `combined` and `agents[name]` (each: n, H / H_arch / H_train with final,
    final_window, cells_seen and log_fit, change_rate, innovation; insufficient
    under `min_points` rows); `jsd` (flat rows for a CSV, one per pair of agents
    and window: agent_a, agent_b, t_start, t_end, n_a, n_b, jsd_all, jsd_arch,
    reason, share_a_<backbone>, share_b_<backbone>) with `jsd_summary` (the
    pairs, or insufficient with one agent); `series` (one row per experiment and
    scope, for a CSV); `counts`, `cells`, `agent_names` and the settings.
    Windows of `window` rows start every `step` rows of the combined completion
    order, plus one ending at the last row.
    """
    if window < 1 or step < 1 or innovation_window < 1:
        raise ValueError("window, step and innovation_window must be at least 1")
    settings = {
        "metric": metric,
        "window": window,
        "step": step,
        "innovation_window": innovation_window,
        "min_points": min_points,
    }
    if len(table) == 0:
        return insufficient("the table has no experiments", n=0, **settings)
    table.require(["agent", metric, *ALL], "search dynamics")
    frame = table.frame
    counts = table.counts(metric)
    codes = {
        name: frame.groupby(list(cols), dropna=False, sort=False).ngroup().to_numpy()
        for name, cols in CELLS.items()
    }
    agent = frame["agent"].astype(object).where(frame["agent"].notna(), "unknown").astype(str)
    agents = sorted(agent.unique())
    values = pd.to_numeric(frame[metric], errors="coerce").to_numpy(dtype=float)
    finished = (frame["status"] == "ok").to_numpy() & np.isfinite(values)
    ids = frame["id"].to_numpy()

    series: list[dict[str, Any]] = []

    def scope(mask: np.ndarray, kind: str, name: str, label: str) -> dict[str, Any]:
        summary, rows = _scope(
            codes, mask, ids, values, finished, window, innovation_window, min_points, label
        )
        rows.insert(0, "agent", name)
        rows.insert(0, "scope", kind)
        series.extend(rows.to_dict("records"))
        return summary

    combined = scope(np.ones(len(frame), dtype=bool), "combined", "combined", "the combined search")
    per_agent = {
        name: scope((agent == name).to_numpy(), "agent", name, f"agent {name}") for name in agents
    }
    jsd_rows, jsd_summary = _pairwise_jsd(frame, codes, agent.to_numpy(), agents, window, step)
    return ok(
        **settings,
        counts=counts,
        cells={name: list(cols) for name, cols in CELLS.items()},
        agent_names=agents,
        combined=combined,
        agents=per_agent,
        jsd_summary=jsd_summary,
        jsd=jsd_rows,
        series=series,
    )


def _scope(codes, mask, ids, values, finished, window, innovation_window, min_points, name):
    """Entropy summary, innovation fit and CSV rows of one agent (or all of them)."""
    n = int(mask.sum())
    rows = pd.DataFrame({"t": np.arange(1, n + 1), "id": ids[mask]})
    summary: dict[str, Any] = {"n": n}
    for label, cell in (("H", "ALL"), ("H_arch", "ARCH"), ("H_train", "TRAIN")):
        h = entropy_series(codes[cell][mask])
        rows[label] = h
        rows[f"{label}_window"] = windowed_entropy(codes[cell][mask], window)
        summary[label] = {
            "cells": list(CELLS[cell]),
            "cells_seen": len(np.unique(codes[cell][mask])),
            "final": float(h[-1]) if n else None,
            "final_window": float(rows[f"{label}_window"].iloc[-1]) if n else None,
            "log_fit": log_fit(h),
        }
    summary["change_rate"] = _change_rate(rows["H_arch"].to_numpy(), rows["H_train"].to_numpy())
    done = finished[mask]
    summary["innovation"] = innovation(
        values[mask][done], window=innovation_window, min_points=min_points
    )
    rows["finished"] = done
    for column, key in (("iota", "indicator"), ("innovation_rate", "rate")):
        # None, not NaN, on experiments that did not finish: the CSV row is still a proposal.
        # The lists move to the series table only (the JSON keeps the fit).
        cells = np.full(n, None, dtype=object)
        cells[done] = np.asarray(summary["innovation"].pop(key, [None] * int(done.sum()))).tolist()
        rows[column] = cells
    # alpha = c is the paper's prediction: the exponent of the same curve's power law beside it
    beside = fit_power_law(running_best(values[mask][done]), a_max=1.0, min_points=min_points)
    summary["innovation"]["c_of_same_curve"] = beside.get("c") if beside["status"] == "ok" else None
    if n < min_points:
        return insufficient(
            f"{name} has {n} experiments; the dynamics need {min_points}", **summary
        ), rows
    return ok(**summary), rows


def _change_rate(h_arch: np.ndarray, h_train: np.ndarray) -> dict[str, Any]:
    """Mean |step change| of cumulative H_arch over that of cumulative H_train, t >= 2."""
    facts = {
        "series": "cumulative H_arch / cumulative H_train",
        "from_t": 2,
        "steps": max(len(h_arch) - 1, 0),
    }
    if len(h_arch) < 2:
        return insufficient("a change rate needs 2 experiments", **facts)
    arch = float(np.abs(np.diff(h_arch)).mean())
    train = float(np.abs(np.diff(h_train)).mean())
    if train <= 1e-12:  # rounding, not a change
        return insufficient(
            "H_train never changes", mean_abs_change_arch=arch, mean_abs_change_train=train, **facts
        )
    return ok(ratio=arch / train, mean_abs_change_arch=arch, mean_abs_change_train=train, **facts)


def _pairwise_jsd(frame, codes, agent, agents, window, step):
    """Flat rows (pair x window) of JSD on ALL and ARCH cells and backbone shares, and a summary."""
    if len(agents) < 2:
        reason = f"one agent only ({', '.join(agents)}): no pairs to compare"
        return [], insufficient(reason, window=window, step=step, pairs=[])
    n = len(frame)
    starts = np.arange(0, max(n - window, 0) + 1, step)
    if starts[-1] + window < n:  # a last window ending at n, so the latest rows are compared too
        starts = np.append(starts, n - window)
    ends = np.minimum(starts + window, n)
    # Each (window, position) membership once: about n * window / step of them,
    # counted with one unique/bincount instead of a Python loop over windows.
    sizes = ends - starts
    win = np.repeat(np.arange(len(starts)), sizes)
    pos = starts[win] + np.arange(len(win)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    who = pd.Index(agents).get_indexer(agent)[pos]
    n_agents, n_windows = len(agents), len(starts)
    size = np.bincount(win * n_agents + who, minlength=n_windows * n_agents)
    size = size.reshape(n_windows, n_agents)

    divergence = {
        name: _window_jsd(codes[name][pos], win, who, size, n_agents) for name in ("ALL", "ARCH")
    }
    backbone_code, backbones = pd.factorize(frame["backbone"].astype(str), sort=True)
    backbones = backbones.tolist()
    share = np.bincount(
        (win * n_agents + who) * len(backbones) + backbone_code[pos],
        minlength=n_windows * n_agents * len(backbones),
    )
    share = share.reshape(n_windows, n_agents, len(backbones)).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        share /= size[:, :, None]

    rows = []
    for a, b in itertools.combinations(range(n_agents), 2):
        for j in range(n_windows):
            missing = [agents[i] for i in (a, b) if not size[j, i]]
            row = {
                "agent_a": agents[a],
                "agent_b": agents[b],
                "t_start": int(starts[j]) + 1,
                "t_end": int(ends[j]),
                "n_a": int(size[j, a]),
                "n_b": int(size[j, b]),
                "jsd_all": None if missing else float(divergence["ALL"][(a, b)][j]),
                "jsd_arch": None if missing else float(divergence["ARCH"][(a, b)][j]),
                "reason": f"no experiments from {' and '.join(missing)} in this window"
                if missing
                else None,
            }
            for side, i in (("a", a), ("b", b)):
                for k, backbone in enumerate(backbones):
                    row[f"share_{side}_{backbone}"] = float(share[j, i, k]) if size[j, i] else None
            rows.append(row)
    summary = ok(
        window=window,
        step=step,
        windows=n_windows,
        backbones=backbones,
        pairs=[[agents[a], agents[b]] for a, b in itertools.combinations(range(n_agents), 2)],
        t="1-based positions in the combined completion order, t_end inclusive",
        share="share_a_<backbone>, share_b_<backbone>: each agent's backbone share in the window",
    )
    return rows, summary


def _window_jsd(cell, win, who, size, n_agents) -> dict[tuple[int, int], np.ndarray]:
    """JSD per window for every agent pair from sparse (window, cell) counts."""
    n_windows = size.shape[0]
    key, inverse = np.unique(win * (cell.max() + 1) + cell, return_inverse=True)
    key_window = key // (cell.max() + 1)
    count = np.zeros((len(key), n_agents))
    np.add.at(count, (inverse, who), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_all = count / size[key_window]
    out = {}
    for a, b in itertools.combinations(range(n_agents), 2):
        p, q = p_all[:, a], p_all[:, b]
        m = (p + q) / 2
        terms = np.nan_to_num(0.5 * rel_entr(p, m) + 0.5 * rel_entr(q, m))
        out[(a, b)] = np.clip(
            np.bincount(key_window, weights=terms, minlength=n_windows), 0.0, math.log(2)
        )
    return out
