"""What stacking configs (torch.func.vmap) and compiling (torch.compile) buy on this CPU.

    python benchmarks/bench_stacking.py --out results/bench/stacking.json [--encoders retnet]
                                        [--stack 4,16] [--repeats 3]

One thread, the embedded size (width 64, depth 1, 64-d features, batch 64,
seq_len 20), dropout 0 (the stacked and compiled forms cannot call our
per-module mask kernel), BCE loss, fused AdamW. Per encoder, in one run and
alternating, `--repeats` times:
- eager: one config's training step, as a shard trains it;
- stacked: K configs of the same shape as one model (stack_module_state +
  functional_call under vmap: every matmul batched over K, one optimiser
  step for all); reported per config, for each K of `--stack`;
- compiled: torch.compile of the model (inductor's C++ kernels fuse the
  elementwise work); its first step, compilation included, is reported apart:
  cold (the first repeat, with an empty inductor cache made for this run)
  and cached (the later repeats, after torch._dynamo.reset(): what a new
  process with the same shapes pays).
Medians of the repeats' medians; ratios are eager over the other, measured in
this run. An encoder whose code vmap cannot run (custom autograd Functions
without a vmap rule, data-dependent checks) is reported with the error.
If per-call overhead dominated a width-64 step, stacking would divide it by
K; if memory traffic of the elementwise work dominated, only fusion helps.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

# Before torch is imported: inductor reads its cache folder once. An empty one makes
# the first compile cold, whatever earlier runs left in the default folder.
os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-stacking-inductor-")

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from expsearch.atomic import atomic_write_text
from expsearch.models.classifier import ClipClassifier

BATCH, SEQ_LEN, FEATURES, WIDTH = 64, 20, 64, 64
SIZE = {"batch": BATCH, "seq_len": SEQ_LEN, "features": FEATURES, "width": WIDTH, "depth": 1,
        "dropout": 0.0}  # fmt: skip


def _model(encoder: str) -> ClipClassifier:
    return ClipClassifier(FEATURES, encoder, "attention", WIDTH, 1, 0.0)


def _median_step(step, steps: int, warmup: int) -> float:
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def eager_ms(encoder: str, compiled: bool = False, steps: int = 15) -> tuple[float, float]:
    """Median ms of one config's step, and the first step's seconds."""
    torch.manual_seed(0)
    model = _model(encoder)
    forward = torch.compile(model) if compiled else model
    x, lengths = torch.randn(BATCH, SEQ_LEN, FEATURES), torch.full((BATCH,), SEQ_LEN)
    y = (torch.arange(BATCH) % 2).float()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)

    def step():
        loss = F.binary_cross_entropy_with_logits(forward(x, lengths), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    return _median_step(step, steps, warmup=3), first


def stacked_ms(encoder: str, k: int, steps: int = 8) -> float:
    """Median ms per config of a step of `k` stacked configs."""
    torch.manual_seed(0)
    models = [_model(encoder) for _ in range(k)]
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    x = torch.randn(k, BATCH, SEQ_LEN, FEATURES)
    lengths = torch.full((BATCH,), SEQ_LEN)  # shared: left_to_right checks them in Python
    y = (torch.arange(BATCH) % 2).float().expand(k, BATCH)

    def loss_of(p, b, features, targets):
        logits = functional_call(base, (p, b), (features, lengths))
        return F.binary_cross_entropy_with_logits(logits, targets)

    optimizer = torch.optim.AdamW(list(params.values()), lr=1e-3, fused=True)
    batched = vmap(loss_of, in_dims=(0, 0, 0, 0))

    def step():
        losses = batched(params, buffers, x, y)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        optimizer.step()

    return _median_step(step, steps, warmup=2) / k


def bench(encoder: str, stack: list[int], repeats: int) -> dict:
    eager, stacked, compiled, first = [], {k: [] for k in stack}, [], []
    errors = {}
    for _ in range(repeats):
        eager.append(eager_ms(encoder)[0])
        for k in stack:
            if k in errors:
                continue
            try:
                stacked[k].append(stacked_ms(encoder, k))
            except Exception as exc:  # report what vmap cannot run, measure the rest
                errors[k] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        torch._dynamo.reset()  # compile again: from the on-disk cache after the first time
        ms, seconds = eager_ms(encoder, compiled=True)
        compiled.append(ms)
        first.append(seconds)
    row = {"eager_ms": statistics.median(eager), "compiled_ms": statistics.median(compiled),
           "compile_first_step_cold_s": first[0],
           "compile_first_step_cached_s": statistics.median(first[1:]) if repeats > 1 else None}  # fmt: skip
    row["compiled_speedup"] = row["eager_ms"] / row["compiled_ms"]
    for k in stack:
        if k in errors:
            row[f"stacked_{k}_error"] = errors[k]
        else:
            row[f"stacked_{k}_ms_per_config"] = statistics.median(stacked[k])
            row[f"stacked_{k}_speedup"] = row["eager_ms"] / row[f"stacked_{k}_ms_per_config"]
    shown = ", ".join(
        f"K={k} x{row[f'stacked_{k}_speedup']:.2f}" if f"stacked_{k}_speedup" in row
        else f"K={k} cannot vmap" for k in stack
    )  # fmt: skip
    print(f"  {encoder}: eager {row['eager_ms']:.1f} ms/step; stacked {shown}; compiled "
          f"{row['compiled_ms']:.1f} ms (x{row['compiled_speedup']:.2f}, first step "
          f"{row['compile_first_step_cold_s']:.0f} s cold)", flush=True)  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/bench/stacking.json")
    parser.add_argument("--encoders", default="retnet,xlstm")
    parser.add_argument("--stack", default="4,16")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    stack = [int(k) for k in args.stack.split(",")]
    report = {
        "threads": 1,
        "size": SIZE,
        "repeats": args.repeats,
        "encoders": {name: bench(name, stack, args.repeats) for name in args.encoders.split(",")},
        "machine": {"cpu": platform.processor(), "torch": torch.__version__},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
