"""Benchmark of the configuration-space operations that every proposal goes
through (validation + fingerprint, sampling, Jaccard similarity).

    python benchmarks/bench_space.py --out results/bench/space.json [--repeats 7]

Reports the median and spread of each rate over repeated runs; the paper's
campaign screened 42,042 candidates, so these bound the cost of screening.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from expsearch.atomic import atomic_write_text
from expsearch.params import load_params
from expsearch.space import Space

ROOT = Path(__file__).resolve().parents[1]


def rate(work: Callable[[], int], repeats: int) -> dict[str, float]:
    """Items per second of `work` (which returns how many items it did)."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        items = work()
        rates.append(items / (time.perf_counter() - start))
    return {
        "median_per_s": statistics.median(rates),
        "min_per_s": min(rates),
        "max_per_s": max(rates),
        "repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/bench/space.json")
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--n", type=int, default=5000, help="configs per repeat")
    args = parser.parse_args()

    space = Space.from_params(load_params(args.params))
    configs = space.sample(args.n, seed=0)
    raw = [config.to_dict() for config in configs]
    pool = configs[:500]

    def validate() -> int:
        for item in raw:
            space.validate(item).fingerprint  # noqa: B018 - the work being measured
        return len(raw)

    def sample() -> int:
        return len(space.sample(args.n, seed=1))

    def jaccard() -> int:
        for a in pool:
            for b in pool:
                space.jaccard(a, b)
        return len(pool) ** 2

    results = {}
    for name, work in [
        ("validate_and_fingerprint", validate),
        ("sample", sample),
        ("jaccard_pairs", jaccard),
    ]:
        print(f"bench {name} ...", flush=True)
        results[name] = rate(work, args.repeats)
        print(f"  median {results[name]['median_per_s']:,.0f}/s", flush=True)
    report = {
        "benchmark": "space",
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "n_configs_per_repeat": args.n,
        "jaccard_pool": len(pool),
        "results": results,
    }
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
