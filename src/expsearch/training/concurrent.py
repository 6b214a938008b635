"""Several configs trained at once on one device: a Python thread and a CUDA stream each.

    results = run_concurrently(items, train_one, streams=4, device=torch.device("cuda"))
    # == [train_one(item) for item in items], in that order, computed `streams` at a time

Why: a width-64 encoder leaves almost all of a GPU idle; one config's kernels are
too small to fill it and the Python that launches them is the bottleneck. With
`streams` > 1 a shard trains that many configs side by side, each launching on
its own CUDA stream (PyTorch's current stream is per thread), so the device
interleaves their kernels while each thread's Python runs (PyTorch releases
the GIL inside its ops). Every config is still trained exactly as alone: its
weights come from its own seed (the model is built under trainer.INIT_LOCK),
its batches, mixup and noise from its own generators, its dropout masks from
its modules' own generators (models.dropout). The test suite checks that the
metrics equal those of one-at-a-time training on the CPU (where threads add
nothing to a 1-thread shard, so `streams` stays 1 there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import torch

Item = TypeVar("Item")


def _on_own_stream(run: Callable[[Item], Any], item: Item, device: torch.device) -> Any:
    if device.type != "cuda":
        return run(item)
    stream = torch.cuda.Stream(device)
    with torch.cuda.stream(stream):
        result = run(item)
    stream.synchronize()
    return result


def run_concurrently(
    items: Sequence[Item],
    run: Callable[[Item], Any],
    *,
    streams: int,
    device: torch.device,
) -> list[Any]:
    """`run` over `items`, at most `streams` at a time; results in item order."""
    if streams < 1:
        raise ValueError(f"streams must be at least 1, got {streams}")
    if streams == 1 or len(items) <= 1:
        return [run(item) for item in items]
    with ThreadPoolExecutor(max_workers=streams, thread_name_prefix="stream") as pool:
        futures = [pool.submit(_on_own_stream, run, item, device) for item in items]
        return [future.result() for future in futures]
