"""Promote a campaign's dataset to the DVC-tracked release, with its RELEASE.md.

    facts = build_release("results/dataset", "data/release", params)   # copies + RELEASE.md
    publish("data/release", repo=".")           # dvc add, dvc repro (the paper), dvc push

`expsearch release --dataset results/dataset --out data/release` does both.
Each further task of params.yaml (`tasks`, the cross-task check) is released
beside it, its dataset's files under `tasks/<name>/`:
`build_release(..., tasks={"fleet": "results/tasks/fleet/dataset"})`.
The release folder holds the dataset's four files unchanged and a RELEASE.md
stating the task, the campaigns, the seeds, the code versions, the sizes and
the device-hours: counts, metrics, hours, versions and LLM spend computed from
the dataset's files, the task and seeds from the params the campaigns ran with
(params.yaml and its overlays); nothing typed by hand. The folder is replaced as a whole (written beside it, then
renamed), so a failed promotion leaves the previous release intact.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .tasks import task_params
from .tools import tool

RELEASE_FILES = ("experiments.parquet", "proposals.parquet", "agent_log.jsonl", "summary.json")


class ReleaseError(RuntimeError):
    """The dataset cannot be released, or DVC refused a step (its message is kept)."""


def _read_dataset(dataset: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    missing = [name for name in RELEASE_FILES if not (dataset / name).is_file()]
    if missing:
        raise ReleaseError(f"{dataset}: no {', '.join(missing)} (build the dataset first)")
    try:
        experiments = pd.read_parquet(dataset / "experiments.parquet")
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ReleaseError(f"{dataset / 'experiments.parquet'}: unreadable ({exc})") from None
    try:
        summary = json.loads((dataset / "summary.json").read_text())
    except json.JSONDecodeError as exc:
        raise ReleaseError(f"{dataset / 'summary.json'}: not JSON ({exc})") from None
    if experiments.empty:
        raise ReleaseError(f"{dataset / 'experiments.parquet'}: no experiments to release")
    return experiments, summary


def _span_hours(rows: pd.DataFrame) -> float | None:
    started = pd.to_datetime(rows["started"], utc=True, errors="coerce").min()
    finished = pd.to_datetime(rows["finished"], utc=True, errors="coerce").max()
    if pd.isna(started) or pd.isna(finished):
        return None
    return round((finished - started).total_seconds() / 3600, 2)


def _campaign_facts(rows: pd.DataFrame) -> dict[str, Any]:
    finished = rows[rows["status"] == "ok"]
    best = finished.loc[finished["val_ap"].idxmax()] if finished["val_ap"].notna().any() else None
    return {
        "policies": sorted(rows["policy"].dropna().unique().tolist()),
        "rounds": int(rows["round"].max()) + 1 if rows["round"].notna().any() else None,
        "experiments": len(rows),
        "finished": len(finished),
        "failed": int((rows["status"] != "ok").sum()),
        "best_val_ap": None if best is None else round(float(best["val_ap"]), 4),
        "its_test_ap": None if best is None else round(float(best["test_ap"]), 4),
        "its_id": None if best is None else str(best["id"]),
        "device_hours": round(float(rows["device_seconds"].sum()) / 3600, 2),
        "wall_hours": _span_hours(rows),
    }


def _llm_spend(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Calls and cost billed, from summary.json (every call of the agent logs; the
    experiment rows carry only the share of kept configs)."""
    campaigns = [c for c in summary.values() if isinstance(c, Mapping)]
    return {
        "calls": int(sum(c.get("llm_calls", 0) for c in campaigns)),
        "cost_usd": round(float(sum(c.get("llm_cost_usd", 0.0) for c in campaigns)), 2),
    }


def describe(
    experiments: pd.DataFrame,
    summary: Mapping[str, Any],
    params: Mapping[str, Any],
    files: Mapping[str, Path],
) -> dict[str, Any]:
    """The facts RELEASE.md states, from the dataset's tables and the run's params."""
    data, features = params["data"], params["features"]
    task = {"source": data["source"], "fps": data["fps"], "window_s": data["window_s"],
            "split": {k: data["split"][k] for k in ("train", "val", "test", "seed")}}  # fmt: skip
    if data["source"] == "synthetic":
        synthetic = data["synthetic"]
        task.update(variant=synthetic["variant"], clips=synthetic["n"], data_seed=synthetic["seed"])
    else:
        task.update(root=data["root"])
    campaigns = {name: _campaign_facts(rows) for name, rows in experiments.groupby("campaign")}
    versions = experiments["code_version"].value_counts()
    return {
        "task": task,
        "backbones": list(features["backbones"]),
        "weights": features["weights"],
        "seeds": {"campaign": params["campaign"]["seed"], "features": features["seed"]},
        "campaigns": campaigns,
        "code_versions": {str(v): int(n) for v, n in sorted(versions.items())},
        "devices": sorted(experiments["device"].dropna().astype(str).unique().tolist()),
        "experiments": len(experiments),
        "finished": int((experiments["status"] == "ok").sum()),
        "device_hours": round(float(experiments["device_seconds"].sum()) / 3600, 2),
        "wall_hours": _span_hours(experiments),
        "llm": _llm_spend(summary),
        "files": {name: path.stat().st_size for name, path in sorted(files.items())},
    }


def _task_lines(facts: Mapping[str, Any]) -> list[str]:
    """The task's description and its campaigns' table."""
    task = facts["task"]
    what = (f"synthetic dashcam clips, camera `{task['variant']}`, {task['clips']:,} clips "
            f"(generator seed {task['data_seed']})" if task["source"] == "synthetic"
            else f"`{task['source']}` clips from `{task['root']}`")  # fmt: skip
    split = task["split"]
    lines = [
        f"- Collision detection from frozen backbone features: {what}.",
        f"- Windows of {task['window_s']} s at {task['fps']} frames per second; split "
        f"{split['train']}/{split['val']}/{split['test']} (train/val/test) by video id, seed {split['seed']}.",
        f"- Backbones ({facts['weights']} weights): {', '.join(facts['backbones'])}.",
        f"- Seeds: campaign {facts['seeds']['campaign']}, backbone initialisation {facts['seeds']['features']}.",
        "",
        "| campaign | policies | rounds | experiments | finished | failed | best val AP | its test AP | device-h | wall-h |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for name, c in facts["campaigns"].items():
        lines.append(
            f"| {name} | {', '.join(c['policies'])} | {_show(c['rounds'])} | {c['experiments']:,} | "
            f"{c['finished']:,} | {c['failed']:,} | {_show(c['best_val_ap'])} | "
            f"{_show(c['its_test_ap'])} | {c['device_hours']} | {_show(c['wall_hours'])} |"
        )
    return lines


def release_markdown(facts: Mapping[str, Any]) -> str:
    """RELEASE.md: what the release is, in a reader's order."""
    lines = [
        "# Released experiment dataset",
        "",
        "Generated by `expsearch release` from a campaign's `results/dataset`: the counts,",
        "metrics, hours, versions and spend below are computed from the files of this folder,",
        "the task and seeds from the params the campaigns ran with. `dvc repro` turns the",
        "files into `paper/`, with the analysis settings of `params.yaml`.",
        "",
        "## Task and campaigns",
        *_task_lines(facts),
    ]
    for name, task in facts.get("tasks", {}).items():
        lines += [
            "",
            f"## Task `{name}` (`tasks/{name}/`, the cross-task check)",
            *_task_lines(task),
            f"- {task['experiments']:,} experiments, {task['finished']:,} finished, "
            f"{task['device_hours']} device-hours.",
        ]
    lines += [
        "",
        "## Totals (the primary task)",
        f"- {facts['experiments']:,} experiments, {facts['finished']:,} finished.",
        f"- {facts['device_hours']} device-hours on {', '.join(facts['devices'])}; "
        f"{_show(facts['wall_hours'])} hours from the first start to the last finish "
        "(campaigns ran side by side).",
        f"- LLM calls billed (summary.json): {facts['llm']['calls']:,}, "
        f"${facts['llm']['cost_usd']:.2f}.",
        "- Code versions (experiments each): "
        + ", ".join(f"`{v}` ({n:,})" for v, n in facts["code_versions"].items())
        + ".",
        "",
        "## Files",
        "| file | bytes |",
        "|---|---|",
        *(f"| `{name}` | {size:,} |" for name, size in facts["files"].items()),
        "",
    ]
    return "\n".join(lines)


def _show(value: Any) -> str:
    return "n/a" if value is None else str(value)


def build_release(
    dataset: str | Path,
    out: str | Path,
    params: Mapping[str, Any],
    tasks: Mapping[str, str | Path] | None = None,
) -> dict[str, Any]:
    """Copy the dataset's files into `out`, and each further task's (name -> its
    dataset folder; every task params.yaml declares) under `out`/tasks/<name>/,
    with a RELEASE.md; return the stated facts."""
    dataset, out, tasks = Path(dataset), Path(out), dict(tasks or {})
    declared = task_params(params)
    if sorted(tasks) != sorted(declared):
        raise ReleaseError(
            f"the release needs a dataset for every task params.yaml declares "
            f"({sorted(declared) or 'none'}); given: {sorted(tasks) or 'none'}"
        )
    tables = {name: _read_dataset(Path(folder)) for name, folder in tasks.items()}
    experiments, summary = _read_dataset(dataset)
    staging = out.with_name(f".{out.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    facts = _copy_described(dataset, staging, experiments, summary, params)
    facts["tasks"] = {
        name: _copy_described(
            Path(tasks[name]), staging / "tasks" / name, *tables[name], declared[name]
        )
        for name in sorted(tasks)
    }
    (staging / "RELEASE.md").write_text(release_markdown(facts))
    retired = out.with_name(f".{out.name}.retired")
    shutil.rmtree(retired, ignore_errors=True)
    if out.exists():
        out.rename(retired)
    staging.rename(out)
    shutil.rmtree(retired, ignore_errors=True)
    return facts


def _copy_described(
    dataset: Path, into: Path, experiments: pd.DataFrame, summary: Mapping[str, Any],
    params: Mapping[str, Any],
) -> dict[str, Any]:  # fmt: skip
    into.mkdir(parents=True, exist_ok=True)
    for name in RELEASE_FILES:
        shutil.copyfile(dataset / name, into / name)
    return describe(experiments, summary, params, {n: into / n for n in RELEASE_FILES})


def dvc(repo: str | Path, *args: str) -> str:
    """Run one DVC command in `repo`; its output, or ReleaseError with DVC's message."""
    command = [tool("dvc"), *args]
    run = subprocess.run(command, cwd=repo, capture_output=True, text=True)
    if run.returncode != 0:
        raise ReleaseError(f"`dvc {' '.join(args)}` failed:\n{(run.stderr or run.stdout).strip()}")
    return run.stdout


def publish(
    release: str | Path, repo: str | Path = ".", remote: str | None = None,
    repro: bool = True, push: bool = True, log=print,
) -> None:  # fmt: skip
    """Track the release with DVC, regenerate the paper from it, push both."""
    target = str(Path(release))
    steps: list[Sequence[str]] = [("add", target)]
    if repro:
        steps.append(("repro",))
    if push:
        steps.append(("push", *(("-r", remote) if remote else ())))
    for step in steps:
        log(f"dvc {' '.join(step)}")
        dvc(repo, *step)
