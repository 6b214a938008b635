"""Experiments per hour of the embedded subspace on this machine: this code beside a baseline.

    python benchmarks/bench_campaign.py --out results/bench/campaign.json
                                        [--baseline 9d072c5] [--configs 8] [--repeats 2]

The same `--configs` configs, drawn from the embedded campaigns' subspace
(params.yaml, campaign `agents`'s limits, seed 0), are trained on one task the
size of the embedded default (800 clips: 640 train / 80 val / 80 test, 30
steps of 64-d features with a planted signal) in three layouts, alternating,
`--repeats` times, each timed as the wall clock of whole processes:

- `baseline`: the baseline commit's library (a git worktree, default 9d072c5,
  the code when the speed issue was filed; its models and trainer are those
  of the first encoders), one process with 2 torch threads training every
  config in turn: a shard as Snakemake ran it then (4 threads asked, 2 given);
- `this_code_2_threads`: this checkout's library in that same layout (what
  the code alone gained);
- `this_code_2_shards`: this checkout, two 1-thread processes side by side,
  the configs packed into them by the campaign's own packing (shards.pack),
  as `make run` runs shards now (campaign.resources.shard.cpus: 1);
- `this_code_1_process_2_streams`: this checkout, one process with 1 torch
  thread training 2 configs at a time (campaign.streams: 2): what the GPU's
  concurrency mechanism does on a CPU.

Experiments per hour are medians over the repeats, and the ratios are of
medians measured in this run. Every layout's per-config validation AP is
recorded, with the largest difference between this code's two layouts (same
seeds; 1 and 2 torch threads sum in different orders).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_training import write_task  # noqa: E402

from expsearch.atomic import atomic_write_text  # noqa: E402
from expsearch.campaign.shards import pack  # noqa: E402
from expsearch.params import load_params  # noqa: E402
from expsearch.settings import campaign_settings  # noqa: E402

EMBEDDED = {"clips": 800, "split": (0.8, 0.1, 0.1), "width": 64}


def worktree(commit: str, root: Path) -> Path:
    """A checkout of `commit` (created once, reused), for its library."""
    path = root / f"baseline-{commit}"
    if not (path / "src" / "expsearch").exists():
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", "--force", str(path), commit],
            check=True,
            capture_output=True,
        )
    return path


def worker(src: str, threads: int, streams: int, task: str, configs: list[str], out: str) -> None:
    """Train `configs` with the library under `src` (`threads` torch threads, `streams`
    configs at a time: this code only); each writes its metrics.json under `out`."""
    sys.path.insert(0, src)
    import torch

    torch.set_num_threads(threads)
    from expsearch.features.store import stores_under
    from expsearch.params import load_params
    from expsearch.settings import training_settings
    from expsearch.space import Space
    from expsearch.training.experiment import TaskCache, run_experiments

    root = Path(task)
    params = load_params(Path(src).parent / "params.yaml")
    settings = training_settings(params["training"], device="cpu")
    tasks = TaskCache(stores_under(root / "features"), root / "manifest.json", root / "clips.csv")
    jobs = [(json.loads(Path(c).read_text()), Path(out) / Path(c).stem) for c in configs]
    space = Space.from_params(params)
    # The baseline commit's run_experiments has no `streams`: pass it only when used.
    extra = {"streams": streams} if streams > 1 else {}
    results = run_experiments(jobs, space, tasks, settings, progress=False, **extra)
    failed = [m["error"] for m in results if m["status"] != "ok"]
    if failed:
        raise SystemExit(f"failed: {failed}")


def launch(src: Path, threads: int, task: Path, configs: list[Path], out: Path, streams: int = 1):
    command = [
        sys.executable, __file__, "--worker", str(src), str(threads), str(streams), str(task),
        str(out),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen(
        [*command, *map(str, configs)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def timed(processes) -> float:
    start = time.perf_counter()
    for process in processes:
        _, err = process.communicate()
        if process.returncode:
            raise RuntimeError(err.decode()[-3000:])
    return time.perf_counter() - start


def val_aps(out: Path) -> dict[str, float]:
    return {
        path.parent.name: json.loads(path.read_text())["val_ap"]
        for path in sorted(out.glob("*/metrics.json"))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/bench/campaign.json")
    parser.add_argument("--baseline", default="9d072c5")
    parser.add_argument("--configs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        src, threads, streams, task, out, *configs = args.worker
        worker(src, int(threads), int(streams), task, configs, out)
        return

    settings = campaign_settings(load_params(REPO / "params.yaml"), "agents")
    # One store serves them all: every embedded backbone gives 64-d steps, so the
    # backbone changes what is read, not what is computed.
    configs = [
        {**c.to_dict(), "backbone": "vjepa2"} for c in settings.space.sample(args.configs, seed=0)
    ]
    rows = [{"id": k, "config": c} for k, c in enumerate(configs)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_task(root, EMBEDDED)
        paths = []
        for k, config in enumerate(configs):
            paths.append(root / f"config{k:02d}.json")
            paths[-1].write_text(json.dumps(config))
        halves = [[paths[i] for i in ids] for ids in pack(rows, 2)]
        sources = {"baseline": worktree(args.baseline, root) / "src", "this": REPO / "src"}
        layouts = {
            "baseline": lambda out: [launch(sources["baseline"], 2, root, paths, out)],
            "this_code_2_threads": lambda out: [launch(sources["this"], 2, root, paths, out)],
            "this_code_2_shards": lambda out: [
                launch(sources["this"], 1, root, half, out) for half in halves
            ],
            "this_code_1_process_2_streams": lambda out: [
                launch(sources["this"], 1, root, paths, out, streams=2)
            ],
        }
        seconds = {name: [] for name in layouts}
        aps = {}
        for repeat in range(args.repeats):
            for name, start in layouts.items():
                out = root / f"runs-{name}-{repeat}"
                seconds[name].append(timed(start(out)))
                aps[name] = val_aps(out)
                print(
                    f"  repeat {repeat + 1}/{args.repeats} {name}: {seconds[name][-1]:.1f} s "
                    f"for {len(paths)} experiments",
                    flush=True,
                )
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force",
             str(root / f"baseline-{args.baseline}")],
            capture_output=True,
        )  # fmt: skip
    per_hour = {name: 3600 * len(paths) / statistics.median(s) for name, s in seconds.items()}
    result = {
        "machine": {"cpu": platform.processor(), "cores": os.cpu_count()},
        "baseline_commit": args.baseline,
        "task": EMBEDDED,
        "configs": configs,
        "seconds": seconds,
        "experiments_per_hour": per_hour,
        "speedup_over_baseline": {name: per_hour[name] / per_hour["baseline"] for name in layouts},
        "val_ap": aps,
        # 1 vs 2 torch threads sum in another order: equal up to rounding, not bit for bit;
        # the 1-thread layouts (shards, streams) train every config exactly alike.
        "val_ap_max_difference_vs_this_code_2_shards": {
            name: max(abs(aps[name][k] - aps["this_code_2_shards"][k]) for k in aps[name])
            for name in ("this_code_2_threads", "this_code_1_process_2_streams")
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    for name, value in per_hour.items():
        print(f"{name}: {value:.0f} experiments/h (x{value / per_hour['baseline']:.2f})")


if __name__ == "__main__":
    main()
