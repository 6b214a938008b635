"""The experiment table every analysis reads: formats, order, and bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from expsearch.analysis.result import insufficient, jsonable, ok
from expsearch.analysis.table import TableError, experiment_table, load_table

ROWS = [
    {"id": "c", "status": "ok", "val_ap": 0.7, "finished": "2026-01-03T00:00:00+00:00",
     "round": 1, "config": {"backbone": "vjepa2", "encoder": "retnet"}},
    {"id": "a", "status": "ok", "val_ap": 0.5, "finished": "2026-01-01T00:00:00+00:00",
     "round": 0, "config": {"backbone": "dinov2_b", "encoder": "xlstm"}},
    {"id": "b", "status": "failed", "val_ap": None, "finished": None,
     "round": 0, "config": {"backbone": "vjepa2", "encoder": "xlstm"}},
    {"id": "d", "status": "ok", "val_ap": float("nan"), "finished": "2026-01-02T00:00:00+00:00",
     "round": 1, "config": {"backbone": "vjepa2", "encoder": "bimamba"}},
]  # fmt: skip


def _write(path, rows):
    frame = pd.DataFrame([{**r, "config": json.dumps(r["config"])} for r in rows])
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        path.write_text(json.dumps(rows))


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl", ".json"])
def test_every_format_gives_the_same_table(tmp_path, suffix):
    path = tmp_path / f"runs{suffix}"
    _write(path, ROWS)
    table = load_table(path)
    assert list(table.frame["id"]) == ["a", "d", "c", "b"]  # completion order, unfinished last
    assert list(table.frame["backbone"]) == ["dinov2_b", "vjepa2", "vjepa2", "vjepa2"]
    finished = table.finished("val_ap")
    assert list(finished["id"]) == ["a", "c"]  # failed and NaN rows left out ...
    assert table.counts("val_ap") == {"rows": 4, "finished": 2, "failed": 1, "missing_value": 1}


def test_missing_column_names_it_the_analysis_and_the_file(tmp_path):
    path = tmp_path / "runs.csv"
    pd.DataFrame({"id": ["a"], "status": ["ok"], "val_ap": [0.5]}).to_csv(path, index=False)
    table = load_table(path)
    with pytest.raises(TableError, match=r"runs\.csv: variance needs column\(s\) encoder"):
        table.require(["val_ap", "encoder"], "variance")
    no_status = tmp_path / "bare.csv"
    pd.DataFrame({"id": ["a"]}).to_csv(no_status, index=False)
    with pytest.raises(TableError, match=r"bare\.csv: every analysis needs column\(s\) status"):
        load_table(no_status)


def test_bad_files(tmp_path):
    with pytest.raises(TableError, match="no such file"):
        load_table(tmp_path / "nothing.parquet")
    odd = tmp_path / "runs.xlsx"
    odd.write_text("x")
    with pytest.raises(TableError, match="unknown table format"):
        load_table(odd)
    lines = tmp_path / "runs.jsonl"
    lines.write_text('{"id": "a", "status": "ok"}\n{"id": "b", status\n')
    with pytest.raises(TableError, match=r"runs\.jsonl:2: not JSON"):
        load_table(lines)
    broken = tmp_path / "runs.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(TableError, match="cannot be read"):
        load_table(broken)
    duplicate = pd.DataFrame({"id": ["a", "a", "b"], "status": "ok", "val_ap": 0.5})
    with pytest.raises(TableError, match=r"duplicate experiment id.*a"):
        experiment_table(duplicate, source="dup")
    bad_config = pd.DataFrame({"id": ["a"], "status": "ok", "config": ["{not json"]})
    with pytest.raises(TableError, match="experiment a: config is not JSON"):
        experiment_table(bad_config)


def test_an_empty_table_loads_and_counts_zero():
    table = experiment_table(pd.DataFrame(columns=["id", "status", "val_ap"]))
    assert len(table) == 0 and table.counts("val_ap")["rows"] == 0


def test_results_refuse_a_nan_dressed_as_a_number():
    assert jsonable(ok(F=np.float64(2.5), n=np.int64(3))) == {"status": "ok", "F": 2.5, "n": 3}
    assert jsonable(insufficient("one group", n_groups=1))["status"] == "insufficient_data"
    with pytest.raises(ValueError, match=r"result\.groups\[1\]\.mean is nan"):
        jsonable(ok(groups=[{"mean": 1.0}, {"mean": float("nan")}]))


def test_results_round_to_significant_digits_when_asked():
    value = {"F": np.float64(72.04520537268635), "p": [1.5667328775639723e-55], "n": 3}
    assert jsonable(value) == {"F": 72.04520537268635, "p": [1.5667328775639723e-55], "n": 3}
    assert jsonable(value, digits=10) == {"F": 72.04520537, "p": [1.566732878e-55], "n": 3}
    # What two CPUs' BLAS made of one ANOVA: the last bits differ, the written digits do not.
    assert jsonable(1.7268843101527622, digits=10) == jsonable(1.726884310152764, digits=10)
