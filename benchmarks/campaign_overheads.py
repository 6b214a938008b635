"""Where a finished campaign run's wall time went: training, job starts, proposals, idle.

    python benchmarks/campaign_overheads.py --campaigns results/campaigns_thousand \\
        --benchmarks results/benchmarks --cores 2 --out results/bench/overheads.json

Reads what a run leaves behind: each round's plan.json (when it was
proposed), shard_<s>.json (the shard's own seconds and every config's
seconds) and Snakemake's per-job benchmark files (a shard job's whole wall
time, interpreter start and imports included). Reports per campaign and for
the whole run: experiments, makespan (first proposal to last shard), the
cores' busy fraction with training (sum of experiment seconds / (cores x
makespan)), and the overheads per shard job: start (job wall - the shard's
own seconds: interpreter, torch import, params) and store load (the shard's
seconds - its experiments' seconds).
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import datetime
from pathlib import Path

import pandas as pd


def _time(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def campaign_overheads(campaign_dir: Path, benchmarks: Path) -> dict:
    shards = []
    first, last = float("inf"), 0.0
    for plan_path in sorted(campaign_dir.glob("round_*/plan.json")):
        plan = json.loads(plan_path.read_text())
        first = min(first, _time(plan["created"]))
        for shard_path in sorted(plan_path.parent.glob("shard_*.json")):
            shard = json.loads(shard_path.read_text())
            last = max(last, _time(shard["finished"]))
            tsv = (
                benchmarks / "campaigns" / campaign_dir.name
                / f"shard_{plan['round']:04d}_{shard['shard']:03d}.tsv"
            )  # fmt: skip
            job = float(pd.read_csv(tsv, sep="\t")["s"].iloc[-1]) if tsv.exists() else None
            trained = sum(r["seconds"] for r in shard["results"] if not r.get("resumed"))
            shards.append(
                {"job_s": job, "shard_s": shard["seconds"], "trained_s": trained,
                 "experiments": len(shard["results"])}
            )  # fmt: skip
    starts = [s["job_s"] - s["shard_s"] for s in shards if s["job_s"] is not None]
    return {
        "rounds": len(list(campaign_dir.glob("round_*/plan.json"))),
        "experiments": sum(s["experiments"] for s in shards),
        "training_s": sum(s["trained_s"] for s in shards),
        "span": (first, last),
        "shard_jobs": len(shards),
        "shard_start_s_median": statistics.median(starts) if starts else None,
        "shard_load_s_median": statistics.median(s["shard_s"] - s["trained_s"] for s in shards),
        "shard_job_s_median": statistics.median(s["job_s"] for s in shards if s["job_s"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=Path, default=Path("results/campaigns"))
    parser.add_argument("--benchmarks", type=Path, default=Path("results/benchmarks"))
    parser.add_argument("--cores", type=int, default=2, help="devices the run trained on")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    campaigns = {
        d.name: campaign_overheads(d, args.benchmarks)
        for d in sorted(args.campaigns.iterdir())
        if d.is_dir()
    }
    spans = [c.pop("span") for c in campaigns.values()]
    makespan = max(last for _, last in spans) - min(first for first, _ in spans)
    training = sum(c["training_s"] for c in campaigns.values())
    experiments = sum(c["experiments"] for c in campaigns.values())
    result = {
        "campaigns": campaigns,
        "experiments": experiments,
        "makespan_s": round(makespan, 1),
        "experiments_per_hour": round(3600 * experiments / makespan, 1),
        "cores": args.cores,
        "busy_training": round(training / (args.cores * makespan), 4),
        "seconds_per_experiment_mean": round(training / experiments, 2),
    }
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
