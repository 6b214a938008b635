"""The dataset: every campaign's ledger compiled into tables and a summary.

    summary = compile_dataset(campaigns, plans=[...], shards=[...], experiments=[...],
                              out=DatasetFiles(experiments=..., proposals=..., agent_log=...,
                                               summary=...))

`campaigns` maps a name to its CampaignSettings; the ledger files are a
rule's declared inputs, in any order (every document names its campaign
and round, and each campaign must have all its rounds and every round all
its shards). Writes, atomically: experiments (parquet; one row per trained
config, all campaigns; nested values as JSON text), proposals (parquet; every
candidate with its fate), agent_log (JSONL; per round and agent: prompt,
answer, tokens, cost, failure), and summary (JSON; per campaign: counts, the
best config by validation AP with its test AP, failures by class,
self-healing, LLM tokens and cost, and utilisation from the shard timestamps).

LLM spend in the summary is what the campaign's calls cost: `llm_calls`,
`llm_input_tokens`, `llm_output_tokens` and `llm_cost_usd` sum every call
in its agent log, billed whatever became of the answer; `llm_*_kept` sum
the shares carried by the experiment rows (each agent's round cost split
over its kept configs), which leave out rounds where an agent kept nothing.

A campaign that trained nothing in all its rounds fails here, with the
reason (how its candidates fared, which agents failed): this is the first
step that sees every round of a campaign (a round's collect sees one
round), and failing here keeps the ledger, which says why, for inspection.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ..agents.healing import healing_stats
from ..agents.history import History
from ..atomic import atomic_open, atomic_write_text
from .ledger import LedgerError, check_rounds, read_json, read_ledger, shard_summaries
from .settings import CampaignSettings

NESTED = ("config", "settings_overrides")


@dataclass(frozen=True)
class DatasetFiles:
    experiments: str | Path
    proposals: str | Path
    agent_log: str | Path
    summary: str | Path


def compile_dataset(
    campaigns: Mapping[str, CampaignSettings],
    *,
    plans: Sequence[str | Path],
    shards: Sequence[str | Path],
    experiments: Sequence[str | Path],
    out: DatasetFiles,
) -> dict[str, Any]:
    all_rows, all_plans = read_ledger(plans, experiments)
    all_shards = [read_json(path) for path in shards]
    rows_of, proposals, logs, summary = [], [], [], {}
    for name, settings in campaigns.items():
        mine = sorted(
            (plan for plan in all_plans if plan.get("campaign") == name),
            key=lambda plan: plan.get("round", -1),
        )
        check_rounds(mine, name, range(settings.rounds), "the dataset")
        rows = sorted(
            (row for row in all_rows if row["campaign"] == name), key=lambda row: row["round"]
        )
        shard_docs = shard_summaries(name, mine, all_shards, "the dataset")
        if not rows:
            raise NothingTrainedError(nothing_trained(name, mine))
        rows_of += rows
        proposals += [{"campaign": name, **row} for plan in mine for row in plan["rows"]]
        calls = [entry for plan in mine for entry in plan["agent_log"]]
        logs += [{"campaign": name, **entry} for entry in calls]
        summary[name] = campaign_summary(settings, rows, shard_docs, calls)
    write_parquet(out.experiments, rows_of)
    write_parquet(out.proposals, proposals)
    atomic_write_text(out.agent_log, "".join(json.dumps(entry) + "\n" for entry in logs))
    atomic_write_text(out.summary, json.dumps(summary, indent=1) + "\n")
    return summary


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    frame = pd.DataFrame(
        [{k: json.dumps(v) if k in NESTED else v for k, v in row.items()} for row in rows]
    )
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())


class NothingTrainedError(LedgerError):
    """A campaign whose rounds kept no config at all."""


def nothing_trained(name: str, plans: Sequence[Mapping[str, Any]]) -> str:
    """Why campaign `name` trained nothing, from its plans."""
    fates = Counter(row["fate"] for plan in plans for row in plan["rows"])
    errors = {
        entry["agent"]: entry["error"]
        for plan in plans
        for entry in plan["agent_log"]
        if entry.get("error")
    }
    said = ", ".join(f"{count} {fate}" for fate, count in fates.most_common()) or "none"
    failed = "; ".join(f"{agent}: {error}" for agent, error in errors.items())
    return (
        f"campaign {name!r} trained nothing in its {len(plans)} round(s): no candidate was "
        f"kept (candidates: {said})"
        + (f"; failed agents (last error): {failed}" if failed else "")
        + "; see its plan.json files (rows with their reasons, agent_log)"
    )


def campaign_summary(
    settings: CampaignSettings,
    rows: list[dict[str, Any]],
    shards: list[dict[str, Any]],
    calls: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """`calls`: the campaign's agent-log entries (every round's plan)."""
    finished = [row for row in rows if row["status"] == "ok"]
    best = max(finished, key=lambda row: row["val_ap"], default=None)
    history = History.from_rows(rows, settings.space)
    return {
        "rounds": settings.rounds,
        "agents": list(settings.agents),
        "experiments": len(rows),
        "finished": len(finished),
        "failed_by_class": dict(Counter(r["error_class"] for r in rows if r["status"] != "ok")),
        "best": _best(best),
        "by_source": dict(Counter(row["source"] for row in rows)),
        "healing": healing_stats(history),
        "llm_calls": sum(len(entry.get("calls") or ()) for entry in calls),
        "llm_input_tokens": sum(entry["input_tokens"] for entry in calls),
        "llm_output_tokens": sum(entry["output_tokens"] for entry in calls),
        "llm_cost_usd": sum(entry["cost_usd"] for entry in calls),
        "llm_input_tokens_kept": sum(row["llm_input_tokens"] for row in rows),
        "llm_output_tokens_kept": sum(row["llm_output_tokens"] for row in rows),
        "llm_cost_usd_kept": sum(row["llm_cost_usd"] for row in rows),
        "utilisation": utilisation(rows, shards, devices=settings.shards),
    }


def _best(row: dict[str, Any] | None) -> dict[str, Any] | None:
    keys = ("id", "agent", "source", "val_ap", "test_ap", "config")
    return None if row is None else {key: row[key] for key in keys}


def utilisation(
    rows: list[dict[str, Any]], shards: list[dict[str, Any]], devices: int
) -> dict[str, Any]:
    """Busy fraction of `devices` over the campaign's span (first shard start
    to last shard end), and finished experiments per device-hour."""
    if not shards:
        return {"devices": devices, "span_s": 0.0, "busy_fraction": None}
    start = min(datetime.fromisoformat(shard["started"]) for shard in shards)
    end = max(datetime.fromisoformat(shard["finished"]) for shard in shards)
    span = max((end - start).total_seconds(), 1.0)
    busy = sum(row["device_seconds"] or 0.0 for row in rows)
    finished = sum(row["status"] == "ok" for row in rows)
    return {
        "devices": devices,
        "span_s": span,
        "busy_device_s": round(busy, 3),
        "busy_fraction": round(busy / (devices * span), 4),
        "experiments_per_device_hour": round(finished / (devices * span / 3600), 2),
        "shard_job_s": round(sum(shard["seconds"] for shard in shards), 3),
    }
