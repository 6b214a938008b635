"""The append-only ledger of a campaign: its rounds' files, read back.

    rows, plans = read_ledger(plan_files, experiments_files)   # in the order given
    history = ledger_history(settings, 3, plan_files, experiments_files)  # what round 3 sees

Round r's ledger entry is its plan.json (every candidate with its fate, the
agent log, the shards) and its experiments.jsonl (one row per trained
config). Both are immutable once the round is collected. The files come
from the caller (a rule's declared inputs, built by layout.py); every
document names its campaign and round, which is what is checked here, so a
missing or misplaced file is an error that names it, never a silent gap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..agents.history import History, read_rows
from .settings import CampaignSettings


class LedgerError(ValueError):
    """A ledger file that is missing, unreadable or out of place; the message names it."""


def read_json(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise LedgerError(f"{path}: missing") from None
    except json.JSONDecodeError as exc:
        raise LedgerError(f"{path}: not JSON ({exc})") from None


def read_ledger(
    plans: Sequence[str | Path], experiments: Sequence[str | Path]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Experiment rows and plan documents of the given rounds' files."""
    for path in experiments:
        if not Path(path).exists():
            raise LedgerError(f"{path}: missing; its round was not collected")
    rows = [row for path in experiments for row in read_rows(path)]
    return rows, [read_json(path) for path in plans]


def check_rounds(plans: Sequence[dict[str, Any]], campaign: str, rounds: range, what: str) -> None:
    """The plans are exactly `campaign`'s rounds in `rounds`, in order."""
    found = [(plan.get("campaign"), plan.get("round")) for plan in plans]
    expected = [(campaign, r) for r in rounds]
    if found != expected:
        raise LedgerError(
            f"{what} needs the plans of {campaign!r} rounds {list(rounds)}, "
            f"got (campaign, round) {found}"
        )


def shard_summaries(
    campaign: str, plans: Sequence[dict[str, Any]], summaries: Sequence[dict[str, Any]], what: str
) -> list[dict[str, Any]]:
    """`campaign`'s shard summaries, exactly one for every shard of every plan,
    in (round, shard) order; summaries of other campaigns are passed over."""
    mine = [doc for doc in summaries if doc.get("campaign") == campaign]
    found = sorted((doc.get("round"), doc.get("shard")) for doc in mine)
    wanted = [(plan["round"], s) for plan in plans for s in range(len(plan["shards"]))]
    if found != sorted(wanted):
        raise LedgerError(
            f"{what} needs the shard summaries (round, shard) {wanted} of {campaign!r}, got {found}"
        )
    by_key = {(doc["round"], doc["shard"]): doc for doc in mine}
    return [by_key[key] for key in wanted]


def ledger_history(
    settings: CampaignSettings,
    before_round: int,
    plans: Sequence[str | Path],
    experiments: Sequence[str | Path],
) -> History:
    rows, documents = read_ledger(plans, experiments)
    check_rounds(documents, settings.name, range(before_round), f"round {before_round}")
    strays = {(row["campaign"], row["round"]) for row in rows} - {
        (settings.name, r) for r in range(before_round)
    }
    if strays:
        raise LedgerError(f"round {before_round} of {settings.name!r} was given rows of {strays}")
    proposals = [row for plan in documents for row in plan["rows"]]
    return History.from_rows(rows, settings.space, proposals=proposals)


def jsonl_text(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, sort_keys=True, allow_nan=False) + "\n" for row in rows)
