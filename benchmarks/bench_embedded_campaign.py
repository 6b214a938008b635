"""Experiments per hour of `make run`'s campaigns, end to end: this checkout beside a baseline commit.

    python benchmarks/bench_embedded_campaign.py --out results/bench/embedded_campaign.json
                                                 [--baseline 9d072c5] [--repeats 2]

Each side is a full checkout of its commit (this one: a clone of HEAD; the
baseline: a git worktree) that first brings its own `make run` workflow up to
date (synthetic clips, split, feature stores: not timed; nothing to do when a
checkout reused from an earlier run is current). Then, alternating
baseline / this code `--repeats` times, the campaign outputs (results/campaigns,
results/dataset, results/analysis) are deleted and the workflow is run again
with the same profile `make run` uses, so only the campaign phase reruns:
proposals, shards, collects, the dataset and the analyses, each side with its
own params.yaml (the baseline's campaigns had 3 configs a round, this code's
15; both the same embedded subspace except the baseline's oversample ratio
up to 10). The wall clock of that run over the experiments it produced is
the campaign's experiments per hour, as a user of `make run` sees it: job
starts, round barriers and both cores included. Medians over the repeats;
the ratio is of medians measured in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
CAMPAIGN_OUTPUTS = ("results/campaigns", "results/dataset", "results/analysis")


def checkout(commit: str, path: Path) -> Path:
    """A clean checkout of `commit` at `path` (created once, reused)."""
    if not (path / "Snakefile").exists():
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", "--force", str(path), commit],
            check=True,
            capture_output=True,
        )
    return path


def workflow(path: Path, log: Path) -> float:
    """Run the checkout's default workflow with its own library; wall seconds."""
    env = {**os.environ, "PYTHONPATH": str(path / "src")}
    command = [sys.executable, "-m", "snakemake", "--workflow-profile", "profiles/default"]
    start = time.perf_counter()
    with open(log, "a") as out:
        done = subprocess.run(command, cwd=path, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"{path}: the workflow failed; see {log}")
    return time.perf_counter() - start


def campaign_phase(path: Path, log: Path) -> dict:
    for output in CAMPAIGN_OUTPUTS:
        shutil.rmtree(path / output, ignore_errors=True)
    seconds = workflow(path, log)
    table = pd.read_parquet(path / "results/dataset/experiments.parquet")
    return {
        "seconds": seconds,
        "experiments": len(table),
        "ok": int((table["status"] == "ok").sum()),
        "experiments_per_hour": 3600 * len(table) / seconds,
        "median_experiment_seconds": float(table["device_seconds"].median()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/bench/embedded_campaign.json")
    parser.add_argument("--baseline", default="9d072c5")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", default="results/benchmarks/embedded_campaign")
    args = parser.parse_args()
    workdir = (REPO / args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    sides = {
        "baseline": checkout(args.baseline, workdir / f"baseline-{args.baseline}"),
        "this_code": checkout(head, workdir / f"head-{head}"),
    }
    for name, path in sides.items():
        # Not timed, and every time: a checkout reused from an earlier run may have
        # stale clips or stores (their code or params changed), which the first timed
        # run would otherwise rebuild. Up to date, this run does nothing.
        print(f"{name}: the whole workflow brought up to date (clips, stores; not timed)",
              flush=True)  # fmt: skip
        workflow(path, workdir / f"{name}.log")
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    for repeat in range(args.repeats):
        for name, path in sides.items():
            run = campaign_phase(path, workdir / f"{name}.log")
            runs[name].append(run)
            print(f"repeat {repeat + 1}/{args.repeats} {name}: {run['experiments']} experiments "
                  f"in {run['seconds']:.0f} s = {run['experiments_per_hour']:.0f}/h", flush=True)  # fmt: skip
    medians = {
        name: statistics.median(r["experiments_per_hour"] for r in rs) for name, rs in runs.items()
    }
    result = {
        "baseline_commit": args.baseline,
        "this_commit": head,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "runs": runs,
        "experiments_per_hour": medians,
        "ratio": medians["this_code"] / medians["baseline"],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"this code / baseline: x{result['ratio']:.2f} experiments per hour -> {out}")


if __name__ == "__main__":
    main()
