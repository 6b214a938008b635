"""The append-only ledger of a campaign: its rounds' files, read back.

    rows, plans = read_ledger(settings, before_round=r)    # plans: each round's plan.json
    history = ledger_history(settings, before_round=r)   # what round r's agents see

Round r's ledger entry is round_<r>/plan.json (every candidate with its
fate, the agent log, the shards) and round_<r>/experiments.jsonl (one row
per trained config). Both are immutable once the round is collected; a
round that has a plan but no experiments file is still running and is not
part of the ledger.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..agents.history import History, read_rows
from .settings import CampaignSettings


class LedgerError(ValueError):
    """A ledger file that is missing or unreadable; the message names it."""


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise LedgerError(f"{path}: missing") from None
    except json.JSONDecodeError as exc:
        raise LedgerError(f"{path}: not JSON ({exc})") from None


def read_ledger(
    settings: CampaignSettings, before_round: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Experiment rows and plans (plan.json documents) of rounds 0 .. before_round - 1."""
    experiments: list[dict[str, Any]] = []
    plans: list[dict[str, Any]] = []
    for round_index in range(before_round):
        path = settings.experiments_file(round_index)
        if not path.exists():
            raise LedgerError(f"{path}: round {round_index} was not collected")
        experiments += read_rows(path)
        plans.append(read_json(settings.plan_file(round_index)))
    return experiments, plans


def ledger_history(settings: CampaignSettings, before_round: int) -> History:
    rows, plans = read_ledger(settings, before_round)
    proposals = [row for plan in plans for row in plan["rows"]]
    return History.from_rows(rows, settings.space, proposals=proposals)


def jsonl_text(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, sort_keys=True, allow_nan=False) + "\n" for row in rows)
