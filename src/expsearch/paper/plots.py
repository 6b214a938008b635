"""The curves as plain CSV files, one series per file, for `dvc plots show`.

    tables = plot_tables(sources_in("paper/analysis"))   # name -> DataFrame
    write_plots(tables, "paper/plots")   # convergence/<policy>.csv (N, best),
                                         # trajectory.csv (N, value, best, fit)

DVC draws several files as several lines of one plot, but cannot split one
long table by a column; so each policy's curve gets its own file (dvc.yaml
`plots:` names them). The same inputs give byte-identical files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..atomic import atomic_write_text


def plot_tables(sources: Mapping[str, str | Path]) -> dict[str, pd.DataFrame]:
    """Each policy's best-so-far curve and the full table's AP trajectory."""
    tables = {}
    curves = pd.read_csv(sources["baselines_curve.csv"])
    for policy, rows in curves.groupby("policy", sort=True):
        tables[f"convergence/{policy}"] = rows[["N", "best"]].reset_index(drop=True)
    trajectory = pd.read_csv(sources["convergence_curve.csv"])
    full = trajectory[trajectory["part"] == "full"]
    tables["trajectory"] = full[["N", "value", "best", "fit"]].reset_index(drop=True)
    return tables


def write_plots(tables: Mapping[str, pd.DataFrame], out: str | Path) -> list[Path]:
    """Write every table as out/<name>.csv; remove policy curves no longer produced
    (only out/convergence/*.csv: nothing else in `out` is touched)."""
    out = Path(out)
    wanted = {out / f"{name}.csv" for name in tables}
    for stale in sorted((out / "convergence").glob("*.csv")):
        if stale not in wanted:
            stale.unlink()
    for name, table in tables.items():
        path = out / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, table.to_csv(index=False))
    return sorted(wanted)
