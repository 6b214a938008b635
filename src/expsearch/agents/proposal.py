"""What a search policy returns, and what happens to it on the way to the queue.

    Proposal(config, agent="rules", source="rules", priority="high",
             rationale="...", parent_id="r0003-claude-02")
    Rejection(agent="claude", idea={...}, reason="learning_rate: 0.5 is outside the space")
    AgentReport(agent, policy)   # a policy's record of one propose() call: rejections, LLM calls

A Proposal always holds a validated Config. Ideas that never became one
(unparseable, outside the space, a sweep over the limit) are Rejections with
a reason; the round planner turns both into rows of the proposals table,
each with its fate (`FATES`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..space import Config

PRIORITIES = ("high", "medium", "low")
# Where a config came from (the `source` of an experiment row, README "Campaigns";
# `heal` is a config that self-healing re-queued with a remediation).
SOURCES = ("llm", "sweep", "random", "tpe", "rules", "heal", "import")
FATES = ("kept", "duplicate", "near_duplicate", "invalid", "over_budget", "unhealable")


@dataclass(frozen=True)
class Proposal:
    config: Config
    agent: str
    source: str
    priority: str = "medium"
    rationale: str = ""
    parent_id: str | None = None
    idea_name: str | None = None
    # A named change to training settings that is not a point of the space
    # (self-healing's `clip_gradients`); empty for every policy's proposals.
    settings_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.priority not in PRIORITIES:
            raise ValueError(f"priority {self.priority!r} is not one of {list(PRIORITIES)}")
        if self.source not in SOURCES:
            raise ValueError(f"source {self.source!r} is not one of {list(SOURCES)}")


@dataclass(frozen=True)
class Rejection:
    """An idea that never became a config, and why."""

    agent: str
    idea: Any
    reason: str
    source: str = "llm"
    idea_name: str | None = None
    priority: str | None = None
    rationale: str = ""
    fate: str = "invalid"  # or duplicate / over_budget / unhealable, decided where it arose
    parent_id: str | None = None  # e.g. the failure an unhealable row answers


@dataclass
class AgentReport:
    """What one propose() call did besides returning proposals."""

    agent: str
    policy: str
    rejections: list[Rejection] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)  # one per LLM call
    prompt: str | None = None
    answer: str | None = None
    error: str | None = None  # set when the agent failed for the round
    note: str | None = None  # e.g. "stands in for claude: ANTHROPIC_API_KEY not set"

    @property
    def input_tokens(self) -> int:
        return sum(call.get("input_tokens", 0) for call in self.calls)

    @property
    def output_tokens(self) -> int:
        return sum(call.get("output_tokens", 0) for call in self.calls)

    @property
    def cost_usd(self) -> float:
        return sum(call.get("cost_usd", 0.0) for call in self.calls)
