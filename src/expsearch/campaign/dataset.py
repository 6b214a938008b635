"""The dataset: every campaign's ledger compiled into tables and a summary.

    summary = compile_dataset(params, "results/dataset")

Writes, atomically: experiments.parquet (one row per trained config, all
campaigns; nested values as JSON text), proposals.parquet (every candidate
with its fate), agent_log.jsonl (per round and agent: prompt, answer,
tokens, cost, failure), and summary.json (per campaign: counts, the best
config by validation AP with its test AP, failures by class, self-healing,
LLM tokens and cost, and utilisation from the shard timestamps).
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ..agents.healing import healing_stats
from ..agents.history import History
from ..atomic import atomic_open, atomic_write_text
from .ledger import read_json, read_ledger
from .settings import CampaignSettings

NESTED = ("config", "settings_overrides")


def compile_dataset(params: Mapping[str, Any], out_dir: str | Path) -> dict[str, Any]:
    out_dir = Path(out_dir)
    experiments, proposals, logs, summary = [], [], [], {}
    for name in params["campaign"]["campaigns"]:
        settings = CampaignSettings.from_params(params, name)
        rows, plans = read_ledger(settings, settings.rounds)
        shards = [
            read_json(settings.shard_file(r, s))
            for r, plan in enumerate(plans)
            for s in range(len(plan["shards"]))
        ]
        experiments += rows
        proposals += [{"campaign": name, **row} for plan in plans for row in plan["rows"]]
        logs += [{"campaign": name, **entry} for plan in plans for entry in plan["agent_log"]]
        summary[name] = campaign_summary(settings, rows, shards)
    _write_parquet(out_dir / "experiments.parquet", experiments)
    _write_parquet(out_dir / "proposals.parquet", proposals)
    atomic_write_text(
        out_dir / "agent_log.jsonl", "".join(json.dumps(entry) + "\n" for entry in logs)
    )
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    frame = pd.DataFrame(
        [{k: json.dumps(v) if k in NESTED else v for k, v in row.items()} for row in rows]
    )
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())


def campaign_summary(
    settings: CampaignSettings, rows: list[dict[str, Any]], shards: list[dict[str, Any]]
) -> dict[str, Any]:
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
        "llm_input_tokens": sum(row["llm_input_tokens"] for row in rows),
        "llm_output_tokens": sum(row["llm_output_tokens"] for row in rows),
        "llm_cost_usd": sum(row["llm_cost_usd"] for row in rows),
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
