"""Tasks: the dataset params.yaml describes, and the further ones under `tasks`.

The paper's cross-task check (Section 5.4) asks whether the architecture finding
holds on another camera. Each entry of params.yaml's `tasks` names one: overrides
of the `data` (and optionally `features`) sections, merged over the primary
task's, and the campaigns of `campaign.campaigns` that run on it from scratch.
The workflow runs each as a module of itself, every path it writes under
`results/` moved to `results/tasks/<name>/`::

    task_params(params)        # {"fleet": <the full params of the fleet task>}
    primary_task(params)       # "default": the name the primary task goes by in tables
    task_prefix("fleet")       # {"results/": "results/tasks/fleet/"}: the module's paths

Each task's params are checked like params.yaml itself, with the task named in
every message, so a bad override stops the run before any job starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .params import ParamsError, check_params, merge_params

OVERRIDABLE = ("data", "features")
RESULTS = "results"  # what the workflow writes; a task's module writes it under TASKS
TASKS = f"{RESULTS}/tasks"


def task_prefix(task: str) -> dict[str, str]:
    """The path replacement of a task's module (Snakemake `replace_prefix`)."""
    return {f"{RESULTS}/": f"{TASKS}/{task}/"}


def primary_task(params: Mapping[str, Any]) -> str:
    """The primary task's name: its synthetic camera, else its data source."""
    data = params["data"]
    return data["synthetic"]["variant"] if data["source"] == "synthetic" else data["source"]


def task_params(params: Mapping[str, Any], source: str = "params.yaml") -> dict[str, dict]:
    """Every further task's full params (checked), by name; {} when none is declared."""
    tasks = params.get("tasks") or {}
    primary = primary_task(params)
    out = {}
    for name, spec in tasks.items():
        where = f"{source}: tasks.{name}"
        if name == primary:
            raise ParamsError(where, [("tasks", f"{name!r} is the primary task's own name")])
        campaigns = params["campaign"]["campaigns"]
        unknown = [c for c in spec["campaigns"] if c not in campaigns]
        if unknown:
            raise ParamsError(
                where, [("campaigns", f"{unknown} not in campaign.campaigns {sorted(campaigns)}")]
            )
        merged = {key: value for key, value in params.items() if key != "tasks"}
        for section in OVERRIDABLE:
            merged[section] = merge_params(params[section], spec.get(section) or {})
        merged["campaign"] = {
            **params["campaign"],
            "campaigns": {c: campaigns[c] for c in spec["campaigns"]},
        }
        # The baselines name campaigns; one the task does not run is dropped.
        baselines = dict(params["analysis"]["baselines"])
        if baselines["generative_campaign"] not in spec["campaigns"]:
            baselines["generative_campaign"] = None
        if baselines["pool_campaigns"] is not None:
            pool = [c for c in baselines["pool_campaigns"] if c in spec["campaigns"]]
            baselines["pool_campaigns"] = pool or None
        merged["analysis"] = {**params["analysis"], "baselines": baselines}
        out[name] = check_params(merged, source=where)
    return out
