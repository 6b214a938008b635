"""The variance report, enrichment, representativeness, best runs: checked against scipy."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.stats.contingency import association

from expsearch.analysis import anova
from expsearch.analysis import variance as v
from expsearch.analysis.result import jsonable
from expsearch.analysis.table import TableError, experiment_table

from .test_analysis_anova import grid, runs, spaced_means, table_of

# --- enrichment and representativeness ---------------------------------------------------


def test_enrichment_p_value_is_fishers_one_sided():
    rng = np.random.default_rng(3)
    n = 200
    source = np.where(rng.random(n) < 0.4, "sweep", "agent")
    val = rng.random(n) + 0.3 * (source == "sweep")
    table = experiment_table(
        pd.DataFrame({"id": np.arange(n), "status": "ok", "val_ap": val, "source": source}),
        source="test",
    )

    result = v.enrichment(table, top=30)

    top = np.argsort(-val)[:30]
    in_top, in_all = int((source[top] == "sweep").sum()), int((source == "sweep").sum())
    contingency = [[in_top, 30 - in_top], [in_all - in_top, n - in_all - (30 - in_top)]]
    fisher = stats.fisher_exact(contingency, alternative="greater")
    assert result["status"] == "ok"
    assert (result["in_top"], result["in_all"], result["n"]) == (in_top, in_all, n)
    assert result["share_top"] == pytest.approx(in_top / 30)
    assert result["base_rate"] == pytest.approx(in_all / n)
    assert result["ratio"] == pytest.approx((in_top / 30) / (in_all / n))
    assert result["p"] == pytest.approx(fisher.pvalue, rel=1e-8)
    assert result["ratio"] > 1 and result["p"] < 0.05  # planted: sweep runs score higher

    assert "top 200" in v.enrichment(table, top=200)["reason"]
    assert v.enrichment(table, value="grid")["status"] == "insufficient_data"


def attribution_table(rng, n=300):
    encoder = rng.choice(["e1", "e2", "e3"], n)
    agent = np.where(rng.random(n) < np.where(encoder == "e1", 0.6, 0.3), "planner", None).astype(
        object
    )
    agent[rng.random(n) < 0.1] = "unknown"
    agent[:3] = [" Unknown ", "", None]
    frame = pd.DataFrame(
        {"id": np.arange(n), "status": "ok", "val_ap": rng.random(n), "encoder": encoder}
    )
    return frame.assign(agent=agent)


def test_representativeness_matches_chi2_contingency_and_cramers_v():
    frame = attribution_table(np.random.default_rng(11))
    frame.loc[5, "status"] = "failed"  # counted: attribution is about proposals
    result = v.representativeness(experiment_table(frame, source="test"))

    attributed = frame["agent"].eq("planner").to_numpy()
    observed = pd.crosstab(attributed, frame["encoder"]).to_numpy()
    chi2, p, dof, _ = stats.chi2_contingency(observed, correction=False)
    assert result["status"] == "ok"
    assert result["attributed"] == attributed.sum()
    assert result["chi2"] == pytest.approx(chi2, rel=1e-10)
    assert result["p"] == pytest.approx(p, rel=1e-8)
    assert result["dof"] == dof == 2
    assert result["cramers_v"] == pytest.approx(association(observed, method="cramer"), rel=1e-10)
    by_value = {row["encoder"]: row for row in result["table"]}
    for value in ("e1", "e2", "e3"):
        assert by_value[value]["attributed"] == ((frame.encoder == value) & attributed).sum()
        assert by_value[value]["other"] == ((frame.encoder == value) & ~attributed).sum()


def test_representativeness_with_an_explicit_list_and_degenerate_tables():
    frame = attribution_table(np.random.default_rng(12)).assign(
        agent=lambda f: f["agent"].fillna("human")
    )
    listed = v.representativeness(experiment_table(frame, source="t"), attributed=["planner"])
    default = v.representativeness(experiment_table(frame, source="t"))
    assert listed["attributed"] == (frame.agent == "planner").sum()
    assert default["attributed"] == (frame.agent.isin(["planner", "human"])).sum()

    everyone = frame.assign(agent="planner")
    assert "every run" in v.representativeness(experiment_table(everyone, source="t"))["reason"]
    nobody = frame.assign(agent=None)
    assert "no run" in v.representativeness(experiment_table(nobody, source="t"))["reason"]
    one = frame.assign(encoder="e1")
    assert "one value" in v.representativeness(experiment_table(one, source="t"))["reason"]


# --- val/test agreement and the best runs ------------------------------------------------


def agreement_table(val, test):
    n = len(val)
    frame = pd.DataFrame({"id": np.arange(n), "status": "ok", "val_ap": val, "test_ap": test})
    return experiment_table(frame, source="test")


def test_val_test_agreement_is_spearman():
    x = np.linspace(0.1, 0.9, 12)
    assert v.val_test_agreement(agreement_table(x, x**3))["rho"] == pytest.approx(1.0)
    assert v.val_test_agreement(agreement_table(x, np.exp(-x)))["rho"] == pytest.approx(-1.0)
    rng = np.random.default_rng(0)
    a, b = rng.random(30), rng.random(30)
    b[4] = np.nan
    result = v.val_test_agreement(agreement_table(a, b))
    reference = stats.spearmanr(np.delete(a, 4), np.delete(b, 4))
    assert result["rho"] == pytest.approx(reference.statistic)
    assert result["p"] == pytest.approx(reference.pvalue)
    assert (result["n"], result["missing_test"]) == (29, 1)
    assert "needs 3" in v.val_test_agreement(agreement_table(x[:2], x[:2]))["reason"]
    flat = v.val_test_agreement(agreement_table(x, np.full(12, 0.5)))
    assert "test_ap is constant" in flat["reason"]
    jsonable(flat)


def test_top_configs_and_best_per_group():
    sizes = grid(["b1", "b2"], ["e1", "e2"], 6)
    rows = runs(sizes, means=spaced_means(list(sizes), 0.01), sd=0.1, seed=9)
    rows[3]["test_ap"] = float("nan")
    rows[7]["status"] = "failed"
    rows[7]["val_ap"] = 5.0  # a failed run never tops the list
    table = table_of(rows)

    top = v.top_configs(table, k=5)

    finished = [r for r in rows if r["status"] == "ok"]
    expected = sorted(finished, key=lambda r: -r["val_ap"])[:5]
    assert [c["id"] for c in top["configs"]] == [r["id"] for r in expected]
    assert [c["rank"] for c in top["configs"]] == [1, 2, 3, 4, 5]
    first = top["configs"][0]
    assert set(first) == {
        "rank",
        "id",
        "val_ap",
        "test_ap",
        "source",
        "agent",
        "backbone",
        "encoder",
        "pooling",
    }
    assert first["val_ap"] == expected[0]["val_ap"]
    json.dumps(jsonable(v.top_configs(table, k=24)))  # NaN test_ap and None agent survive

    best = v.best_per_group(table)
    frame = table.frame[table.frame.status == "ok"]
    winners = frame.loc[frame.groupby(["backbone", "encoder"])["val_ap"].idxmax()]
    assert {r["id"] for r in best["best"]} == set(winners["id"])
    assert [r["val_ap"] for r in best["best"]] == sorted(winners["val_ap"], reverse=True)
    assert sorted(r["n"] for r in best["best"]) == [5, 6, 6, 6]


# --- the whole report and bad input ------------------------------------------------------


def full_table():
    cells = list(grid(["b1", "b2", "b3"], ["e1", "e2"], 0))
    sizes = dict(zip(cells, [40, 30, 25, 20, 15, 12], strict=True))
    return table_of(runs(sizes, means=spaced_means(cells, 0.04), seed=21))


def test_variance_assembles_every_part():
    report = v.variance(full_table(), enrichment_top=20)
    parts = [
        "anova",
        "balanced_anova",
        "within_anova",
        "two_way_anova",
        "val_test_agreement",
        "top_configs",
        "best_per_group",
        "enrichment",
        "representativeness",
    ]
    assert report["status"] == "ok"
    assert all(report[part]["status"] == "ok" for part in parts), {
        part: report[part].get("reason") for part in parts
    }
    assert report["within_anova"]["fixed"] == {"backbone": "b1"}
    assert report["counts"]["finished"] == 142
    json.dumps(jsonable(report))
    assert "two_way_anova" not in v.variance(full_table(), two_way=None)


def test_variance_takes_the_projects_settings():
    from expsearch.analysis.settings import AnalysisSettings

    kwargs = AnalysisSettings(enrichment_top=20, within_factor="backbone").variance_kwargs()
    kwargs["within"] = {"encoder": "e2"}
    report = v.variance(full_table(), **kwargs)
    assert report["status"] == "ok"
    assert report["within_anova"]["fixed"] == {"encoder": "e2"}
    assert report["within_anova"]["factors"] == ["backbone"]
    assert report["within_anova"]["n"] == 30 + 20 + 12


def test_variance_without_optional_columns_reports_what_is_missing():
    table = full_table()
    bare = experiment_table(table.frame.drop(columns=["test_ap", "source", "agent"]), source="bare")
    report = v.variance(bare)
    assert report["anova"]["status"] == "ok"
    assert "test_ap" in report["val_test_agreement"]["reason"]
    assert "source" in report["enrichment"]["reason"]
    assert "agent" in report["representativeness"]["reason"]
    json.dumps(jsonable(report))


def bad_tables():
    one_group = runs(grid(["b1"], ["e1"], 30))
    failed = [
        {**r, "status": "failed", "val_ap": None} for r in runs(grid(["b1", "b2"], ["e1"], 12))
    ]
    small = runs(grid(["b1", "b2"], ["e1", "e2"], 5))
    nan_rows = runs(grid(["b1", "b2"], ["e1"], 16), means={("b1", "e1"): 0.3, ("b2", "e1"): 0.6})
    for r in nan_rows[::4]:
        r["val_ap"] = float("nan")
    return {
        "empty": (pd.DataFrame(columns=["id", "status", "val_ap", "config"]), "no experiments"),
        "one group": (pd.DataFrame(one_group), "1 of 1 group"),
        "all failed": (pd.DataFrame(failed), "no finished run has a finite val_ap (24 not ok"),
        "all below minimum": (pd.DataFrame(small), "0 of 4 group(s) have >= 10"),
        "NaN AP rows": (pd.DataFrame(nan_rows), None),
    }


@pytest.mark.parametrize("case", list(bad_tables()))
def test_bad_input_gives_a_reason_and_a_json_report(case):
    frame, reason = bad_tables()[case]
    table = experiment_table(frame, source="test")
    report = v.variance(table)
    json.dumps(jsonable(report))
    if reason is None:  # NaN AP rows are excluded and counted
        assert report["status"] == "ok"
        assert report["counts"]["missing_value"] == 8
        assert report["anova"]["n"] == 24
        assert report["anova"]["dropped_groups"] == 0
    else:
        assert report["status"] == "insufficient_data"
        assert reason in report["reason"]
        assert reason in report["anova"]["reason"]


def test_a_missing_column_is_a_table_error_naming_it():
    frame = pd.DataFrame(runs(grid(["b1", "b2"], ["e1"], 12)))
    frame["config"] = [{"backbone": c["backbone"]} for c in frame["config"]]
    table = experiment_table(frame, source="test")
    with pytest.raises(TableError, match=r"variance needs column.*encoder"):
        v.variance(table)
    with pytest.raises(TableError, match="encoder"):
        anova.anova_by_groups(table)
    with pytest.raises(TableError, match="focal"):
        anova.two_way_anova(table, factors=("backbone", "focal"))
