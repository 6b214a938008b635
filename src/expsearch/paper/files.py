"""Where the paper's figures go: names only, so the workflow can declare them cheaply.

    figure_files("paper")   # {"convergence_pdf": paper/figures/convergence.pdf, ...}

Kept apart from `paper.figures` because the workflow builds its DAG from these
names on every Snakemake start (on a SLURM cluster, twice per job), and the
figures module imports matplotlib, half a second that drawing needs and
naming does not.
"""

from __future__ import annotations

from pathlib import Path

FIGURES = ("convergence", "dynamics", "trajectory", "heatmap")


def figure_files(out: str | Path) -> dict[str, Path]:
    """Output key (`convergence_pdf`, ...) -> out/figures/<name>.<format>."""
    return {f"{name}_{fmt}": Path(out) / "figures" / f"{name}.{fmt}"
            for name in FIGURES for fmt in ("pdf", "png")}  # fmt: skip
