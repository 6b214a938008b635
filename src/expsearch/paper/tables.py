"""The paper's Tables 1-4, from the analyses' results, as Markdown and LaTeX.

    variance = json.load(open("results/analysis/variance.json"))
    table = top_configs(variance)            # Table 1; also convergence_by_policy(baselines),
    table.markdown(); table.latex()          # anova_rows(variance), notation(space.summary())
    cross_task({"nexar": (variance, groups), "fleet": (...)})   # Section 5.4, one row per task

Every cell is computed from the result it names; a result whose `status` is
not `ok` gives a table with no rows and the reason as its note, never an
invented number. The LaTeX is a booktabs `table` with a caption and label,
text escaped, so the same bytes come from the same results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DASH, TIMES, GAMMA, IN = "\u2013", "\u00d7", "\u03b3", "\u2208"
TEX_ESCAPES = {
    DASH: "--", TIMES: r"$\times$", GAMMA: r"$\gamma$", IN: r"$\in$",
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}  # fmt: skip
POLICIES = {  # the baselines' policy keys, in the paper's order, with their names
    "search": ("the search (agents)", r"search ($\pi$)"),
    "rand_pool": ("random order of its pool", r"$\pi_{\mathrm{rand}}^{\mathrm{pool}}$"),
    "tpe_pool": ("TPE on its pool", r"$\pi_{\mathrm{TPE}}$"),
    "rand_gen": ("random from the space", r"$\pi_{\mathrm{rand}}^{\mathrm{gen}}$"),
    "oracle": ("oracle (best first)", "oracle"),
}


@dataclass(frozen=True)
class Marked:
    """A cell written differently in each format (LaTeX markup is not escaped)."""

    markdown: str
    latex: str


@dataclass(frozen=True)
class Column:
    markdown: str
    latex: str
    align: str = "r"


@dataclass(frozen=True)
class Table:
    name: str
    caption: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[str | Marked, ...], ...]
    notes: tuple[str, ...] = ()

    def markdown(self) -> str:
        lines = [f"**{self.caption}**", ""]
        lines.append("| " + " | ".join(c.markdown for c in self.columns) + " |")
        lines.append(
            "|" + "|".join("---:" if c.align == "r" else "---" for c in self.columns) + "|"
        )
        lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in self.rows]
        lines += [""] + [f"_{note}_" for note in self.notes] if self.notes else []
        return "\n".join(lines) + "\n"

    def latex(self) -> str:
        spec = "".join(c.align for c in self.columns)
        lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{escape(self.caption)}}}",
                 rf"\label{{tab:{self.name}}}", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
                 " & ".join(c.latex for c in self.columns) + r" \\", r"\midrule"]  # fmt: skip
        lines += [" & ".join(_tex(cell) for cell in row) + r" \\" for row in self.rows]
        lines += [r"\bottomrule", r"\end{tabular}"]
        lines += [rf"\par\smallskip{{\footnotesize {escape(note)}}}" for note in self.notes]
        return "\n".join([*lines, r"\end{table}"]) + "\n"


def _md(cell: str | Marked) -> str:
    return cell.markdown if isinstance(cell, Marked) else cell


def _tex(cell: str | Marked) -> str:
    return cell.latex if isinstance(cell, Marked) else escape(cell)


def escape(text: str) -> str:
    return "".join(TEX_ESCAPES.get(char, char) for char in str(text))


def number(value: Any, digits: int = 3) -> str:
    """A metric cell: fixed digits; missing or non-finite is an en dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return DASH
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def p_value(value: Any) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _unavailable(result: Mapping[str, Any]) -> tuple[str, ...]:
    if result.get("status") == "ok":
        return ()
    return (f"Not available: {result.get('reason', result.get('status', 'no result'))}",)


def top_configs(variance: Mapping[str, Any]) -> Table:
    """Table 1: the top-k configurations by the analysed metric, with their source."""
    top = variance.get("top_configs", {"status": "missing", "reason": "no top_configs"})
    metric = top.get("metric", variance.get("metric", "val_ap"))
    rows = tuple(
        (
            str(c["rank"]), c.get("backbone", DASH), c.get("encoder", DASH),
            c.get("pooling", DASH), _loss(c), number(c.get("val_ap")),
            number(c.get("test_ap")), str(c.get("source") or c.get("agent") or DASH),
        )
        for c in top.get("configs", []) if top.get("status") == "ok"
    )  # fmt: skip
    columns = (Column("rank", "Rank"), Column("backbone", "Backbone", "l"),
               Column("encoder", "Encoder", "l"), Column("pooling", "Pooling", "l"),
               Column("loss", "Loss", "l"), Column("val AP", "Val AP"),
               Column("test AP", "Test AP"), Column("source", "Source", "l"))  # fmt: skip
    caption = f"Top-{top.get('k', len(rows))} configurations by {metric}, with their source."
    return Table("top_configs", caption, columns, rows, _unavailable(top))


def _loss(config: Mapping[str, Any]) -> str:
    loss = str(config.get("loss", DASH))
    if loss == "focal" and config.get("focal_gamma") is not None:
        return f"focal {GAMMA}={config['focal_gamma']:.1f}"
    return loss


def convergence_by_policy(baselines: Mapping[str, Any]) -> Table:
    """Table 2: AP@N, and c and R² of the fitted power law, per policy."""
    policies = baselines.get("policies", {}) if baselines.get("status") == "ok" else {}
    at_n = [n for n in baselines.get("at_n", [])
            if any((p.get("ap_at") or {}).get(str(n)) is not None for p in policies.values())]  # fmt: skip
    rows = []
    for key, (label, tex) in POLICIES.items():
        policy = policies.get(key)
        if not policy or policy.get("status") != "ok":
            continue
        fit = policy.get("fit", {})
        ok = fit.get("status") == "ok"
        rows.append(
            (Marked(label, tex), number(policy.get("n")),
             *(number(policy["ap_at"].get(str(n))) for n in at_n),
             number(fit.get("c")) if ok else DASH, number(fit.get("r2")) if ok else DASH)
        )  # fmt: skip
    columns = (Column("policy", "Policy", "l"), Column("N", "$N$"),
               *(Column(f"AP@{n}", f"AP@{n}") for n in at_n),
               Column("c", "$c$"), Column("R²", "$R^2$"))  # fmt: skip
    caption = f"Convergence by policy on {baselines.get('metric', 'val_ap')}."
    notes = _unavailable(baselines) or ("AP@N: best value among the first N experiments.",)
    return Table("convergence", caption, columns, tuple(rows), notes)


def anova_rows(variance: Mapping[str, Any]) -> Table:
    """Table 3: the ANOVA decomposition, full table and the clean subset."""
    rows = []
    for label, source in (("full", variance), ("subset", variance.get("subset") or {})):
        if source.get("status") != "ok":
            continue
        one = source.get("anova", {})
        if one.get("status") == "ok":
            groups = f" {TIMES} ".join(one.get("factors", []))
            rows.append((f"{groups}, one-way ({label})", number(one["n"]),
                         f"{one['df_between']}, {one['df_within']}", number(one["F"], 1),
                         p_value(one["p"]), number(one["eta_squared"], 2)))  # fmt: skip
        two = source.get("two_way_anova", {})
        if two.get("status") == "ok":
            for term, stats in two["terms"].items():
                if term == "residual":
                    continue
                name = term.replace(":", f" {TIMES} ") + (" interaction" if ":" in term else "")
                rows.append((f"{name}, two-way ({label})", number(two["n"]),
                             f"{stats['df']}, {two['terms']['residual']['df']}",
                             number(stats["F"], 1), p_value(stats["p"]),
                             number(stats["share"], 2)))  # fmt: skip
    columns = (Column("source of variance", "Source", "l"), Column("n", "$n$"),
               Column("df", "df"), Column("F", "$F$"), Column("p", "$p$"),
               Column("η² / share", r"$\eta^2$ / share"))  # fmt: skip
    caption = f"ANOVA decomposition of {variance.get('metric', 'val_ap')} variance."
    return Table("anova", caption, columns, tuple(rows), _unavailable(variance))


def notation(summary: Mapping[str, Any]) -> Table:
    """Table 4: the notation of the configuration space, from its definition."""
    rows = []
    for name, dim in summary["dimensions"].items():
        if dim["type"] == "categorical":
            domain = "{" + ", ".join(str(v) for v in dim["values"]) + "}"
        else:
            domain = f"[{dim['low']:g}, {dim['high']:g}]" + (" (log)" if dim["log"] else "")
        when = "; ".join(
            f"{k} {IN} {{{', '.join(map(str, v))}}}" for k, v in dim.get("when", {}).items()
        )
        counted = "yes" if dim["type"] == "categorical" and dim["cells"] else "no"
        rows.append((f"C_{dim['group']}", name, domain, counted, when or DASH))
    columns = (Column("subspace", "Subspace", "l"), Column("dimension", "Dimension", "l"),
               Column("domain", "Domain", "l"), Column("in cells", "In cells", "l"),
               Column("exists when", "Exists when", "l"))  # fmt: skip
    groups = ", ".join(f"C_{g} {info['cells']:,}" for g, info in summary["groups"].items())
    caption = f"The configuration space C: {summary['discrete_cells']:,} discrete cells ({groups})."
    return Table("notation", caption, columns, tuple(rows))


def backbone_means(groups: Sequence[Mapping[str, Any]]) -> dict[str, tuple[float, int]]:
    """Mean AP and runs per backbone, from the backbone x encoder cells (mean, n)."""
    totals: dict[str, list[float]] = {}
    for cell in groups:
        total = totals.setdefault(str(cell["backbone"]), [0.0, 0])
        total[0] += float(cell["mean"]) * int(cell["n"])
        total[1] += int(cell["n"])
    return {name: (s / n, int(n)) for name, (s, n) in sorted(totals.items()) if n}


def cross_task(
    tasks: Mapping[str, tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]],
) -> Table:
    """Section 5.4: per task, the two-way ANOVA shares (backbone, encoder, their
    interaction, and their sum) and the winning backbone by mean AP."""
    rows, notes = [], []
    for task, (variance, groups) in tasks.items():
        two = variance.get("two_way_anova", {})
        if two.get("status") != "ok":
            notes.append(f"{task}: {two.get('reason', 'no two-way ANOVA')}")
            continue
        terms = two["terms"]
        missing = {"backbone", "encoder"} - set(terms)
        if missing:
            raise ValueError(f"{task}: the two-way ANOVA has no {', '.join(sorted(missing))} "
                             f"term (its factors: {two.get('factors')})")  # fmt: skip
        share = {k: terms[k].get("share") for k in ("backbone", "encoder")}
        share["interaction"] = terms.get("backbone:encoder", {}).get("share")
        known = [v for v in share.values() if v is not None]
        means = backbone_means(groups)
        winner = max(means, key=lambda b: means[b][0]) if means else DASH
        rows.append((
            task, number(two["n"]),
            f"{number(share['backbone'], 2)} (F {number(terms['backbone']['F'], 1)}, "
            f"p {p_value(terms['backbone']['p'])})",
            f"{number(share['encoder'], 2)} (F {number(terms['encoder']['F'], 1)}, "
            f"p {p_value(terms['encoder']['p'])})",
            number(share["interaction"], 2), number(sum(known), 2) if known else DASH,
            f"{winner} ({number(means[winner][0])})" if means else DASH,
        ))  # fmt: skip
    columns = (Column("task", "Task", "l"), Column("n", "$n$"),
               Column("backbone share", "Backbone", "l"), Column("encoder share", "Encoder", "l"),
               Column("interaction share", "Interaction"), Column("architecture", "Architecture"),
               Column("winning backbone (mean AP)", "Winning backbone (mean AP)", "l"))  # fmt: skip
    metric = next((v.get("metric") for v, _ in tasks.values() if v.get("metric")), "val_ap")
    caption = f"Cross-task check: two-way ANOVA of {metric} (shares of variance) per task."
    return Table("cross_task", caption, columns, tuple(rows), tuple(notes))


def all_tables(
    results: Mapping[str, Mapping[str, Any]], space_summary: Mapping[str, Any]
) -> Sequence[Table]:
    return (
        top_configs(results["variance"]),
        convergence_by_policy(results["baselines"]),
        anova_rows(results["variance"]),
        notation(space_summary),
    )
