"""ANOVA of an experiment table: how much of the AP variance the backbone x encoder choice explains.

    anova_by_groups(table, groups=("backbone", "encoder"), min_group_size=10)  # F, p, eta^2
    balanced_anova(table, per_group=10, repeats=100, seed=0)   # equal-n subsamples, percentiles
    within_anova(table, fixed={"backbone": None}, factor="encoder")   # None: the commonest backbone
    two_way_anova(table, factors=("backbone", "encoder"))        # typ-2 SS and variance shares

one_way_anova(values, labels) is the test itself on plain arrays. Results follow
variance.py's conventions (status, reason, the table's counts), and the small table
helpers here (_rows, _no_rows, _columns, ...) are shared with it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from expsearch.analysis.result import insufficient, ok
from expsearch.analysis.table import ExperimentTable


def one_way_anova(values: Sequence[float], labels: Sequence[Any]) -> dict[str, Any]:
    """One-way ANOVA of `values` by `labels`; eta_squared = SS_between / SS_total."""
    x = np.asarray(values, dtype=float)
    codes, uniques = pd.factorize(pd.Series(list(labels), dtype=object))
    if len(x) != len(codes):
        raise ValueError(f"one_way_anova: {len(x)} values but {len(codes)} labels")
    if not np.isfinite(x).all():
        return insufficient(f"{int((~np.isfinite(x)).sum())} value(s) are not finite numbers")
    if (codes < 0).any():
        return insufficient(f"{int((codes < 0).sum())} value(s) have no label")
    n, k = len(x), len(uniques)
    if k < 2:
        return insufficient(f"one-way ANOVA needs two groups; there are {k}", n=n, n_groups=k)
    if n - k < 1:
        return insufficient(
            "no within-group degrees of freedom: every group has one value", n=n, n_groups=k
        )
    sizes = np.bincount(codes, minlength=k)
    means = np.bincount(codes, weights=x, minlength=k) / sizes
    grand = x.mean()
    ss_between = float(np.sum(sizes * (means - grand) ** 2))
    # Direct residuals rather than SS_total - SS_between, which cancels badly when groups differ a lot.
    ss_within = float(np.sum((x - means[codes]) ** 2))
    if ss_within <= n * (16 * np.finfo(float).eps * np.max(np.abs(x))) ** 2:  # rounding only
        return insufficient("zero within-group variance: F is undefined", n=n, n_groups=k)
    df_between, df_within = k - 1, n - k
    f_value = (ss_between / df_between) / (ss_within / df_within)
    return ok(
        F=f_value,
        p=float(stats.f.sf(f_value, df_between, df_within)),
        eta_squared=ss_between / (ss_between + ss_within),
        df_between=df_between,
        df_within=df_within,
        n=n,
        n_groups=k,
        ss_between=ss_between,
        ss_within=ss_within,
    )


def anova_by_groups(
    table: ExperimentTable,
    *,
    metric: str = "val_ap",
    groups: Sequence[str] = ("backbone", "encoder"),
    min_group_size: int = 10,
) -> dict[str, Any]:
    """One-way ANOVA of `metric` over the combinations of `groups` with >= min_group_size runs.

    `groups` in the result is one row per combination (its values, n, mean, sd, best), by
    mean descending; small groups are listed too but do not enter the ANOVA.
    """
    groups = _columns(groups, "groups")
    _at_least(min_group_size, 1, "min_group_size")
    rows, counts = _rows(table, metric, groups, "anova_by_groups")
    if rows.empty:
        return _no_rows(counts, metric, groups)
    sizes = rows.groupby(list(groups), sort=False)[metric].transform("size")
    kept = rows[sizes >= min_group_size]
    summary = _summary(rows, metric, groups)
    facts = {
        "metric": metric,
        "factors": list(groups),
        "min_group_size": min_group_size,
        "dropped_groups": int((summary["n"] < min_group_size).sum()),
        "dropped_rows": len(rows) - len(kept),
        "counts": counts,
        "groups": _records(summary, groups),
    }
    n_kept = len(summary) - facts["dropped_groups"]
    if n_kept < 2:
        return insufficient(
            f"{n_kept} of {len(summary)} group(s) have >= {min_group_size} finished runs; "
            "an ANOVA needs two",
            **facts,
        )
    labels = kept.groupby(list(groups), sort=False).ngroup().to_numpy()
    result = one_way_anova(kept[metric].to_numpy(), labels)
    return {**result, **facts}


def balanced_anova(
    table: ExperimentTable,
    *,
    metric: str = "val_ap",
    groups: Sequence[str] = ("backbone", "encoder"),
    per_group: int = 10,
    repeats: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """The ANOVA on `repeats` subsamples of exactly `per_group` runs from each group that has them.

    A search spends its runs unevenly, so the full ANOVA is dominated by the groups it liked;
    equal-n subsamples show whether eta_squared survives balance. Reports the median and the
    2.5 / 97.5 percentiles of F, eta_squared and p over the repeats.
    """
    groups = _columns(groups, "groups")
    _at_least(per_group, 2, "per_group")
    _at_least(repeats, 1, "repeats")
    rows, counts = _rows(table, metric, groups, "balanced_anova")
    if rows.empty:
        return _no_rows(counts, metric, groups)
    parts = [(key, part[metric].to_numpy()) for key, part in rows.groupby(list(groups), sort=False)]
    eligible = [(key, values) for key, values in parts if len(values) >= per_group]
    facts = {
        "metric": metric,
        "factors": list(groups),
        "per_group": per_group,
        "repeats": repeats,
        "seed": seed,
        "dropped_groups": len(parts) - len(eligible),
        "dropped_rows": sum(len(v) for _, v in parts if len(v) < per_group),
        "counts": counts,
        "groups": [
            {**_key_record(key, groups), "n_available": len(values)} for key, values in eligible
        ],
    }
    k = len(eligible)
    if k < 2:
        return insufficient(
            f"{k} of {len(parts)} group(s) have >= {per_group} finished runs; an ANOVA needs two",
            **facts,
        )
    draws = _subsample([values for _, values in eligible], per_group, repeats, seed)
    group_means = draws.mean(axis=2)
    ss_between = per_group * np.sum(
        (group_means - group_means.mean(axis=1, keepdims=True)) ** 2, axis=1
    )
    ss_within = np.sum((draws - group_means[..., None]) ** 2, axis=(1, 2))
    scale = np.max(np.abs(draws), axis=(1, 2))
    usable = ss_within > k * per_group * (16 * np.finfo(float).eps * scale) ** 2
    if not usable.any():
        return insufficient("every subsample has zero within-group variance", **facts)
    df_between, df_within = k - 1, k * (per_group - 1)
    ss_between, ss_within = ss_between[usable], ss_within[usable]
    f_values = (ss_between / df_between) / (ss_within / df_within)
    return ok(
        **facts,
        repeats_used=int(usable.sum()),  # a repeat with no within-group spread has no F
        n=k * per_group,
        n_groups=k,
        df_between=df_between,
        df_within=df_within,
        percentiles=[2.5, 50, 97.5],
        F=_spread(f_values),
        eta_squared=_spread(ss_between / (ss_between + ss_within)),
        p=_spread(stats.f.sf(f_values, df_between, df_within)),
    )


def within_anova(
    table: ExperimentTable,
    *,
    metric: str = "val_ap",
    fixed: Mapping[str, Any] | None = None,
    factor: str = "encoder",
    min_group_size: int = 10,
) -> dict[str, Any]:
    """The `factor` ANOVA among runs with the `fixed` column values (default: the commonest backbone).

    A value of None picks that column's most frequent value among the finished runs (ties:
    the first seen); `chosen` says which. Counts are those of the fixed subset.
    """
    fixed = dict(fixed) if fixed is not None else {"backbone": None}
    if len(table) == 0:
        return _no_rows(_zero_counts(), metric, ())
    table.require([metric, factor, *fixed], "within_anova")
    frame = table.frame
    finished = frame.index.isin(table.finished(metric).index)
    mask = pd.Series(True, index=frame.index)
    chosen, resolved = {}, {}
    for column, value in fixed.items():
        if value is None:
            frequent = frame.loc[mask & finished, column].value_counts()
            if frequent.empty:
                return _no_rows(table.counts(metric), metric, (column,))
            value = frequent.index[0]
            chosen[column] = f"most frequent among finished runs ({int(frequent.iloc[0])} runs)"
        resolved[column] = _plain(value)
        mask &= frame[column] == value
    label = ", ".join(f"{column}={value}" for column, value in resolved.items())
    facts = {"fixed": resolved, "chosen": chosen, "factor": factor}
    if not mask.any():
        return insufficient(f"no experiment has {label}", **facts, counts=table.counts(metric))
    subset = table.subset(mask, label)
    result = anova_by_groups(subset, metric=metric, groups=(factor,), min_group_size=min_group_size)
    return {**result, **facts}


def two_way_anova(
    table: ExperimentTable,
    *,
    metric: str = "val_ap",
    factors: Sequence[str] = ("backbone", "encoder"),
    min_group_size: int = 1,
) -> dict[str, Any]:
    """Type-2 two-way ANOVA `metric ~ C(a) * C(b)` (statsmodels OLS) and each term's share.

    Each term has its sum of squares, df, F, p and share = SS_term / SS_total, where SS_total
    is the sum of squares about the grand mean. With unbalanced data the typ-2 shares of
    a, b, a:b and residual need not sum to 1 (`share_sum` says by how much they miss).
    Cells (a, b combinations) with fewer than `min_group_size` runs are dropped.

    Type-2 SS are computed as differences of residual sums of squares of nested OLS fits
    (SS(a|b) = RSS(b) - RSS(a+b), SS(a:b) = RSS(a+b) - RSS(a*b)), with df from the fits'
    ranks. On a complete design that is exactly `anova_lm(typ=2)`; unlike `anova_lm` it stays
    right when some a x b cells are empty, as a search's grid usually is. A term with no
    degrees of freedom (e.g. the interaction when no 2 x 2 sub-grid is filled) has F, p None.
    """
    factors = _columns(factors, "factors")
    if len(factors) != 2:
        raise ValueError(f"two_way_anova: factors must be two columns, not {list(factors)}")
    _at_least(min_group_size, 1, "min_group_size")
    rows, counts = _rows(table, metric, factors, "two_way_anova")
    if rows.empty:
        return _no_rows(counts, metric, factors)
    a, b = factors
    sizes = rows.groupby(list(factors), sort=False)[metric].transform("size")
    kept = rows[sizes >= min_group_size]
    # Levels as text so that patsy sees plain categories whatever the config value types are.
    data = pd.DataFrame(
        {"y": kept[metric].to_numpy(), "a": kept[a].astype(str), "b": kept[b].astype(str)}
    )
    levels = {a: int(data["a"].nunique()), b: int(data["b"].nunique())}
    cells = int(data.groupby(["a", "b"]).ngroups)
    facts = {
        "metric": metric,
        "factors": [a, b],
        "n": len(data),
        "levels": levels,
        "cells": cells,
        "empty_cells": levels[a] * levels[b] - cells,
        "min_group_size": min_group_size,
        "dropped_rows": len(rows) - len(kept),
        "counts": counts,
    }
    single = [name for name, count in levels.items() if count < 2]
    if single:
        return insufficient(
            f"{', '.join(single)} has fewer than two levels among the runs kept", **facts
        )
    fits = _ols_fits(data)
    full = fits["C(a) * C(b)"]
    df_resid, rss = round(float(full.df_resid)), float(full.ssr)
    if df_resid < 1:
        return insufficient("no residual degrees of freedom: every cell has one run", **facts)
    ss_total = float(np.sum((data["y"] - data["y"].mean()) ** 2))
    if rss <= len(data) * (16 * np.finfo(float).eps * data["y"].abs().max()) ** 2:
        return insufficient("zero residual variance: F is undefined", **facts)
    additive = fits["C(a) + C(b)"]
    terms = {
        a: _term(fits["C(b)"], additive, rss, df_resid, ss_total),
        b: _term(fits["C(a)"], additive, rss, df_resid, ss_total),
        f"{a}:{b}": _term(additive, full, rss, df_resid, ss_total),
        "residual": {"ss": rss, "df": df_resid, "F": None, "p": None, "share": rss / ss_total},
    }
    return ok(
        **facts,
        terms=terms,
        ss_total=ss_total,
        share_sum=sum(term["share"] for term in terms.values()),
    )


# --- helpers -------------------------------------------------------------------------------


def _rows(
    table: ExperimentTable,
    metric: str,
    groups: Sequence[str],
    analysis: str,
    extra: Sequence[str] = (),
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Finished rows with a finite metric and every group column set, and the counts."""
    if len(table) == 0:
        # Nothing to analyse, so a missing column is not the news.
        return pd.DataFrame(), _zero_counts(groups)
    table.require([metric, *groups, *extra], analysis)
    rows = table.finished(metric)
    counts = table.counts(metric)
    if groups:
        complete = rows[list(groups)].notna().all(axis=1)
        counts["missing_group"] = int((~complete).sum())
        rows = rows[complete]
    return rows, counts


def _zero_counts(groups: Sequence[str] = ()) -> dict[str, int]:
    counts = {"rows": 0, "finished": 0, "failed": 0, "missing_value": 0}
    return {**counts, "missing_group": 0} if groups else counts


def _no_rows(
    counts: dict[str, int], metric: str, groups: Sequence[str], /, **facts: Any
) -> dict[str, Any]:
    facts.setdefault("counts", counts)
    if counts["rows"] == 0:
        return insufficient("the table has no experiments", **facts)
    if counts["finished"] == 0:
        return insufficient(
            f"no finished run has a finite {metric} ({counts['failed']} not ok, "
            f"{counts['missing_value']} without a value)",
            **facts,
        )
    return insufficient(f"every finished run lacks a value for {', '.join(groups)}", **facts)


def _columns(columns: Sequence[str] | str, name: str) -> tuple[str, ...]:
    # A bare string would otherwise be split into one-letter column names.
    columns = (columns,) if isinstance(columns, str) else tuple(columns)
    if not columns:
        raise ValueError(f"{name} must name at least one column")
    return columns


def _at_least(value: int, minimum: int, name: str) -> None:
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")


def _summary(rows: pd.DataFrame, metric: str, groups: Sequence[str]) -> pd.DataFrame:
    summary = rows.groupby(list(groups), sort=False)[metric].agg(
        n="size", mean="mean", sd="std", best="max"
    )
    return summary.reset_index().sort_values("mean", ascending=False, kind="stable")


def _records(summary: pd.DataFrame, groups: Sequence[str]) -> list[dict[str, Any]]:
    columns = [*groups, "n", "mean", "sd", "best"]
    return [
        {c: _plain(v) for c, v in zip(columns, row, strict=True)}
        for row in summary[columns].itertuples(index=False)
    ]


def _key_record(key: Any, groups: Sequence[str]) -> dict[str, Any]:
    key = key if isinstance(key, tuple) else (key,)
    return {column: _plain(value) for column, value in zip(groups, key, strict=True)}


def _plain(value: Any) -> Any:
    """Plain Python, with a missing value (NaN, NA) as None so a report never holds a NaN."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _subsample(groups: Sequence[np.ndarray], per_group: int, repeats: int, seed: int) -> np.ndarray:
    """(repeats, groups, per_group) values: each repeat draws per_group from each group without replacement."""
    rng = np.random.default_rng(seed)
    draws = []
    for values in groups:
        # The per_group smallest of uniform keys are a uniform subset; argpartition does all repeats at once.
        keys = rng.random((repeats, len(values)))
        draws.append(values[np.argpartition(keys, per_group - 1, axis=1)[:, :per_group]])
    return np.stack(draws, axis=1)


def _spread(values: np.ndarray) -> dict[str, float]:
    low, median, high = np.percentile(values, [2.5, 50, 97.5])
    return {"median": float(median), "low": float(low), "high": float(high)}


def _ols_fits(data: pd.DataFrame) -> dict[str, Any]:
    from statsmodels.formula.api import ols  # slow to import; only the two-way ANOVA needs it

    with warnings.catch_warnings():
        # Empty cells make the interaction design rank-deficient; df come from the rank.
        warnings.simplefilter("ignore")
        return {
            formula: ols(f"y ~ {formula}", data).fit()
            for formula in ("C(a) * C(b)", "C(a) + C(b)", "C(a)", "C(b)")
        }


def _term(reduced: Any, larger: Any, rss: float, df_resid: int, ss_total: float) -> dict[str, Any]:
    """What `larger` adds over `reduced`, tested against the full model's residual."""
    df = round(float(reduced.df_resid - larger.df_resid))
    # A larger nested fit never explains less; a tiny negative difference is rounding.
    ss = max(float(reduced.ssr - larger.ssr), 0.0)
    if df < 1:
        return {"ss": ss, "df": 0, "F": None, "p": None, "share": ss / ss_total}
    f_value = (ss / df) / (rss / df_resid)
    return {
        "ss": ss,
        "df": df,
        "F": f_value,
        "p": float(stats.f.sf(f_value, df, df_resid)),
        "share": ss / ss_total,
    }
