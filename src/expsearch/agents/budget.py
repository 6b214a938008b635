"""The round budget, shared fairly between the proposers of a round.

    apply_budget(rows, budget=16, round_index=3)   # fates every pending row: kept | over_budget

The proposers are the round's agents, in the order given, and the healer
when it has heals. Each gets an equal share of the budget, filled in its
own order: its base ideas (what it proposed itself, an LLM's own sweep
axes included) by priority, high before medium before low, then its
automatic sweep variants by priority. Shares are taken in turns, one
candidate per proposer per turn, so with k proposers each keeps
budget // k and the remainder (budget mod k) goes one each to the first
proposers of the turn order. The turn order starts at proposer
(round mod k), so over a campaign's rounds the remainder goes to each in
turn and no agent is favoured. A proposer with fewer candidates than its
share leaves its turns to the others, so an unused share goes to whoever
still has candidates. Priorities are compared within one proposer's share,
never across proposers: one agent's many high-priority sweep variants
cannot take another agent's share. (The paper's agents each had their own
share; its planner kept high before medium before low across agents, which
let one agent's auto-sweep fill a small round.)
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

from .proposal import PRIORITIES


def own_order(row: dict[str, Any]) -> tuple[bool, int]:
    """A proposer's preference among its candidates: base ideas before sweep
    variants, then by priority (sorting is stable: proposal order breaks ties)."""
    return row["source"] == "sweep", PRIORITIES.index(row["priority"])


def apply_budget(rows: list[dict[str, Any]], budget: int, round_index: int) -> None:
    """Fate every pending row (fate None): kept with its queue position, or over_budget."""
    queues: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["fate"] is None:
            queues.setdefault(row["agent"], []).append(row)
    names = list(queues)
    if not names:
        return
    start = round_index % len(names)
    turns = [sorted(queues[name], key=own_order) for name in names[start:] + names[:start]]
    order = [row for turn in itertools.zip_longest(*turns) for row in turn if row is not None]
    kept: Counter[str] = Counter()
    for position, row in enumerate(order):
        if position < budget:
            row.update(fate="kept", queue_position=position)
            kept[row["agent"]] += 1
        else:
            row.update(
                fate="over_budget",
                reason=f"over the round budget of {budget} ({row['priority']} priority; equal "
                f"shares of {len(names)} proposers, {row['agent']} kept {kept[row['agent']]})",
            )
