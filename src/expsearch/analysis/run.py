"""Run one family of analyses on an experiment table and write what it found.

    result = analyze("variance", table, settings, space=space)         # a JSON-able dict
    run_family("convergence", data="results/dataset/experiments.parquet", settings=settings,
               space=space, out="results/analysis/convergence.json",
               tables={"curve": "results/analysis/convergence_curve.csv"})

Families: baselines, convergence, dynamics, variance, cost (and `all`, for
the CLI). The long series a figure draws (curves, entropy series, JSD
windows) leave the JSON for CSV files named in `tables`; `TABLES` says
which series each family has. The workflow rule and `expsearch analyze`
both call `run_family`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..agents.history import read_rows
from ..atomic import atomic_open, atomic_write_text
from ..space import Space
from .result import jsonable
from .settings import AnalysisSettings
from .table import ExperimentTable, load_table

FAMILIES = ("baselines", "convergence", "dynamics", "variance", "cost")

# family -> table name -> where its rows sit in the result (a path of keys;
# "*" takes that list from each part of the result that has it, adding a
# column `part` with the part's key).
TABLES: dict[str, dict[str, tuple[str, ...]]] = {
    "baselines": {"curve": ("curve",)},
    "convergence": {"curve": ("*", "curve")},
    "dynamics": {"series": ("series",), "jsd": ("jsd",)},
    "variance": {"groups": ("anova", "groups")},
    "cost": {},
}
MOVED = "(in the CSV table {name})"


def analyze(
    family: str,
    table: ExperimentTable,
    settings: AnalysisSettings,
    *,
    space: Space | None = None,
    calls: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    if family == "baselines":
        from .baselines import baselines

        if space is None:
            raise ValueError("baselines need the configuration space (params.yaml `space`)")
        return baselines(table, space, **settings.baselines_kwargs())
    if family == "convergence":
        from .convergence import convergence

        return convergence(table, **settings.convergence_kwargs())
    if family == "dynamics":
        from .dynamics import dynamics

        return dynamics(table, **settings.dynamics_kwargs())
    if family == "variance":
        from .convergence import select_subset
        from .variance import variance

        result = variance(table, **settings.variance_kwargs())
        if settings.subset:  # the paper's Table 3 has the full table and the clean subset
            part, description = select_subset(table, **settings.subset)
            result["subset"] = {
                "description": description,
                **variance(part, **settings.variance_kwargs()),
            }
        return result
    if family == "cost":
        from .cost import cost

        return cost(table, calls=calls, **settings.cost_kwargs())
    raise ValueError(f"unknown analysis {family!r}; expected one of {', '.join(FAMILIES)}")


def run_family(
    family: str,
    *,
    data: str | Path,
    settings: AnalysisSettings,
    space: Space | None = None,
    agent_log: str | Path | None = None,
    out: str | Path | None = None,
    tables: Mapping[str, str | Path] | None = None,
) -> dict[str, Any]:
    """Analyse `data`; write the JSON to `out` and the named tables as CSV.
    Tables not named in `tables` stay inside the JSON."""
    table = load_table(data)
    calls = read_rows(agent_log) if agent_log else None  # the dataset's agent_log.jsonl
    # Ten significant digits: the same bytes on any CPU (see result.py).
    result = jsonable(analyze(family, table, settings, space=space, calls=calls), family, 10)
    result = {"analysis": family, "data": str(data), **result}
    for name, path in (tables or {}).items():
        if name not in TABLES[family]:
            raise ValueError(
                f"{family} has no table {name!r} (it has: {', '.join(TABLES[family])})"
            )
        rows = extract_table(result, TABLES[family][name], name)
        with atomic_open(path, "w") as handle:
            pd.DataFrame(rows).to_csv(handle, index=False)
    text = json.dumps(result, indent=1, allow_nan=False) + "\n"
    if out is not None:
        atomic_write_text(out, text)
    return result


def extract_table(result: dict[str, Any], where: tuple[str, ...], name: str) -> list[dict]:
    """Take the rows at `where` out of `result` (leaving a pointer to the CSV)."""
    head, *rest = where
    if head == "*":
        rows = []
        for part, value in result.items():
            if isinstance(value, dict) and _has(value, rest):
                rows += [{"part": part, **row} for row in extract_table(value, tuple(rest), name)]
        return rows
    if head not in result:
        return []
    if rest:
        return (
            extract_table(result[head], tuple(rest), name) if isinstance(result[head], dict) else []
        )
    rows = result[head]
    result[head] = MOVED.format(name=name)
    return rows if isinstance(rows, list) else []


def _has(value: dict[str, Any], path: Sequence[str]) -> bool:
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]
    return True
