"""Write the paper's generated parts from the analyses' results.

    write_paper(results_dir="results/analysis", space=space, out="paper")
    # paper/tables/{top_configs,convergence,anova,notation}.{md,tex},
    # paper/values.tex and paper/values.json

The same results give byte-identical files (no dates, sorted keys), so DVC
sees no change when nothing changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..space import Space
from .tables import all_tables
from .values import paper_values, values_tex

RESULTS = ("variance", "baselines", "convergence", "dynamics", "cost")


def read_results(results_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The analyses' JSON results by family; a missing one is an error naming the file."""
    results = {}
    for family in RESULTS:
        path = Path(results_dir) / f"{family}.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no {family} result (run the analyses first)")
        results[family] = json.loads(path.read_text())
    return results


def write_paper(results: dict[str, dict[str, Any]], space: Space, out: str | Path) -> list[Path]:
    out = Path(out)
    written = []
    for table in all_tables(results, space.summary()):
        for suffix, text in ((".md", table.markdown()), (".tex", table.latex())):
            path = out / "tables" / f"{table.name}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
            written.append(path)
    values = paper_values(results)
    atomic_write_text(out / "values.tex", values_tex(values))
    atomic_write_text(out / "values.json", json.dumps(values, indent=1, sort_keys=True) + "\n")
    return [*written, out / "values.tex", out / "values.json"]
