"""The paper's Figures 2-5 from the analyses' results, as PDF and PNG with deterministic bytes.

    figures = draw_figures(sources_in("results/analysis"))   # {name: matplotlib Figure}
    save(figures, figure_files("paper"))   # paper/figures/<name>.pdf and .png

`sources` maps each input's file name ("convergence.json", ...) to its path, so
a workflow passes exactly the files its rule declares.

- `convergence` (Figure 2): cumulative best AP against N, full table and the
  subset side by side, the fitted power law (bounded), the pool baselines and
  the random campaign on the full panel, events (rounds, code-version
  changes) as dashed lines;
- `dynamics` (Figure 3): entropy H, H_arch, H_train over experiments for the
  combined system and each agent, and the agents' Jensen-Shannon divergence
  per window (windows where both agents ran at least MIN_JSD_RUNS experiments);
- `trajectory` (Figure 4): every experiment's AP in completion order with the
  running best and the events;
- `heatmap` (Figure 5): mean AP per backbone x encoder cell with at least
  `min_runs` finished runs (others blank), the count in each cell.

Every series is read from the analyses' JSON and CSV tables (`expsearch
analyze all --tables`, or `make run`'s results/analysis); nothing is
recomputed here. A panel whose analysis reported insufficient data says so
in the panel. PDF and PNG carry no creation date, so the same inputs give
the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..atomic import atomic_open
from .files import figure_files  # noqa: F401  (re-exported: callers draw and save with one import)

BASELINES = {"rand_pool": "random order of the pool", "tpe_pool": "TPE on the pool",
             "rand_gen": "random campaign", "oracle": "oracle"}  # fmt: skip
EVENT_STYLE = {"round": ("0.75", ":"), "code_version": ("tab:red", "--")}
METADATA = {
    ".pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": "expsearch"},
    ".png": {"Software": None},
}


MIN_JSD_RUNS = 5  # experiments of each agent in a window before its JSD is drawn
INPUTS = ("convergence.json", "convergence_curve.csv", "baselines_curve.csv", "dynamics.json",
          "dynamics_series.csv", "dynamics_jsd.csv", "variance_groups.csv")  # fmt: skip


def sources_in(directory: str | Path) -> dict[str, Path]:
    """The figures' inputs in one folder (as `expsearch analyze all --tables` writes them)."""
    return {name: Path(directory) / name for name in INPUTS}


def _read(sources: Mapping[str, str | Path], name: str) -> Any:
    if name not in sources:
        raise FileNotFoundError(f"{name}: not among the figures' inputs {sorted(sources)}")
    path = Path(sources[name])
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing (run the analyses with their tables first)")
    return json.loads(path.read_text()) if path.suffix == ".json" else pd.read_csv(path)


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", wrap=True,
            fontsize=8, color="0.4")  # fmt: skip


def _events(ax, events: list[dict[str, Any]]) -> None:
    """Rounds and code-version changes, at the N where each began, as vertical lines."""
    for event in events:
        color, style = EVENT_STYLE.get(event["kind"], ("0.5", "--"))
        ax.axvline(event["N"], color=color, linestyle=style, linewidth=0.8, zorder=0)


def convergence_figure(sources: Mapping[str, str | Path]) -> plt.Figure:
    result = _read(sources, "convergence.json")
    curve = _read(sources, "convergence_curve.csv")
    baselines = _read(sources, "baselines_curve.csv")
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True, layout="constrained")
    for ax, part, title in zip(axes, ("full", "subset"), ("full table", "subset"), strict=True):
        ax.set_title(title, fontsize=9)
        section = result.get(part) or {}
        rows = curve[curve["part"] == part]
        if section.get("status") != "ok" or rows.empty:
            _note(ax, f"insufficient data: {section.get('reason', 'no curve')}")
            continue
        ax.step(rows["N"], rows["best"], where="post", color="k", label="search: best so far")
        fit = section.get("bounded", {})
        if fit.get("status") == "ok":
            label = f"a - b N^-c: c = {fit['c']:.2f}, R² = {fit['r2']:.2f}"
            ax.plot(rows["N"], rows["fit"], color="tab:blue", label=label)
        if part == "full":
            for policy, label in BASELINES.items():
                series = baselines[baselines["policy"] == policy]
                if not series.empty:
                    ax.plot(series["N"], series["best"], linewidth=1, label=label)
        _events(ax, section.get("events", []))
        ax.set_xscale("log")
        ax.set_xlabel("experiments N")
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel(f"best {result.get('metric', 'val_ap')} so far")
    return figure


def dynamics_figure(sources: Mapping[str, str | Path]) -> plt.Figure:
    result = _read(sources, "dynamics.json")
    series = _read(sources, "dynamics_series.csv")
    jsd = _read(sources, "dynamics_jsd.csv")
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    if result.get("status") != "ok" or series.empty:
        _note(left, f"insufficient data: {result.get('reason', 'no series')}")
    for k, ((scope, agent), rows) in enumerate(series.groupby(["scope", "agent"], sort=True)):
        width, color = (1.6, "k") if scope == "combined" else (0.9, f"C{k}")
        for column, style in (("H", "-"), ("H_arch", "--"), ("H_train", ":")):
            left.plot(rows["t"], rows[column], style, linewidth=width, color=color,
                      label=f"{column} {agent}")  # fmt: skip
    left.set_xlabel("experiments t")
    left.set_ylabel("entropy (nats)")
    left.legend(fontsize=6, ncol=2)
    valid = jsd.dropna(subset=["jsd_all"]) if "jsd_all" in jsd else jsd.iloc[0:0]
    # JSD between a handful of draws is mostly the disjointness of tiny samples
    # (ln 2 at one draw each): only windows where both agents ran enough are drawn.
    valid = valid[(valid["n_a"] >= MIN_JSD_RUNS) & (valid["n_b"] >= MIN_JSD_RUNS)]
    if valid.empty:
        _note(right, f"no window where two agents each ran {MIN_JSD_RUNS}+ experiments: no JSD")
    for (a, b), rows in valid.groupby(["agent_a", "agent_b"], sort=True):
        right.plot(rows["t_end"], rows["jsd_all"], label=f"{a} vs {b}")
        right.plot(rows["t_end"], rows["jsd_arch"], "--", label=f"{a} vs {b} (arch)")
    right.set_xlabel("window end t")
    right.set_ylabel("Jensen-Shannon divergence")
    if not valid.empty:
        right.legend(fontsize=7)
    return figure


def trajectory_figure(sources: Mapping[str, str | Path]) -> plt.Figure:
    result = _read(sources, "convergence.json")
    curve = _read(sources, "convergence_curve.csv")
    rows = curve[curve["part"] == "full"]
    figure, ax = plt.subplots(figsize=(9, 3.2), layout="constrained")
    if rows.empty:
        _note(ax, "no finished experiments")
        return figure
    ax.scatter(rows["N"], rows["value"], s=8, color="tab:gray", label="experiment")
    ax.step(rows["N"], rows["best"], where="post", color="k", label="best so far")
    _events(ax, (result.get("full") or {}).get("events", []))
    ax.set_xlabel("experiments, in completion order")
    ax.set_ylabel(result.get("metric", "val_ap"))
    ax.legend(fontsize=7, loc="lower right")
    return figure


def heatmap_figure(sources: Mapping[str, str | Path], min_runs: int = 5) -> plt.Figure:
    groups = _read(sources, "variance_groups.csv")
    figure, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
    kept = groups[groups["n"] >= min_runs]
    if kept.empty:
        _note(ax, f"no backbone x encoder cell has {min_runs} or more finished runs")
        return figure
    table = groups.pivot(index="backbone", columns="encoder", values="mean").sort_index()
    counts = groups.pivot(index="backbone", columns="encoder", values="n").reindex_like(table)
    shown = table.where(counts >= min_runs)
    image = ax.imshow(shown.to_numpy(dtype=float), cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(table.columns)), table.columns, rotation=30, fontsize=8)
    ax.set_yticks(range(len(table.index)), table.index, fontsize=8)
    low, high = np.nanmin(shown.to_numpy(dtype=float)), np.nanmax(shown.to_numpy(dtype=float))
    for (i, j), n in np.ndenumerate(counts.to_numpy(dtype=float)):
        if n >= min_runs:
            value = shown.iat[i, j]
            bright = high > low and (value - low) / (high - low) > 0.6  # viridis is light there
            ax.text(j, i, f"{value:.3f}\nn={int(n)}", ha="center", va="center", fontsize=6,
                    color="k" if bright else "w")  # fmt: skip
    figure.colorbar(image, ax=ax, label=f"mean AP (cells with n >= {min_runs})")
    return figure


def draw_figures(sources: Mapping[str, str | Path], *, min_runs: int = 5) -> dict[str, plt.Figure]:
    return {
        "convergence": convergence_figure(sources),
        "dynamics": dynamics_figure(sources),
        "trajectory": trajectory_figure(sources),
        "heatmap": heatmap_figure(sources, min_runs),
    }


def save(figures: dict[str, plt.Figure], files: Mapping[str, str | Path]) -> list[Path]:
    """Each figure as PDF and PNG at files[f"{name}_pdf"] and files[f"{name}_png"],
    written atomically, without dates."""
    written = []
    for name, figure in figures.items():
        for suffix, metadata in METADATA.items():
            path = Path(files[f"{name}_{suffix[1:]}"])
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_open(path, "wb") as handle:
                figure.savefig(handle, format=suffix[1:], metadata=metadata, dpi=150)
            written.append(path)
        plt.close(figure)
    return written
