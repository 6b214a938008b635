"""Convergence analysis: bootstrap, permutation null, subsets and events of the cumulative best."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from expsearch.analysis.convergence import (
    bootstrap_fit,
    convergence,
    events,
    permutation_null,
    select_subset,
)
from expsearch.analysis.powerlaw import compare_models, fit_power_law, running_best
from expsearch.analysis.result import jsonable
from expsearch.analysis.table import ExperimentTable, TableError, experiment_table

from .test_analysis_powerlaw import noisy, power


def make_table(values, *, status=None, rounds=None, versions=None, **extra) -> ExperimentTable:
    n = len(values)
    times = pd.date_range("2024-03-01T00:00:00Z", periods=n, freq="h")
    frame = pd.DataFrame(
        {
            "id": [f"e{i:03d}" for i in range(n)],
            "status": status if status is not None else ["ok"] * n,
            "val_ap": values,
            "finished": [t.isoformat() for t in times],
            "round": rounds if rounds is not None else [i // 10 for i in range(n)],
            "code_version": versions if versions is not None else ["v1"] * n,
            **extra,
        }
    )
    return experiment_table(frame, source="test")


def test_permutation_null_r2_is_below_a_planted_power_law():
    raw = power(0.9, 0.5, 0.5, n=300)  # strictly increasing: every experiment is a record
    observed = fit_power_law(raw, a_max=1.0)
    null = permutation_null(raw, permutations=300, seed=3, a_max=1.0, observed_r2=observed["r2"])
    assert null["status"] == "ok" and null["fitted"] + null["flat"] == 300
    assert null["r2_mean"] < null["r2_p95"] < observed["r2"]
    assert null["share_at_least_observed"] == 0
    assert null["p_value"] == pytest.approx(1 / (null["fitted"] + 1))
    assert null["r2_mean"] > 0.5  # a monotone running maximum fits well by itself
    jsonable(null)


def test_bootstrap_interval_covers_the_planted_exponent():
    raw = power(0.9, 0.5, 0.5, n=300)
    boot = bootstrap_fit(raw, resamples=300, seed=6)
    assert boot["status"] == "ok" and boot["resamples"] == 300
    assert boot["c"]["p2.5"] < 0.5 < boot["c"]["p97.5"]
    assert boot["a"]["p2.5"] < 0.9 < boot["a"]["p97.5"]
    assert boot["c"]["p2.5"] < boot["c"]["p50"] < boot["c"]["p97.5"]
    assert bootstrap_fit(raw, resamples=300, seed=6) == boot  # the seed fixes the draw
    jsonable(boot)


def test_too_few_points_and_flat_curves_are_insufficient():
    for result in (
        fit_power_law([0.1, 0.2, 0.3, 0.4]),
        compare_models([0.1, 0.2, 0.3, 0.4]),
        bootstrap_fit([0.1, 0.2, 0.3, 0.4], resamples=10, seed=0),
        permutation_null([0.1, 0.2, 0.3, 0.4], permutations=10, seed=0),
        fit_power_law(np.full(30, 0.8)),  # the oracle's best-first curve
        fit_power_law(running_best([0.9, *np.linspace(0.1, 0.8, 29)]), a_max=1.0),
        compare_models(np.full(30, 0.8)),
        fit_power_law([0.1, 0.2, np.nan, 0.4, 0.5, 0.6]),
    ):
        assert result["status"] == "insufficient_data"
        assert result["reason"]
        jsonable(result)
    assert "flat" in fit_power_law(np.full(30, 0.8))["reason"]
    assert fit_power_law([0.1, 0.2, 0.3, 0.4])["n_points"] == 4


@pytest.mark.parametrize("kind", ["empty", "all failed", "four points"])
def test_convergence_without_enough_data_reports_it(kind):
    if kind == "empty":
        table = make_table([])
    elif kind == "all failed":
        table = make_table([np.nan] * 8, status=["failed"] * 8)
    else:
        table = make_table([0.1, 0.3, 0.2, 0.4])
    result = convergence(table, bootstrap=20, permutations=20, subset={"after_round": 0})
    assert result["status"] == "insufficient_data"
    for part in (result["full"], result["subset"]):
        assert part["status"] == "insufficient_data"
        for key in ("unconstrained", "bounded", "models", "bootstrap", "permutation"):
            assert part[key]["status"] == "insufficient_data"
    jsonable(result)  # never a NaN
    if kind == "all failed":
        assert result["full"]["counts"] == {
            "rows": 8,
            "finished": 0,
            "failed": 8,
            "missing_value": 0,
        }


def test_failed_and_missing_rows_are_excluded_and_counted():
    values = list(power(0.9, 0.5, 0.5, n=40))
    status = ["ok"] * 40
    values[5], status[5] = 0.99, "failed"  # a failed run's AP must not become the best
    values[9] = np.nan
    result = convergence(make_table(values, status=status), bootstrap=50, permutations=50)
    full = result["full"]
    assert full["counts"] == {"rows": 40, "finished": 38, "failed": 1, "missing_value": 1}
    assert [row["N"] for row in full["curve"]] == list(range(1, 39))
    assert "e005" not in {row["id"] for row in full["curve"]}
    assert max(row["best"] for row in full["curve"]) < 0.9
    assert full["bounded"]["n_points"] == 38
    jsonable(result)


def test_convergence_full_and_subset():
    values = np.r_[noisy(power(0.8, 0.4, 0.6, n=60), 0.01, seed=7), power(0.9, 0.3, 0.5, n=60)]
    versions = ["v1"] * 60 + ["v2"] * 60
    table = make_table(values, versions=versions, rounds=[i // 20 for i in range(120)])
    result = convergence(table, subset={"code_version": "latest"}, bootstrap=50, permutations=50)
    assert result["status"] == "ok"
    full, subset = result["full"], result["subset"]
    assert len(full["curve"]) == 120 and len(subset["curve"]) == 60
    assert subset["description"]["code_versions"] == {"v2": 60}
    row = full["curve"][10]
    assert row["best"] == pytest.approx(np.max(values[:11]))
    fit = full["bounded"]
    assert row["fit"] == pytest.approx(fit["a"] - fit["b"] * 11 ** -fit["c"])
    assert full["permutation"]["observed_r2"] == fit["r2"]
    changes = [(e["N"], e["to"]) for e in full["events"] if e["kind"] == "code_version"]
    assert changes == [(61, "v2")]
    # The subset's curve restarts at N = 1 from its own first experiment.
    assert subset["curve"][0]["value"] == pytest.approx(values[60])
    jsonable(result)


def test_completion_order_not_file_order_defines_the_curve():
    table = make_table([0.1, 0.5, 0.3, 0.6, 0.2, 0.7])
    frame = table.frame.iloc[::-1].reset_index(drop=True)  # file order reversed
    result = convergence(experiment_table(frame, source="test"), bootstrap=5, permutations=5)
    assert [row["value"] for row in result["full"]["curve"]] == [0.1, 0.5, 0.3, 0.6, 0.2, 0.7]


def subset_table() -> ExperimentTable:
    versions = ["v1"] * 4 + ["v2"] * 3 + ["v1"] + ["v3"] * 4
    return make_table(
        np.linspace(0.1, 0.6, 12), rounds=[0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3], versions=versions
    )


def ids(table) -> list[str]:
    return table.frame["id"].tolist()


def test_select_subset_by_round_time_and_version():
    table = subset_table()
    everything, description = select_subset(table)
    assert everything is table and "all rows" in description["subset"]

    by_round, description = select_subset(table, after_round=1)
    assert ids(by_round) == [f"e{i:03d}" for i in range(6, 12)]
    assert description["rows"] == 6 and description["rows_in_table"] == 12

    by_time, description = select_subset(table, after_time="2024-03-01T05:00:00Z")
    assert ids(by_time) == [f"e{i:03d}" for i in range(5, 12)]
    naive, _ = select_subset(table, after_time="2024-03-01T05:00:00")  # naive is UTC
    assert ids(naive) == ids(by_time)

    by_version, description = select_subset(table, code_version="v2")
    assert ids(by_version) == [f"e{i:03d}" for i in range(4, 12)]  # a later v1 row stays
    assert description["code_versions"] == {"v2": 3, "v3": 4, "v1": 1}

    latest, description = select_subset(table, code_version="latest")
    assert ids(latest) == [f"e{i:03d}" for i in range(8, 12)]
    assert "v1 -> v3" in description["subset"]

    both, _ = select_subset(table, after_round=1, code_version="latest")
    assert ids(both) == [f"e{i:03d}" for i in range(8, 12)]
    both, _ = select_subset(table, after_round=2, after_time="2024-03-01T10:00:00Z")
    assert ids(both) == ["e010", "e011"]
    jsonable(description)


def test_latest_with_a_single_version_is_the_whole_table():
    table = make_table(np.linspace(0.1, 0.6, 6))
    latest, description = select_subset(table, code_version="latest")
    assert len(latest) == 6 and "never changes" in description["subset"]


def test_select_subset_errors_name_the_missing_column_or_version():
    table = subset_table()
    bare = experiment_table(table.frame.drop(columns=["round", "code_version"]), source="bare")
    with pytest.raises(TableError, match="round"):
        select_subset(bare, after_round=1)
    with pytest.raises(TableError, match="code_version"):
        select_subset(bare, code_version="latest")
    with pytest.raises(TableError, match="finished"):
        select_subset(experiment_table(table.frame.drop(columns=["finished"])), after_time="2024")
    with pytest.raises(TableError, match="v9"):
        select_subset(table, code_version="v9")


def test_events_place_version_changes_and_rounds_on_the_finished_curve():
    table = make_table(
        [0.1, 0.2, np.nan, 0.3, 0.4, 0.5],
        status=["ok", "ok", "failed", "ok", "ok", "ok"],
        rounds=[0, 0, 1, 1, 2, 2],
        versions=["v1", "v1", "v2", "v2", "v2", "v3"],
    )
    found = events(table)
    versions = [e for e in found if e["kind"] == "code_version"]
    rounds = [e for e in found if e["kind"] == "round"]
    # The change to v2 happens at a failed run; the next finished run is N = 3.
    assert [(e["N"], e["from"], e["to"]) for e in versions] == [(3, "v1", "v2"), (5, "v2", "v3")]
    assert versions[0]["time"].startswith("2024-03-01T02:00:00")
    assert [(e["N"], e["round"]) for e in rounds] == [(1, 0), (3, 1), (4, 2)]
    jsonable(found)
