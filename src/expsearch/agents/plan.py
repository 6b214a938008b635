"""One round from proposals to a queue: sweep -> dedup -> priority budget.

    plan = plan_round(agents, history, space, round_index=3, seed=0, settings=PlanSettings(...))
    plan.rows      # the proposals table of the round: every candidate with its fate
    plan.queue     # the kept rows, in queue order (the configs to train)
    plan.agent_log # per agent: error, note, tokens, cost, prompt and answer

Each agent proposes `ideas_per_agent` configs with its own rng, seeded by
(seed, round, agent index), so a failing agent does not change what the
others propose and a rerun of the round proposes the same. An agent that
fails is recorded and the round goes on without it. Proposals whose
priority is in `sweep.auto_priorities` get auto-sweep variants (source
`sweep`, parent = the base, one priority lower). Candidates are then
deduplicated in order against finished, queued and running experiments and
against those kept earlier in the round; the survivors are kept by priority
(high, medium, low), taking agents in turn within a priority, up to the
round budget. With a `healer`, every failed experiment that no heal has
answered yet gets a row too: its healed config (source heal, parent the
failure, high priority) or an `unhealable` row with the reason.
Fates: kept, duplicate, near_duplicate, invalid, over_budget, unhealable.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..space import Space
from .dedup import Deduplicator
from .healing import Healer
from .history import History
from .policy import Policy, PolicyError
from .proposal import PRIORITIES, AgentReport, Proposal, Rejection
from .sweeps import SweepSettings, auto_sweep


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
) -> RoundPlan:
    rows: list[dict[str, Any]] = []
    reports: list[AgentReport] = []
    for index, agent in enumerate(agents):
        rng = np.random.default_rng([seed, round_index, index])
        try:
            proposals = agent.propose(history, settings.ideas_per_agent, rng)
        except PolicyError as exc:
            proposals = []
            agent.report.error = agent.report.error or str(exc)
        reports.append(agent.report)
        stem = f"{id_prefix}r{round_index:04d}-{agent.name}"
        for number, proposal in enumerate(proposals):
            base = _row(f"{stem}-{number:02d}", round_index, agent, proposal)
            rows.append(base)
            if proposal.priority in settings.sweep.auto_priorities:
                rows += _sweep_rows(base, proposal, agent, settings.sweep)
        for number, rejection in enumerate(agent.report.rejections):
            rows.append(_rejection_row(f"{stem}-x{number:02d}", round_index, agent, rejection))
    if healer is not None:
        rows += _heal_rows(healer, history, round_index, id_prefix)
    _deduplicate(rows, history, space, settings)
    _apply_budget(rows, settings.budget)
    return RoundPlan(round_index, rows, reports)


def _candidate(row_id: str, round_index: int, agent: Any, **fields: Any) -> dict[str, Any]:
    """A row of the proposals table; `agent` is anything with `name` and
    `policy`; `fields` fill in what the candidate is (the rest stay empty)."""
    return {
        "id": row_id,
        "round": round_index,
        "agent": agent.name,
        "policy": agent.policy,
        "source": None,
        "priority": None,
        "parent_id": None,
        "idea_name": None,
        "rationale": "",
        "config": {},
        "fingerprint": None,
        "settings_overrides": {},
        "fate": None,
        "reason": None,
        "duplicate_of": None,
        "queue_position": None,
        "_config": None,
        **fields,
    }


def _row(row_id: str, round_index: int, agent: Any, proposal: Proposal) -> dict[str, Any]:
    """A candidate with a config, still to be fated by dedup and the budget."""
    return _candidate(
        row_id,
        round_index,
        agent,
        source=proposal.source,
        priority=proposal.priority,
        parent_id=proposal.parent_id,
        idea_name=proposal.idea_name,
        rationale=proposal.rationale,
        config=proposal.config.to_dict(),
        fingerprint=proposal.config.fingerprint,
        settings_overrides=dict(proposal.settings_overrides),
        _config=proposal.config,
    )


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
        out.append(_row(f"{base['id']}-s{number:02d}", base["round"], agent, variant))
    return out


class _HealerAgent:
    name, policy = "healer", "heal"


def _heal_rows(healer: Healer, history: History, round_index: int, id_prefix: str) -> list[dict]:
    """One row per failed experiment that no heal has answered yet: the healed
    config (source heal, high priority), or an `unhealable` row with the reason,
    so a failure is considered once, not again every round."""
    answered = {row.get("parent_id") for row in history.proposals if row.get("source") == "heal"}
    answered |= {exp.parent_id for exp in history.experiments if exp.source == "heal"}
    rows = []
    pending = [exp for exp in history.failed() if exp.id not in answered]
    for number, failed in enumerate(pending):
        row_id = f"{id_prefix}r{round_index:04d}-healer-{number:02d}"
        healed = healer.heal(failed, history)
        if healed is not None:
            rows.append(_row(row_id, round_index, _HealerAgent, healed))
            continue
        why = Rejection("healer", dict(failed.raw_config), healer.log[-1]["outcome"],
                        source="heal", fate="unhealable", parent_id=failed.id)  # fmt: skip
        rows.append(_rejection_row(row_id, round_index, _HealerAgent, why))
    return rows


def _rejection_row(row_id: str, round_index: int, agent: Any, rejection: Rejection) -> dict:
    """A candidate that never became a config; its fate is already decided."""
    idea = rejection.idea
    return _candidate(
        row_id,
        round_index,
        agent,
        source=rejection.source,
        priority=rejection.priority,
        parent_id=rejection.parent_id,
        idea_name=rejection.idea_name,
        rationale=rejection.rationale,
        config=dict(idea) if isinstance(idea, Mapping) else {"<idea>": repr(idea)},
        fate=rejection.fate,
        reason=rejection.reason,
    )


def _deduplicate(rows: list[dict], history: History, space: Space, settings: PlanSettings) -> None:
    """Fate every candidate that has a config: duplicate, near_duplicate, or
    pending (None) for the budget; kept candidates join the comparison set."""
    dedup = Deduplicator(space, settings.jaccard_threshold, settings.continuous_tolerance)
    for exp in history.taken():
        dedup.add(exp.id, exp.config)
    for row in rows:
        if row["fate"] is not None:
            continue
        match = dedup.check(row["_config"])
        if match is None:
            dedup.add(row["id"], row["_config"])
        else:
            row.update(fate=match.fate, reason=match.reason, duplicate_of=match.of)


def _apply_budget(rows: list[dict], budget: int) -> None:
    """Keep pending rows by priority, agents in turn within a priority."""
    order: list[dict] = []
    for priority in PRIORITIES:
        by_agent: dict[str, list[dict]] = {}
        for row in rows:
            if row["fate"] is None and row["priority"] == priority:
                by_agent.setdefault(row["agent"], []).append(row)
        for turn in itertools.zip_longest(*by_agent.values()):
            order += [row for row in turn if row is not None]
    for position, row in enumerate(order):
        if position < budget:
            row.update(fate="kept", queue_position=position)
        else:
            row.update(
                fate="over_budget",
                reason=f"over the round budget of {budget} ({row['priority']} priority)",
            )
    for row in rows:
        row.pop("_config", None)
