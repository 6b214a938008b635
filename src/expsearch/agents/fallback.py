"""A round's unused budget, filled from a fallback policy (params `agents.fallback`).

    warning = fill_unused(fallback, rows, reports, dedup, history, budget=16, round_index=3,
                          seed=0, id_prefix="")

When the agents' candidates leave budget unused (their ideas were invalid,
duplicates, over a campaign's limits, or their calls failed), a round would
train fewer configs than it may, down to none. The fallback (an offline
policy, `rules` by default, built by the registry under the name
`fallback_<policy>`) then proposes as many configs as slots are left; they
are deduplicated like every candidate, kept after the agents' configs and
recorded as such: agent `fallback_<policy>`, the policy's own source, and
an agent-log entry whose note says what it filled. Every round that keeps
less than its budget gets a warning (also when no fallback is set), which
the planner logs and the round's plan.json keeps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .dedup import Deduplicator
from .history import Experiment, History
from .policy import Policy
from .proposal import AgentReport
from .rows import candidate_row


def fill_unused(
    fallback: Policy | None,
    rows: list[dict[str, Any]],
    reports: list[AgentReport],
    dedup: Deduplicator,
    history: History,
    *,
    budget: int,
    round_index: int,
    seed: int,
    id_prefix: str,
    on_error: Callable[[Policy, Exception], None],
) -> str | None:
    """Append the fallback's rows (and its report) when budget is left; the
    warning to log, or None when the agents filled the budget."""
    kept = [row for row in rows if row["fate"] == "kept"]
    unused = budget - len(kept)
    if unused <= 0:
        return None
    said = (
        f"round {round_index}: the agents kept {len(kept)} of the budget of {budget} "
        f"({_shortfall(rows, reports)})"
    )
    if fallback is None:
        return f"{said}; no fallback fills the rest"
    queued = [
        Experiment(row["id"], row["config"], row["_config"], "queued", agent=row["agent"])
        for row in kept
    ]
    seen = History([*history.experiments, *queued], history.proposals)
    rng = np.random.default_rng([seed, round_index, 2**31 - 1])  # no agent's index
    try:
        proposals = fallback.propose(seen, unused, rng)
    except Exception as exc:  # the fallback must not cost the round either
        on_error(fallback, exc)
        proposals = []
    stem = f"{id_prefix}r{round_index:04d}-{fallback.name}"
    filled = 0
    for number, proposal in enumerate(proposals):
        row = candidate_row(f"{stem}-{number:02d}", round_index, fallback, proposal)
        match = dedup.check(proposal.config)
        if match is not None:
            row.update(fate=match.fate, reason=match.reason, duplicate_of=match.of)
        else:
            dedup.add(row["id"], proposal.config)
            row.update(fate="kept", queue_position=len(kept) + filled)
            filled += 1
        rows.append(row)
    fallback.report.note = f"fallback: filled {filled} of {unused} unused budget slots"
    reports.append(fallback.report)
    return f"{said}; {fallback.name} filled {filled} of the {unused} unused slots"


def _shortfall(rows: Sequence[dict[str, Any]], reports: Sequence[AgentReport]) -> str:
    """Why the agents kept so few: their candidates' fates and failed agents."""
    fates = Counter(row["fate"] for row in rows if row["fate"] != "kept")
    parts = [", ".join(f"{count} {fate}" for fate, count in fates.most_common())] if fates else []
    failed = [report.agent for report in reports if report.error]
    if failed:
        parts.append(f"failed: {', '.join(failed)}")
    return "; ".join(parts) or "every candidate was kept"
