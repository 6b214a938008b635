"""The xLSTM direction's output as one C kernel pass each way on the CPU (`head_norm.c`).

    y = head_norm_skip(h, x_c, weight, skip)
        # h (B, T, H, d): the cell's output; x_c (B, T, H d): the conv branch; weight,
        # skip (H d) -> layer_norm(h over d, no bias) * weight + skip * x_c, (B, T, H d)

Why a kernel: in PyTorch that is a layer norm, two products and a sum forward and
about ten passes backward over (B, T, H d) activations, twice per xLSTM block; the
kernel makes one pass each way. Float32 CPU tensors go through the kernel, anything
else (a GPU, another dtype, EXPSEARCH_NATIVE=0, no compiler) through `reference`;
the two agree to float32 rounding (tests/test_xlstm.py).
"""

from __future__ import annotations

import ctypes

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import native


def _kernel() -> ctypes.CDLL | None:
    return native.kernel("head_norm", head_norm_forward=(6, 3), head_norm_backward=(10, 3))


def reference(h, x_c, weight, skip) -> torch.Tensor:
    """The formula in PyTorch: the fallback, and what the kernel is tested against."""
    normed = F.layer_norm(h, (h.shape[-1],)).reshape(x_c.shape)  # eps 1e-5, as the kernel
    return normed * weight + skip * x_c


class _FusedHeadNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, x_c, weight, skip):
        y, stats = torch.empty_like(x_c), h.new_empty(*h.shape[:-1], 2)
        sizes = (h.shape[0] * h.shape[1], h.shape[2], h.shape[3])
        _kernel().head_norm_forward(*native.pointers(h, x_c, weight, skip, y, stats), *sizes)
        ctx.save_for_backward(h, x_c, weight, skip, stats)
        ctx.sizes = sizes
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor):
        h, x_c, weight, skip, stats = ctx.saved_tensors
        g = g.contiguous()  # bound to a name: a temporary would be freed before the call
        gh, gx = torch.empty_like(h), torch.empty_like(x_c)
        gw, gskip = torch.empty_like(weight), torch.empty_like(skip)
        tensors = native.pointers(h, x_c, weight, skip, stats, g, gh, gx, gw, gskip)
        _kernel().head_norm_backward(*tensors, *ctx.sizes)
        return gh, gx, gw, gskip


def head_norm_skip(h, x_c, weight, skip) -> torch.Tensor:
    batch, steps, heads, d = h.shape
    inner = heads * d
    if x_c.shape != (batch, steps, inner) or weight.shape != (inner,) or skip.shape != (inner,):
        raise ValueError(
            f"h {tuple(h.shape)} must be (B, T, H, d), x_c (B, T, H d), weight and skip "
            f"(H d); got x_c {tuple(x_c.shape)}, weight {tuple(weight.shape)}, skip "
            f"{tuple(skip.shape)}"
        )
    if native.cpu_float32(h, x_c, weight, skip) and _kernel() is not None:
        h, x_c = h.contiguous(), x_c.contiguous()
        return _FusedHeadNorm.apply(h, x_c, weight.contiguous(), skip.contiguous())
    return reference(h, x_c, weight, skip)
