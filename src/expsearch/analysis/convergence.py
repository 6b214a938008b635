"""Convergence of the search: how the cumulative best AP approaches its ceiling.

    result = convergence(table, metric="val_ap", subset={"code_version": "latest"})
    bootstrap_fit(values, resamples=1000, seed=0)   # CIs of (a, b, c), time order kept
    permutation_null(values, permutations=1000, seed=0, observed_r2=0.97)
    select_subset(table, after_round=3)             # the "post-bugfix" subset and its description
    events(table)                                   # code_version changes and round starts

The fits of AP*(N) = a - b*N^(-c) themselves (running_best, fit_power_law,
fit_power_law_many, compare_models) are in powerlaw.py; this module resamples
them, picks subsets of the table, places events on the curve and assembles the
analysis. Every result is a dict with status "ok" or "insufficient_data" and no NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from expsearch.analysis.powerlaw import (
    CHUNK_ELEMENTS,
    compare_models,
    fit_power_law,
    fit_power_law_many,
    running_best,
)
from expsearch.analysis.result import insufficient, ok
from expsearch.analysis.table import ExperimentTable, TableError

A_MAX = 1.0  # AP cannot exceed 1, so the paper's bounded fit uses a <= 1


# --- resampling: bootstrap and permutation null ---


def _in_chunks(total: int, n: int, make: Callable[[int], np.ndarray], a_max: float | None) -> dict:
    """fit_power_law_many over `total` curves made `rows` at a time, to bound memory."""
    rows = max(1, CHUNK_ELEMENTS // n)
    fits = [
        fit_power_law_many(make(min(rows, total - done)), a_max=a_max)
        for done in range(0, total, rows)
    ]
    return {key: np.concatenate([fit[key] for fit in fits]) for key in fits[0]}


def _check_values(values: Any, count: int, what: str, min_points: int) -> tuple:
    y = np.asarray(values, dtype=float).ravel()
    if count < 1:
        return None, insufficient(f"no {what} requested")
    if len(y) < min_points:
        return None, insufficient(
            f"a convergence fit needs at least {min_points} finished experiments; got {len(y)}",
            n_points=len(y),
        )
    if not np.all(np.isfinite(y)):
        return None, insufficient("the values have NaN or infinite entries", n_points=len(y))
    return y, None


def bootstrap_fit(
    values: Any, *, resamples: int, seed: int, a_max: float | None = None, min_points: int = 5
) -> dict[str, Any]:
    """Case bootstrap of the power-law fit that keeps the time order.

    Each resample draws n experiments with replacement, puts them back in
    completion order (sorted indices), and fits the running best. Resamples
    whose running best is flat have no fit and are counted, not used.
    """
    y, problem = _check_values(values, resamples, "bootstrap resamples", min_points)
    if problem:
        return problem
    n, rng = len(y), np.random.default_rng(seed)

    def resample(rows: int) -> np.ndarray:
        return running_best(y[np.sort(rng.integers(0, n, size=(rows, n)), axis=1)])

    fits = _in_chunks(resamples, n, resample, a_max)
    usable = np.isfinite(fits["c"])
    if usable.sum() < 2:
        return insufficient(
            "fewer than 2 bootstrap resamples have a non-flat running best",
            resamples=resamples,
            fitted=int(usable.sum()),
        )
    quantiles = {"p2.5": 2.5, "p50": 50.0, "p97.5": 97.5}
    percentiles = {
        name: {key: float(np.percentile(fits[name][usable], q)) for key, q in quantiles.items()}
        for name in ("a", "b", "c")
    }
    return ok(
        resamples=resamples,
        fitted=int(usable.sum()),
        flat=int((~usable).sum()),
        c_at_bound=int(fits["c_at_bound"][usable].sum()),
        seed=seed,
        a_max=a_max,
        **percentiles,
    )


def permutation_null(
    values: Any,
    *,
    permutations: int,
    seed: int,
    a_max: float | None = None,
    observed_r2: float | None = None,
    min_points: int = 5,
) -> dict[str, Any]:
    """R^2 of the power-law fit when the order of the experiments is random.

    Any running maximum is monotone, so its power-law R^2 is high even without
    learning; this null says how high. Permutations whose maximum comes first
    (a flat curve) have no R^2 and are counted, not used.
    """
    y, problem = _check_values(values, permutations, "permutations", min_points)
    if problem:
        return problem
    n, rng = len(y), np.random.default_rng(seed)

    def shuffle(rows: int) -> np.ndarray:
        return running_best(rng.permuted(np.tile(y, (rows, 1)), axis=1))

    r2 = _in_chunks(permutations, n, shuffle, a_max)["r2"]
    r2 = r2[np.isfinite(r2)]
    if len(r2) < 2:
        return insufficient(
            "fewer than 2 permutations have a non-flat running best",
            permutations=permutations,
            fitted=len(r2),
        )
    result = ok(
        permutations=permutations,
        fitted=len(r2),
        flat=permutations - len(r2),
        seed=seed,
        a_max=a_max,
        r2_mean=float(r2.mean()),
        r2_sd=float(r2.std(ddof=1)),
        r2_p95=float(np.percentile(r2, 95)),
    )
    if observed_r2 is not None:
        at_least = int(np.sum(r2 >= observed_r2))
        result.update(
            observed_r2=float(observed_r2),
            share_at_least_observed=at_least / len(r2),
            p_value=(at_least + 1) / (len(r2) + 1),
        )
    return result


# --- subsets and change points of the table ---


def _completed(frame: pd.DataFrame) -> np.ndarray:
    """Rows with a completion time (all rows when the table has no `finished`)."""
    if "finished" not in frame.columns:
        return np.ones(len(frame), dtype=bool)
    return _times(frame).notna().to_numpy()


def _times(frame: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(frame["finished"], errors="coerce", utc=True, format="ISO8601")


def _iso(frame: pd.DataFrame, position: int) -> str | None:
    if "finished" not in frame.columns:
        return None
    time = _times(frame).iloc[position]
    return None if pd.isna(time) else time.isoformat()


def _version_changes(frame: pd.DataFrame) -> list[tuple[int, str, str]]:
    """(position, from, to) of each change of code_version among completed rows."""
    versions = frame["code_version"].reset_index(drop=True)
    keep = _completed(frame) & versions.notna().to_numpy()
    sequence = versions[keep].astype(str)
    previous = sequence.shift()
    changed = previous.notna() & (sequence != previous)
    return [(int(p), previous[p], sequence[p]) for p in sequence.index[changed]]


def select_subset(
    table: ExperimentTable,
    *,
    after_round: float | None = None,
    after_time: str | None = None,
    code_version: str | None = None,
) -> tuple[ExperimentTable, dict[str, Any]]:
    """Rows meeting every given criterion, and a description of what was kept.

    after_round: round > after_round. after_time: finished at or after it (ISO).
    code_version: rows from that version's first completion on, or "latest" for
    rows from the last change of code_version on (completion order; rows of other
    versions completing later are kept, as the cut is in time).
    """
    frame = table.frame
    keep = np.ones(len(frame), dtype=bool)
    criteria: list[str] = []
    if after_round is not None:
        table.require(["round"], "the subset by round (analysis.subset.after_round)")
        keep &= (pd.to_numeric(frame["round"], errors="coerce") > after_round).to_numpy()
        criteria.append(f"round > {after_round}")
    if after_time is not None:
        table.require(["finished"], "the subset by time (analysis.subset.after_time)")
        try:
            cutoff = pd.Timestamp(after_time)
        except ValueError as exc:
            raise TableError(f"after_time {after_time!r} is not an ISO time: {exc}") from None
        cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff
        keep &= (_times(frame) >= cutoff).to_numpy()
        criteria.append(f"finished at or after {cutoff.isoformat()}")
    if code_version is not None:
        table.require(["code_version"], "the subset by code version (analysis.subset.code_version)")
        start, text = _version_start(table, str(code_version))
        keep &= np.arange(len(frame)) >= start
        criteria.append(text)
    if not criteria:
        return table, {"subset": "all rows (no criterion given)", "rows": len(frame)}
    subset = table.subset(keep, "; ".join(criteria))
    versions = (
        subset.frame["code_version"].astype(str).value_counts().to_dict()
        if "code_version" in frame.columns
        else None
    )
    description = {
        "subset": "; ".join(criteria),
        "after_round": after_round,
        "after_time": after_time,
        "code_version": code_version,
        "rows": len(subset),
        "rows_in_table": len(frame),
        "first_finished": _iso(subset.frame, 0) if len(subset) else None,
        "code_versions": versions,
    }
    return subset, description


def _version_start(table: ExperimentTable, version: str) -> tuple[int, str]:
    frame = table.frame
    if version == "latest":
        changes = _version_changes(frame)
        if not changes:
            return 0, "code_version never changes: all rows"
        position, old, new = changes[-1]
        return (
            position,
            f"from the last code_version change ({old} -> {new}, {_iso(frame, position)})",
        )
    matches = np.flatnonzero(
        _completed(frame) & (frame["code_version"].astype(str) == version).to_numpy()
    )
    if not len(matches):
        known = ", ".join(sorted(frame["code_version"].dropna().astype(str).unique()))
        raise TableError(
            f"{table.source}: no completed experiment has code_version {version!r}; it has {known}"
        )
    position = int(matches[0])
    return position, f"from code_version {version}'s first completion ({_iso(frame, position)})"


def events(table: ExperimentTable, *, metric: str = "val_ap") -> list[dict[str, Any]]:
    """Changes of code_version and round starts, placed at N on the finished curve.

    N is the index (1-based) in the finished sequence of the first finished
    experiment at or after the event, so it can be drawn on the convergence curve.
    """
    frame = table.frame
    finished = np.isin(frame.index, table.finished(metric).index)
    before = np.concatenate([[0], np.cumsum(finished)])  # finished rows before each position
    found = []
    if "code_version" in frame.columns:
        for position, old, new in _version_changes(frame):
            found.append(
                {
                    "kind": "code_version",
                    "N": int(before[position]) + 1,
                    "time": _iso(frame, position),
                    "from": old,
                    "to": new,
                }
            )
    if "round" in frame.columns:
        rounds = frame["round"].reset_index(drop=True)
        firsts = rounds[rounds.notna() & ~rounds.duplicated()]
        for position, value in firsts.items():
            found.append(
                {
                    "kind": "round",
                    "N": int(before[position]) + 1,
                    "time": _iso(frame, position),
                    "round": _plain(value),
                }
            )
    return sorted(found, key=lambda event: (event["N"], event["kind"]))


def _plain(value: Any) -> Any:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return value.item() if isinstance(value, np.generic) else value


# --- the whole analysis ---


def convergence(
    table: ExperimentTable,
    *,
    metric: str = "val_ap",
    subset: Mapping[str, Any] | None = None,
    bootstrap: int = 1000,
    permutations: int = 1000,
    seed: int = 0,
    min_points: int = 5,
) -> dict[str, Any]:
    """The convergence analysis of the full table and, if `subset` is given, of that subset.

    subset: keywords of select_subset, e.g. {"code_version": "latest"}.
    """
    settings = {
        "bootstrap": bootstrap,
        "permutations": permutations,
        "seed": seed,
        "min_points": min_points,
    }
    full = _analyse(table, metric, **settings)
    result = {"metric": metric, "a_max": A_MAX, "full": full}
    if subset:
        chosen, description = select_subset(table, **subset)
        result["subset"] = {"description": description, **_analyse(chosen, metric, **settings)}
    if full["status"] != "ok":
        return insufficient(f"full table: {full['reason']}", **result)
    return ok(**result)


def _analyse(
    table: ExperimentTable,
    metric: str,
    *,
    bootstrap: int,
    permutations: int,
    seed: int,
    min_points: int,
) -> dict[str, Any]:
    counts = table.counts(metric)
    rows = table.finished(metric)
    values = rows[metric].to_numpy(dtype=float)
    best = running_best(values)
    free = fit_power_law(best, min_points=min_points)
    bounded = fit_power_law(best, a_max=A_MAX, min_points=min_points)
    steps = np.arange(1, len(values) + 1)
    curve = [
        {
            "N": int(N),
            "id": _plain(id_),
            "value": float(v),
            "best": float(b),
            "fit": _predict(bounded, N),
            "fit_unconstrained": _predict(free, N),
        }
        for N, id_, v, b in zip(steps, rows["id"], values, best, strict=True)
    ]
    analysis = {
        "counts": counts,
        "unconstrained": free,
        "bounded": bounded,
        "models": compare_models(best, min_points=min_points),
        "bootstrap": bootstrap_fit(
            values, resamples=bootstrap, seed=seed, a_max=A_MAX, min_points=min_points
        ),
        "permutation": permutation_null(
            values,
            permutations=permutations,
            seed=seed,
            a_max=A_MAX,
            observed_r2=bounded.get("r2"),
            min_points=min_points,
        ),
        "curve": curve,
        "events": events(table, metric=metric),
    }
    if bounded["status"] != "ok":
        return insufficient(bounded["reason"], **analysis)
    return ok(**analysis)


def _predict(fit: Mapping[str, Any], n: int) -> float | None:
    if fit["status"] != "ok":
        return None
    return float(fit["a"] - fit["b"] * n ** (-fit["c"]))
