"""How close training is to this machine's arithmetic limit, per encoder x pooling.

    python benchmarks/bench_flops.py --out results/bench/flops.json [--threads 1] [--steps 10]

In one run: dense fp32 matmul throughput (GFLOP/s, per thread count), each
config's counted FLOPs (expsearch.training.flops: FlopCounterMode, plus the
selective scan's exact count), and the measured time of one training step
(forward, backward, AdamW step; median of `--steps` after warm-up) and of
one validation pass, at the embedded size (width 64, depth 1, 640 training
clips of 64-d features, batch 64, seq_len 20) and at the paper size (width
256, depth 2, 1,184 clips of 1,024-d features). Each time is reported as a
multiple of its FLOP-limited time (counted FLOPs / matmul rate at the same
thread count: the median of the rates measured beside every timing, as the
shared machine's speed drifts): the CPU analogue of model-FLOPs utilisation,
1.0 meaning every cycle did dense arithmetic. A whole embedded experiment
(`fit_config` + test evaluation, `--epochs`) is timed per encoder with
attention pooling (the median of `--experiment-repeats` runs), with the same
ratio. The encoders' steps are also timed one after another in turn in one
process, per pooling (`interleaved`), so that their ratios to the fastest
share the machine's load, and with the matmul rate measured beside each
round, so that their multiples of the limit do too. Last, the layout
of the machine's cores: training steps per second of one process with 2
threads against two 1-thread processes running at once (what one Snakemake
shard per core gives).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from expsearch.atomic import atomic_write_text
from expsearch.memory import keep_freed_memory
from expsearch.models.classifier import ClipClassifier
from expsearch.training.flops import experiment_flops, matmul_gflops, pass_flops
from expsearch.training.losses import make_loss
from expsearch.training.optim import make_optimizer

ENCODERS = ("zipformer", "retnet", "bimamba", "hybrid", "xlstm")
POOLINGS = ("attention", "mean", "last", "max")
SIZES = {
    "embedded": {"feature_width": 64, "width": 64, "depth": 1, "n_train": 640, "n_val": 80},
    "paper": {"feature_width": 1024, "width": 256, "depth": 2, "n_train": 1184, "n_val": 177},
}
BATCH, SEQ_LEN = 64, 20


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def vector_isa() -> str:
    """The widest x86 vector extension the CPU reports (the C kernels' vector width)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return "unknown"
    return next((isa for isa in ("avx512f", "avx2", "avx") if isa in flags), "other")


def config(encoder: str, pooling: str, size: dict, epochs: int = 5) -> dict:
    return {
        "encoder": encoder, "pooling": pooling, "width": size["width"], "depth": size["depth"],
        "dropout": 0.1, "loss": "focal", "focal_gamma": 2.0, "focal_alpha": 0.5,
        "learning_rate": 3e-4, "weight_decay": 0.01, "batch_size": BATCH,
        "scheduler": "cosine", "seq_len": SEQ_LEN, "epochs": epochs, "oversample_ratio": 1.0,
    }  # fmt: skip


def training_step(cfg: dict, size: dict) -> tuple[ClipClassifier, Callable[[], None]]:
    """A seeded model and a closure running one training step (forward, backward, the
    gradient clip, AdamW, the schedule) on a fixed full-length batch."""
    torch.manual_seed(0)
    model = ClipClassifier(
        size["feature_width"], cfg["encoder"], cfg["pooling"], cfg["width"], cfg["depth"], 0.1
    )
    optimizer, scheduler = make_optimizer(
        model, lr=3e-4, weight_decay=0.01, schedule="cosine", total_steps=1000,
        warmup_fraction=0.05,
    )  # fmt: skip
    loss_fn, _ = make_loss(cfg)
    x = torch.randn(BATCH, SEQ_LEN, size["feature_width"])
    lengths = torch.full((BATCH,), SEQ_LEN)
    y = (torch.arange(BATCH) % 2).float()
    model.train()

    def step() -> None:
        loss = loss_fn(model(x, lengths), y)
        optimizer.zero_grad()  # FlatAdamW: zeroed in place, the views stay
        loss.backward()
        optimizer.clip_grad_norm(1.0)
        optimizer.step()
        scheduler.step()

    return model, step


def time_step(cfg: dict, size: dict, steps: int) -> dict[str, float]:
    """Median seconds of one training step and of one validation pass."""
    model, step = training_step(cfg, size)
    times = []
    for i in range(steps + 3):
        start = time.perf_counter()
        step()
        if i >= 3:
            times.append(time.perf_counter() - start)
    model.eval()
    val = torch.randn(size["n_val"], SEQ_LEN, size["feature_width"])
    val_lengths = torch.full((size["n_val"],), SEQ_LEN)
    eval_times = []
    with torch.no_grad():
        for _ in range(5):
            start = time.perf_counter()
            model(val, val_lengths)
            eval_times.append(time.perf_counter() - start)
    return {"step_s": statistics.median(times), "eval_s": statistics.median(eval_times[1:])}


def local_gflops() -> float:
    """The matmul rate at this process's thread count, measured now. The run's limit is
    the median of these, taken beside every timing: one measurement of five products
    moved by up to 1.6x between neighbouring configs on this shared machine."""
    return matmul_gflops(torch.get_num_threads())


def bench_size(name: str, size: dict, steps: int) -> dict:
    """Step and validation-pass times and counted FLOPs per encoder x pooling; the ratios
    to the FLOP limit are added at the end of the run (`apply_limit`)."""
    rows = {}
    for encoder in ENCODERS:
        for pooling in POOLINGS:
            cfg = config(encoder, pooling, size)
            model = ClipClassifier(
                size["feature_width"], encoder, pooling, size["width"], size["depth"], 0.1
            )
            counted = pass_flops(model, BATCH, SEQ_LEN, size["feature_width"])
            val_flops = pass_flops(model, size["n_val"], SEQ_LEN, size["feature_width"])["forward"]
            gflops = local_gflops()
            measured = time_step(cfg, size, steps)
            rows[f"{encoder}/{pooling}"] = {
                "train_step_gflop": counted["train_step"] / 1e9,
                "val_pass_gflop": val_flops / 1e9,
                "step_ms": measured["step_s"] * 1e3,
                "val_pass_ms": measured["eval_s"] * 1e3,
                "scan_share": counted["scan_share"],
                "matmul_gflops_beside": gflops,
            }
            print(
                f"  {name} {encoder:9s} {pooling:9s} step {measured['step_s'] * 1e3:7.1f} ms, "
                f"val pass {measured['eval_s'] * 1e3:7.1f} ms (matmul {gflops:.0f} GFLOP/s)",
                flush=True,
            )
    fastest = min(rows.values(), key=lambda r: r["step_ms"])["step_ms"]
    for row in rows.values():
        row["x_fastest"] = row["step_ms"] / fastest
    return rows


def apply_limit(report: dict, gflops: float) -> None:
    """Every time as a multiple of its FLOP-limited time at `gflops`, printed as a table."""
    for name, rows in report["steps"].items():
        for key, row in rows.items():
            row["step_flop_limited_ms"] = row["train_step_gflop"] / gflops * 1e3
            row["step_x_limit"] = row["step_ms"] / row["step_flop_limited_ms"]
            row["val_pass_x_limit"] = row["val_pass_ms"] / (row["val_pass_gflop"] / gflops * 1e3)
            print(
                f"  {name} {key:20s} step {row['step_x_limit']:4.1f} x limit "
                f"({row['step_flop_limited_ms']:.1f} ms); val pass {row['val_pass_x_limit']:4.1f} x"
            )
    # The interleaved steps are the same steps, timed in turn over 30+ rounds, against the
    # limit at the matmul rate measured beside those rounds: a figure less exposed to a
    # slow minute of the machine than a sweep's.
    embedded = report["steps"].get("embedded", {})
    for pooling, rows in report["interleaved"].items():
        for encoder, row in rows.items():
            if f"{encoder}/{pooling}" in embedded:
                gflop = embedded[f"{encoder}/{pooling}"]["train_step_gflop"]
                row["step_flop_limited_ms"] = gflop / row["matmul_gflops_beside"] * 1e3
                row["x_limit"] = row["step_ms"] / row["step_flop_limited_ms"]
        print(f"  interleaved {pooling:9s} x limit: " + ", ".join(
            f"{e} {r['x_limit']:.2f}" for e, r in rows.items() if "x_limit" in r))  # fmt: skip
    for encoder, row in report["experiments"].items():
        row["flop_limited_s"] = row["gflop"] / gflops
        row["x_limit"] = row["seconds"] / row["flop_limited_s"]
        print(
            f"  experiment {encoder:9s} {row['x_limit']:4.1f} x limit ({row['flop_limited_s']:.2f} s)"
        )


def interleaved(size: dict, rounds: int) -> dict:
    """Every encoder's step, one after another in turn in one process, per pooling: the
    medians' ratios to the fastest are then measured under the same load (this shared
    machine's speed drifts by up to 1.6x over a run, more than a sequential sweep
    can tell from the encoders' differences). The matmul rate is measured beside every
    round too, for these steps' own FLOP limit (`apply_limit`): the sweep's rates were
    measured minutes earlier. A step right after another encoder's is not slowed by
    the switch: the first of three steps in a row took 1.00-1.02x the third."""
    report = {}
    for pooling in POOLINGS:
        steps = {e: training_step(config(e, pooling, size), size)[1] for e in ENCODERS}
        times: dict[str, list[float]] = {e: [] for e in ENCODERS}
        rates = []
        for i in range(rounds + 3):
            if i >= 3:
                rates.append(local_gflops())
            for encoder, step in steps.items():
                start = time.perf_counter()
                step()
                if i >= 3:
                    times[encoder].append(time.perf_counter() - start)
        medians = {e: statistics.median(t) * 1e3 for e, t in times.items()}
        fastest, rate = min(medians.values()), statistics.median(rates)
        report[pooling] = {e: {"step_ms": m, "x_fastest": m / fastest,
                               "matmul_gflops_beside": rate} for e, m in medians.items()}  # fmt: skip
        print(f"  interleaved {pooling:9s} " + ", ".join(
            f"{e} {m:.1f} ms ({m / fastest:.2f}x)" for e, m in medians.items())
            + f" (matmul {rate:.0f} GFLOP/s)", flush=True)  # fmt: skip
    return report


def time_experiments(epochs: int, repeats: int) -> dict:
    """Whole embedded experiments (fit + test) per encoder, attention pooling: the median
    of `repeats` runs of about a second each (on this shared machine one run of xLSTM's
    took 1.0 s in a benchmark run, and four of the same code 0.77-0.83 s that hour)."""
    import numpy as np

    from expsearch.settings import TrainSettings
    from expsearch.training.data import SplitData, Task
    from expsearch.training.trainer import evaluate, fit_config

    size = SIZES["embedded"]
    rng = np.random.default_rng(0)

    def split(name: str, n: int) -> SplitData:
        targets = torch.as_tensor(np.arange(n) % 2, dtype=torch.float32)
        features = torch.as_tensor(
            rng.normal(size=(n, 30, size["feature_width"])), dtype=torch.float32
        )
        features[:, -10:, 0] += targets[:, None]
        return SplitData(name, [f"{name}{i}" for i in range(n)], features,
                         torch.full((n,), 30), targets)  # fmt: skip

    task = Task("vjepa2", size["feature_width"], 30, split("train", size["n_train"]),
                split("val", size["n_val"]), {"test": split("test", size["n_val"])})  # fmt: skip
    settings = TrainSettings(seed=0, device="cpu")
    rows = {}
    for encoder in ENCODERS:
        cfg = config(encoder, "attention", size, epochs)
        cfg.update(backbone="vjepa2", mixup_alpha=0.0, feature_noise=0.0)
        counted = experiment_flops(cfg, feature_width=size["feature_width"],
                                   n_train=size["n_train"], n_val=size["n_val"],
                                   n_test=size["n_val"])  # fmt: skip
        gflops = local_gflops()
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            fit = fit_config(cfg, task, settings)
            evaluate(fit.model, task.split("test", unseal=True), fit.seq_len, settings)
            runs.append(time.perf_counter() - start)
        seconds = statistics.median(runs)
        rows[encoder] = {"seconds": seconds, "runs_s": runs, "gflop": counted["total"] / 1e9,
                         "epochs": epochs, "matmul_gflops_beside": gflops}  # fmt: skip
        print(f"  experiment {encoder:9s} {seconds:6.2f} s, median of "
              f"{', '.join(f'{r:.2f}' for r in runs)} (matmul {gflops:.0f} GFLOP/s)", flush=True)  # fmt: skip
    return rows


def _steps_per_second(args: tuple[str, int, int]) -> float:
    """Training steps per second of one process (embedded size) with `threads` threads."""
    encoder, threads, steps = args
    torch.set_num_threads(threads)
    measured = time_step(config(encoder, "attention", SIZES["embedded"]), SIZES["embedded"], steps)
    return 1.0 / measured["step_s"]


def layout(encoder: str, steps: int) -> dict:
    """The machine's two cores as one 2-thread process, or two 1-thread processes at once."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        one_two_threads = pool.map(_steps_per_second, [(encoder, 2, steps)])[0]
    with context.Pool(2) as pool:
        two_one_thread = sum(pool.map(_steps_per_second, [(encoder, 1, steps)] * 2))
    with context.Pool(1) as pool:
        one_one_thread = pool.map(_steps_per_second, [(encoder, 1, steps)])[0]
    row = {
        "encoder": encoder,
        "steps_per_s_1_process_1_thread": one_one_thread,
        "steps_per_s_1_process_2_threads": one_two_threads,
        "steps_per_s_2_processes_1_thread": two_one_thread,
        "two_processes_over_two_threads": two_one_thread / one_two_threads,
    }
    print(
        f"  layout {encoder}: 1x1 thread {one_one_thread:.1f} steps/s, 1x2 threads "
        f"{one_two_threads:.1f}, 2x1 thread {two_one_thread:.1f} (x{row['two_processes_over_two_threads']:.2f})",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/bench/flops.json")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--sizes", default="embedded,paper")
    parser.add_argument("--experiment-repeats", type=int, default=3)
    args = parser.parse_args()
    keep_freed_memory()  # as every training process does (fit_config): see expsearch/memory.py
    rates = {threads: matmul_gflops(threads) for threads in (1, 2)}
    print(f"matmul fp32: {', '.join(f'{t} thread(s) {g:.0f} GFLOP/s' for t, g in rates.items())}")
    torch.set_num_threads(args.threads)
    report = {
        "matmul_gflops": rates,
        "threads": args.threads,
        "batch": BATCH,
        "seq_len": SEQ_LEN,
        "sizes": {name: SIZES[name] for name in args.sizes.split(",")},
        "steps": {
            name: bench_size(name, SIZES[name], args.steps) for name in args.sizes.split(",")
        },
        "interleaved": interleaved(SIZES["embedded"], args.steps * 3),
        "experiments": time_experiments(args.epochs, args.experiment_repeats),
        "layout": [layout(encoder, args.steps * 3) for encoder in ("zipformer", "bimamba")],
        "machine": {"cpu": cpu_model(), "vector_isa": vector_isa(), "torch": torch.__version__},
    }
    beside = [row["matmul_gflops_beside"] for rows in report["steps"].values()
              for row in rows.values()] + [
        row["matmul_gflops_beside"] for row in report["experiments"].values()]  # fmt: skip
    report["limit_gflops"] = statistics.median(beside)
    print(f"FLOP limit at {report['limit_gflops']:.0f} GFLOP/s, the median of {len(beside)} "
          f"measurements ({min(beside):.0f}-{max(beside):.0f}):")  # fmt: skip
    apply_limit(report, report["limit_gflops"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
