"""The xLSTM block's two directions mixed and gated, (a h + b r) * silu(z + z_bias), as one
C kernel pass each way on the CPU (`gated_mix.c`).

    out = gated_mix(h_fwd, h_bwd, z, z_bias, alpha_fwd, alpha_bwd)
        # h_fwd, h_bwd (B, T, C); z (B, T, C), a half of the up-projection read in place;
        # z_bias (C); alpha_fwd, alpha_bwd 0-d -> (B, T, C)

Why: in PyTorch that is six passes over (B, T, C) activations forward and about ten
backward, with the reductions of the scalars' and the bias's gradients, for a few flops
per element (C = 128 at width 64). Float32 CPU tensors go through the kernel, anything
else (a GPU, another dtype, EXPSEARCH_NATIVE=0, no compiler) through `reference`; the
two agree to float32 rounding (tests/test_xlstm.py).
"""

from __future__ import annotations

import ctypes

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import native


def _kernel() -> ctypes.CDLL | None:
    return native.kernel("gated_mix", gated_mix_forward=(7, 3), gated_mix_backward=(13, 3))


def reference(h, r, z, z_bias, a, b) -> torch.Tensor:
    """The formula in PyTorch: the fallback, and what the kernel is tested against."""
    return (a * h + b * r) * F.silu(z + z_bias)


class _GatedMix(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, r, z, z_bias, a, b, sizes: tuple[int, int, int]):
        out = torch.empty_like(h)
        _kernel().gated_mix_forward(*native.pointers(h, r, z, z_bias, a, b, out), *sizes)
        ctx.save_for_backward(h, r, z, z_bias, a, b)
        ctx.sizes = sizes
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor):
        h, r, z, z_bias, a, b = ctx.saved_tensors
        g = g.contiguous()  # bound to a name: a temporary would be freed before the call
        gh, gr, gz = torch.empty_like(h), torch.empty_like(r), torch.empty_like(h)
        gzb, ga, gb = torch.empty_like(z_bias), torch.empty_like(a), torch.empty_like(b)
        tensors = native.pointers(h, r, z, z_bias, a, b, g, gh, gr, gz, gzb, ga, gb)
        _kernel().gated_mix_backward(*tensors, *ctx.sizes)
        return gh, gr, gz, gzb, ga, gb, None


def gated_mix(h, r, z, z_bias, a, b) -> torch.Tensor:
    if not (h.shape == r.shape == z.shape and z_bias.shape == h.shape[-1:]):
        raise ValueError(
            f"h, r and z must have one shape (B, T, C) and z_bias (C); got h {tuple(h.shape)}, "
            f"r {tuple(r.shape)}, z {tuple(z.shape)}, z_bias {tuple(z_bias.shape)}"
        )
    stride = native.row_stride(z)
    fused = (
        native.cpu_float32(h, r, z, z_bias, a, b) and a.dim() == b.dim() == 0
        and h.is_contiguous() and r.is_contiguous() and stride is not None
        and _kernel() is not None
    )  # fmt: skip
    if not fused:
        return reference(h, r, z, z_bias, a, b)
    sizes = (h.numel() // h.shape[-1], h.shape[-1], stride)
    return _GatedMix.apply(h, r, z, z_bias.contiguous(), a, b, sizes)
