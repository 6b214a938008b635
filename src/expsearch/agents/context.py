"""The LLM research agent's prompt: H_{t-1} as text (paper Appendix B and F).

    template = load_template(None)          # the packaged one, or a path to your own
    prompt = build_prompt(template, space, history, agent="claude", n=5, round_index=3,
                          settings=ContextSettings())

The template is Markdown with `{{name}}` placeholders; `PLACEHOLDERS` lists
them. Sections: leaderboard (top-k with AP and key hyperparameters), the
backbone and encoder frequencies of recent configs, summaries of the latest
failures, the config schema (from the space), the diversity budget (a
non-leading backbone and a non-leading encoder), banned configs (recent
failures) and last round's rejections with reasons. An unknown placeholder
in a user's template is an error naming it.

The rejections section echoes text an LLM wrote (idea names, values quoted
in reasons) into the next prompt, so an instruction written as an idea name
would travel forward: it shows only the agent's own ideas (not other
agents' rows, not automatic sweep variants it never wrote), at most
`MAX_REJECTIONS` of them, each name and reason JSON-quoted on one line and
clipped (untrusted.quoted), so none can start a heading or a code fence.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..space import Space
from ..yamlio import dump_yaml
from .edits import replace
from .extract import META_KEYS
from .history import Experiment, History
from .untrusted import ECHO_CHARS, NAME_CHARS, quoted

PLACEHOLDERS = (
    "agent", "round", "n", "n_min", "n_finished", "leaderboard", "leaderboard_size",
    "distribution", "recent_size", "failures", "failures_size", "schema", "diversity",
    "banned", "rejections", "sweep_limit", "example",
)  # fmt: skip
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]+)\s*\}\}")
# Dimensions shown in the leaderboard besides the architecture ones, when present.
KEY_HYPERPARAMETERS = ("loss", "learning_rate", "batch_size", "seq_len", "epochs")
MAX_REJECTIONS = 12


class TemplateError(ValueError):
    """A prompt template that uses a placeholder we do not fill."""


@dataclass(frozen=True)
class ContextSettings:
    leaderboard_top: int = 20
    recent: int = 50
    failures: int = 10
    banned_recent: int = 20
    min_ideas: int = 3


def load_template(path: str | Path | None) -> str:
    if path is None:
        return (
            resources.files("expsearch").joinpath("agents/templates/research_agent.md").read_text()
        )
    template = Path(path).read_text()
    check_template(template, str(path))
    return template


def check_template(template: str, name: str = "template") -> None:
    unknown = sorted(set(_PLACEHOLDER.findall(template)) - set(PLACEHOLDERS))
    if unknown:
        raise TemplateError(
            f"{name}: unknown placeholder(s) {unknown}; the known ones are {list(PLACEHOLDERS)}"
        )


def build_prompt(
    template: str,
    space: Space,
    history: History,
    *,
    agent: str,
    n: int,
    round_index: int,
    settings: ContextSettings,
    sweep_limit: int,
) -> str:
    check_template(template)
    leaders = history.leaderboard(settings.leaderboard_top)
    recent = history.recent(settings.recent)
    failures = history.failures(settings.failures)
    values = {
        "agent": agent,
        "round": round_index,
        "n": n,
        "n_min": min(settings.min_ideas, n),
        "n_finished": len(history.finished()),
        "leaderboard": leaderboard_table(space, leaders),
        "leaderboard_size": settings.leaderboard_top,
        "distribution": distribution(recent),
        "recent_size": settings.recent,
        "failures": failure_summaries(failures),
        "failures_size": settings.failures,
        "schema": schema_text(space),
        "diversity": diversity_budget(space, leaders),
        "banned": banned_configs(history.failures(settings.banned_recent)),
        "rejections": rejections(history.last_round_rejections(), agent),
        "sweep_limit": sweep_limit,
        "example": example(space, leaders),
    }
    return _PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), template)


def _shown_keys(space: Space) -> list[str]:
    arch = [dim.name for dim in space.categorical if dim.group == "arch" and dim.cells]
    return arch + [key for key in KEY_HYPERPARAMETERS if key in space.dimensions]


def leaderboard_table(space: Space, leaders: list[Experiment]) -> str:
    if not leaders:
        return "(no finished experiments yet)"
    keys = _shown_keys(space)
    lines = [
        "| rank | id | val AP | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 3) + "|",
    ]
    for rank, exp in enumerate(leaders, start=1):
        cells = [_fmt(exp.raw_config.get(key)) for key in keys]
        lines.append(f"| {rank} | {exp.id} | {exp.val_ap:.4f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def distribution(recent: list[Experiment]) -> str:
    if not recent:
        return "(none yet)"
    lines = []
    for key in ("backbone", "encoder"):
        counts = Counter(str(exp.raw_config.get(key)) for exp in recent)
        shares = ", ".join(
            f"{value} {count} ({count / len(recent):.0%})" for value, count in counts.most_common()
        )
        lines.append(f"- {key}: {shares}")
    return "\n".join(lines)


def failure_summaries(failures: list[Experiment]) -> str:
    if not failures:
        return "(none)"
    lines = []
    for exp in failures:
        error = " ".join((exp.error or "no message").split())[:200]
        arch = "/".join(str(exp.raw_config.get(key)) for key in ("backbone", "encoder"))
        lines.append(f"- {exp.id} ({arch}): {exp.error_class or 'unknown'}: {error}")
    return "\n".join(lines)


def schema_text(space: Space) -> str:
    lines = []
    for dim in space.dimensions.values():
        when = f" (only when {dim.describe_when()})" if dim.when else ""
        lines.append(f"- {dim.name}: {dim.domain()}{when}")
    lines.append(f"- meta keys (not dimensions): {', '.join(META_KEYS)}")
    return "\n".join(lines)


def diversity_budget(space: Space, leaders: list[Experiment]) -> str:
    if not leaders:
        return "- Cover different backbones and encoders: nothing has finished yet."
    leader = leaders[0].raw_config
    rules = [
        f"- At least 1 idea must use a non-{leader[key]} {key}"
        for key in ("backbone", "encoder")
        if key in leader
    ]
    return "\n".join(rules)


def banned_configs(failed: list[Experiment]) -> str:
    if not failed:
        return "(none)"
    return "\n".join(
        f"- {exp.id} (fingerprint {exp.fingerprint or 'n/a'}): "
        + ", ".join(f"{key}={_fmt(value)}" for key, value in sorted(exp.raw_config.items()))
        for exp in failed
    )


def rejections(rows: list[Mapping[str, Any]], agent: str) -> str:
    """`agent`'s own rejected ideas, names and reasons quoted (see the module doc)."""
    mine = [row for row in rows if row.get("agent") == agent and row.get("source") != "sweep"]
    if not mine:
        return "(none)"
    lines = [
        f"- {quoted(row.get('idea_name') or row.get('id') or 'idea', NAME_CHARS)}: "
        f"{row.get('fate')}: {quoted(row.get('reason') or '', ECHO_CHARS)}"
        for row in mine[:MAX_REJECTIONS]
    ]
    if len(mine) > MAX_REJECTIONS:
        lines.append(f"- ... and {len(mine) - MAX_REJECTIONS} more")
    return "\n".join(lines)


def example(space: Space, leaders: list[Experiment]) -> str:
    base = leaders[0].config if leaders and leaders[0].config else replace(space, {}, {})
    return "\n".join(f"  {line}" for line in dump_yaml(base.to_dict()).splitlines())


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
