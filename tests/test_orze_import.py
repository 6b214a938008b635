"""Orze import: the real records of tests/fixtures/orze (nested recipes, a record of
another task), the agents' flat YAML and the training base's shape, every refusal
with its reason, and the analyses reading the imported table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from expsearch.analysis.table import load_table
from expsearch.cli import main
from expsearch.importers.orze import backbone_name, import_orze
from expsearch.yamlio import dump_yaml, load_yaml_file

FIXTURES = Path(__file__).parent / "fixtures" / "orze"

AGENT_IDEA = {  # the agents' YAML shape (paper, Appendix F)
    "idea_name": "VJepa2 BiMamba with higher dropout",
    "backbone": "vjepa2_vitl14",
    "temporal_encoder": "bimamba",
    "loss": "focal",
    "focal_gamma": 3.0,
    "learning_rate": 3e-4,
    "weight_decay": 0.05,
    "batch_size": 64,
    "seq_len": 20,
    "epochs": 15,
    "priority": "high",
    "rationale": "linear-time alternative to Zipformer",
}


def metrics(status="COMPLETED", val=0.91, name="average_precision", test=0.9, **extra):
    return {
        "status": status, "idea_id": extra.pop("idea_id", None), "epochs": 15,
        "best_val_metric": val, "best_metric_name": name,
        "test_metrics": {"average_precision": test, "auc_roc": 0.95, "mAP_500ms": 0.8,
                         "mAP_1000ms": 0.85, "mAP_1500ms": 0.9},
        "timestamp": "2026-02-15T20:16:15", **extra,
    }  # fmt: skip


def write_idea(root: Path, name: str, config, metrics_doc) -> Path:
    folder = root / "orze_results" / name
    folder.mkdir(parents=True)
    (folder / "idea_config.yaml").write_text(
        config if isinstance(config, str) else dump_yaml(config)
    )
    if metrics_doc is not None:
        text = metrics_doc if isinstance(metrics_doc, str) else json.dumps(metrics_doc)
        (folder / "metrics.json").write_text(text)
    return folder


def test_the_real_records_map_or_are_refused_with_their_reasons():
    result = import_orze(FIXTURES)
    rows = {row["orze_record"]: row for row in result.rows}
    assert sorted(rows) == ["mustan-vitb-zipformer", "nexvitad-bottleneck-zipformer"]
    recipe = load_yaml_file(FIXTURES / "nexvitad-bottleneck-zipformer" / "recipe.yaml")["config"]
    row = rows["nexvitad-bottleneck-zipformer"]
    assert row["config"] == {
        "backbone": "dinov2_b", "encoder": "zipformer", "pooling": "attention", "loss": "bce",
        "learning_rate": recipe["optimizer"]["lr"], "weight_decay": 0.01, "batch_size": 16,
        "scheduler": "cosine", "seq_len": 20, "epochs": 25, "dropout": 0.4,
    }  # fmt: skip
    assert row["id"] == "idea-192" and row["status"] == "ok"
    assert row["test_ap"] == pytest.approx(0.98251499837)
    # The val metric is the 1-s horizon mAP, not the AP: kept under its name.
    assert row["val_ap"] is None and row["val_best_metric_name"] == "mAP_1000ms"
    assert row["backbone_frozen"] is False  # an end-to-end run, marked
    extra = json.loads(row["orze_extra"])
    assert extra["optimizer.head_lr"] == 0.0001 and "heads.regression.type" in extra

    refused = {entry["record"]: entry["reasons"] for entry in result.refused}
    asr = " | ".join(refused["asr-idea-0524ba"])
    assert "no backbone" in asr and "no encoder" in asr and "unknown key: data_mix.ami" in asr
    assert "no metrics.json" in asr and "metrics_fullscale.json" in asr
    assert refused["ttc-geometric-vitl-zipformer"] == [
        "backbone: 'dinov2_vitl14' is not a backbone of the space"
    ]
    summary = result.summary()
    assert summary["records"] == 4 and summary["imported"] == 2 and summary["end_to_end"] == 2


@pytest.mark.parametrize(
    ("orze", "ours"),
    [("vjepa2_vitl14", "vjepa2"), ("dinov3_vitb16", "dinov3_b"), ("dinov3_vitl16", "dinov3_l"),
     ("dinov2_vitb14", "dinov2_b"), ("siglip2_base_patch16_224", "siglip2"),
     ("convnext_base", "convnext"), ("dinov2_vitl14", None), ("vjepa2_vitg", None),
     ("resnet50", None)],
)  # fmt: skip
def test_backbone_ids_map_by_an_explicit_table(orze, ours):
    assert backbone_name(orze) == ours


def test_the_agents_flat_yaml_and_a_failed_run(tmp_path):
    write_idea(tmp_path, "idea-1", AGENT_IDEA, metrics(idea_id="idea-1"))
    write_idea(tmp_path, "idea-2", {**AGENT_IDEA, "temporal_encoder": "retnet"},
               metrics("FAILED", val=None, test=None, error="CUDA out of memory"))  # fmt: skip
    result = import_orze(tmp_path)
    assert result.refused == []
    ok, failed = sorted(result.rows, key=lambda row: row["id"])
    assert ok["config"] == {
        "backbone": "vjepa2", "encoder": "bimamba", "loss": "focal", "focal_gamma": 3.0,
        "learning_rate": 3e-4, "weight_decay": 0.05, "batch_size": 64, "seq_len": 20,
        "epochs": 15,
    }  # fmt: skip
    assert ok["val_ap"] == 0.91 and ok["test_horizon_map"] == pytest.approx(0.85)
    assert ok["backbone_frozen"] is True
    assert json.loads(ok["orze_extra"])["rationale"].startswith("linear-time")
    assert failed["id"] == "idea-2" and failed["status"] == "failed"
    assert failed["error"] == "CUDA out of memory" and failed["config"]["encoder"] == "retnet"


def test_the_training_base_shape_and_values_outside_the_space(tmp_path):
    base = load_yaml_file(FIXTURES / "base.yaml")
    write_idea(tmp_path, "legacy", base, metrics())  # model.type transformer, pool cls
    write_idea(tmp_path, "mapped", {**base, "model": {**base["model"], "type": "xlstm",
                                                      "pool": "mean"}}, metrics())  # fmt: skip
    result = import_orze(tmp_path)
    refused = {entry["record"]: entry["reasons"] for entry in result.refused}
    assert refused["orze_results/legacy"] == [
        "encoder: 'transformer' (model.type) is not a value of the space",
        "pooling: 'cls' (model.pool) is not a value of the space",
    ]
    (row,) = result.rows
    assert row["config"] == {
        "backbone": "dinov3_b", "encoder": "xlstm", "pooling": "mean", "smoothing_epsilon": 0.05,
        "learning_rate": 3e-4, "weight_decay": 0.01, "batch_size": 64, "scheduler": "cosine",
        "seq_len": 64, "epochs": 60, "dropout": 0.3, "width": 256, "depth": 4,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("config", "metrics_doc", "reason"),
    [
        ({**AGENT_IDEA, "mystery_knob": 3}, metrics(), "unknown key: mystery_knob"),
        (AGENT_IDEA, metrics("RUNNING"), "status: 'RUNNING' is not a finished run"),
        (AGENT_IDEA, "{not json", "is not JSON"),
        (AGENT_IDEA, None, "no metrics.json"),
        (AGENT_IDEA, metrics(test=7.5), "test_ap: 7.5 is not a number in [0, 1]"),
        ({**AGENT_IDEA, "batch_size": "big"}, metrics(), "batch_size: 'big'"),
        ("- a list, a legacy format\n", metrics(), "is not a mapping"),
        ("key: [unclosed\n", metrics(), "config:"),
        ({"config": 3}, metrics(), "config: block is int, not a mapping"),
        (AGENT_IDEA, "{}", "status: None is not a finished run"),
        (AGENT_IDEA, "[1, 2]", "is not a JSON object"),
    ],
)
def test_a_record_that_cannot_be_mapped_is_kept_with_the_reason(
    tmp_path, config, metrics_doc, reason
):
    write_idea(tmp_path, "idea-x", config, metrics_doc)
    result = import_orze(tmp_path)
    assert result.rows == []
    (entry,) = result.refused
    assert entry["record"] == "orze_results/idea-x"
    assert any(reason in text for text in entry["reasons"]), entry["reasons"]


def test_the_same_idea_id_twice_keeps_both_rows(tmp_path):
    write_idea(tmp_path, "a", AGENT_IDEA, metrics(idea_id="idea-7"))
    write_idea(tmp_path, "b", AGENT_IDEA, metrics(idea_id="idea-7", test=0.5))
    ids = sorted(row["id"] for row in import_orze(tmp_path).rows)
    assert ids == ["idea-7@orze_results/a", "idea-7@orze_results/b"]


def test_the_cli_writes_a_table_the_analyses_read(tmp_path, capsys):
    data = tmp_path / "orze"
    shutil.copytree(FIXTURES, data)
    write_idea(data, "idea-1", AGENT_IDEA, metrics(idea_id="idea-1"))
    out = tmp_path / "dataset"
    assert main(["import", "orze", str(data), "--out", str(out)]) == 0
    assert "3 of 5 records imported" in capsys.readouterr().out
    refused = [json.loads(line) for line in (out / "refused.jsonl").read_text().splitlines()]
    assert sorted(entry["record"] for entry in refused) == [
        "asr-idea-0524ba",
        "ttc-geometric-vitl-zipformer",
    ]
    assert json.loads((out / "summary.json").read_text())["imported"] == 3
    table = load_table(out / "experiments.parquet")
    finished = table.finished("test_ap")
    assert len(finished) == 3 and set(finished["backbone"]) == {"dinov2_b", "vjepa2"}
    assert list(finished["id"]) == list(
        pd.read_parquet(out / "experiments.parquet").sort_values("finished", kind="stable")["id"]
    )
    results = tmp_path / "variance.json"
    argv = ["analyze", "variance", "--data", str(out / "experiments.parquet"), "--value",
            "test_ap", "--min-group-size", "1", "--no-subset", "--out", str(results)]  # fmt: skip
    assert main(argv) == 0
    assert json.loads(results.read_text())["counts"]["finished"] == 3
    # Importing a folder where nothing maps leaves no table from the earlier import.
    refused_only = tmp_path / "refused_only"
    shutil.copytree(FIXTURES / "asr-idea-0524ba", refused_only / "asr")
    assert main(["import", "orze", str(refused_only), "--out", str(out)]) == 0
    assert not (out / "experiments.parquet").exists()
    assert json.loads((out / "summary.json").read_text())["imported"] == 0
    assert main(["import", "orze", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "no such folder" in capsys.readouterr().err
