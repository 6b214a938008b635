"""Simulated utilisation of a 16-GPU cluster under our round/shard scheduling.

    python benchmarks/bench_scheduling.py --out results/bench/scheduling.json

Feeds the paper's job durations (3-10 minutes, uniform) through the
campaign DAG's scheduling (propose -> shards on devices -> collect; round r
proposed once round r-1-lag is collected; see expsearch.campaign.simulate)
for a few layouts and seeds, and reports the median busy fraction and
experiments per device-hour (the paper: about 31% busy on 16 H100s).
"""

from __future__ import annotations

import argparse
import json
import statistics

from expsearch.atomic import atomic_write_text
from expsearch.campaign.simulate import SimulationSettings, simulate

LAYOUTS = {
    "1 campaign, 25 configs in 16 shards per round": {},
    "1 campaign, 48 configs in 16 shards": {"configs_per_round": 48},
    "2 campaigns side by side (agents + random baseline)": {"campaigns": 2},
    "4 campaigns side by side": {"campaigns": 4},
    "1 campaign, exact cost estimates": {"estimate_error": 0.0},
    "1 campaign, lag 1": {"lag": 1},
    "1 campaign, lag 2": {"lag": 2},
    "1 campaign, lag 1, 32 shards (one config each: more shards than devices)": {
        "lag": 1,
        "shards": 32,
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/bench/scheduling.json")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    report = {}
    for name, changes in LAYOUTS.items():
        runs = [simulate(SimulationSettings(seed=seed, **changes)) for seed in range(args.seeds)]
        report[name] = {
            "settings": runs[0]["settings"],
            "busy_fraction": statistics.median(r["busy_fraction"] for r in runs),
            "experiments_per_device_hour": statistics.median(
                r["experiments_per_device_hour"] for r in runs
            ),
            "seeds": args.seeds,
        }
        print(f"{name}: busy {report[name]['busy_fraction']:.0%}, "
              f"{report[name]['experiments_per_device_hour']:.1f} experiments/device-hour")  # fmt: skip
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
