"""The experiment table that every analysis reads, checked once.

    table = load_table("results/dataset/experiments.parquet")   # .parquet | .csv | .jsonl | .json
    table = experiment_table(frame, source="my rows")           # an in-memory DataFrame
    table.require(["backbone", "encoder"], "variance")          # TableError names what is missing
    table.finished("val_ap")      # rows with status ok and a finite value, in completion order
    table.counts("val_ap")        # {"rows", "finished", "failed", "missing_value"} for a result

Columns (the dataset's `experiments.parquet` has them all):
  id           unique experiment id (a duplicate is an error)
  status       ok | failed (queued/running rows are not finished)
  config       the configuration: a mapping or its JSON text; each key becomes a
               column (backbone, encoder, ...) unless the row already has one
  val_ap, test_ap      metrics (val_ap is the search's objective)
  finished     completion timestamp (ISO 8601); experiments are ordered by it
  campaign, round, agent, policy, source, code_version, device_seconds,
  llm_input_tokens, llm_output_tokens, llm_cost_usd   used where an analysis needs them
A file of your own needs only the columns the analyses you run need: `id`,
`status` and the metric always, the config keys or columns an analysis
groups by, `finished` (or `round`) to order. A missing column is an error
that names it, the analysis and the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..agents.history import read_rows

ALWAYS = ("id", "status")


class TableError(ValueError):
    """An experiment table that cannot be analysed; the message names the file and why."""


@dataclass(frozen=True)
class ExperimentTable:
    frame: pd.DataFrame  # one row per experiment, config keys flattened, in completion order
    source: str  # the file (or description) the rows came from, for messages

    def __len__(self) -> int:
        return len(self.frame)

    def require(self, columns: Iterable[str], analysis: str) -> None:
        missing = [column for column in columns if column not in self.frame.columns]
        if missing:
            raise TableError(
                f"{self.source}: {analysis} needs column(s) {', '.join(missing)}; "
                f"the table has {', '.join(map(str, self.frame.columns))}"
            )

    def finished(self, metric: str) -> pd.DataFrame:
        """Finished experiments with a finite `metric`, in completion order."""
        self.require([metric], "this analysis")
        values = pd.to_numeric(self.frame[metric], errors="coerce")
        keep = (self.frame["status"] == "ok") & np.isfinite(values.to_numpy(dtype=float))
        rows = self.frame[keep].copy()
        rows[metric] = values[keep].astype(float)
        return rows

    def counts(self, metric: str) -> dict[str, int]:
        """How many rows an AP statistic saw and left out, for every result."""
        self.require([metric], "this analysis")
        values = pd.to_numeric(self.frame[metric], errors="coerce").to_numpy(dtype=float)
        ok = (self.frame["status"] == "ok").to_numpy()
        return {
            "rows": len(self.frame),
            "finished": int((ok & np.isfinite(values)).sum()),
            "failed": int((~ok).sum()),
            "missing_value": int((ok & ~np.isfinite(values)).sum()),
        }

    def subset(self, mask: pd.Series | np.ndarray, label: str) -> ExperimentTable:
        return ExperimentTable(self.frame[np.asarray(mask, dtype=bool)], f"{self.source} [{label}]")


def load_table(path: str | Path) -> ExperimentTable:
    path = Path(path)
    if not path.exists():
        raise TableError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix == ".csv":
            frame = pd.read_csv(path)
        elif suffix in (".jsonl", ".json"):  # the ledger's reader: its errors name the line
            frame = pd.DataFrame(read_rows(path))
        else:
            raise TableError(
                f"{path}: unknown table format; expected .parquet, .csv, .jsonl or .json"
            )
    except TableError:
        raise
    except Exception as exc:  # a reader's own message names the byte or line
        raise TableError(f"{path}: cannot be read as a table: {exc}") from None
    return experiment_table(frame, source=str(path))


def experiment_table(frame: pd.DataFrame, source: str = "the table") -> ExperimentTable:
    missing = [column for column in ALWAYS if column not in frame.columns]
    if missing:
        raise TableError(f"{source}: every analysis needs column(s) {', '.join(missing)}")
    if frame.empty:
        return ExperimentTable(frame.copy(), source)
    duplicated = frame["id"][frame["id"].duplicated()].unique()
    if len(duplicated):
        shown = ", ".join(map(str, duplicated[:5]))
        raise TableError(f"{source}: duplicate experiment id(s) {shown} ({len(duplicated)} in all)")
    frame = _flatten_config(frame, source)
    return ExperimentTable(_completion_order(frame), source)


def _flatten_config(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    if "config" not in frame.columns:
        return frame.reset_index(drop=True)
    configs = [
        _config(value, source, row) for row, value in zip(frame["id"], frame["config"], strict=True)
    ]
    flat = pd.DataFrame(configs, index=frame.index)
    extra = [column for column in flat.columns if column not in frame.columns]
    return pd.concat([frame, flat[extra]], axis=1).reset_index(drop=True)


def _config(value: Any, source: str, row: Any) -> Mapping[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise TableError(f"{source}: experiment {row}: config is not JSON: {exc}") from None
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return {}
    if not isinstance(value, Mapping):
        raise TableError(
            f"{source}: experiment {row}: config is {type(value).__name__}, not a mapping"
        )
    return value


def _completion_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows by completion time (unfinished last), then round, then file order."""
    keys, order = [], pd.RangeIndex(len(frame))
    frame = frame.assign(_order=order)
    if "finished" in frame.columns:
        frame["_finished"] = pd.to_datetime(
            frame["finished"], errors="coerce", utc=True, format="ISO8601"
        )
        keys.append("_finished")
    if "round" in frame.columns:
        keys.append("round")
    frame = frame.sort_values([*keys, "_order"], kind="stable", na_position="last")
    return frame.drop(columns=[c for c in ("_order", "_finished") if c in frame]).reset_index(
        drop=True
    )
