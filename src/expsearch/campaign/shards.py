"""Pack a round's configs into shards that finish together.

    shards = pack(rows, n_shards)       # lists of row ids, balanced by estimated cost
    estimate_cost(config)               # relative training cost of one config
    pack(rows, n_shards, cost=lambda row: row["estimate"])  # or by any other cost of a row

The estimate is what dominates training time on cached features: optimiser
steps (epochs x clips / batch) times the work of one step (sequence length x
depth x width^2 for the encoder, plus the input projection), with batch
size entering only through per-step overhead. It is relative, so only
ratios matter. Packing is longest-processing-time first: configs in
decreasing cost, each to the currently lightest shard (within 4/3 of the
optimum makespan).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

STEP_OVERHEAD = 2.0e5  # per-optimiser-step cost independent of the batch (launch, optimiser)
INPUT_DIM = 1024  # projection input assumed for every backbone (the largest, V-JEPA 2)


def estimate_cost(config: Mapping[str, Any], n_clips: int = 1000) -> float:
    epochs = config.get("epochs", 10)
    seq_len = config.get("seq_len", 20)
    width, depth = config.get("width", 128), config.get("depth", 2)
    batch = config.get("batch_size", 32)
    per_clip = seq_len * (depth * 12 * width * width + INPUT_DIM * width)
    steps = epochs * max(1, n_clips // batch)
    return epochs * n_clips * per_clip + steps * STEP_OVERHEAD


def pack(
    rows: Sequence[Mapping[str, Any]],
    n_shards: int,
    cost: Callable[[Mapping[str, Any]], float] | None = None,
) -> list[list[Any]]:
    """Row ids per shard; every row in exactly one shard; some shards may be
    empty when there are fewer rows than shards. `cost` gives a row's cost
    (default: `estimate_cost` of its config); equal costs go in id order."""
    if n_shards < 1:
        raise ValueError(f"n_shards must be at least 1, got {n_shards}")
    costs = [estimate_cost(row["config"]) if cost is None else cost(row) for row in rows]
    shards: list[list[Any]] = [[] for _ in range(n_shards)]
    loads = [0.0] * n_shards
    for i in sorted(range(len(rows)), key=lambda i: (-costs[i], rows[i]["id"])):
        lightest = min(range(n_shards), key=lambda s: (loads[s], s))
        shards[lightest].append(rows[i]["id"])
        loads[lightest] += costs[i]
    return shards
