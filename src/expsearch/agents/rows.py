"""Rows of the proposals table: one per candidate of a round, with its fate.

    row = candidate_row(row_id, round_index, agent, proposal)        # fate None until planned
    row = rejection_row(row_id, round_index, agent, rejection)       # fate already decided

`agent` is anything with `name` and `policy`. A row with a config carries
the validated Config under `_config` while the round is planned (the
planner drops it before the rows are written). Text that may come from an
LLM (idea name, rationale, reason, a non-mapping idea) is clipped here, so
no row holds more than the untrusted.py limits whoever proposed it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .proposal import Proposal, Rejection
from .untrusted import NAME_CHARS, RATIONALE_CHARS, REASON_CHARS, clip


def _row(row_id: str, round_index: int, agent: Any, **fields: Any) -> dict[str, Any]:
    row = {
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
    for key, limit in (("idea_name", NAME_CHARS), ("rationale", RATIONALE_CHARS),
                       ("reason", REASON_CHARS)):  # fmt: skip
        if isinstance(row[key], str):
            row[key] = clip(row[key], limit)
    return row


def candidate_row(row_id: str, round_index: int, agent: Any, proposal: Proposal) -> dict[str, Any]:
    """A candidate with a config, still to be fated by dedup and the budget."""
    return _row(
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


def rejection_row(row_id: str, round_index: int, agent: Any, rejection: Rejection) -> dict:
    """A candidate that never became a config; its fate is already decided."""
    idea = rejection.idea
    return _row(
        row_id,
        round_index,
        agent,
        source=rejection.source,
        priority=rejection.priority,
        parent_id=rejection.parent_id,
        idea_name=rejection.idea_name,
        rationale=rejection.rationale,
        config=dict(idea)
        if isinstance(idea, Mapping)
        else {"<idea>": clip(repr(idea), REASON_CHARS)},
        fate=rejection.fate,
        reason=rejection.reason,
    )
