"""The ANOVAs: checked against scipy, statsmodels and closed forms, never themselves."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.formula.api import ols
from statsmodels.stats.anova import anova_lm

from expsearch.analysis import anova
from expsearch.analysis.result import jsonable
from expsearch.analysis.table import experiment_table

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def table_of(rows):
    return experiment_table(pd.DataFrame(rows), source="test")


def runs(sizes, *, means=None, sd=0.05, seed=0, start=0):
    """Finished runs per (backbone, encoder) in dict order, config as a nested dict."""
    rng = np.random.default_rng(seed)
    rows = []
    for cell, n in sizes.items():
        mean = 0.5 if means is None else means[cell]
        for _ in range(n):
            i = start + len(rows)
            val = mean + sd * rng.standard_normal()
            rows.append(
                {
                    "id": f"e{i:05d}",
                    "status": "ok",
                    "val_ap": val,
                    "test_ap": val + 0.01 * rng.standard_normal(),
                    "source": "sweep" if i % 3 else "agent",
                    "agent": "planner" if i % 3 == 0 else None,
                    "finished": (T0 + timedelta(minutes=i)).isoformat(),
                    "config": {"backbone": cell[0], "encoder": cell[1], "pooling": "mean"},
                }
            )
    return rows


def grid(backbones, encoders, n):
    return {(b, e): n for b in backbones for e in encoders}


def spaced_means(cells, step=0.05):
    return {cell: 0.3 + step * i for i, cell in enumerate(cells)}


def by_group(frame, columns, metric="val_ap"):
    return [g[metric].to_numpy() for _, g in frame.groupby(list(columns))]


# --- one-way ANOVA -----------------------------------------------------------------------


def test_one_way_matches_scipy_and_statsmodels_on_unequal_groups():
    rng = np.random.default_rng(1)
    sizes, shifts = [5, 9, 14, 22], [0.0, 0.3, -0.2, 0.5]
    values = np.concatenate(
        [s + rng.standard_normal(n) for n, s in zip(sizes, shifts, strict=True)]
    )
    labels = np.repeat(["a", "b", "c", "d"], sizes)
    order = rng.permutation(len(values))  # labels need not be contiguous
    values, labels = values[order], labels[order]

    result = anova.one_way_anova(values, labels)

    reference = stats.f_oneway(*[values[labels == g] for g in "abcd"])
    lm = anova_lm(ols("y ~ C(g)", pd.DataFrame({"y": values, "g": labels})).fit())
    assert result["status"] == "ok"
    assert result["F"] == pytest.approx(reference.statistic, rel=1e-10)
    assert result["p"] == pytest.approx(reference.pvalue, rel=1e-8)
    assert result["F"] == pytest.approx(lm.loc["C(g)", "F"], rel=1e-10)
    assert result["ss_between"] == pytest.approx(lm.loc["C(g)", "sum_sq"], rel=1e-10)
    assert result["ss_within"] == pytest.approx(lm.loc["Residual", "sum_sq"], rel=1e-10)
    assert (result["df_between"], result["df_within"]) == (3, sum(sizes) - 4)
    assert (result["df_between"], result["df_within"]) == (
        lm.loc["C(g)", "df"],
        lm.loc["Residual", "df"],
    )
    ss_total = np.sum((values - values.mean()) ** 2)
    assert result["eta_squared"] == pytest.approx(lm.loc["C(g)", "sum_sq"] / ss_total, rel=1e-10)
    assert (result["n"], result["n_groups"]) == (50, 4)


def eta_from_f(f_value, n, k):
    df_b, df_w = k - 1, n - k
    return f_value * df_b / (f_value * df_b + df_w)


def test_eta_squared_from_f_recovers_the_papers_anchors():
    # 838 runs in 12 groups: df 11 / 826. eta^2 = 0.9463, which the paper states as 0.94
    # (truncated: rounded it would read 0.95).
    first = eta_from_f(1324.3, 838, 12)
    assert math.floor(first * 100) / 100 == 0.94
    assert first == pytest.approx(0.9463, abs=1e-4)
    assert round(eta_from_f(449.3, 1299, 12), 2) == 0.79


def test_eta_squared_f_relation_holds_for_anova_output_with_the_papers_shape():
    # 12 backbone x encoder groups, 838 runs, unequal sizes, all >= 10.
    cells = [(b, e) for b in ("b1", "b2", "b3") for e in ("e1", "e2", "e3", "e4")]
    counts = [150, 120, 100, 90, 80, 70, 60, 50, 40, 38, 25, 15]
    sizes = dict(zip(cells, counts, strict=True))
    table = table_of(runs(sizes, means=spaced_means(cells), sd=0.03))

    result = anova.anova_by_groups(table, min_group_size=10)

    assert result["status"] == "ok"
    assert (result["n"], result["n_groups"]) == (838, 12)
    assert (result["df_between"], result["df_within"]) == (11, 826)
    assert result["eta_squared"] == pytest.approx(eta_from_f(result["F"], 838, 12), rel=1e-10)
    assert result["F"] == pytest.approx(
        stats.f_oneway(*by_group(table.frame, ("backbone", "encoder"))).statistic, rel=1e-10
    )


def test_eta_squared_f_relation_on_random_data():
    rng = np.random.default_rng(7)
    for _ in range(5):
        k = int(rng.integers(2, 9))
        labels = rng.integers(0, k, size=int(rng.integers(3 * k, 200)))
        labels[:k] = np.arange(k)  # every group present
        values = rng.standard_normal(len(labels)) + 0.3 * labels
        result = anova.one_way_anova(values, labels)
        assert result["eta_squared"] == pytest.approx(
            eta_from_f(result["F"], len(values), k), rel=1e-10
        )


@pytest.mark.parametrize(
    ("values", "labels", "reason"),
    [
        ([1.0, 2.0, 3.0], ["a", "a", "a"], "two groups"),
        ([1.0, 2.0], ["a", "b"], "degrees of freedom"),
        ([0.1, 0.1, 0.7, 0.7], ["a", "a", "b", "b"], "zero within-group variance"),
        ([0.1, float("nan"), 0.7, 0.8], ["a", "a", "b", "b"], "not finite"),
    ],
)
def test_one_way_degenerate_input_is_insufficient(values, labels, reason):
    result = anova.one_way_anova(values, labels)
    assert result["status"] == "insufficient_data"
    assert reason in result["reason"]
    jsonable(result)


def test_one_way_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="3 values but 2 labels"):
        anova.one_way_anova([1.0, 2.0, 3.0], ["a", "b"])


# --- ANOVA by groups ---------------------------------------------------------------------


def test_anova_by_groups_drops_small_groups_and_bad_rows_and_says_so():
    sizes = {("b1", "e1"): 13, ("b1", "e2"): 15, ("b2", "e1"): 11, ("b2", "e2"): 4}
    cells = list(sizes)
    rows = runs(sizes, means=spaced_means(cells, 0.1))
    rows[0]["status"], rows[0]["val_ap"] = "failed", None  # a failed run
    rows[1]["val_ap"] = float("nan")  # finished but no value
    rows[2]["config"] = {"encoder": "e1"}  # no backbone
    table = table_of(rows)

    result = anova.anova_by_groups(table, min_group_size=10)

    assert result["status"] == "ok"
    assert result["counts"] == {
        "rows": 43,
        "finished": 41,
        "failed": 1,
        "missing_value": 1,
        "missing_group": 1,
    }
    assert (result["dropped_groups"], result["dropped_rows"]) == (1, 4)
    good = pd.DataFrame(rows[3:])
    good = good.assign(**pd.DataFrame(list(good["config"])))
    kept = [good.loc[(good.backbone == b) & (good.encoder == e), "val_ap"] for b, e in cells[:3]]
    reference = stats.f_oneway(*kept)
    assert result["F"] == pytest.approx(reference.statistic, rel=1e-10)
    assert result["n"] == 13 - 3 + 15 + 11
    # The table lists every group, small ones too, best mean first.
    listed = result["groups"]
    assert [(g["backbone"], g["encoder"]) for g in listed] == cells[::-1]
    means = [g["mean"] for g in listed]
    assert means == sorted(means, reverse=True)
    small = listed[0]
    values = good.loc[(good.backbone == "b2") & (good.encoder == "e2"), "val_ap"].to_numpy()
    assert small["n"] == 4
    assert small["mean"] == pytest.approx(values.mean())
    assert small["sd"] == pytest.approx(values.std(ddof=1))
    assert small["best"] == pytest.approx(values.max())
    json.dumps(jsonable(result))


# --- balanced subsampling ----------------------------------------------------------------


def test_subsample_draws_exactly_per_group_distinct_runs_from_each_group():
    groups = [1000.0 * g + np.arange(n) for g, n in enumerate([10, 25, 300])]
    draws = anova._subsample(groups, per_group=7, repeats=40, seed=3)
    assert draws.shape == (40, 3, 7)
    for g, values in enumerate(groups):
        for repeat in draws[:, g, :]:
            assert len(set(repeat)) == 7  # without replacement
            assert set(repeat) <= set(values)
    # Over repeats the big group is not always the same subset.
    assert len({tuple(sorted(r)) for r in draws[:, 2, :]}) > 30


def test_balanced_anova_is_seed_reproducible_and_matches_scipy_per_repeat():
    cells = [("b1", "e1"), ("b1", "e2"), ("b2", "e1"), ("b2", "e2")]
    sizes = dict(zip(cells, [40, 25, 12, 6], strict=True))
    table = table_of(runs(sizes, means=spaced_means(cells, 0.02)))

    result = anova.balanced_anova(table, per_group=10, repeats=50, seed=5)

    assert result == anova.balanced_anova(table, per_group=10, repeats=50, seed=5)
    assert result["F"] != anova.balanced_anova(table, per_group=10, repeats=50, seed=6)["F"]
    assert result["status"] == "ok"
    assert (result["n_groups"], result["n"]) == (3, 30)
    assert (result["df_between"], result["df_within"]) == (2, 27)
    assert (result["dropped_groups"], result["dropped_rows"]) == (1, 6)
    assert [g["n_available"] for g in result["groups"]] == [40, 25, 12]
    # The vectorised F equals scipy's on the same draws (groups in first-seen order).
    frame = table.frame
    groups = [
        frame.loc[(frame.backbone == b) & (frame.encoder == e), "val_ap"].to_numpy()
        for b, e in cells[:3]
    ]
    draws = anova._subsample(groups, 10, 50, 5)
    f_values = [stats.f_oneway(*draw).statistic for draw in draws]
    etas = [eta_from_f(f, 30, 3) for f in f_values]
    assert result["F"]["median"] == pytest.approx(np.median(f_values), rel=1e-10)
    assert result["F"]["low"] == pytest.approx(np.percentile(f_values, 2.5), rel=1e-10)
    assert result["F"]["high"] == pytest.approx(np.percentile(f_values, 97.5), rel=1e-10)
    assert result["eta_squared"]["median"] == pytest.approx(np.median(etas), rel=1e-10)
    assert result["p"]["median"] == pytest.approx(
        np.median([stats.f.sf(f, 2, 27) for f in f_values]), rel=1e-8
    )


def test_balanced_anova_with_whole_groups_is_the_plain_anova():
    cells = [("b1", "e1"), ("b2", "e1"), ("b3", "e1")]
    table = table_of(runs(grid(["b1", "b2", "b3"], ["e1"], 8), means=spaced_means(cells)))
    result = anova.balanced_anova(table, per_group=8, repeats=5)
    reference = stats.f_oneway(*by_group(table.frame, ("backbone",)))
    for key in ("low", "median", "high"):
        assert result["F"][key] == pytest.approx(reference.statistic, rel=1e-10)


def test_balanced_anova_on_ten_thousand_rows_keeps_every_group():
    rng = np.random.default_rng(0)
    n = 10_000
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "status": "ok",
            "val_ap": rng.random(n),
            "backbone": rng.choice(["b1", "b2", "b3"], n),
            "encoder": rng.choice(["e1", "e2", "e3", "e4"], n),
        }
    )
    table = experiment_table(frame, source="test")
    result = anova.balanced_anova(table, per_group=10, repeats=100)  # (timed by bench_analysis.py)
    assert (result["status"], result["n_groups"]) == ("ok", 12)


# --- within one backbone -----------------------------------------------------------------


def test_within_anova_picks_the_most_frequent_backbone():
    sizes = {**grid(["b1"], ["e1", "e2", "e3"], 10), **grid(["b2"], ["e1", "e2", "e3"], 14)}
    table = table_of(runs(sizes, means=spaced_means(list(sizes), 0.03)))

    result = anova.within_anova(table, fixed={"backbone": None}, factor="encoder")

    assert result["status"] == "ok"
    assert result["fixed"] == {"backbone": "b2"}
    assert "42 runs" in result["chosen"]["backbone"]
    frame = table.frame[table.frame.backbone == "b2"]
    reference = stats.f_oneway(*by_group(frame, ("encoder",)))
    assert result["F"] == pytest.approx(reference.statistic, rel=1e-10)
    assert result["counts"]["rows"] == 42

    chosen = anova.within_anova(table, fixed={"backbone": "b1"}, factor="encoder")
    frame = table.frame[table.frame.backbone == "b1"]
    assert chosen["F"] == pytest.approx(
        stats.f_oneway(*by_group(frame, ("encoder",))).statistic, rel=1e-10
    )
    absent = anova.within_anova(table, fixed={"backbone": "b9"})
    assert absent["status"] == "insufficient_data"
    assert "backbone=b9" in absent["reason"]


# --- two-way ANOVA -----------------------------------------------------------------------


def two_way_frame(sizes, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for (a, b), n in sizes.items():
        mean = 0.1 * int(a[1:]) + 0.05 * int(b[1:]) + 0.04 * (a == "a1" and b == "b2")
        rows += [{"a": a, "b": b, "y": mean + 0.05 * rng.standard_normal()} for _ in range(n)]
    frame = pd.DataFrame(rows)
    table = experiment_table(
        frame.rename(columns={"a": "backbone", "b": "encoder", "y": "val_ap"}).assign(
            id=np.arange(len(frame)), status="ok"
        ),
        source="test",
    )
    return frame, table


def test_two_way_on_a_balanced_design_matches_closed_form_and_statsmodels():
    frame, table = two_way_frame(grid(["a1", "a2", "a3"], ["b1", "b2"], 6))

    result = anova.two_way_anova(table)

    cell = frame.groupby(["a", "b"])["y"].transform("mean")
    a_mean = frame.groupby("a")["y"].transform("mean")
    b_mean = frame.groupby("b")["y"].transform("mean")
    grand = frame["y"].mean()
    closed = {
        "backbone": np.sum((a_mean - grand) ** 2),
        "encoder": np.sum((b_mean - grand) ** 2),
        "backbone:encoder": np.sum((cell - a_mean - b_mean + grand) ** 2),
        "residual": np.sum((frame["y"] - cell) ** 2),
    }
    total = np.sum((frame["y"] - grand) ** 2)
    lm = anova_lm(ols("y ~ C(a) * C(b)", frame).fit(), typ=2)
    names = {"backbone": "C(a)", "encoder": "C(b)", "backbone:encoder": "C(a):C(b)"}
    names["residual"] = "Residual"
    assert result["status"] == "ok"
    for term, ss in closed.items():
        got = result["terms"][term]
        assert got["ss"] == pytest.approx(ss, rel=1e-8)
        assert got["ss"] == pytest.approx(lm.loc[names[term], "sum_sq"], rel=1e-8)
        assert got["df"] == lm.loc[names[term], "df"]
        assert got["share"] == pytest.approx(ss / total, rel=1e-8)
        if term != "residual":
            assert got["F"] == pytest.approx(lm.loc[names[term], "F"], rel=1e-8)
            assert got["p"] == pytest.approx(lm.loc[names[term], "PR(>F)"], rel=1e-6, abs=1e-300)
    assert result["share_sum"] == pytest.approx(1.0, rel=1e-10)  # balanced: they add up
    assert result["ss_total"] == pytest.approx(total, rel=1e-10)


def test_two_way_on_an_unbalanced_complete_design_matches_anova_lm_typ2():
    sizes = dict(zip(grid(["a1", "a2", "a3"], ["b1", "b2"], 0), [4, 9, 7, 3, 12, 5], strict=True))
    frame, table = two_way_frame(sizes, seed=2)
    result = anova.two_way_anova(table)
    lm = anova_lm(ols("y ~ C(a) * C(b)", frame).fit(), typ=2)
    total = np.sum((frame["y"] - frame["y"].mean()) ** 2)
    for term, name in [
        ("backbone", "C(a)"),
        ("encoder", "C(b)"),
        ("backbone:encoder", "C(a):C(b)"),
    ]:
        assert result["terms"][term]["ss"] == pytest.approx(lm.loc[name, "sum_sq"], rel=1e-8)
        assert result["terms"][term]["F"] == pytest.approx(lm.loc[name, "F"], rel=1e-8)
        assert result["terms"][term]["df"] == lm.loc[name, "df"]
        assert result["terms"][term]["share"] == pytest.approx(lm.loc[name, "sum_sq"] / total)
    assert result["share_sum"] != pytest.approx(1.0, abs=1e-6)  # unbalanced: typ-2 need not add up


def test_two_way_with_an_empty_cell_uses_the_rank_not_the_nominal_df():
    sizes = grid(["a1", "a2", "a3"], ["b1", "b2", "b3"], 5)
    sizes[("a3", "b3")] = 2  # below min_group_size: the cell is left empty
    frame, table = two_way_frame(sizes, seed=4)
    result = anova.two_way_anova(table, min_group_size=3)
    frame = frame[~((frame.a == "a3") & (frame.b == "b3"))].reset_index(drop=True)
    assert (result["empty_cells"], result["dropped_rows"], result["n"]) == (1, 2, 40)
    # 8 cells: 8 - 1 parameters beyond the mean, 2 + 2 of them main effects.
    assert result["terms"]["backbone:encoder"]["df"] == 3
    assert result["terms"]["residual"]["df"] == 40 - 8
    cell = frame.groupby(["a", "b"])["y"].transform("mean")
    assert result["terms"]["residual"]["ss"] == pytest.approx(np.sum((frame["y"] - cell) ** 2))
    # SS(a | b) from two least-squares fits with indicator columns.
    dummies_a = pd.get_dummies(frame["a"], drop_first=True, dtype=float)
    dummies_b = pd.get_dummies(frame["b"], dtype=float)

    def rss(design):
        beta = np.linalg.lstsq(design, frame["y"], rcond=None)[0]
        return np.sum((frame["y"] - design @ beta) ** 2)

    ss_a = rss(dummies_b.to_numpy()) - rss(np.hstack([dummies_b, dummies_a]))
    assert result["terms"]["backbone"]["ss"] == pytest.approx(ss_a, rel=1e-8)


@pytest.mark.parametrize(
    ("sizes", "reason"),
    [
        (grid(["a1"], ["b1", "b2"], 5), "fewer than two levels"),
        (grid(["a1", "a2"], ["b1", "b2"], 1), "no residual degrees of freedom"),
    ],
)
def test_two_way_degenerate_designs_are_insufficient(sizes, reason):
    _, table = two_way_frame(sizes)
    result = anova.two_way_anova(table)
    assert result["status"] == "insufficient_data"
    assert reason in result["reason"]
    jsonable(result)
