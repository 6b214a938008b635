"""The append-only ledger of a campaign: its rounds' files, read back.

    rows, plans = read_ledger(plan_files, experiments_files)   # in the order given
    history = ledger_history(settings, 3, plan_files, experiments_files)  # what round 3 sees
    queued_rows(plan)          # a round's kept configs as experiment rows, status queued

Round r's ledger entry is its plan.json (every candidate with its fate, the
agent log, the shards) and its experiments.jsonl (one row per trained
config). Both are immutable once the round is collected. The files come
from the caller (a rule's declared inputs, built by layout.py); every
document names its campaign and round, which is what is checked here, so a
missing or misplaced file is an error that names it, never a silent gap.

With a campaign `lag` of k, round r is given the plans of rounds 0 .. r-1
but the experiments of rounds 0 .. r-1-k only (layout.ledger_rounds): the
kept configs of the last k rounds enter its history as experiments with
status `queued`, from their plans, so dedup never proposes a config that is
still training, and the policies, which learn from finished rows, see the
results of the rounds read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..agents.history import History, read_rows
from .layout import ledger_rounds
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
    """What round `before_round` sees: the rows of the rounds whose experiments
    it reads, then the kept configs of the later rounds as queued rows."""
    plan_rounds, experiment_rounds = ledger_rounds(before_round, settings.lag)
    what = f"round {before_round} of {settings.name!r}" + (
        f" (lag {settings.lag})" if settings.lag else ""
    )
    documents = [read_json(path) for path in plans]
    check_rounds(documents, settings.name, plan_rounds, f"round {before_round}")
    rows = []
    for path in experiments:
        rows += _experiment_rows(path, settings.name, experiment_rounds, what)
    read = documents[: len(experiment_rounds)]
    _check_results(rows, read, what)
    queued = [row for plan in documents[len(experiment_rounds) :] for row in queued_rows(plan)]
    proposals = [row for plan in documents for row in plan["rows"]]
    return History.from_rows(rows + queued, settings.space, proposals=proposals)


def _experiment_rows(
    path: str | Path, campaign: str, rounds: range, what: str
) -> list[dict[str, Any]]:
    if not Path(path).exists():
        raise LedgerError(f"{path}: missing; its round was not collected")
    rows = read_rows(path)
    expected = {(campaign, r) for r in rounds}
    strays = sorted({(row.get("campaign"), row.get("round")) for row in rows} - expected)
    if strays:
        raise LedgerError(
            f"{path}: rows of (campaign, round) {strays}; {what} reads the experiments of "
            f"{campaign!r} rounds {list(rounds)}"
        )
    return rows


def _check_results(
    rows: Sequence[dict[str, Any]], plans: Sequence[dict[str, Any]], what: str
) -> None:
    """Every kept config of the rounds read has its row: no experiments file left out."""
    given = {row["id"] for row in rows}
    for plan in plans:
        kept = sorted(row["id"] for row in plan["rows"] if row["fate"] == "kept")
        missing = [experiment_id for experiment_id in kept if experiment_id not in given]
        if missing:
            raise LedgerError(
                f"{what} reads the experiments of round {plan['round']}, but its kept configs "
                f"{missing[:3]}{' ...' if len(missing) > 3 else ''} have no row in the "
                "experiments files given (is its experiments.jsonl among them?)"
            )


def queued_rows(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """A round's kept configs as experiment rows still to train (status queued),
    in queue order; a row has what History reads of an experiment."""
    kept = sorted(
        (row for row in plan["rows"] if row["fate"] == "kept"),
        key=lambda row: row["queue_position"],
    )
    keys = ("id", "agent", "policy", "source", "parent_id", "priority", "config", "fingerprint")
    return [
        {
            **{key: row.get(key) for key in keys},
            "campaign": plan["campaign"],
            "round": plan["round"],
            "settings_overrides": row.get("settings_overrides") or {},
            "status": "queued",
            "queued": plan.get("created"),
        }
        for row in kept
    ]


def jsonl_text(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, sort_keys=True, allow_nan=False) + "\n" for row in rows)
