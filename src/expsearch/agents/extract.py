"""From an LLM's answer to validated ideas, tolerantly, one idea at a time.

    ideas = ideas_from_answer(answer_text)       # list of raw ideas, or ExtractionError
    parsed = parse_idea(raw, space, history, sweep_limit=8)
    parsed.variants     # [(config, label)], one per sweep variant
    parsed.rejection    # the reason it was rejected, or None

The answer may wrap its YAML in a code fence, surround it with prose, or
give a mapping with an `ideas:` list. Each idea is a mapping of dimension
values plus the meta keys `idea_name`, `priority` (high | medium | low),
`rationale` and `parent` (an experiment id: dimensions the idea leaves out
are taken from that experiment's config). An idea that is not a mapping,
names an unknown parent, or is not a point of the space is rejected with
its reason; the others go on. The answer is untrusted (untrusted.py): an
answer over the size limit, or whose YAML uses aliases or too many or too
deeply nested values, is refused whole with a short reason; idea names and
rationales are clipped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..space import Config, ConfigError, Space
from ..yamlio import UntrustedYamlError, YamlError, load_untrusted_yaml
from .history import History
from .proposal import PRIORITIES
from .sweeps import SweepError, expand_axes
from .untrusted import (
    MAX_ANSWER_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    NAME_CHARS,
    RATIONALE_CHARS,
    clip,
)

META_KEYS = ("idea_name", "priority", "rationale", "parent")
_FENCE = re.compile(r"```[ \t]*(?:ya?ml|YAML)?[ \t]*\n(.*?)```", re.DOTALL)
_YAML_START = re.compile(r"^(?:- |ideas:)", re.MULTILINE)


class ExtractionError(ValueError):
    """No list of ideas could be read from an answer."""


def ideas_from_answer(text: str | None) -> list[Any]:
    """The raw ideas in `text`: the first fenced block, the whole text, or the
    text from its first YAML list item, whichever parses to a list of ideas."""
    if not text or not text.strip():
        raise ExtractionError("the answer is empty")
    size = len(text.encode("utf-8", "replace"))
    if size > MAX_ANSWER_BYTES:
        raise ExtractionError(f"answer refused: {size} bytes, over the limit of {MAX_ANSWER_BYTES}")
    candidates = [block for block in _FENCE.findall(text)]
    candidates.append(text)
    start = _YAML_START.search(text)
    if start:
        candidates.append(text[start.start() :])
    problems, refusals = [], []
    for candidate in candidates:
        try:
            data = load_untrusted_yaml(
                candidate, name="answer", max_nodes=MAX_YAML_NODES, max_depth=MAX_YAML_DEPTH
            )
        except UntrustedYamlError as exc:
            refusals.append(str(exc))
            continue
        except YamlError as exc:
            problems.append(str(exc).splitlines()[0])
            continue
        if isinstance(data, Mapping) and isinstance(data.get("ideas"), list):
            data = data["ideas"]
        if isinstance(data, Mapping) and any(key not in META_KEYS for key in data):
            data = [data]  # a single idea written as a mapping
        if isinstance(data, list) and data:
            return data
    if refusals:
        raise ExtractionError(f"answer refused: {refusals[0]}")
    detail = f" ({clip(problems[0], 200)})" if problems else ""
    snippet = " ".join(text.split())[:120]
    raise ExtractionError(f"no YAML list of ideas in the answer{detail}: {snippet!r}")


@dataclass
class ParsedIdea:
    raw: Any
    idea_name: str | None = None
    priority: str = "medium"
    rationale: str = ""
    parent_id: str | None = None
    variants: list[tuple[Config, str]] = field(default_factory=list)
    rejection: str | None = None


def parse_idea(raw: Any, space: Space, history: History, sweep_limit: int) -> ParsedIdea:
    if not isinstance(raw, Mapping):
        return ParsedIdea(raw, rejection=f"an idea must be a mapping, got {type(raw).__name__}")
    idea = ParsedIdea(
        raw,
        idea_name=_text(raw.get("idea_name"), NAME_CHARS),
        rationale=_text(raw.get("rationale"), RATIONALE_CHARS) or "",
        parent_id=_text(raw.get("parent"), NAME_CHARS),
    )
    priority = str(raw.get("priority") or "medium").strip().lower()
    if priority not in PRIORITIES:
        shown = clip(repr(raw.get("priority")), NAME_CHARS)
        idea.rejection = f"priority: {shown} is not one of {list(PRIORITIES)}"
        return idea
    idea.priority = priority
    values = {key: value for key, value in raw.items() if key not in META_KEYS}
    if idea.parent_id is not None:
        parent = history.by_id(idea.parent_id)
        if parent is None:
            idea.rejection = f"parent: no experiment {idea.parent_id!r} in the history"
            return idea
        values = {**parent.raw_config, **values}
        # The idea's controller values decide which conditional keys exist: an
        # inherited focal_gamma must not survive a switch to bce.
        values = {
            key: value
            for key, value in values.items()
            if key in raw or key not in space.dimensions or space.dimensions[key].applies(values)
        }
    try:
        expanded = expand_axes(values, sweep_limit)
    except SweepError as exc:
        idea.rejection = f"sweep: {exc}"
        return idea
    axes = [key for key, value in values.items() if isinstance(value, list)]
    for variant in expanded:
        try:
            config = space.validate(variant)
        except ConfigError as exc:
            idea.rejection = str(exc)
            idea.variants = []
            return idea
        label = ", ".join(f"{key}={variant[key]}" for key in axes)
        idea.variants.append((config, label))
    return idea


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = clip(str(value).strip(), limit)
    return text or None
