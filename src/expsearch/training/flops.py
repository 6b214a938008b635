"""What one config's training costs in arithmetic, and what this machine's matmuls do.

    rate = matmul_gflops(threads=1)                    # measured dense fp32 GFLOP/s
    cost = experiment_flops(config, feature_width=64, n_train=640, n_val=80, n_test=80)
    cost["total"] / (rate * 1e9)                       # seconds if only arithmetic counted

FLOPs are counted, not estimated: `torch.utils.flop_counter.FlopCounterMode`
over one forward and one forward+backward pass of the real model at the
config's batch size and sequence length (matmuls, convolutions, attention;
one multiply-add = 2 FLOPs). Elementwise work is not in that count, except
the selective scan of BiMamba (and the Hybrid's Mamba layers), whose
recurrence is its main arithmetic: it is counted exactly, per element and
step, and added. The xLSTM cell's, RetNet retention's and Zipformer attention's
two (T, T) matmuls (and the xLSTM gates' linear map) run inside C kernels on the CPU,
where the counter cannot see them: they are then counted as the counter counts them
in the PyTorch forms, so
the total does not depend on which path ran. The optimiser's elementwise
update is left out (a few FLOPs per parameter per step, under 1 % here). An
experiment is its training steps, a validation pass per epoch and the final
validation and test passes: the cost of `fit_config` plus the test evaluation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..models import attention_kernel, mlstm_kernel, retention_kernel
from ..models.classifier import ClipClassifier
from .batches import EpochSampler

# Selective-scan arithmetic per (batch, step, channel, state) element: forward
# exp(dt*A) (mul + exp), h = A_bar*h + dtu*B (3), y = sum(h*C) (2); backward
# about twice that (the chain rule through each of those products).
SCAN_FORWARD = 7
SCAN_BACKWARD = 14


def matmul_gflops(threads: int = 1, size: int = 1024, repeats: int = 5) -> float:
    """Median fp32 GFLOP/s of a size^3 matmul with `threads` torch threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        a @ b  # warm-up: allocation and thread start
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    times.sort()
    return 2 * size**3 / times[len(times) // 2] / 1e9


def _scan_elements(model: torch.nn.Module, batch: int, steps: int) -> int:
    """(batch x steps x d_inner x d_state) summed over every Mamba mixer of the model."""
    from ..models.bimamba import MambaBlock

    return sum(
        batch * steps * m.d_inner * m.d_state for m in model.modules() if isinstance(m, MambaBlock)
    )


def _mlstm_cell_flops(model: torch.nn.Module, batch: int, steps: int) -> int:
    """Forward FLOPs of every mLSTM cell's parallel form, q k^T and scores @ v, each
    2 B H T^2 d, and of its gates' linear map, 2 B T (3 H d) (2 H), which the kernel
    computes too (the backward of both: twice that, as the counter counts a matmul's)."""
    from ..models.xlstm import MLSTMDirection

    return sum(
        2 * 2 * batch * m.heads * steps * steps * m.head_dim
        + 2 * batch * steps * m.gates.in_features * m.gates.out_features
        for m in model.modules()
        if isinstance(m, MLSTMDirection)
    )


def _retention_flops(model: torch.nn.Module, batch: int, steps: int) -> int:
    """Forward FLOPs of every retention core's parallel form: q k^T, 2 B H T^2 d, and
    R @ v, 2 B H T^2 e (its backward: twice that, as for the mLSTM cell)."""
    from ..models.retnet import MultiScaleRetention

    return sum(
        2 * batch * steps * steps * (m.heads * m.key_dim + m.value_dim)
        for m in model.modules()
        if isinstance(m, MultiScaleRetention)
    )


def _attention_flops(model: torch.nn.Module, batch: int, steps: int) -> int:
    """Forward FLOPs of every Zipformer attention core's PyTorch form: q k^T and
    weights @ v, each 2 B H T'^2 d = 2 B T'^2 width, at its stack's rate T' = ceil(T / f)."""
    from ..models.zipformer import SelfAttention, Stack

    return sum(
        2 * 2 * batch * math.ceil(steps / stack.factor) ** 2 * m.qkv.in_features
        for stack in model.modules()
        if isinstance(stack, Stack)
        for m in stack.modules()
        if isinstance(m, SelfAttention)
    )


# The C kernels whose (T, T) matmuls the counter cannot see, with their counts.
UNSEEN_BY_KERNEL = (
    (mlstm_kernel, _mlstm_cell_flops),
    (retention_kernel, _retention_flops),
    (attention_kernel, _attention_flops),
)


def pass_flops(model: ClipClassifier, batch: int, steps: int, width: int) -> dict[str, int]:
    """Counted FLOPs of one forward and one forward+backward of `batch` full-length clips."""
    x = torch.randn(batch, steps, width)
    lengths = torch.full((batch,), steps)
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, lengths)
    forward = counter.get_total_flops()
    model.train()
    with FlopCounterMode(display=False) as counter:
        model(x, lengths).sum().backward()
    both = counter.get_total_flops()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    scan = _scan_elements(model, batch, steps)
    unseen = sum(
        count(model, batch, steps) for kernel, count in UNSEEN_BY_KERNEL if kernel.available(x)
    )
    forward, both = forward + unseen, both + 3 * unseen
    return {
        "forward": forward + SCAN_FORWARD * scan,
        "train_step": both + (SCAN_FORWARD + SCAN_BACKWARD) * scan,
        "scan_share": (SCAN_FORWARD + SCAN_BACKWARD)
        * scan
        / max(both + (SCAN_FORWARD + SCAN_BACKWARD) * scan, 1),
    }


def experiment_flops(
    config: Mapping[str, Any],
    *,
    feature_width: int,
    n_train: int,
    n_val: int,
    n_test: int,
    positives: int | None = None,
) -> dict[str, Any]:
    """Counted FLOPs of training and evaluating `config` on a task of these sizes."""
    model = ClipClassifier(
        feature_width,
        config["encoder"],
        config["pooling"],
        int(config["width"]),
        int(config["depth"]),
        float(config["dropout"]),
    )
    batch, steps = int(config["batch_size"]), int(config["seq_len"])
    targets = torch.zeros(n_train)
    targets[: positives if positives is not None else n_train // 2] = 1
    sampler = EpochSampler(targets, float(config["oversample_ratio"]), batch, seed=0)
    steps_per_epoch = sampler.steps_per_epoch()
    per_batch = pass_flops(model, batch, steps, feature_width)
    per_clip_forward = pass_flops(model, 1, steps, feature_width)["forward"]
    epochs = int(config["epochs"])
    training = epochs * steps_per_epoch * per_batch["train_step"]
    # An epoch's validation pass, then the chosen model on validation again and on test.
    evaluation = (epochs * n_val + n_val + n_test) * per_clip_forward
    return {
        "train_step": per_batch["train_step"],
        "forward_per_clip": per_clip_forward,
        "steps": epochs * steps_per_epoch,
        "training": training,
        "evaluation": evaluation,
        "total": training + evaluation,
        "scan_share": per_batch["scan_share"],
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def flop_limited_seconds(flops: float, gflops: float) -> float:
    return flops / (gflops * 1e9) if gflops > 0 else math.inf
