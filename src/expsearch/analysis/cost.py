"""What the search cost (the paper's appendix): device time, LLM spend, self-healing.

    result = cost(table, calls=agent_log_rows, by="policy")

From the dataset's own fields: per group (`by`: policy, agent or campaign)
and overall, experiments run and finished, device-hours (sum of
`device_seconds`, failed runs included: they held the device), seconds per
experiment (mean and median), finished experiments per device-hour, and LLM
tokens and USD per kept config (the per-config shares the dataset records).
With `calls` (the dataset's agent_log.jsonl rows) the LLM spend is also
summed over the calls themselves: every billed call, whatever became of its
ideas, so a round whose ideas were all rejected still shows its cost.
Self-healing: the campaign summary's record (heal attempts, and the share
of first heals of an original failure that finished ok), computed by the
same function from the table's id, source, parent_id and status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..agents.healing import healing_stats
from ..agents.history import Experiment, History
from .result import insufficient, ok
from .table import ExperimentTable

LLM = ("llm_input_tokens", "llm_output_tokens", "llm_cost_usd")


def cost(
    table: ExperimentTable,
    *,
    calls: Sequence[Mapping[str, Any]] | None = None,
    by: str = "policy",
) -> dict[str, Any]:
    table.require([by, "device_seconds"], "cost")
    frame = table.frame
    if frame.empty:
        return insufficient(f"{table.source}: no experiments", rows=0)
    groups = {str(name): _group(rows) for name, rows in frame.groupby(by, sort=True)}
    return ok(
        by=by,
        overall=_group(frame),
        groups=groups,
        llm_calls=_calls(calls) if calls is not None else None,
        healing=healing(frame),
    )


def _group(rows: pd.DataFrame) -> dict[str, Any]:
    seconds = pd.to_numeric(rows["device_seconds"], errors="coerce").to_numpy(float)
    timed = seconds[np.isfinite(seconds)]
    finished = int((rows["status"] == "ok").sum())
    hours = float(timed.sum() / 3600)
    out: dict[str, Any] = {
        "experiments": len(rows),
        "finished": finished,
        "untimed": int(len(rows) - len(timed)),
        "device_hours": hours,
        "seconds_per_experiment": _spread(timed),
        "finished_per_device_hour": finished / hours if hours > 0 else None,
    }
    present = [column for column in LLM if column in rows.columns]
    if present:
        totals = {
            c: float(pd.to_numeric(rows[c], errors="coerce").fillna(0).sum()) for c in present
        }
        out["llm"] = {
            **totals,
            **{f"{c}_per_kept_config": totals[c] / len(rows) for c in present},
        }
    return out


def _spread(values: np.ndarray) -> dict[str, Any] | None:
    if len(values) == 0:
        return None
    return {"mean": float(values.mean()), "median": float(np.median(values))}


def _calls(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """LLM spend over the agent log: one entry per agent and round, holding the
    provider calls it made (`calls`: none for offline policies) and their tokens
    and cost, billed whatever became of the answer."""
    per_agent: dict[str, dict[str, float]] = {}
    for entry in entries:
        agent = str(entry.get("agent"))
        totals = per_agent.setdefault(
            agent, {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
        )
        totals["calls"] += len(entry.get("calls") or ())
        for key in ("input_tokens", "output_tokens", "cost_usd"):
            totals[key] += float(entry.get(key) or 0)
    return {
        "agents": per_agent,
        "cost_usd": sum(totals["cost_usd"] for totals in per_agent.values()),
        "calls": sum(totals["calls"] for totals in per_agent.values()),
    }


def healing(frame: pd.DataFrame) -> dict[str, Any]:
    """The campaign summary's healing record (agents.healing.healing_stats),
    from the table's id, source, parent_id and status alone: no config needed."""
    if "source" not in frame.columns or "parent_id" not in frame.columns:
        return insufficient("no source/parent_id columns: healing is not recorded")
    rows = frame[["id", "source", "parent_id", "status"]].astype(object)
    rows = rows.where(rows.notna(), None)
    return healing_stats(
        History(
            [
                Experiment(str(row.id), {}, None, row.status, source=row.source,
                           parent_id=None if row.parent_id is None else str(row.parent_id))
                for row in rows.itertuples(index=False)
            ]
        )
    )  # fmt: skip
