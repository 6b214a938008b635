"""RetNet's retention core as one C kernel on the CPU, forward and backward (`retention.c`).

    y = fused_retention(q, k, v, cos, sin, decay, heads)
        # q, k (B, T, H d) and v (B, T, H e): the projections' outputs; cos, sin (T, d/2):
        # RoPE's tables; decay (1 or B, H, T, T): row-normalised decay -> y (B, T, H e)

It computes `retnet.retention_parallel` (RoPE, q k^T / sqrt(d) times the decay, the
detached row normaliser, times v, the per-head RMS norm; the formulation is in
models/retnet.py and retention.c) on float32 CPU tensors, reading the projections'
layout in place: no transposes to (B, H, T, d) and no (B, H, T, T) temporaries.
`retnet.retention` dispatches here when `available` says so, and to the PyTorch form
otherwise (a GPU, another dtype, EXPSEARCH_NATIVE=0, no compiler); the two agree to
float32 rounding (tests/test_retnet.py).
"""

from __future__ import annotations

import ctypes

import torch
from torch.autograd.function import once_differentiable

from . import native


def _kernel() -> ctypes.CDLL | None:
    return native.kernel("retention", retention_forward=(7, 6), retention_backward=(10, 6))


def _sizes(q: torch.Tensor, v: torch.Tensor, decay: torch.Tensor, heads: int) -> list[int]:
    batch, steps = q.shape[:2]
    decay_stride = 0 if decay.shape[0] == 1 else heads * steps * steps  # 0: one for all rows
    return [batch, steps, heads, q.shape[2] // heads, v.shape[2] // heads, decay_stride]


class _FusedRetention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, cos, sin, decay, heads: int) -> torch.Tensor:
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        cos, sin, decay = cos.contiguous(), sin.contiguous(), decay.contiguous()
        y = torch.empty_like(v)
        sizes = _sizes(q, v, decay, heads)
        _kernel().retention_forward(*native.pointers(q, k, v, cos, sin, decay, y), *sizes)
        ctx.save_for_backward(q, k, v, cos, sin, decay)
        ctx.sizes = sizes
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, gy: torch.Tensor):
        q, k, v, cos, sin, decay = ctx.saved_tensors
        gy = gy.contiguous()  # bound to a name: a temporary would be freed before the call
        gq, gk, gv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        tensors = native.pointers(q, k, v, cos, sin, decay, gy, gq, gk, gv)
        _kernel().retention_backward(*tensors, *ctx.sizes)
        return gq, gk, gv, None, None, None, None


def available(*tensors: torch.Tensor) -> bool:
    """Whether the kernel serves these inputs (float32 on CPU, and it was built)."""
    return native.cpu_float32(*tensors) and _kernel() is not None


def fused_retention(q, k, v, cos, sin, decay, heads: int) -> torch.Tensor:
    batch, steps, width = q.shape
    half = width // heads // 2
    if (
        width % heads
        or (width // heads) % 2
        or k.shape != q.shape
        or v.shape[:2] != (batch, steps)
        or v.shape[2] % heads
        or cos.shape != (steps, half)
        or sin.shape != (steps, half)
        or decay.shape not in ((1, heads, steps, steps), (batch, heads, steps, steps))
    ):
        raise ValueError(
            f"q, k {tuple(q.shape)} must be (B, T, H d) with d even, v (B, T, H e), cos and "
            f"sin (T, d / 2), decay (1 or B, H, T, T), for H = {heads}; got k "
            f"{tuple(k.shape)}, v {tuple(v.shape)}, cos {tuple(cos.shape)}, sin "
            f"{tuple(sin.shape)}, decay {tuple(decay.shape)}"
        )
    return _FusedRetention.apply(q, k, v, cos, sin, decay, heads)
