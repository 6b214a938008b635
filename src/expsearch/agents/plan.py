"""One round from proposals to a queue: sweep -> dedup -> fair budget -> fallback.

    plan = plan_round(agents, history, space, round_index=3, seed=0, settings=PlanSettings(...),
                      healer=healer, fallback=fallback)          # both optional
    plan.rows      # the proposals table of the round: every candidate with its fate
    plan.queue     # the kept rows, in queue order (the configs to train)
    plan.agent_log # per agent: error, note, tokens, cost, prompt and answer
    plan.warnings  # e.g. a round that kept less than its budget

Each agent proposes `ideas_per_agent` configs with its own rng, seeded by
(seed, round, agent index), so a failing agent does not change what the
others propose and a rerun of the round proposes the same. An agent that
fails, with whatever exception (a provider fault, an unreadable answer, a
bug while parsing it), is recorded in the agent log and the round goes on
without it: one agent's answer never costs the round. Proposals whose
priority is in `sweep.auto_priorities` get auto-sweep variants (source
`sweep`, parent = the base, one priority lower). Candidates are then
deduplicated in order against finished, queued and running experiments and
against those kept earlier in the round. The budget is shared between the
agents (and the healer) in equal shares, each filled in its own order, its
base ideas before its sweep variants (budget.py says how, and who gets a
remainder). Budget the agents leave unused is filled from the fallback
policy, when there is one (fallback.py). With a `healer`, every failed
experiment that no heal has answered yet gets a row too: its healed config
(source heal, parent the failure, high priority) or an `unhealable` row
with the reason; a heal left over budget is answered in a later round.
Fates: kept, duplicate, near_duplicate, invalid, over_budget, unhealable.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..space import Space
from .budget import apply_budget
from .dedup import Deduplicator
from .fallback import fill_unused
from .healing import Healer
from .history import History
from .policy import Policy, PolicyError
from .proposal import PRIORITIES, AgentReport, Proposal, Rejection
from .rows import candidate_row, rejection_row
from .sweeps import SweepSettings, auto_sweep
from .untrusted import REASON_CHARS, clip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanSettings:
    ideas_per_agent: int = 4
    budget: int = 16
    sweep: SweepSettings = field(default_factory=SweepSettings)
    jaccard_threshold: float = 0.9
    continuous_tolerance: float | None = 0.05


@dataclass
class RoundPlan:
    round: int
    rows: list[dict[str, Any]]
    reports: list[AgentReport]
    warnings: list[str] = field(default_factory=list)

    @property
    def queue(self) -> list[dict[str, Any]]:
        kept = [row for row in self.rows if row["fate"] == "kept"]
        return sorted(kept, key=lambda row: row["queue_position"])

    @property
    def agent_log(self) -> list[dict[str, Any]]:
        return [
            {
                "round": self.round,
                "agent": report.agent,
                "policy": report.policy,
                "error": report.error,
                "note": report.note,
                "input_tokens": report.input_tokens,
                "output_tokens": report.output_tokens,
                "cost_usd": report.cost_usd,
                "calls": report.calls,
                "prompt": report.prompt,
                "answer": report.answer,
            }
            for report in self.reports
        ]


def plan_round(
    agents: Sequence[Policy],
    history: History,
    space: Space,
    *,
    round_index: int,
    seed: int,
    settings: PlanSettings,
    id_prefix: str = "",
    healer: Healer | None = None,
    fallback: Policy | None = None,
) -> RoundPlan:
    rows: list[dict[str, Any]] = []
    reports: list[AgentReport] = []
    for index, agent in enumerate(agents):
        rng = np.random.default_rng([seed, round_index, index])
        stem = f"{id_prefix}r{round_index:04d}-{agent.name}"
        rows += _agent_rows(agent, history, settings, rng, stem, round_index)
        reports.append(agent.report)
    if healer is not None:
        rows += _heal_rows(healer, history, round_index, id_prefix)
    dedup = Deduplicator(space, settings.jaccard_threshold, settings.continuous_tolerance)
    for exp in history.taken():
        dedup.add(exp.id, exp.config)
    _deduplicate(rows, dedup)
    apply_budget(rows, settings.budget, round_index)
    warning = fill_unused(
        fallback, rows, reports, dedup, history, budget=settings.budget,
        round_index=round_index, seed=seed, id_prefix=id_prefix, on_error=_failed,
    )  # fmt: skip
    if warning:
        log.warning(warning)
    for row in rows:
        row.pop("_config", None)
    return RoundPlan(round_index, rows, reports, [warning] if warning else [])


def _agent_rows(
    agent: Policy,
    history: History,
    settings: PlanSettings,
    rng: np.random.Generator,
    stem: str,
    round_index: int,
) -> list[dict[str, Any]]:
    """The agent's candidates: its proposals, their sweep variants and its
    rejections; whatever it raises fails the agent, not the round."""
    try:
        proposals = agent.propose(history, settings.ideas_per_agent, rng)
    except Exception as exc:
        _failed(agent, exc)
        proposals = []
    try:
        rows = []
        for number, proposal in enumerate(proposals):
            base = candidate_row(f"{stem}-{number:02d}", round_index, agent, proposal)
            rows.append(base)
            if proposal.priority in settings.sweep.auto_priorities:
                rows += _sweep_rows(base, proposal, agent, settings.sweep)
        for number, rejection in enumerate(agent.report.rejections):
            rows.append(rejection_row(f"{stem}-x{number:02d}", round_index, agent, rejection))
        return rows
    except Exception as exc:
        _failed(agent, exc)
        return []


def _failed(agent: Policy, exc: Exception) -> None:
    """Record why `agent` failed the round; an unexpected exception (a bug, not
    a PolicyError) also goes to the log with its traceback."""
    if isinstance(exc, PolicyError):
        message = _text(exc)
    else:
        message = f"{type(exc).__name__}: {_text(exc)}"
        log.error("agent %s failed the round: %s", agent.name, message, exc_info=exc)
    agent.report.error = agent.report.error or clip(message, REASON_CHARS)


def _text(exc: Exception) -> str:
    try:
        return clip(str(exc), REASON_CHARS)
    except Exception:  # a broken __str__ must not fail the round either
        return "(no message)"


def _sweep_rows(base: dict, proposal: Proposal, agent: Policy, sweep: SweepSettings) -> list[dict]:
    lower = PRIORITIES[min(PRIORITIES.index(proposal.priority) + 1, len(PRIORITIES) - 1)]
    out = []
    for number, (label, config) in enumerate(auto_sweep(agent.space, proposal.config, sweep)):
        variant = Proposal(
            config,
            agent=agent.name,
            source="sweep",
            priority=lower,
            rationale=f"auto-sweep of {base['id']}: {label}",
            parent_id=base["id"],
            idea_name=f"{proposal.idea_name} [{label}]" if proposal.idea_name else label,
        )
        out.append(candidate_row(f"{base['id']}-s{number:02d}", base["round"], agent, variant))
    return out


class _HealerAgent:
    name, policy = "healer", "heal"


def _heal_rows(healer: Healer, history: History, round_index: int, id_prefix: str) -> list[dict]:
    """One row per failed experiment that no heal has answered yet: the healed
    config (source heal, high priority), or an `unhealable` row with the reason,
    so a failure is considered once, not again every round. A heal the budget
    left out did not answer its failure: it is tried again next round."""
    answered = {
        row.get("parent_id")
        for row in history.proposals
        if row.get("source") == "heal" and row.get("fate") != "over_budget"
    }
    answered |= {exp.parent_id for exp in history.experiments if exp.source == "heal"}
    rows = []
    pending = [exp for exp in history.failed() if exp.id not in answered]
    for number, failed in enumerate(pending):
        row_id = f"{id_prefix}r{round_index:04d}-healer-{number:02d}"
        healed = healer.heal(failed, history)
        if healed is not None:
            rows.append(candidate_row(row_id, round_index, _HealerAgent, healed))
            continue
        why = Rejection("healer", dict(failed.raw_config), healer.log[-1]["outcome"],
                        source="heal", fate="unhealable", parent_id=failed.id)  # fmt: skip
        rows.append(rejection_row(row_id, round_index, _HealerAgent, why))
    return rows


def _deduplicate(rows: list[dict], dedup: Deduplicator) -> None:
    """Fate every candidate that has a config: duplicate, near_duplicate, or
    pending (None) for the budget; kept candidates join the comparison set."""
    for row in rows:
        if row["fate"] is not None:
            continue
        match = dedup.check(row["_config"])
        if match is None:
            dedup.add(row["id"], row["_config"])
        else:
            row.update(fate=match.fate, reason=match.reason, duplicate_of=match.of)
