"""The paper's tables and values.tex: computed from real analysis results of a
planted table, every macro resolving, missing results shown as missing, LaTeX
escaped, and the same results giving the same bytes."""

from __future__ import annotations

import json
import shutil

import pytest

from expsearch.cli import main
from expsearch.paper.tables import (
    Column,
    Marked,
    Table,
    anova_rows,
    backbone_means,
    convergence_by_policy,
    cross_task,
    notation,
    top_configs,
)
from expsearch.paper.values import VALUES, lookup, paper_numbers, paper_values, values_tex

from .conftest import ROOT

PARAMS = str(ROOT / "params.yaml")


@pytest.fixture
def analysis_dir(planted_analysis):
    return planted_analysis


def results_of(analysis_dir) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in analysis_dir.glob("*.json")}


def test_every_macro_is_a_number_of_the_results(analysis_dir):
    results = results_of(analysis_dir)
    values = paper_values(results)
    for name, (source, path, digits) in VALUES.items():
        if name == "LLMCostUSD":  # billed calls come from an agent log; the planted table has none
            continue
        raw = lookup(results[source], path)
        assert raw is not None, f"\\{name}: {source} has nothing at {'.'.join(path)}"
        shown = values[name]
        if digits is None:
            assert shown.replace("{,}", "") == str(int(raw))
        else:
            assert float(shown) == pytest.approx(raw, abs=0.5 * 10**-digits)
    top = results["variance"]["top_configs"]["configs"][0]
    assert values["BestValAP"] == f"{top['val_ap']:.4f}"
    assert values["SearchAPAtFifty"] == (
        f"{results['baselines']['policies']['search']['ap_at']['50']:.4f}"
    )
    billed = paper_values({"cost": {"status": "ok", "llm_calls": {"cost_usd": 2012.5}}})
    assert billed["LLMCostUSD"] == "2012.50"
    tex = values_tex(values)
    assert tex.count(r"\newcommand") == len(values) and r"\newcommand{\AnovaEtaSq}{" in tex


def test_the_metrics_file_holds_the_quoted_numbers_as_numbers(analysis_dir):
    """values.json (DVC's metrics) says what values.tex says, as JSON numbers."""
    results = results_of(analysis_dir)
    values, numbers = paper_values(results), paper_numbers(results)
    assert numbers.keys() == values.keys()
    for name, text in values.items():
        if text == "--":
            assert numbers[name] is None, name
        else:
            assert numbers[name] == float(text.replace("{,}", "")), name
    assert isinstance(numbers["NExperiments"], int) and isinstance(numbers["AnovaF"], float)
    assert paper_numbers({"variance": {"status": "insufficient_data"}})["AnovaF"] is None


def test_insufficient_data_is_a_dash_never_a_number():
    results = {
        "variance": {"status": "insufficient_data", "counts": {"rows": 3}, "anova": {
            "status": "insufficient_data", "reason": "one group", "F": 9.9}},
        "convergence": {"status": "insufficient_data", "reason": "too few points"},
    }  # fmt: skip
    values = paper_values(results)
    assert values["NExperiments"] == "3"
    assert values["AnovaF"] == "--" and values["ConvergenceC"] == "--"
    assert values["DeviceHours"] == "--"  # no cost result at all
    table = anova_rows(results["variance"])
    assert table.rows == ()
    variance = {"status": "insufficient_data", "reason": "no finished runs"}
    assert top_configs(variance).rows == ()
    assert "no finished runs" in anova_rows(variance).markdown()


def test_tables_carry_the_results_numbers(analysis_dir):
    results = results_of(analysis_dir)
    variance, baselines = results["variance"], results["baselines"]
    top = top_configs(variance)
    configs = variance["top_configs"]["configs"]
    assert len(top.rows) == len(configs)
    assert [row[5] for row in top.rows] == [f"{c['val_ap']:.3f}" for c in configs]
    assert [row[1] for row in top.rows] == [c["backbone"] for c in configs]

    table = convergence_by_policy(baselines)
    search = next(row for row in table.rows if row[0].markdown == "the search (agents)")
    fit = baselines["policies"]["search"]["fit"]
    assert search[-2:] == (f"{fit['c']:.3f}", f"{fit['r2']:.3f}")
    shown_n = [c.markdown for c in table.columns if c.markdown.startswith("AP@")]
    assert shown_n and all(
        any(p["ap_at"].get(n[3:]) is not None for p in baselines["policies"].values())
        for n in shown_n
    )
    assert r"$\pi_{\mathrm{rand}}^{\mathrm{pool}}$ &" in table.latex()

    anova = anova_rows(variance)
    one = variance["anova"]
    assert anova.rows[0][1:] == (
        f"{one['n']:,}", f"{one['df_between']}, {one['df_within']}", f"{one['F']:.1f}",
        "<0.001" if one["p"] < 0.001 else f"{one['p']:.3f}", f"{one['eta_squared']:.2f}",
    )  # fmt: skip
    assert any("interaction" in row[0] for row in anova.rows)


def test_the_notation_table_is_the_space(space):
    table = notation(space.summary())
    assert [row[1] for row in table.rows] == list(space.dimensions)
    assert f"{space.discrete_cells:,} discrete cells" in table.caption
    focal = next(row for row in table.rows if row[1] == "focal_gamma")
    assert focal[0] == "C_loss" and "focal" in focal[4]
    assert r"$\in$" in table.latex() and "C\\_loss" in table.latex()


def test_latex_is_escaped_and_marked_cells_are_not():
    table = Table(
        "t", "50% of a_b & c", (Column("x", "$x$"), Column("y", "y", "l")),
        ((Marked("pi", r"$\pi$"), "a_b #1 {x} ~ ^ \\"),),
    )  # fmt: skip
    tex = table.latex()
    assert r"\caption{50\% of a\_b \& c}" in tex
    assert r"$\pi$ & a\_b \#1 \{x\} \textasciitilde{} \textasciicircum{} \textbackslash{} \\" in tex
    assert "| pi | a_b #1 {x} ~ ^ \\ |" in table.markdown()


def test_the_cli_writes_the_same_bytes_twice_and_names_a_missing_result(
    analysis_dir, tmp_path, capsys
):
    outs = []
    for name in ("first", "second"):
        out = tmp_path / name
        assert (
            main(["paper", "--params", PARAMS, "--analysis", str(analysis_dir), "--out", str(out)])
            == 0
        )
        outs.append({p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()})
    assert outs[0] == outs[1]
    assert {str(p) for p in outs[0]} >= {"values.tex", "values.json", "tables/anova.tex",
                                          "tables/top_configs.md", "tables/notation.md",
                                          "tables/convergence.tex"}  # fmt: skip
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "variance.json").write_text((analysis_dir / "variance.json").read_text())
    assert (
        main(
            ["paper", "--params", PARAMS, "--analysis", str(partial), "--out", str(tmp_path / "x")]
        )
        == 2
    )
    assert "baselines.json: no baselines result" in capsys.readouterr().err


def test_every_macro_the_paper_source_uses_is_generated(analysis_dir):
    """paper/main.tex quotes numbers only through values.tex."""
    import re

    from .conftest import ROOT

    used = set(re.findall(r"\\([A-Z][A-Za-z]+)", (ROOT / "paper/main.tex").read_text()))
    assert used and used <= set(paper_values(results_of(analysis_dir)))


def test_the_cross_task_table_reads_each_task_two_way_anova_and_winner(analysis_dir, tmp_path):
    import pandas as pd

    variance = json.loads((analysis_dir / "variance.json").read_text())
    groups = pd.read_csv(analysis_dir / "variance_groups.csv")
    cells = (
        groups.assign(total=groups["mean"] * groups["n"]).groupby("backbone")[["total", "n"]].sum()
    )
    expected = (cells["total"] / cells["n"]).sort_values()
    means = backbone_means(groups.to_dict("records"))
    assert {b: round(m, 12) for b, (m, _) in means.items()} == {
        b: round(m, 12) for b, m in expected.items()}  # fmt: skip
    broken = {"two_way_anova": {"status": "insufficient_data", "reason": "one backbone only"}}
    table = cross_task({"planted": (variance, groups.to_dict("records")), "tiny": (broken, [])})
    (row,) = table.rows
    terms = variance["two_way_anova"]["terms"]
    assert row[0] == "planted" and row[1] == f"{variance['two_way_anova']['n']:,}"
    assert row[2].startswith(f"{terms['backbone']['share']:.2f} (F {terms['backbone']['F']:.1f}")
    arch = sum(terms[k]["share"] for k in ("backbone", "encoder", "backbone:encoder"))
    assert row[5] == f"{arch:.2f}"
    assert row[6] == f"{expected.index[-1]} ({expected.iloc[-1]:.3f})"
    assert table.notes == ("tiny: one backbone only",)
    out = tmp_path / "paper"
    argv = ["paper", "--params", str(ROOT / "params.yaml"), "--analysis", str(analysis_dir),
            "--out", str(out), "--task", f"a={analysis_dir}", "--task", f"b={analysis_dir}"]  # fmt: skip
    assert main(argv) == 0
    assert (out / "tables/cross_task.md").read_text().count("| a |") == 1
    assert main([*argv[:-1], "b=/nowhere"]) == 2
    assert main([*argv[:-1], "b"]) == 2  # not NAME=DIR
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "variance.json").write_text("{not json")
    (bad / "variance_groups.csv").write_text("encoder,n\nx,1\n")
    before = (out / "tables/cross_task.md").read_bytes()
    assert main([*argv[:-1], f"b={bad}"]) == 2
    (bad / "variance.json").write_text(json.dumps(variance))
    assert main([*argv[:-1], f"b={bad}"]) == 2  # no backbone column
    assert (out / "tables/cross_task.md").read_bytes() == before  # nothing half-written
    # --tasks: the primary task (--analysis) and every task params.yaml declares, in order.
    tasks = tmp_path / "tasks"
    shutil.copytree(analysis_dir, tasks / "fleet")
    assert main([*argv[:-4], "--tasks", str(tasks)]) == 0
    rows = [line.split("|")[1].strip() for line in
            (out / "tables/cross_task.md").read_text().splitlines() if line.startswith("| ")]  # fmt: skip
    assert rows[-2:] == ["default", "fleet"]
    shutil.rmtree(tasks / "fleet")
    assert main([*argv[:-4], "--tasks", str(tasks)]) == 2  # a declared task without analyses
    one_factor = {**variance, "two_way_anova": {**variance["two_way_anova"], "terms": {}}}
    with pytest.raises(ValueError, match="no backbone, encoder term"):
        cross_task({"x": (one_factor, [])})
