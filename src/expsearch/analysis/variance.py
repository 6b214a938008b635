"""The variance report: the ANOVAs of anova.py, and which runs reach the top and who proposed them.

    table = load_table("results/dataset/experiments.parquet")
    report = variance(table)                      # anova.py's ANOVAs and all below, by key
    enrichment(table, top=100, column="source", value="sweep")   # over-representation in the top runs
    representativeness(table, dimension="encoder", column="agent")   # attributed runs vs the rest
    val_test_agreement(table); top_configs(table, k=5); best_per_group(table)

Every result is a dict with "status" "ok" or "insufficient_data" (with a "reason") and
the table's counts (rows, finished, failed, missing_value): failed runs and runs without
a finite metric never enter an AP statistic but are counted. Higher metric is better.
A column an analysis needs and the table lacks is a TableError that names it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from expsearch.analysis.anova import (
    _at_least,
    _columns,
    _no_rows,
    _plain,
    _rows,
    _zero_counts,
    anova_by_groups,
    balanced_anova,
    two_way_anova,
    within_anova,
)
from expsearch.analysis.result import insufficient, is_ok, ok
from expsearch.analysis.table import ExperimentTable, TableError

RUN_COLUMNS = ("test_ap", "source", "agent")  # shown with a run when the table has them
CONFIG_COLUMNS = ("backbone", "encoder", "pooling", "loss", "focal_gamma")


def enrichment(
    table: ExperimentTable,
    *,
    metric: str = "val_ap",
    top: int = 100,
    column: str = "source",
    value: Any = "sweep",
) -> dict[str, Any]:
    """Is `column == value` over-represented among the `top` finished runs by `metric`?

    Compares its share in the top runs with its base rate among all finished runs; p is the
    one-sided hypergeometric tail P(X >= observed), i.e. Fisher's exact test "greater".
    Ties at the cut-off go to the earlier-finished run.
    """
    _at_least(top, 1, "top")
    rows, counts = _rows(table, metric, (), "enrichment", extra=(column,))
    facts = {
        "metric": metric,
        "column": column,
        "value": _plain(value),
        "top": top,
        "counts": counts,
    }
    if rows.empty:
        return _no_rows(counts, metric, (), **facts)
    total = len(rows)
    if top >= total:
        return insufficient(
            f"only {total} finished run(s): the top {top} would be all of them", n=total, **facts
        )
    hit = (rows[column] == value).to_numpy()
    order = np.argsort(-rows[metric].to_numpy(), kind="stable")
    in_top, in_all = int(hit[order[:top]].sum()), int(hit.sum())
    if in_all == 0:
        return insufficient(f"no finished run has {column} = {value}", n=total, **facts)
    share_top, base_rate = in_top / top, in_all / total
    return ok(
        **facts,
        n=total,
        in_top=in_top,
        in_all=in_all,
        share_top=share_top,
        base_rate=base_rate,
        ratio=share_top / base_rate,
        p=float(stats.hypergeom.sf(in_top - 1, total, in_all, top)),
    )


def representativeness(
    table: ExperimentTable,
    *,
    dimension: str = "encoder",
    column: str = "agent",
    attributed: Iterable[Any] | None = None,
) -> dict[str, Any]:
    """Are the runs attributed to an agent distributed over `dimension` like the others?

    A run is attributed when `column` is set and not "unknown" (nor blank, any case), or,
    with an `attributed` list, when `column` is in it. All experiments count, failed ones
    too: attribution is about what was proposed, not how it scored. Chi-squared test of
    independence on the 2 x k table (no continuity correction) and Cramér's V.
    """
    facts: dict[str, Any] = {"dimension": dimension, "column": column}
    if len(table) == 0:
        return insufficient("the table has no experiments", **facts, rows=0)
    table.require([dimension, column], "representativeness")
    frame = table.frame[table.frame[dimension].notna()]
    labels = table.frame[column]
    if attributed is None:
        text = labels.astype(str).str.strip().str.lower()
        is_attributed = labels.notna() & ~text.isin(["unknown", ""])
    else:
        is_attributed = labels.isin(
            [attributed] if isinstance(attributed, str) else list(attributed)
        )
    is_attributed = is_attributed[frame.index]
    facts.update(rows=len(table), missing_dimension=len(table) - len(frame))
    if frame.empty:
        return insufficient(f"no experiment has a {dimension}", **facts)
    n_attributed = int(is_attributed.sum())
    if n_attributed in (0, len(frame)):
        which = "no" if n_attributed == 0 else "every"
        return insufficient(f"{which} run with a {dimension} is attributed by {column}", **facts)
    observed = pd.crosstab(is_attributed, frame[dimension]).reindex([True, False])
    if observed.shape[1] < 2:
        return insufficient(f"{dimension} has one value only", **facts)
    chi2, p, dof, _ = stats.chi2_contingency(observed.to_numpy(), correction=False)
    n = int(observed.to_numpy().sum())
    table_rows = [
        {
            dimension: _plain(value),
            "attributed": int(observed.loc[True, value]),
            "other": int(observed.loc[False, value]),
            "attributed_share": float(observed.loc[True, value] / n_attributed),
            "other_share": float(observed.loc[False, value] / (n - n_attributed)),
        }
        for value in observed.columns
    ]
    return ok(
        **facts,
        n=n,
        attributed=n_attributed,
        chi2=float(chi2),
        dof=int(dof),
        p=float(p),
        cramers_v=math.sqrt(chi2 / (n * (min(observed.shape) - 1))),
        table=table_rows,
    )


def val_test_agreement(
    table: ExperimentTable, *, val: str = "val_ap", test: str = "test_ap"
) -> dict[str, Any]:
    """Spearman rank correlation of `val` and `test` over finished runs with both finite."""
    rows, counts = _rows(table, val, (), "val_test_agreement", extra=(test,))
    if rows.empty:
        return _no_rows(counts, val, ())
    test_values = pd.to_numeric(rows[test], errors="coerce").to_numpy(dtype=float)
    both = np.isfinite(test_values)
    x, y = rows[val].to_numpy()[both], test_values[both]
    facts = {
        "val": val,
        "test": test,
        "n": len(x),
        "missing_test": int((~both).sum()),
        "counts": counts,
    }
    if len(x) < 3:
        return insufficient(f"a rank correlation needs 3 runs with both {val} and {test}", **facts)
    flat = [name for name, v in ((val, x), (test, y)) if np.ptp(v) == 0]
    if flat:
        return insufficient(f"{' and '.join(flat)} is constant: no ranks to correlate", **facts)
    rho, p = stats.spearmanr(x, y)
    return ok(rho=float(rho), p=float(p), **facts)


def top_configs(
    table: ExperimentTable,
    *,
    metric: str = "val_ap",
    k: int = 5,
    columns: Sequence[str] = CONFIG_COLUMNS,
) -> dict[str, Any]:
    """The `k` best finished runs by `metric` (ties: earlier finished first), with their configs."""
    _at_least(k, 1, "k")
    rows, counts = _rows(table, metric, (), "top_configs")
    if rows.empty:
        return _no_rows(counts, metric, ())
    best = rows.sort_values(metric, ascending=False, kind="stable").head(k)
    runs = [
        {"rank": rank, **_run(row, metric, columns)}
        for rank, (_, row) in enumerate(best.iterrows(), start=1)
    ]
    return ok(metric=metric, k=k, n=len(runs), configs=runs, counts=counts)


def best_per_group(
    table: ExperimentTable,
    *,
    metric: str = "val_ap",
    groups: Sequence[str] = ("backbone", "encoder"),
) -> dict[str, Any]:
    """The best finished run of every combination of `groups`, best group first."""
    groups = _columns(groups, "groups")
    rows, counts = _rows(table, metric, groups, "best_per_group")
    if rows.empty:
        return _no_rows(counts, metric, groups)
    ordered = rows.sort_values(metric, ascending=False, kind="stable")
    sizes = ordered.groupby(list(groups), sort=False)[metric].transform("size")
    best = ordered.assign(_n=sizes).drop_duplicates(subset=list(groups))
    runs = [{**_run(row, metric, groups), "n": int(row["_n"])} for _, row in best.iterrows()]
    return ok(metric=metric, factors=list(groups), n_groups=len(runs), best=runs, counts=counts)


def variance(
    table: ExperimentTable,
    *,
    metric: str = "val_ap",
    groups: Sequence[str] = ("backbone", "encoder"),
    min_group_size: int = 10,
    balanced_per_group: int = 10,
    balanced_repeats: int = 100,
    within: Mapping[str, Any] | None = None,
    within_factor: str | None = None,
    two_way: Sequence[str] | None = ("backbone", "encoder"),
    top_k: int = 5,
    enrichment_top: int = 100,
    enrichment_source: Any = "sweep",
    attribution_column: str = "agent",
    representativeness_dimension: str = "encoder",
    seed: int = 0,
) -> dict[str, Any]:
    """Every analysis of this module under its own key; status and reason are the main ANOVA's.

    `metric` and `groups` must be columns (a TableError otherwise). A later part whose own
    columns are missing (test_ap, source, agent, ...) is insufficient_data with the
    TableError's message, so one absent column does not sink the report. `within` defaults
    to {groups[0]: None} (its commonest value); `within_factor` defaults to the first group
    column not held fixed. `two_way=None` leaves the two-way ANOVA out.
    """
    groups = _columns(groups, "groups")
    if len(table):
        table.require([metric, *groups], "variance")
    fixed = dict(within) if within is not None else {groups[0]: None}
    factor = within_factor or next((column for column in groups if column not in fixed), None)
    anova = anova_by_groups(table, metric=metric, groups=groups, min_group_size=min_group_size)
    parts: dict[str, Any] = {
        "anova": anova,
        "balanced_anova": _optional(
            balanced_anova,
            table,
            metric=metric,
            groups=groups,
            per_group=balanced_per_group,
            repeats=balanced_repeats,
            seed=seed,
        ),
        "within_anova": insufficient(f"no group column besides {', '.join(fixed)} to compare")
        if factor is None
        else _optional(
            within_anova,
            table,
            metric=metric,
            fixed=fixed,
            factor=factor,
            min_group_size=min_group_size,
        ),
    }
    if two_way is not None:
        parts["two_way_anova"] = _optional(two_way_anova, table, metric=metric, factors=two_way)
    parts.update(
        val_test_agreement=_optional(val_test_agreement, table, val=metric),
        top_configs=_optional(top_configs, table, metric=metric, k=top_k),
        best_per_group=_optional(best_per_group, table, metric=metric, groups=groups),
        enrichment=_optional(
            enrichment, table, metric=metric, top=enrichment_top, value=enrichment_source
        ),
        representativeness=_optional(
            representativeness,
            table,
            dimension=representativeness_dimension,
            column=attribution_column,
        ),
    )
    head = ok() if is_ok(anova) else insufficient(anova["reason"])
    counts = table.counts(metric) if len(table) else _zero_counts()
    return {**head, "metric": metric, "factors": list(groups), "counts": counts, **parts}


# --- helpers -------------------------------------------------------------------------------


def _optional(analysis: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        return analysis(*args, **kwargs)
    except TableError as exc:
        return insufficient(str(exc))


def _run(row: pd.Series, metric: str, columns: Sequence[str]) -> dict[str, Any]:
    run = {"id": _plain(row["id"]), metric: _plain(row[metric])}
    for column in (*RUN_COLUMNS, *columns):
        if column in row.index and column not in run:
            run[column] = _plain(row[column])
    return run
