"""Benchmark of the search side at the paper's scale: how long a round's
proposing and screening take when the history holds thousands of experiments.

    python benchmarks/bench_agents.py --out results/bench/agents.json [--repeats 5]

For histories of 1,000 and 10,000 experiments (the paper: 10,469 finished,
42,042 candidates) it times one propose() call of each offline policy
(random, rules, TPE warm-started as params `agents.tpe` say, and TPE
warm-started from the whole history), the deduplicator (indexing every
experiment, checking 100 fresh candidates against them) and one complete
round (three agents, auto-sweep, dedup against every experiment, budget),
reporting medians over repeats. LLM agents are left out: their time is the
provider's.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from expsearch.agents.dedup import Deduplicator
from expsearch.agents.history import History
from expsearch.agents.plan import plan_round
from expsearch.agents.policy import RandomPolicy
from expsearch.agents.rules import RulesPolicy
from expsearch.agents.tpe import TPEPolicy
from expsearch.atomic import atomic_write_text
from expsearch.params import load_params
from expsearch.settings import agent_settings
from expsearch.space import Space

ROOT = Path(__file__).resolve().parents[1]


def synthetic_history(space: Space, n: int) -> History:
    rng = np.random.default_rng(0)
    rows = []
    for i, config in enumerate(space.sample(n, seed=1)):
        failed = rng.random() < 0.1
        score = 0.6 + 0.1 * (config["backbone"] == "vjepa2") + 0.05 * rng.standard_normal()
        rows.append({"id": f"e{i}", "config": config.to_dict(),
                     "status": "failed" if failed else "ok",
                     "val_ap": None if failed else float(score)})  # fmt: skip
    return History.from_rows(rows, space)


def indexed(space: Space, history: History) -> Deduplicator:
    dedup = Deduplicator(space)
    for exp in history.taken():
        dedup.add(exp.id, exp.config)
    return dedup


def seconds(work, repeats: int) -> dict[str, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/bench/agents.json")
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()

    params = load_params(args.params)
    space = Space.from_params(params)
    agents_settings = agent_settings(params["agents"])
    settings, tpe = agents_settings.plan, dict(agents_settings.tpe)
    n = settings.ideas_per_agent
    policies = {
        "random": RandomPolicy,
        "rules": RulesPolicy,
        "tpe": lambda space: TPEPolicy(space, **tpe),
        "tpe_unbounded": lambda space: TPEPolicy(space, **(tpe | {"warm_start": None})),
    }
    candidates = space.sample(100, seed=2)
    results = {}
    for size in args.sizes:
        history = synthetic_history(space, size)
        row = {}
        for name, make in policies.items():
            row[f"propose_{name}"] = seconds(
                lambda make=make, history=history: make(space).propose(
                    history, n, np.random.default_rng(0)
                ),
                args.repeats,
            )
            print(f"history {size}: {name} propose({n}) {row[f'propose_{name}']['median_s']:.3f} s")
        row["dedup_index"] = seconds(lambda history=history: indexed(space, history), args.repeats)
        dedup = indexed(space, history)
        row["dedup_check_100"] = seconds(
            lambda dedup=dedup: [dedup.check(config) for config in candidates], args.repeats
        )
        print(
            f"history {size}: dedup index {row['dedup_index']['median_s']:.3f} s, "
            f"100 checks {row['dedup_check_100']['median_s']:.3f} s"
        )
        agents = [RulesPolicy(space), TPEPolicy(space, **tpe), RandomPolicy(space)]
        row["round"] = seconds(
            lambda agents=agents, history=history: plan_round(
                agents, history, space, round_index=1, seed=0, settings=settings
            ),
            args.repeats,
        )
        print(f"history {size}: a round of 3 agents {row['round']['median_s']:.3f} s")
        results[str(size)] = row
    report = {
        "ideas_per_agent": n,
        "tpe_warm_start": tpe.get("warm_start"),
        "repeats": args.repeats,
        "machine": {"python": platform.python_version(), "processor": platform.processor()},
        "by_history_size": results,
    }
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
