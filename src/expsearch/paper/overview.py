"""Figure 1, the system overview, drawn from the workflow's real rule graph.

    dot_text = rulegraph("Snakefile")        # runs `snakemake --rulegraph` on the workflow
    graph = parse_rulegraph(dot_text)
    figure = draw_overview(graph)              # a matplotlib Figure
    save({"overview": figure}, overview_files("paper"))   # paper/figures/overview.{pdf,png}

No Graphviz is needed: rules are laid out in columns by their longest path to
the final rule, after the round chain's feedback edges (collect of round r ->
propose of round r + 1) are found by the Eades-Lin-Smyth ordering, and drawn
back as dashed arcs. A rule's colour says which stage of the pipeline it
belongs to, and a rule that calls itself (a chain over rounds) gets a loop mark.
A task module's copy of a rule (params.yaml `tasks`: `fleet_split`, ...) has
the colour of the rule it copies, paler, with a dashed border.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from ..tools import tool

STAGES = {  # rule name prefix -> (stage label, colour)
    "synthesize": ("data", "#8dd3c7"), "split": ("data", "#8dd3c7"),
    "decode_frames": ("features", "#bebada"), "extract_features": ("features", "#bebada"),
    "fuse_features": ("features", "#bebada"), "propose": ("campaign", "#fdb462"),
    "shard": ("campaign", "#fdb462"), "collect": ("campaign", "#fdb462"),
    "dataset": ("dataset", "#fb8072"), "analysis": ("analysis", "#80b1d3"),
    "paper": ("paper", "#b3de69"), "overview": ("paper", "#b3de69"),
}  # fmt: skip
OTHER = ("other", "#d9d9d9")


@dataclass(frozen=True)
class RuleGraph:
    rules: tuple[str, ...]  # sorted by name
    edges: tuple[tuple[str, str], ...]  # (upstream, downstream)


def rulegraph(snakefile: str | Path, configfiles: tuple[str | Path, ...] = ()) -> str:
    """`snakemake --rulegraph` of a workflow (run in its folder, read-only: no lock)."""
    snakefile = Path(snakefile).resolve()
    command = [tool("snakemake"), "--rulegraph", "--nolock", "--quiet",
               "--snakefile", str(snakefile)]  # fmt: skip
    if configfiles:
        command += ["--configfile", *map(str, configfiles)]
    run = subprocess.run(command, cwd=snakefile.parent, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"snakemake --rulegraph failed:\n{run.stderr.strip()}")
    return run.stdout


def parse_rulegraph(dot: str, drop: tuple[str, ...] = ("all",)) -> RuleGraph:
    """The rules and their edges from `snakemake --rulegraph` (DOT) text, without
    the target rules in `drop` (`all` only gathers every output: no step of its own)."""
    labels = dict(re.findall(r'^\s*(\d+)\s*\[label\s*=\s*"([^"]+)"', dot, re.M))
    if not labels:
        raise ValueError("no rules found: expected `snakemake --rulegraph` output (DOT)")
    edges = []
    for a, b in re.findall(r"^\s*(\d+)\s*->\s*(\d+)", dot, re.M):
        if a not in labels or b not in labels:
            raise ValueError(f"edge {a} -> {b} names a node the graph does not define")
        edges.append((labels[a], labels[b]))
    edges = [(a, b) for a, b in edges if a not in drop and b not in drop]
    # Snakemake lists nodes and edges in an order that varies between runs:
    # sorted, the same workflow gives the same figure bytes.
    rules = tuple(sorted(r for r in labels.values() if r not in drop))
    if not rules:
        raise ValueError(f"the rule graph holds only {', '.join(sorted(drop))}: nothing to draw")
    return RuleGraph(rules, tuple(sorted(set(edges))))


def feedback_edges(graph: RuleGraph) -> set[tuple[str, str]]:
    """Edges against an Eades-Lin-Smyth order: removing them leaves a DAG."""
    succ = {r: {b for a, b in graph.edges if a == r and b != r} for r in graph.rules}
    pred = {r: {a for a, b in graph.edges if b == r and a != r} for r in graph.rules}
    left, head, tail = list(graph.rules), [], []
    while left:
        changed = True
        while changed:
            changed = False
            for r in list(left):
                if not succ[r] & set(left):
                    tail.insert(0, r)
                    left.remove(r)
                    changed = True
                elif not pred[r] & set(left):
                    head.append(r)
                    left.remove(r)
                    changed = True
        if left:
            live = set(left)
            best = max(left, key=lambda r: len(succ[r] & live) - len(pred[r] & live))
            head.append(best)
            left.remove(best)
    rank = {r: i for i, r in enumerate(head + tail)}
    return {(a, b) for a, b in graph.edges if a != b and rank[a] > rank[b]}


def layout(graph: RuleGraph) -> dict[str, tuple[float, float]]:
    """(column, row) per rule: columns by longest path to a sink over the DAG."""
    back = feedback_edges(graph)
    forward = [(a, b) for a, b in graph.edges if a != b and (a, b) not in back]
    height: dict[str, int] = {}

    def to_sink(rule: str) -> int:
        if rule not in height:
            height[rule] = 1 + max((to_sink(b) for a, b in forward if a == rule), default=-1)
        return height[rule]

    top = max(to_sink(r) for r in graph.rules)
    columns: dict[int, list[str]] = {}
    for rule in graph.rules:
        columns.setdefault(top - height[rule], []).append(rule)
    position: dict[str, tuple[float, float]] = {}
    for col in sorted(columns):
        rules = columns[col]

        def barycentre(rule: str, col: int = col) -> float:
            rows = [position[a][1] for a, b in forward if b == rule and a in position]
            return sum(rows) / len(rows) if rows else 0.0

        rules.sort(key=lambda r: (barycentre(r), graph.rules.index(r)))
        for i, rule in enumerate(rules):
            position[rule] = (float(col), i - (len(rules) - 1) / 2)
    return position


def _stage(rule: str) -> tuple[str, str] | None:
    return next((stage for prefix, stage in STAGES.items() if rule.startswith(prefix)), None)


def module_of(rule: str) -> tuple[str | None, str]:
    """(task, base rule) of a task module's copy of a rule (params.yaml `tasks` run the
    workflow again as modules whose rules are named <task>_<rule>): "fleet_split" ->
    ("fleet", "split"); the workflow's own rules -> (None, rule)."""
    if _stage(rule) is None:
        for i, char in enumerate(rule):
            if char == "_" and _stage(rule[i + 1 :]) is not None:
                return rule[:i], rule[i + 1 :]
    return None, rule


def stage_of(rule: str) -> tuple[str, str]:
    """(stage label, colour) of a rule, a task module's copy by its base rule."""
    return _stage(module_of(rule)[1]) or OTHER


def draw_overview(graph: RuleGraph) -> plt.Figure:
    """Figure 1: the rules as boxes coloured by stage, data flowing left to right."""
    position = layout(graph)
    back = feedback_edges(graph)
    cols = max(x for x, _ in position.values()) + 1
    rows = max(abs(y) for _, y in position.values()) * 2 + 1
    fig, ax = plt.subplots(figsize=(max(6.0, 1.55 * cols), max(2.6, 0.62 * rows + 1.2)))
    dx, w, h = 1.0, 0.84, 0.42
    for a, b in graph.edges:
        if a == b:
            continue
        (xa, ya), (xb, yb) = position[a], position[b]
        style = dict(arrowstyle="-|>", mutation_scale=9, lw=0.8, color="0.45")
        if (a, b) in back:
            style.update(ls="--", color="tab:red", connectionstyle="arc3,rad=-0.45")
            start, end = (xa * dx, ya + h / 2), (xb * dx, yb + h / 2)
        else:  # an edge that skips columns bows out, around the boxes between
            start, end = (xa * dx + w / 2, ya), (xb * dx - w / 2, yb)
            if xb - xa > 1:
                style.update(connectionstyle=f"arc3,rad={0.25 if yb <= ya else -0.25}")
        ax.add_patch(FancyArrowPatch(start, end, **style))
    for rule, (x, y) in position.items():
        label, colour = stage_of(rule)
        copy = module_of(rule)[0] is not None  # a task module's copy: paler, dashed border
        ax.add_patch(FancyBboxPatch((x * dx - w / 2, y - h / 2), w, h, fc=colour, ec="0.3",
                                    lw=0.7, ls="--" if copy else "-", alpha=0.5 if copy else 1.0,
                                    boxstyle="round,pad=0.02"))  # fmt: skip
        name = rule.replace("_", "\n", 1) if len(rule) > 12 else rule
        ax.text(x * dx, y, name, ha="center", va="center", fontsize=6.5)
        if (rule, rule) in graph.edges:
            ax.text(x * dx + w / 2, y + h / 2, "↻", ha="center", va="center", fontsize=9,
                    color="tab:red")  # fmt: skip
    present = {stage_of(rule) for rule in graph.rules}
    seen = {label: colour for label, colour in [*STAGES.values(), OTHER] if (label, colour) in present}
    handles = [plt.Rectangle((0, 0), 1, 1, fc=c, ec="0.3", lw=0.7) for c in seen.values()]
    labels = list(seen)
    tasks = sorted({task for task, _ in map(module_of, graph.rules) if task})
    if tasks:
        handles.append(plt.Rectangle((0, 0), 1, 1, fc="white", ec="0.3", lw=0.7, ls="--"))
        labels.append(f"task module ({', '.join(tasks)}): params.yaml tasks")
    if back or any(a == b for a, b in graph.edges):
        handles.append(plt.Line2D([], [], color="tab:red", ls="--", lw=0.8))
        labels.append("next round (feedback)")
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=4,
              fontsize=7, frameon=False)  # fmt: skip
    ax.set_xlim(-0.6, cols - 0.4)
    ys = [y for _, y in position.values()]
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.9)
    ax.set_axis_off()
    ax.set_title("Figure 1: the workflow's rules (snakemake --rulegraph)", fontsize=9)
    fig.tight_layout()
    return fig


def overview_files(out: str | Path) -> dict[str, Path]:
    return {f"overview_{fmt}": Path(out) / "figures" / f"overview.{fmt}" for fmt in ("pdf", "png")}
