"""The history H_{t-1} that a search policy reads: experiments and past proposals.

    history = History.load("ledger/experiments.jsonl", space)   # .jsonl | .json | .yaml | .parquet
    history = History.from_rows(rows, space, proposals=proposal_rows)
    history.finished()            # experiments with status "ok", in ledger order
    history.leaderboard(20)       # the best finished experiments by validation AP
    history.failures(10)          # the most recent failed experiments
    history.taken_fingerprints()  # finished, queued or running: never propose these again

An experiment row holds at least `id`, `config` (a mapping, or its JSON text
as stored in parquet) and `status` (ok | failed | queued | running); it may
hold `val_ap`, `error_class`, `error`, `agent`, `source`, `round`,
`parent_id`, `trace` (the tail of a failed run's traceback) and
`settings_overrides` (training settings a heal changed, e.g. grad_clip_norm). Rows whose
config is no longer a point of the space (the space changed) are kept, with
`config` None, so the leaderboard still shows them but no policy mutates them.
Proposal rows are the proposals table of earlier rounds (see `proposal.py`);
the LLM prompt shows the last round's rejections from it.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..space import Config, ConfigError, Space
from ..yamlio import load_yaml_file

STATUSES = ("ok", "failed", "queued", "running")


class HistoryError(ValueError):
    """A history file or row that cannot be read; the message names where."""


@dataclass(frozen=True)
class Experiment:
    id: str
    raw_config: Mapping[str, Any]
    config: Config | None  # None when the row's config is not a point of the space
    status: str
    val_ap: float | None = None
    error_class: str | None = None
    error: str | None = None
    agent: str | None = None
    source: str | None = None
    round: int | None = None
    parent_id: str | None = None
    trace: str | None = None
    settings_overrides: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str | None:
        return self.config.fingerprint if self.config is not None else None

    @property
    def finished(self) -> bool:
        return self.status == "ok" and self.val_ap is not None


@dataclass
class History:
    experiments: list[Experiment] = field(default_factory=list)
    proposals: list[dict[str, Any]] = field(default_factory=list)

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_rows(
        cls,
        rows: Iterable[Mapping[str, Any]],
        space: Space,
        proposals: Iterable[Mapping[str, Any]] = (),
    ) -> History:
        experiments = [_experiment(row, space, index) for index, row in enumerate(rows)]
        ids = Counter(exp.id for exp in experiments)
        repeated = sorted(key for key, count in ids.items() if count > 1)
        if repeated:
            raise HistoryError(f"experiment ids repeat: {repeated[:5]}")
        return cls(experiments, [dict(row) for row in proposals])

    @classmethod
    def load(cls, path: str | Path, space: Space, proposals: str | Path | None = None) -> History:
        return cls.from_rows(
            read_rows(path), space, read_rows(proposals) if proposals is not None else ()
        )

    # ----------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self.experiments)

    def finished(self) -> list[Experiment]:
        return [exp for exp in self.experiments if exp.finished]

    def failed(self) -> list[Experiment]:
        return [exp for exp in self.experiments if exp.status == "failed"]

    def by_id(self, experiment_id: str) -> Experiment | None:
        return next((exp for exp in self.experiments if exp.id == experiment_id), None)

    def leaderboard(self, k: int) -> list[Experiment]:
        """The k best finished experiments by validation AP (ties: earlier first)."""
        return sorted(self.finished(), key=lambda exp: -exp.val_ap)[:k]

    def recent(self, k: int) -> list[Experiment]:
        return self.experiments[-k:] if k > 0 else []

    def failures(self, k: int) -> list[Experiment]:
        return self.failed()[-k:] if k > 0 else []

    def taken(self) -> list[Experiment]:
        """Experiments that must not be proposed again: finished, queued or running."""
        return [exp for exp in self.experiments if exp.status != "failed" and exp.config]

    def taken_fingerprints(self) -> set[str]:
        return {exp.fingerprint for exp in self.taken()}

    def last_round_rejections(self) -> list[dict[str, Any]]:
        """Proposal rows of the latest round in the proposals table that were not kept."""
        rounds = [row.get("round") for row in self.proposals if row.get("round") is not None]
        if not rounds:
            return []
        last = max(rounds)
        return [
            row for row in self.proposals if row.get("round") == last and row.get("fate") != "kept"
        ]


def _experiment(row: Mapping[str, Any], space: Space, index: int) -> Experiment:
    where = f"experiment row {index}"
    if not isinstance(row, Mapping):
        raise HistoryError(f"{where}: expected a mapping, got {type(row).__name__}")
    for key in ("id", "config", "status"):
        if key not in row or row[key] is None:
            raise HistoryError(f"{where}: missing `{key}`")
    where = f"experiment {row['id']!r}"
    raw = _mapping(row["config"], f"{where}: `config`")
    if row["status"] not in STATUSES:
        raise HistoryError(f"{where}: status {row['status']!r} is not one of {list(STATUSES)}")
    try:
        config = space.validate(raw)
    except ConfigError:
        config = None
    return Experiment(
        id=str(row["id"]),
        raw_config=dict(raw),
        config=config,
        status=row["status"],
        val_ap=_number(row.get("val_ap"), f"{where}: val_ap"),
        error_class=_text(row.get("error_class")),
        error=_text(row.get("error")),
        agent=_text(row.get("agent")),
        source=_text(row.get("source")),
        round=None if _missing(row.get("round")) else int(row["round"]),
        parent_id=_text(row.get("parent_id")),
        trace=_text(row.get("trace")),
        settings_overrides=_mapping(row.get("settings_overrides"), f"{where}: settings_overrides"),
    )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: Any) -> str | None:
    return None if _missing(value) else str(value)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    """A mapping, or its JSON text (parquet holds nested values as text)."""
    if _missing(value) or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise HistoryError(f"{where}: not JSON: {exc}") from None
    if not isinstance(value, Mapping):
        raise HistoryError(f"{where}: expected a mapping, got {type(value).__name__}")
    return dict(value)


def _number(value: Any, where: str) -> float | None:
    if _missing(value):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HistoryError(f"{where}: expected a number, got {value!r}")
    return float(value)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a table file: .jsonl, .json (a list), .yaml/.yml (a list) or .parquet."""
    path = Path(path)
    if not path.exists():
        raise HistoryError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise HistoryError(f"{path}:{number}: not JSON: {exc}") from None
        return rows
    if suffix == ".json":
        try:
            rows = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise HistoryError(f"{path}: not JSON: {exc}") from None
    elif suffix in (".yaml", ".yml"):
        rows = load_yaml_file(path)
    elif suffix == ".parquet":
        import pandas as pd

        rows = pd.read_parquet(path).to_dict("records")
    else:
        raise HistoryError(
            f"{path}: unknown table format; expected .jsonl, .json, .yaml or .parquet"
        )
    if rows is None:
        return []
    if not isinstance(rows, Sequence) or isinstance(rows, str):
        raise HistoryError(f"{path}: expected a list of rows, got {type(rows).__name__}")
    return list(rows)
