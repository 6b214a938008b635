"""`expsearch analyze`: one family or all, JSON out, CSV tables, clear errors."""

import json

import pandas as pd
import pytest
from scipy import stats

from expsearch.analysis.planted import planted_table
from expsearch.cli import main


@pytest.fixture(scope="module")
def runs_csv(tmp_path_factory, space):
    path = tmp_path_factory.mktemp("runs") / "runs.csv"
    planted_table(space, n=300, seed=1, n_random=40).to_csv(path, index=False)
    return path


def test_variance_prints_the_anova_and_its_groups(runs_csv, capsys):
    code = main(["analyze", "variance", "--data", str(runs_csv), "--value", "val_ap",
                 "--groups", "backbone,encoder", "--min-group-size", "10"])  # fmt: skip
    assert code == 0
    anova = json.loads(capsys.readouterr().out)["anova"]
    for key in ("F", "p", "eta_squared", "df_between", "df_within", "n", "n_groups"):
        assert key in anova
    frame = pd.read_csv(runs_csv)
    frame = frame[frame["status"] == "ok"]
    configs = pd.DataFrame([json.loads(c) for c in frame["config"]], index=frame.index)
    groups = [g["val_ap"].to_numpy() for _, g in frame.join(configs).groupby(["backbone", "encoder"])
              if len(g) >= 10]  # fmt: skip
    reference = stats.f_oneway(*groups)
    assert anova["F"] == pytest.approx(reference.statistic, rel=1e-9)
    assert anova["n_groups"] == len(groups) == len([g for g in anova["groups"] if g["n"] >= 10])


def test_all_writes_json_and_tables(runs_csv, tmp_path):
    out, tables = tmp_path / "all.json", tmp_path / "tables"
    code = main(["analyze", "all", "--data", str(runs_csv), "--out", str(out),
                 "--tables", str(tables), "--permutations", "50", "--bootstrap", "50"])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result) == {"baselines", "convergence", "dynamics", "variance", "cost"}
    assert result["convergence"]["full"]["permutation"]["permutations"] == 50
    assert result["baselines"]["policies"]["rand_pool"]["permutations"] == 50
    curve = pd.read_csv(tables / "baselines_curve.csv")
    assert set(curve["policy"]) >= {"search", "rand_pool", "oracle", "rand_gen"}
    assert result["baselines"]["curve"] == "(in the CSV table curve)"
    assert len(pd.read_csv(tables / "dynamics_series.csv")) > 0


def test_bad_input_exits_2_naming_the_problem(runs_csv, tmp_path, capsys):
    bare = tmp_path / "bare.csv"
    pd.DataFrame({"id": ["a"], "status": ["ok"], "val_ap": [0.5]}).to_csv(bare, index=False)
    assert main(["analyze", "variance", "--data", str(bare)]) == 2
    assert "variance" in capsys.readouterr().err
    assert main(["analyze", "variance", "--data", str(runs_csv), "--value", "val_apx"]) == 2
    assert "val_apx" in capsys.readouterr().err
    assert main(["analyze", "cost", "--data", str(tmp_path / "none.csv")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_variance_of_the_subset_is_the_variance_of_its_rows(runs_csv, capsys, tmp_path):
    params = tmp_path / "params.yaml"
    from expsearch.params import load_params
    from expsearch.yamlio import dump_yaml

    from .conftest import ROOT

    edited = load_params(ROOT / "params.yaml")
    edited["analysis"]["subset"]["code_version"] = "latest"
    params.write_text(dump_yaml(edited))
    frame = pd.read_csv(runs_csv)
    frame = frame[frame["campaign"] == "agents"]  # one campaign: versions change once, in time
    data = tmp_path / "agents.csv"
    frame.to_csv(data, index=False)
    code = main(["analyze", "variance", "--data", str(data), "--params", str(params),
                 "--min-group-size", "5"])  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    latest = frame[(frame["code_version"] == "v2") & (frame["status"] == "ok")]
    assert result["subset"]["description"]["rows"] < len(frame)
    assert result["subset"]["anova"]["counts"]["finished"] == len(latest)
    assert result["anova"]["counts"]["finished"] == int((frame["status"] == "ok").sum())


def test_cost_reads_the_agent_log_and_names_a_bad_line(runs_csv, tmp_path, capsys):
    log = tmp_path / "agent_log.jsonl"
    entry = {"agent": "claude", "input_tokens": 10, "output_tokens": 2, "cost_usd": 0.25,
             "calls": [{"attempt": 1}]}  # fmt: skip
    log.write_text(json.dumps(entry) + "\n" + json.dumps(entry) + "\n")
    assert main(["analyze", "cost", "--data", str(runs_csv), "--agent-log", str(log)]) == 0
    calls = json.loads(capsys.readouterr().out)["llm_calls"]
    assert calls["calls"] == 2 and calls["cost_usd"] == pytest.approx(0.5)
    log.write_text(json.dumps(entry) + "\n{broken\n")
    assert main(["analyze", "cost", "--data", str(runs_csv), "--agent-log", str(log)]) == 2
    assert "agent_log.jsonl:2: not JSON" in capsys.readouterr().err


def test_written_results_have_ten_significant_digits(runs_csv, tmp_path):
    out = tmp_path / "variance.json"
    assert main(["analyze", "variance", "--data", str(runs_csv), "--out", str(out)]) == 0
    floats = []

    def collect(value):
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            for item in value:
                collect(item)
        elif isinstance(value, float):
            floats.append(value)

    collect(json.loads(out.read_text()))
    assert len(floats) > 10
    assert all(float(f"{v:.10g}") == v for v in floats)
    assert any(float(f"{v:.9g}") != v for v in floats)  # rounded at 10, not fewer
