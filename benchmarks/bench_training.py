"""Benchmark of training: experiments per hour, ours beside a naive reference.

    python benchmarks/bench_training.py --out results/bench/training.json [--device cpu|cuda]
                                        [--sizes embedded,paper] [--repeats 3] [--configs 3]
                                        [--streams 1,4]

Two sizes: the embedded default (400 clips: 320 train / 40 val / 40 test,
30 steps, 64-d features as the tiny random backbones give, Zipformer width
128) and the paper's (1,500 clips: 1,184 / 177 / 139, 1,024-d, 20 steps fed
from a 30-step store, Zipformer width 256), at batch 64 for `--epochs`
(default 10; `make bench` passes fewer for the paper size on a CPU, where one
such experiment takes minutes; the epochs used are in the output).
"Ours" is one process that trains `--configs` configs with the library
(features on the device, batches by indexing, bf16 autocast on CUDA,
evaluation with horizons, metrics.json each). The reference trains one
config per process with a DataLoader in fp32 (benchmarks/naive_reference.py).
With `--streams 1,4` "ours" is also timed training that many configs at
once in its one process (campaign.streams: a thread and a CUDA stream each):
on a GPU, experiments per GPU-hour beside the one-config-per-process loop.
Both are timed as wall clock of whole processes, interpreter start included,
alternating, `--repeats` times; experiments per hour are medians, and the
ratio is of the medians measured in this run. Features are random with a
planted signal (the timing does not depend on what they contain).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from expsearch.atomic import atomic_write_text
from expsearch.data.splits import make_split, write_manifest
from expsearch.features.store import write_store

SIZES = {
    "embedded": {"clips": 400, "split": (0.8, 0.1, 0.1), "width": 64, "model_width": 128},
    "paper": {
        "clips": 1500,
        "split": (1184 / 1500, 177 / 1500, 139 / 1500),
        "width": 1024,
        "model_width": 256,
    },
}
STEPS = 30
HERE = Path(__file__).resolve().parent


def config(size: dict, k: int, epochs: int) -> dict:
    return {
        "backbone": "vjepa2", "encoder": "zipformer", "pooling": "attention",
        "width": size["model_width"], "depth": 2, "dropout": 0.1,
        "loss": "focal", "focal_gamma": 2.0, "focal_alpha": 0.5,
        "learning_rate": 3e-4 * (1 + k), "weight_decay": 0.01, "batch_size": 64,
        "scheduler": "cosine", "seq_len": 20, "epochs": epochs,
        "oversample_ratio": 1.0, "mixup_alpha": 0.0, "feature_noise": 0.0,
    }  # fmt: skip


def write_task(root: Path, size: dict) -> None:
    """A store (under features/vjepa2), clips.csv and a manifest of `size`."""
    rng = np.random.default_rng(0)
    n = size["clips"]
    target = (np.arange(n) % 2).astype(int)
    ids = [f"{i:05d}" for i in range(n)]
    event = np.where(target == 1, 7.5, np.nan)
    clips = pd.DataFrame(
        {"id": ids, "path": "", "target": target, "time_of_event": event,
         "time_of_alert": event - 0.8, "pool": "train"}
    )  # fmt: skip
    labels = root / "train.csv"
    clips[["id", "time_of_event", "time_of_alert", "target"]].to_csv(labels, index=False)
    clips.to_csv(root / "clips.csv", index=False)
    train, val, test = size["split"]
    manifest = make_split(clips, {"train": train, "val": val, "test": test}, 0, labels)
    write_manifest(root / "manifest.json", manifest)
    features = rng.normal(size=(n, STEPS, size["width"])).astype(np.float32)
    features[:, -10:, 0] += target[:, None]
    write_store(
        root / "features" / "vjepa2",
        features,
        {"backbone": "vjepa2", "fps": 5.0, "clip_ids": ids, "valid_lengths": [STEPS] * n,
         "labels_sha256": manifest.labels_sha256, "targets": target.tolist()},
    )  # fmt: skip


def run(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{command[:3]} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def ours(root: Path, configs: list[Path], device: str, streams: int = 1) -> list[str]:
    return [
        sys.executable, str(Path(__file__)), "--worker", str(root), device, str(streams),
        *map(str, configs),
    ]  # fmt: skip


def worker(root: Path, device: str, streams: int, configs: list[str]) -> None:
    """The 'ours' process: several configs, one task cache, metrics written."""
    from expsearch.features.store import stores_under
    from expsearch.params import load_params
    from expsearch.settings import training_settings
    from expsearch.space import Space
    from expsearch.training.experiment import TaskCache, run_experiments

    params = load_params(HERE.parent / "params.yaml")
    settings = training_settings(params["training"], device=device)
    tasks = TaskCache(
        stores_under(root / "features"), root / "manifest.json", root / "clips.csv", device
    )
    space = Space.from_params(params)
    jobs = [
        (json.loads(Path(c).read_text()), root / f"runs{streams}" / Path(c).stem) for c in configs
    ]
    results = run_experiments(jobs, space, tasks, settings, progress=False, streams=streams)
    failed = [m["error"] for m in results if m["status"] != "ok"]
    if failed:
        raise SystemExit(f"failed: {failed}")


def bench_size(
    name: str,
    size: dict,
    device: str,
    repeats: int,
    n_configs: int,
    epochs: int,
    streams: tuple[int, ...] = (1,),
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_task(root, size)
        configs = []
        for k in range(n_configs):
            configs.append(root / f"config{k}.json")
            configs[-1].write_text(json.dumps(config(size, k, epochs)))
        naive = [
            [sys.executable, str(HERE / "naive_reference.py"), str(c),
             str(root / "features" / "vjepa2"), str(root / "manifest.json"), device]
            for c in configs
        ]  # fmt: skip
        ours_s, naive_s = [], []
        streamed = {s: [] for s in streams if s > 1}
        for repeat in range(repeats):
            ours_s.append(run(ours(root, configs, device)) / n_configs)
            naive_s.append(sum(run(command) for command in naive) / n_configs)
            for s, times in streamed.items():
                times.append(run(ours(root, configs, device, s)) / n_configs)
            print(
                f"  {name} repeat {repeat + 1}/{repeats}: ours {ours_s[-1]:.1f} s/experiment, "
                f"naive {naive_s[-1]:.1f} s/experiment"
                + "".join(f", {s} streams {t[-1]:.1f}" for s, t in streamed.items()),
                flush=True,
            )
    ours_median, naive_median = statistics.median(ours_s), statistics.median(naive_s)
    return {
        "streams": {
            str(s): {
                "seconds_per_experiment": times,
                "experiments_per_hour": 3600 / statistics.median(times),
                "over_one_stream": ours_median / statistics.median(times),
                "over_naive": naive_median / statistics.median(times),
            }
            for s, times in streamed.items()
        },
        "clips": size["clips"],
        "feature_width": size["width"],
        "epochs": epochs,
        "config": config(size, 0, epochs),
        "configs_per_process": n_configs,
        "ours_seconds_per_experiment": ours_s,
        "naive_seconds_per_experiment": naive_s,
        "ours_experiments_per_hour": 3600 / ours_median,
        "naive_experiments_per_hour": 3600 / naive_median,
        "speedup": naive_median / ours_median,
        "paper_minutes_per_experiment": [3, 10],
        "ours_minutes_per_experiment": ours_median / 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/bench/training.json")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default="embedded,paper")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", type=int, default=3, help="configs per 'ours' process")
    parser.add_argument("--epochs", default="embedded=10,paper=10", help="epochs per size")
    parser.add_argument("--streams", default="1", help="configs at once in 'ours', e.g. 1,4")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(Path(args.worker[0]), args.worker[1], int(args.worker[2]), args.worker[3:])
        return
    results = {
        "device": args.device,
        "device_name": torch.cuda.get_device_name()
        if args.device == "cuda"
        else platform.processor(),
        "torch_threads": torch.get_num_threads(),
        "sizes": {},
    }
    epochs = {k: int(v) for k, v in (item.split("=") for item in args.epochs.split(","))}
    for name in args.sizes.split(","):
        print(f"training benchmark: {name} size on {args.device}", flush=True)
        results["sizes"][name] = bench_size(
            name,
            SIZES[name],
            args.device,
            args.repeats,
            args.configs,
            epochs.get(name, 10),
            tuple(int(s) for s in args.streams.split(",")),
        )
        r = results["sizes"][name]
        print(
            f"  {name}: {r['ours_experiments_per_hour']:.0f} experiments/h "
            f"({r['ours_minutes_per_experiment']:.2f} min each) vs naive "
            f"{r['naive_experiments_per_hour']:.0f}/h: x{r['speedup']:.2f}",
            flush=True,
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
