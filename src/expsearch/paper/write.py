"""Write the paper's generated parts from the analyses' results.

    results = read_results(result_files("results/analysis"))
    write_paper(results, space, paper_files("paper"))
    # paper/tables/{top_configs,convergence,anova,notation}.{md,tex},
    # paper/values.tex and paper/values.json, its numbers for `dvc metrics` (keys:
    # top_configs_md, ..., values_tex)

The same results give byte-identical files (no dates, sorted keys), so DVC
sees no change when nothing changed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import atomic_write_text
from ..space import Space
from .tables import Table, all_tables, cross_task
from .values import paper_numbers, paper_values, values_tex

RESULTS = ("variance", "baselines", "convergence", "dynamics", "cost")


TABLES = ("top_configs", "convergence", "anova", "notation")


def result_files(directory: str | Path) -> dict[str, Path]:
    return {family: Path(directory) / f"{family}.json" for family in RESULTS}


def paper_files(out: str | Path) -> dict[str, Path]:
    """Output key (`top_configs_md`, ..., `values_tex`) -> its path under `out`."""
    files = {f"{name}_{fmt}": Path(out) / "tables" / f"{name}.{fmt}"
             for name in TABLES for fmt in ("md", "tex")}  # fmt: skip
    return {**files, "values_tex": Path(out) / "values.tex", "values_json": Path(out) / "values.json"}


def read_results(files: Mapping[str, str | Path]) -> dict[str, dict[str, Any]]:
    """The analyses' JSON results by family; a missing one is an error naming the file."""
    results = {}
    for family in RESULTS:
        path = Path(files[family])
        if not path.exists():
            raise FileNotFoundError(f"{path}: no {family} result (run the analyses first)")
        results[family] = json.loads(path.read_text())
    return results


def write_paper(
    results: dict[str, dict[str, Any]], space: Space, files: Mapping[str, str | Path]
) -> list[Path]:
    """Tables 1-4 and the values at the paths of `files` (keys as paper_files gives)."""
    values = paper_values(results)
    texts = {"values_tex": values_tex(values),
             "values_json": json.dumps(paper_numbers(results), indent=1, sort_keys=True) + "\n"}  # fmt: skip
    for table in all_tables(results, space.summary()):
        texts[f"{table.name}_md"], texts[f"{table.name}_tex"] = table.markdown(), table.latex()
    written = []
    for key, text in texts.items():
        path = Path(files[key])
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
        written.append(path)
    return written


def read_cross_task(tasks: Mapping[str, str | Path]) -> Table:
    """The cross-task table from each task's variance.json and variance_groups.csv,
    built before anything is written; a missing or unreadable file is named."""
    loaded = {}
    for task, directory in tasks.items():
        result, groups = (Path(directory) / n for n in ("variance.json", "variance_groups.csv"))
        for path in (result, groups):
            if not path.exists():
                raise FileNotFoundError(f"{path}: no variance result for task {task}")
        try:
            variance = json.loads(result.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{result}: not JSON ({exc})") from None
        try:
            cells = pd.read_csv(groups)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise ValueError(f"{groups}: not a CSV table ({exc})") from None
        missing = {"backbone", "mean", "n"} - set(cells.columns)
        if missing:
            raise ValueError(f"{groups}: no column {', '.join(sorted(missing))}")
        loaded[task] = (variance, cells.to_dict("records"))
    return cross_task(loaded)


def cross_task_files(out: str | Path) -> dict[str, Path]:
    """Format (`md`, `tex`) -> tables/cross_task.<format> under `out`."""
    return {fmt: Path(out) / "tables" / f"cross_task.{fmt}" for fmt in ("md", "tex")}


def write_cross_task(table: Table, files: Mapping[str, str | Path]) -> list[Path]:
    """The cross-task table at `files` (format -> path, as cross_task_files gives)."""
    written = []
    for fmt, text in (("md", table.markdown()), ("tex", table.latex())):
        path = Path(files[fmt])
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
        written.append(path)
    return written
