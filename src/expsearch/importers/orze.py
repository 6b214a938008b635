"""Orze results -> this project's experiment table: the paper's released runs, analysable here.

    result = import_orze("orze_results/", campaign="orze")
    result.rows        # one dataset row per mapped record (the analyses' columns)
    result.refused     # [{"record": dir, "reasons": [...]}]: every record not mapped, and why
    write_import(result, "results/orze")   # experiments.parquet, refused.jsonl, summary.json

An Orze project keeps one folder per idea (`orze_results/<idea-id>/`, or
`nexar_experiments/idea-*/` in the released dataset) with `metrics.json` and
the idea's config, `idea_config.yaml` (a recipe's `recipe.yaml` holds the
same). Every folder under DIR holding either file is a record. Configs come
in two shapes, both read:
- flat: the agents' YAML (`backbone: vjepa2_vitl14`, `temporal_encoder: bimamba`,
  `learning_rate`, ...) or the training base's overrides (`model.type`,
  `model.pool`, `training.lr`, ... as nested keys);
- nested: a recipe's `config:` block (`backbone.name`, `temporal_encoder.type`,
  `heads.classification.pooling`, `loss.classification.type`, `optimizer.lr`, ...).

Mapping, never a guess: each value of the space's dimensions is read from the
known key paths below and translated by explicit tables (a backbone id such as
`dinov2_vitb14` is `dinov2_b`; `zipformer_temporal` is `zipformer`;
`attention_pool` is `attention`; `binary_cross_entropy` is `bce`); a value the
tables do not name, a value outside the space (a `transformer` encoder, a
`cls` pooling, a ViT-L DINOv2), a config without backbone and encoder (an ASR
record), an unfinished status or a key that is neither mapped nor listed as
known-but-outside-the-space refuses the record with every reason found. Keys
known to have no counterpart here (regression heads, betas, head_lr, ...) are
kept verbatim in the row's `orze_extra` (JSON), and an end-to-end run
(`backbone.freeze: false`, or `end_to_end` in its training summary) is marked
`backbone_frozen: false`, since this space trains on frozen features.

Metrics: `status` COMPLETED is ok, FAILED/ERROR/CRASHED failed; test AP, AUC
and the horizon mAP (mean of mAP_500ms, mAP_1000ms, mAP_1500ms) from
`test_metrics`; `best_val_metric` is `val_ap` only when `best_metric_name` is
the AP, else it stays in `val_best_metric` under its name; `timestamp` is
`finished`.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..campaign.dataset import write_parquet
from ..yamlio import YamlError, load_yaml_file

CONFIG_FILES = ("idea_config.yaml", "recipe.yaml")
METRICS_FILE = "metrics.json"

# dimension -> key paths that hold it, first present wins (flat agent keys, then the
# training base's, then a recipe's nested ones).
PATHS = {
    "backbone": ["backbone", "backbone.name"],
    "encoder": ["temporal_encoder", "temporal_encoder.type", "model.type", "encoder"],
    "pooling": ["pooling", "model.pool", "heads.classification.pooling"],
    "loss": ["loss", "loss.classification.type"],
    "focal_gamma": ["focal_gamma", "loss.classification.gamma", "loss.focal_gamma"],
    "focal_alpha": ["focal_alpha", "loss.classification.alpha", "loss.focal_alpha"],
    "smoothing_epsilon": ["label_smoothing", "training.label_smoothing"],
    "learning_rate": ["learning_rate", "lr", "training.lr", "optimizer.lr"],
    "weight_decay": ["weight_decay", "training.weight_decay", "optimizer.weight_decay"],
    "batch_size": ["batch_size", "training.batch_size", "data.batch_size"],
    "scheduler": ["scheduler", "training.scheduler", "optimizer.scheduler"],
    "seq_len": ["seq_len", "max_seq_len", "data.frame_sampling.max_frames"],
    "epochs": ["epochs", "training.epochs", "optimizer.max_epochs"],
    "dropout": ["dropout", "model.dropout", "temporal_encoder.dropout"],
    "width": ["hidden_dim", "model.hidden_dim", "temporal_encoder.hidden_dim"],
    "depth": ["num_layers", "model.num_layers", "temporal_encoder.num_layers"],
}
BACKBONES = {  # (family, size) -> the space's name
    ("vjepa2", "l"): "vjepa2", ("vjepa2", ""): "vjepa2",
    ("dinov3", "b"): "dinov3_b", ("dinov3", "l"): "dinov3_l",
    ("dinov2", "b"): "dinov2_b",
    ("siglip2", "b"): "siglip2", ("siglip2", ""): "siglip2",
    ("convnext", "b"): "convnext", ("convnext", ""): "convnext",
}  # fmt: skip
ENCODERS = {"zipformer": "zipformer", "zipformer_temporal": "zipformer", "retnet": "retnet",
            "retention": "retnet", "bimamba": "bimamba", "hybrid": "hybrid", "xlstm": "xlstm"}  # fmt: skip
POOLINGS = {"attention": "attention", "attention_pool": "attention", "attn": "attention",
            "mean": "mean", "mean_pool": "mean", "avg": "mean", "last": "last", "max": "max",
            "max_pool": "max"}  # fmt: skip
LOSSES = {"focal": "focal", "bce": "bce", "binary_cross_entropy": "bce",
          "label_smoothing": "label_smoothing"}  # fmt: skip
SCHEDULERS = {"cosine": "cosine", "cosine_with_warmup": "cosine", "linear": "linear",
              "step": "step"}  # fmt: skip
VALUE_TABLES = {"encoder": ENCODERS, "pooling": POOLINGS, "loss": LOSSES, "scheduler": SCHEDULERS}
NUMBERS = {"focal_gamma", "focal_alpha", "smoothing_epsilon", "learning_rate", "weight_decay",
           "dropout"}  # fmt: skip
INTEGERS = {"batch_size", "seq_len", "epochs", "width", "depth"}
# Keys of Orze configs that this space has no counterpart for: kept in orze_extra.
OUTSIDE_THE_SPACE = re.compile(
    r"^(idea_id|idea_name|title|hypothesis|rationale|priority|idea_title|"
    r"backbone\.(freeze|output_dim|input_resolution|extraction_mode)|"
    r"temporal_encoder\.(num_stacks|stack_layers|stack_dims|num_heads|input_proj_dim|"
    r"use_biasnorm|activation|ff_activation|use_bypass|cnn_kernel_size)|"
    r"heads\.classification\.(type|hidden_dim|dropout)|heads\.regression\..*|"
    r"loss\.classification\.(weight|pos_weight)|loss\.regression\..*|"
    r"optimizer\.(type|head_lr|betas|warmup_steps|gradient_clip)|"
    r"training\.(gradient_checkpointing|gradient_accumulation_steps|mixed_precision|"
    r"warmup_epochs|pos_weight|optimizer)|"
    r"data\.(frame_sampling\.(fps|context_seconds)|num_workers)|"
    r"feature_dir|test_feature_dir|truncation|fusion_backbones|model\.num_heads|"
    r"augmentation\..*|eval\..*)$"
)
FINISHED = {"COMPLETED": "ok", "FAILED": "failed", "ERROR": "failed", "CRASHED": "failed"}
HORIZONS = ("mAP_500ms", "mAP_1000ms", "mAP_1500ms")


@dataclass
class ImportResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        # Records per kind of reason (one record often has several).
        reasons = Counter(
            kind for r in self.refused for kind in {reason.split(":")[0] for reason in r["reasons"]}
        )
        return {
            "records": len(self.rows) + len(self.refused),
            "imported": len(self.rows),
            "refused": len(self.refused),
            "status": dict(Counter(row["status"] for row in self.rows)),
            "end_to_end": sum(row["backbone_frozen"] is False for row in self.rows),
            "refusal_reasons": dict(reasons),
        }


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def backbone_name(orze_id: str) -> str | None:
    """`dinov2_vitb14` -> dinov2_b, `vjepa2_vitl14` -> vjepa2; None when the table has no
    such family and size (e.g. a ViT-L DINOv2, which this space does not hold)."""
    text = str(orze_id).lower().replace("-", "_")
    family = next((f for f in ("vjepa2", "dinov3", "dinov2", "siglip2", "convnext")
                   if f in text.replace("_", "")), None)  # fmt: skip
    if family is None:
        return None
    size = re.search(r"vit([sblgh])|_([sblg])(?:_|$)|(base|large)", text)
    letter = ""
    if size:
        letter = (size.group(1) or size.group(2) or size.group(3)[0]) or ""
    return BACKBONES.get((family, letter))


def map_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """An Orze config -> (the space's config, keys kept outside it, reasons to refuse)."""
    tree = config.get("config", config)
    if not isinstance(tree, Mapping):
        return {}, {}, [f"config: its config: block is {type(tree).__name__}, not a mapping"]
    flat = flatten(tree)
    mapped, extra, reasons, used = {}, {}, [], set()
    for dimension, paths in PATHS.items():
        path = next((p for p in paths if p in flat and flat[p] is not None), None)
        if path is None:
            continue
        used.add(path)
        value = flat[path]
        if dimension == "backbone":
            name = backbone_name(value)
            if name is None:
                reasons.append(f"backbone: {value!r} is not a backbone of the space")
            mapped[dimension] = name
        elif dimension in VALUE_TABLES:
            name = VALUE_TABLES[dimension].get(str(value).lower())
            if name is None:
                reasons.append(f"{dimension}: {value!r} ({path}) is not a value of the space")
            mapped[dimension] = name
        elif dimension in NUMBERS | INTEGERS:
            try:
                number = float(value)
            except (TypeError, ValueError):
                reasons.append(f"{dimension}: {value!r} ({path}) is not a number")
                continue
            mapped[dimension] = int(number) if dimension in INTEGERS else number
    for dimension in ("backbone", "encoder"):
        if dimension not in mapped:
            reasons.append(
                f"no {dimension}: none of {PATHS[dimension]} in the config (keys: "
                f"{', '.join(sorted(flat)[:8])}{', ...' if len(flat) > 8 else ''})"
            )
    for path, value in flat.items():
        if path in used:
            continue
        if OUTSIDE_THE_SPACE.match(path) or any(path in paths for paths in PATHS.values()):
            extra[path] = value
        else:
            reasons.append(f"unknown key: {path}")
    return {k: v for k, v in mapped.items() if v is not None}, extra, reasons


def map_metrics(metrics: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    status = str(metrics.get("status", "")).upper()
    if status not in FINISHED:
        return {}, [f"status: {metrics.get('status')!r} is not a finished run"]
    test = metrics.get("test_metrics") or {}
    horizons = [test.get(h) for h in HORIZONS]
    name = metrics.get("best_metric_name")
    best = metrics.get("best_val_metric")
    row = {
        "status": FINISHED[status],
        "test_ap": test.get("average_precision"),
        "test_auc": test.get("auc_roc"),
        "test_horizon_map": (
            sum(horizons) / 3 if all(isinstance(h, int | float) for h in horizons) else None
        ),
        "val_ap": best if name in ("average_precision", "ap", "val_ap") else None,
        "val_best_metric": best,
        "val_best_metric_name": name,
        "epochs_run": metrics.get("epochs"),
        "finished": metrics.get("timestamp"),
        "error": metrics.get("error"),
    }
    bad = [k for k in ("test_ap", "val_best_metric") if row[k] is not None and not _unit(row[k])]
    return row, [f"{k}: {row[k]!r} is not a number in [0, 1]" for k in bad]


def _unit(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1


def records(root: Path) -> list[Path]:
    """Every folder under root holding an idea config or a metrics.json, sorted."""
    found = {p.parent for name in (*CONFIG_FILES, METRICS_FILE) for p in root.rglob(name)}
    return sorted(found)


def read_record(folder: Path, root: Path, campaign: str) -> tuple[dict[str, Any] | None, list[str]]:
    reasons: list[str] = []
    config_file = next((folder / n for n in CONFIG_FILES if (folder / n).exists()), None)
    metrics_file = folder / METRICS_FILE
    config: Any = {}
    if config_file is None:
        reasons.append(f"no config: neither of {list(CONFIG_FILES)}")
    else:
        try:
            config = load_yaml_file(config_file)
        except YamlError as error:
            reasons.append(f"config: {error}")
    if not isinstance(config, Mapping):
        reasons.append(f"config: {config_file} is not a mapping (a legacy format?)")
        config = {}
    mapped, extra, config_reasons = map_config(config)
    reasons += config_reasons
    metrics: Mapping[str, Any] = {}
    row_metrics: dict[str, Any] = {}
    if not metrics_file.exists():
        others = sorted(p.name for p in folder.glob("*.json"))
        reasons.append(f"no metrics: no {METRICS_FILE} (the folder has {others or 'no JSON'})")
    else:
        try:
            loaded = json.loads(metrics_file.read_text())
        except json.JSONDecodeError as error:
            reasons.append(f"metrics: {metrics_file} is not JSON ({error})")
        else:
            if isinstance(loaded, Mapping):
                metrics = loaded
                row_metrics, metric_reasons = map_metrics(metrics)
                reasons += metric_reasons
            else:
                reasons.append(f"metrics: {metrics_file} is not a JSON object")
    if reasons:
        return None, reasons
    frozen = extra.get("backbone.freeze")
    end_to_end = (metrics.get("training_log_summary") or {}).get("end_to_end")
    return {
        "id": str(metrics.get("idea_id") or config.get("idea_id") or folder.name),
        "campaign": campaign,
        "source": "orze",
        "config": mapped,
        **row_metrics,
        "backbone_frozen": not (frozen is False or end_to_end is True),
        "orze_record": str(folder.relative_to(root)),
        "orze_title": metrics.get("idea_title") or config.get("title"),
        "orze_extra": json.dumps(extra, sort_keys=True, default=str),
    }, []


def import_orze(root: str | Path, *, campaign: str = "orze") -> ImportResult:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder of Orze results")
    result = ImportResult()
    for folder in records(root):
        row, reasons = read_record(folder, root, campaign)
        if row is None:
            result.refused.append({"record": str(folder.relative_to(root)), "reasons": reasons})
        else:
            result.rows.append(row)
    ids = Counter(row["id"] for row in result.rows)
    for row in result.rows:  # the same idea id in two folders: keep both, told apart
        if ids[row["id"]] > 1:
            row["id"] = f"{row['id']}@{row['orze_record']}"
    return result


def write_import(result: ImportResult, out: str | Path) -> dict[str, Any]:
    """out/experiments.parquet (the mapped rows), out/refused.jsonl (every record
    not mapped, with its reasons) and out/summary.json; returns the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if result.rows:
        write_parquet(out / "experiments.parquet", result.rows)
    else:  # nothing imported: no table left behind from an earlier import
        (out / "experiments.parquet").unlink(missing_ok=True)
    refused = "".join(json.dumps(entry) + "\n" for entry in result.refused)
    atomic_write_text(out / "refused.jsonl", refused)
    summary = result.summary()
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary
