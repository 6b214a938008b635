"""Benchmark of the paper's analyses at the paper's scale.

    python benchmarks/bench_analysis.py --out results/bench/analysis.json [--repeats 3]

The table is planted, not measured: 10,469 search rows and 172 generative
rows drawn with the space's sampler, AP from a planted model
(expsearch.analysis.planted). Every family runs with the paper's settings
(1,000 permutations, 1,000 bootstrap resamples, groups of >= 10); the time
of each family is the median over `--repeats` runs, and the total is their
sum. TPE on the pool up to the largest N (500 trials per seed) is timed on
its own line, outside the total.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from expsearch.analysis.baselines import tpe_on_pool
from expsearch.analysis.planted import planted_table
from expsearch.analysis.result import jsonable
from expsearch.analysis.run import analyze
from expsearch.analysis.settings import AnalysisSettings
from expsearch.analysis.table import experiment_table
from expsearch.atomic import atomic_write_text
from expsearch.params import load_params
from expsearch.space import Space

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("baselines", "convergence", "dynamics", "variance", "cost")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/bench/analysis.json")
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--rows", type=int, default=10_469)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tpe-trials", type=int, default=500)
    args = parser.parse_args()

    space = Space.from_params(load_params(args.params))
    start = time.perf_counter()
    table = experiment_table(planted_table(space, n=args.rows, seed=0), source="planted")
    load_s = time.perf_counter() - start
    # The paper's settings; TPE is timed on its own below, so the baselines run without it.
    settings = AnalysisSettings(subset={"code_version": "latest"}, tpe_seeds=0)
    times: dict[str, list[float]] = {family: [] for family in FAMILIES}
    results = {}
    for repeat in range(args.repeats):
        for family in FAMILIES:
            start = time.perf_counter()
            results[family] = jsonable(analyze(family, table, settings, space=space), family)
            times[family].append(time.perf_counter() - start)
            print(
                f"repeat {repeat + 1}/{args.repeats} {family}: {times[family][-1]:.2f} s",
                flush=True,
            )
    pool = table.finished("val_ap")
    pool = pool[pool["campaign"] == "agents"]
    start = time.perf_counter()
    tpe = tpe_on_pool(pool, space, metric="val_ap", trials=args.tpe_trials, seed=0)
    tpe_s = time.perf_counter() - start
    print(f"tpe on the pool, {args.tpe_trials} trials: {tpe_s:.1f} s")
    medians = {family: statistics.median(values) for family, values in times.items()}
    report = {
        "table": {
            "rows": len(table),
            "planted": "space sampler + planted AP model (expsearch.analysis.planted)",
            "build_s": round(load_s, 3),
        },
        "settings": {k: v for k, v in dataclasses.asdict(settings).items() if k != "within"},
        "median_s": {family: round(value, 3) for family, value in medians.items()},
        "all_s": {family: [round(v, 3) for v in values] for family, values in times.items()},
        "total_median_s": round(sum(medians.values()), 3),
        "budget_s": 60,
        "tpe_pool": {
            "trials": args.tpe_trials,
            "seconds": round(tpe_s, 2),
            "best": float(np.max(tpe["values"])),
        },
        "planted_checks": {
            "eta_squared": results["variance"].get("anova", {}).get("eta_squared"),
            "c_subset": results["convergence"].get("subset", {}).get("bounded", {}).get("c"),
        },
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["median_s"]), f"total {report['total_median_s']} s")


if __name__ == "__main__":
    main()
