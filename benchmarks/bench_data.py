"""Benchmark of the data stages: synthetic generation, the shared decoded-frames
cache, feature extraction per backbone, and feature-store reads.

    python benchmarks/bench_data.py --out results/bench/data.json [--repeats 3] [--clips 40]

Extraction is timed end to end (decode + encode + store) with the tiny
random-weight configs, on the GPU when there is one. Real-size extraction
needs the pretrained checkpoints and is not measured here. Store reads use
the paper's size: 1,184 training clips x 30 steps x 1,024 features.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from expsearch.atomic import atomic_write_text
from expsearch.data.sources import read_clips
from expsearch.data.synthetic import generate
from expsearch.features.backbones import BACKBONES
from expsearch.features.extract import extract_store
from expsearch.features.frames import decode_frames, frame_plan
from expsearch.features.store import open_store, write_store


def timed(work, repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - start)
    return seconds


def summary(seconds: list[float], items: int, unit: str) -> dict:
    rates = [items / s for s in seconds]
    return {
        f"median_{unit}_per_s": statistics.median(rates),
        f"min_{unit}_per_s": min(rates),
        f"max_{unit}_per_s": max(rates),
        "median_seconds": statistics.median(seconds),
        "repeats": len(seconds),
        "items": items,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/bench/data.json")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clips", type=int, default=40)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-data-"))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report: dict = {
        "benchmark": "data",
        "machine": {
            "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        },
    }
    try:
        print(f"bench synthetic generation ({args.clips} clips) ...", flush=True)

        def synth():
            shutil.rmtree(scratch / "gen", ignore_errors=True)
            generate(scratch / "gen", n=args.clips, seed=0, progress=False)

        report["synthetic_generation"] = summary(timed(synth, args.repeats), args.clips, "clips")
        sizes = [f.stat().st_size for f in (scratch / "gen" / "videos").glob("*.mp4")]
        report["synthetic_generation"]["mb_per_clip"] = statistics.mean(sizes) / 1e6
        print(f"  {report['synthetic_generation']['median_clips_per_s']:.1f} clips/s", flush=True)

        clips = read_clips("synthetic", scratch / "gen" / "train.csv", scratch / "gen" / "videos")
        plan = frame_plan(list(BACKBONES), "random")
        print(f"bench the shared decoded-frames cache ({plan}, 2 threads) ...", flush=True)

        def decode():
            shutil.rmtree(scratch / "frames", ignore_errors=True)
            decode_frames(clips, scratch / "frames", plan, fps=5.0, window_s=6.0, workers=2,
                          progress=False)  # fmt: skip

        report["decode_frames"] = summary(timed(decode, args.repeats), len(clips), "clips")
        report["decode_frames"].update(plan={str(k): v for k, v in plan.items()}, workers=2)
        print(f"  {report['decode_frames']['median_clips_per_s']:.1f} clips/s", flush=True)

        report["extraction"] = {}
        for name in BACKBONES:
            print(f"bench extraction {name} (tiny, {device}) ...", flush=True)

            def extract(name=name):
                shutil.rmtree(scratch / name, ignore_errors=True)
                extract_store(clips, name, scratch / name, device=device, progress=False)

            extract(name)  # warm-up: model class import and first build
            result = summary(timed(extract, args.repeats), len(clips), "clips")
            result.update(config="tiny", device=device)
            report["extraction"][name] = result
            print(f"  {result['median_clips_per_s']:.1f} clips/s", flush=True)

        print("bench store reads (1184 x 30 x 1024) ...", flush=True)
        rng = np.random.default_rng(0)
        features = rng.normal(size=(1184, 30, 1024)).astype(np.float32)
        index = {"clip_ids": [f"{i:05d}" for i in range(1184)], "valid_lengths": [30] * 1184}
        write_store(scratch / "store", features, index)
        open_seconds = timed(lambda: open_store(scratch / "store"), args.repeats)

        def gather():
            store = open_store(scratch / "store", verify=False)
            for rows in np.array_split(rng.permutation(1184), 1184 // 64):
                np.asarray(store.features[np.sort(rows)])

        gather_seconds = timed(gather, args.repeats)
        gigabytes = features.nbytes / 1e9
        report["store"] = {
            "gigabytes": gigabytes,
            "open_with_hash_check": summary(open_seconds, 1, "opens"),
            "random_batches_of_64_gb_per_s": statistics.median(
                gigabytes / s for s in gather_seconds
            ),
        }
        print(f"  {report['store']['random_batches_of_64_gb_per_s']:.2f} GB/s", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
