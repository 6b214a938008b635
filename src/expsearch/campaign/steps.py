"""The three steps of a round: propose, train a shard, collect.

    plan = propose_round(settings, r, ledger_plans, ledger_experiments, out="round_r/plan.json")
    summary = run_shard(settings, plan="round_r/plan.json", shard=s, stores=[index.json, ...],
                        manifest=..., clips=..., runs="round_r/runs", out="round_r/shard_s.json")
    rows = collect_round(settings, plan="round_r/plan.json", shards=[...], out="round_r/experiments.jsonl")

Every path is an argument (the rules, or the `expsearch round` CLI, take them
from layout.py); a step reads only the files it is given, plus a shard's own
`runs` folder. propose reads the ledger of earlier rounds (with a campaign
`lag` of k, the last k rounds only as queued configs: the plan records
`lag`, `results_of_rounds_before` n, i.e. it saw the results of rounds
0 .. n-1, and those `queued_rounds`), lets the campaign's agents propose
(plus self-healing of earlier failures), plans the round (sweeps, dedup,
budget, the fallback for budget left unused) and packs the kept configs
into shards; the plan keeps the round's warnings. A
shard trains its configs one after another in one process (features loaded
once per backbone), each in runs/<id>/; a config whose metrics.json is
already there is skipped, so a killed shard resumes; a failed config is
recorded with its error class and the shard goes on. The shard's summary
carries every config's metrics and the tail of a failure's traceback, so
collect turns the plan and the shard summaries into the round's experiment
rows (the README's experiment fields) without reading anything else. Every
file is written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..agents.plan import plan_round
from ..agents.registry import build_agents, build_fallback, build_healer
from ..atomic import atomic_write_text
from ..clock import utc_now
from .layout import ledger_rounds
from .ledger import LedgerError, jsonl_text, ledger_history, read_json, shard_summaries
from .settings import CampaignSettings
from .shards import pack

TRACE_TAIL = 4000  # characters of a failed run's traceback kept in its ledger row
FROM_METRICS = (
    "val_ap", "test_ap", "val_auc", "test_auc", "val_horizon_map", "test_horizon_map",
    "best_epoch", "epochs_run", "started", "finished", "code_version", "device", "peak_memory_mb",
)  # fmt: skip
NO_METRICS = {
    "status": "failed",
    "error_class": "crash",
    "error": "no metrics.json: the shard ended without recording this config",
}
SLURM_KEYS = ("SLURM_JOB_ID", "SLURM_JOB_PARTITION", "CUDA_VISIBLE_DEVICES", "SLURM_NODELIST")
NO_LLM = {"llm_input_tokens": 0, "llm_output_tokens": 0, "llm_cost_usd": 0.0}


def propose_round(
    settings: CampaignSettings,
    round_index: int,
    ledger_plans: Sequence[str | Path],
    ledger_experiments: Sequence[str | Path],
    out: str | Path,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, Any]:
    """Round `round_index`'s plan from the ledger of the rounds before it."""
    history = ledger_history(settings, round_index, ledger_plans, ledger_experiments)
    read = ledger_rounds(round_index, settings.lag)[1]  # the rounds whose results it saw
    agents = build_agents(
        settings.agents,
        settings.agent_settings,
        settings.space,
        round_index=round_index,
        environ=environ,
    )
    healer = build_healer(settings.agent_settings, settings.space, environ)
    plan = plan_round(
        agents,
        history,
        settings.space,
        round_index=round_index,
        seed=settings.seed,
        settings=settings.plan,
        id_prefix=f"{settings.name}-",
        healer=healer,
        fallback=build_fallback(settings.agent_settings, settings.space),
    )
    document = {
        "campaign": settings.name,
        "round": round_index,
        "created": utc_now(),
        "lag": settings.lag,
        "results_of_rounds_before": len(read),
        "queued_rounds": list(range(len(read), round_index)),
        "rows": plan.rows,
        "agent_log": plan.agent_log,
        "heal_log": healer.log,
        "warnings": plan.warnings,
        "shards": pack(plan.queue, settings.shards),
    }
    atomic_write_text(out, json.dumps(document, indent=1) + "\n")
    return document


def _read_plan(settings: CampaignSettings, path: str | Path) -> dict[str, Any]:
    plan = read_json(path)
    if plan.get("campaign") != settings.name:
        raise LedgerError(
            f"{path}: a plan of campaign {plan.get('campaign')!r}, not {settings.name!r}"
        )
    return plan


def _finished_metrics(run_dir: Path) -> dict[str, Any] | None:
    """The metrics of an earlier attempt, if it finished (ok or failed)."""
    from ..training.experiment import METRICS

    try:
        metrics = json.loads((run_dir / METRICS).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return metrics if metrics.get("status") in ("ok", "failed") else None


def _trace_tail(run_dir: Path) -> str | None:
    from ..training.experiment import TRACE

    trace = run_dir / TRACE
    return trace.read_text()[-TRACE_TAIL:] if trace.exists() else None


def run_shard(
    settings: CampaignSettings,
    *,
    plan: str | Path,
    shard: int,
    stores: Sequence[str | Path],
    manifest: str | Path,
    clips: str | Path,
    runs: str | Path,
    out: str | Path,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train shard `shard` of the plan's configs, each in runs/<id>/; write the summary to `out`."""
    # Only a shard trains, so only it imports the training modules (torch, pandas): a
    # proposal or a collect job, a new process on the critical path between two rounds,
    # then starts in about a second instead of four.
    from ..features.store import stores_by_name
    from ..training.concurrent import run_concurrently
    from ..training.experiment import TaskCache, run_experiment

    document = _read_plan(settings, plan)
    round_index = document["round"]
    rows = {row["id"]: row for row in document["rows"]}
    ids = document["shards"][shard] if shard < len(document["shards"]) else []
    train = settings.training
    device = train.torch_device()
    tasks = TaskCache(stores_by_name(stores), manifest, clips, device)
    started, start = utc_now(), time.perf_counter()
    done = 0
    done_lock = threading.Lock()

    def train_one(experiment_id: str) -> dict[str, Any]:
        nonlocal done
        run_dir = Path(runs) / experiment_id
        metrics = _finished_metrics(run_dir)
        resumed = metrics is not None
        if not resumed:
            overrides = rows[experiment_id].get("settings_overrides") or {}
            metrics = run_experiment(
                rows[experiment_id]["config"],
                settings.space,
                tasks,
                dataclasses.replace(train, **overrides),
                run_dir,
            )
        outcome = (
            f"val AP {metrics['val_ap']:.3f}" if metrics["status"] == "ok"
            else f"failed ({metrics['error_class']})"
        )  # fmt: skip
        with done_lock:
            done += 1
            log(
                f"[{settings.name} round {round_index} shard {shard}] {done}/{len(ids)} "
                f"{experiment_id}: {outcome}{' (done earlier)' if resumed else ''}"
                f" in {metrics['seconds']:.1f} s"
            )
        return {
            "id": experiment_id,
            "status": metrics["status"],
            "error_class": metrics["error_class"],
            "seconds": metrics["seconds"],
            "resumed": resumed,
            "metrics": metrics,
            "trace": _trace_tail(run_dir),
        }

    results = run_concurrently(ids, train_one, streams=settings.streams, device=device)
    summary = {
        "campaign": settings.name,
        "round": round_index,
        "shard": shard,
        "started": started,
        "finished": utc_now(),
        "seconds": round(time.perf_counter() - start, 3),
        "streams": settings.streams,
        "device": str(device),
        # Where the job ran, when a scheduler says so (SLURM sets these).
        "slurm": {key: os.environ.get(key) for key in SLURM_KEYS},
        "results": results,
    }
    atomic_write_text(out, json.dumps(summary, indent=1, allow_nan=False) + "\n")
    return summary


def collect_round(
    settings: CampaignSettings,
    *,
    plan: str | Path,
    shards: Sequence[str | Path],
    out: str | Path,
) -> list[dict[str, Any]]:
    """The round's experiment rows, from its plan and every shard's summary."""
    document = _read_plan(settings, plan)
    round_index = document["round"]
    summaries = shard_summaries(
        settings.name, [document], [read_json(path) for path in shards], f"{plan}: collect"
    )
    shard_of = {eid: s for s, ids in enumerate(document["shards"]) for eid in ids}
    results = {result["id"]: result for summary in summaries for result in summary["results"]}
    share = {
        result["id"]: _device_share(summary)
        for summary in summaries
        for result in summary["results"]
    }
    kept = [row for row in document["rows"] if row["fate"] == "kept"]
    llm_cost = _llm_shares(document, kept)
    experiments = []
    for row in sorted(kept, key=lambda row: row["queue_position"]):
        result = results.get(row["id"], {})
        metrics = result.get("metrics") or NO_METRICS
        experiments.append(
            {
                "id": row["id"],
                "campaign": settings.name,
                "round": round_index,
                "agent": row["agent"],
                "policy": row["policy"],
                "source": row["source"],
                "parent_id": row["parent_id"],
                "priority": row["priority"],
                "config": row["config"],
                "fingerprint": row["fingerprint"],
                "settings_overrides": row.get("settings_overrides") or {},
                "shard": shard_of.get(row["id"]),
                "status": metrics["status"],
                "error_class": metrics.get("error_class"),
                "error": metrics.get("error"),
                "trace": result.get("trace"),
                **{key: metrics.get(key) for key in FROM_METRICS},
                "device_seconds": _scaled(metrics.get("seconds"), share.get(row["id"], 1.0)),
                "queued": document["created"],
                **llm_cost.get(row["id"], NO_LLM),
            }
        )
    atomic_write_text(out, jsonl_text(experiments))
    return experiments


def _device_share(summary: Mapping[str, Any]) -> float:
    """The share of a config's wall time that was its own device time: 1 when
    the shard trained one config at a time; with streams > 1 the configs'
    wall times overlap, and the shard's device time is split in proportion."""
    trained = sum(r["seconds"] or 0.0 for r in summary["results"] if not r.get("resumed"))
    return min(1.0, summary["seconds"] / trained) if trained > 0 else 1.0


def _scaled(seconds: float | None, share: float) -> float | None:
    return None if seconds is None else round(seconds * share, 3)


def _llm_shares(plan: Mapping[str, Any], kept: list[dict[str, Any]]) -> dict[str, dict]:
    """Each agent's LLM tokens and cost of the round, shared equally by the
    configs of that agent that were kept (so campaign totals add up)."""
    shares = {}
    for entry in plan["agent_log"]:
        mine = [row["id"] for row in kept if row["agent"] == entry["agent"]]
        for experiment_id in mine:
            shares[experiment_id] = {
                "llm_input_tokens": entry["input_tokens"] / len(mine),
                "llm_output_tokens": entry["output_tokens"] / len(mine),
                "llm_cost_usd": entry["cost_usd"] / len(mine),
            }
    return shares
