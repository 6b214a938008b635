"""Figures 2-5: drawn from the analyses' own series, missing data said in the
panel, missing files named, and the same inputs giving the same bytes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from expsearch.cli import main
from expsearch.paper.figures import (
    MIN_JSD_RUNS,
    convergence_figure,
    draw_figures,
    dynamics_figure,
    figure_files,
    heatmap_figure,
    save,
    sources_in,
)
from expsearch.yamlio import dump_yaml, load_yaml_file

from .conftest import ROOT


def test_saved_figures_are_pdf_and_png_with_the_same_bytes_twice(planted_analysis, tmp_path):
    first = save(draw_figures(sources_in(planted_analysis)), figure_files(tmp_path / "a"))
    second = save(draw_figures(sources_in(planted_analysis)), figure_files(tmp_path / "b"))
    assert [p.name for p in first] == [p.name for p in second]
    assert {p.stem for p in first} == {"convergence", "dynamics", "trajectory", "heatmap"}
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
        head = a.read_bytes()[:8]
        assert head.startswith(b"%PDF") if a.suffix == ".pdf" else head == b"\x89PNG\r\n\x1a\n"
    assert b"CreationDate" not in (tmp_path / "a" / "figures" / "convergence.pdf").read_bytes()


def test_the_convergence_figure_draws_the_analysis_curves(planted_analysis):
    curve = pd.read_csv(planted_analysis / "convergence_curve.csv")
    baselines = pd.read_csv(planted_analysis / "baselines_curve.csv")
    result = json.loads((planted_analysis / "convergence.json").read_text())
    figure = convergence_figure(sources_in(planted_analysis))
    full = figure.axes[0]
    lines = {line.get_label(): line for line in full.get_lines()}
    search = lines["search: best so far"]
    np.testing.assert_allclose(search.get_ydata(), curve[curve["part"] == "full"]["best"])
    fit = result["full"]["bounded"]
    assert f"c = {fit['c']:.2f}, R² = {fit['r2']:.2f}" in "".join(lines)
    rand_pool = baselines[baselines["policy"] == "rand_pool"]["best"]
    np.testing.assert_allclose(lines["random order of the pool"].get_ydata(), rand_pool)
    events = result["full"]["events"]
    dashed = [line for line in full.get_lines() if line.get_label().startswith("_child")]
    assert len(dashed) >= len(events)


def test_a_panel_without_data_says_why(planted_analysis, tmp_path):
    directory = tmp_path / "analysis"
    shutil.copytree(planted_analysis, directory)
    result = json.loads((directory / "convergence.json").read_text())
    result["subset"] = {"status": "insufficient_data", "reason": "4 points, fewer than 5"}
    (directory / "convergence.json").write_text(json.dumps(result))
    figure = convergence_figure(sources_in(directory))
    texts = [t.get_text() for t in figure.axes[1].texts]
    assert texts == ["insufficient data: 4 points, fewer than 5"]
    assert not figure.axes[1].get_lines()


def test_the_heatmap_keeps_cells_with_enough_runs(planted_analysis):
    groups = pd.read_csv(planted_analysis / "variance_groups.csv")
    min_runs = int(groups["n"].median())
    figure = heatmap_figure(sources_in(planted_analysis), min_runs=min_runs)
    labels = [t.get_text() for t in figure.axes[0].texts]
    kept = groups[groups["n"] >= min_runs]
    assert sorted(labels) == sorted(
        f"{m:.3f}\nn={n}" for m, n in zip(kept["mean"], kept["n"], strict=True)
    )
    empty = heatmap_figure(sources_in(planted_analysis), min_runs=10**6)
    assert "no backbone x encoder cell" in empty.axes[0].texts[0].get_text()


def test_the_cli_needs_the_csv_tables_and_writes_nothing_without_them(
    planted_analysis, tmp_path, capsys
):
    directory = tmp_path / "analysis"
    shutil.copytree(planted_analysis, directory)
    (directory / "dynamics_series.csv").unlink()
    out = tmp_path / "paper"
    params = str(ROOT / "params.yaml")
    assert main(["paper", "--params", params, "--analysis", str(directory), "--out", str(out)]) == 2
    assert "dynamics_series.csv: missing" in capsys.readouterr().err
    assert not out.exists()
    good = ["paper", "--params", params, "--analysis", str(planted_analysis), "--out", str(out)]
    assert main(good) == 0
    assert (out / "figures" / "heatmap.pdf").exists() and (out / "values.tex").exists()
    # The heatmap threshold comes from params unless --min-runs is given.
    groups = pd.read_csv(planted_analysis / "variance_groups.csv")
    few = tmp_path / "few.yaml"
    params_doc = load_yaml_file(ROOT / "params.yaml")
    params_doc["paper"]["heatmap_min_runs"] = int(groups["n"].max()) + 1
    few.write_text(dump_yaml(params_doc))
    assert main(["paper", "--params", str(few), "--analysis", str(planted_analysis),
                 "--out", str(tmp_path / "none")]) == 0  # fmt: skip
    given = ["paper", "--params", str(few), "--analysis", str(planted_analysis),
             "--out", str(tmp_path / "some"), "--min-runs", "1"]  # fmt: skip
    assert main(given) == 0
    none = (tmp_path / "none" / "figures" / "heatmap.png").read_bytes()
    assert none != (tmp_path / "some" / "figures" / "heatmap.png").read_bytes()


@pytest.mark.parametrize("name", ["convergence.json", "variance_groups.csv"])
def test_a_missing_result_is_named(planted_analysis, tmp_path, name):
    directory = tmp_path / "analysis"
    shutil.copytree(planted_analysis, directory)
    (directory / name).unlink()
    with pytest.raises(FileNotFoundError, match=name):
        draw_figures(sources_in(directory))


def test_the_jsd_panel_draws_only_windows_where_both_agents_ran_enough(planted_analysis, tmp_path):
    folder = tmp_path / "analysis"
    shutil.copytree(planted_analysis, folder)
    few, enough = MIN_JSD_RUNS - 1, MIN_JSD_RUNS
    rows = [("rules", "tpe", t, enough, enough, 0.2) for t in (10, 20, 30)]
    rows += [("rules", "tpe", 40, few, enough, 0.69), ("rules", "random", 50, 1, 1, 0.69)]
    pd.DataFrame(rows, columns=["agent_a", "agent_b", "t_end", "n_a", "n_b", "jsd_all"]).assign(
        jsd_arch=lambda d: d["jsd_all"] / 2
    ).to_csv(folder / "dynamics_jsd.csv", index=False)
    right = dynamics_figure(sources_in(folder)).axes[1]
    drawn = {line.get_label(): list(line.get_xdata()) for line in right.get_lines()}
    assert drawn == {"rules vs tpe": [10, 20, 30], "rules vs tpe (arch)": [10, 20, 30]}
    pd.DataFrame(rows[3:], columns=["agent_a", "agent_b", "t_end", "n_a", "n_b", "jsd_all"]).assign(
        jsd_arch=0.1
    ).to_csv(folder / "dynamics_jsd.csv", index=False)
    right = dynamics_figure(sources_in(folder)).axes[1]
    assert not right.get_lines() and f"{MIN_JSD_RUNS}+ experiments" in right.texts[0].get_text()
