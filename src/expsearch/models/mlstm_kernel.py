"""The mLSTM cell as one C kernel on the CPU, forward and backward (`mlstm.c`).

    h = fused_mlstm(qkv, gates)   # qkv (B, T, H, 3d): each head's q | k | v; gates (B, T, 2H):
                                  # i of every head, then f; -> h (B, T, H, d)
    h = fused_gated_mlstm(qkv, weight, bias)  # gates = qkv (per step) @ weight^T + bias

It computes `xlstm.mlstm_parallel` (the stabilised parallel form; the formulation
is in models/xlstm.py and mlstm.c) on float32 CPU tensors, reading the block's
layout in place: no transposes to (B, H, T, d) and no (B, H, T, T) temporaries.
`models/xlstm.mlstm_cell` dispatches here when `available` says so, and to the
PyTorch form otherwise (a GPU, another dtype, EXPSEARCH_NATIVE=0, no compiler);
the two agree to float32 rounding (tests/test_xlstm.py).

`fused_gated_mlstm` computes the gates from qkv itself, as the block does, a
batch row at a time while the row's qkv is in cache for the cell, and its
backward adds the gates' gradient into qkv's in place. As an nn.Linear before
the cell, qkv had two gradients, and autograd's sum was one more pass over a
(B, T, H, 3d) tensor each way (an xLSTM step x1.02-1.04); as `addmm` calls
beside the kernel, the map's three products, 8 columns or rows wide, ran at
44-58 GFLOP/s on one core (0.5 ms a direction at width 64).
"""

from __future__ import annotations

import ctypes

import torch
from torch.autograd.function import once_differentiable

from . import native


def _kernel() -> ctypes.CDLL | None:
    return native.kernel("mlstm", mlstm_forward=(5, 4), mlstm_backward=(8, 4))


def _sizes(qkv: torch.Tensor) -> tuple[int, int, int, int]:
    batch, steps, heads, three_d = qkv.shape
    return batch, steps, heads, three_d // 3


class _FusedMLSTM(torch.autograd.Function):
    """The cell on qkv and either the gates (weight None) or the gates' linear map."""

    @staticmethod
    def forward(ctx, qkv, gates, weight, bias) -> torch.Tensor:
        qkv = qkv.contiguous()
        batch, steps, heads, d = _sizes(qkv)
        if weight is None:
            gates = gates.contiguous()
        else:  # the kernel computes them (module docstring)
            weight, bias = weight.contiguous(), bias.contiguous()
            gates = qkv.new_empty(batch, steps, 2 * heads)
        h = qkv.new_empty(batch, steps, heads, d)
        tensors = native.pointers(qkv, weight, bias, gates, h)
        _kernel().mlstm_forward(*tensors, batch, steps, heads, d)
        ctx.save_for_backward(qkv, gates, weight)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, gh: torch.Tensor):
        qkv, gates, weight = ctx.saved_tensors
        gh = gh.contiguous()  # bound to a name: a temporary would be freed before the call
        gqkv, ggates = torch.empty_like(qkv), torch.empty_like(gates)
        gweight = gbias = None
        if weight is not None:  # accumulated into by the kernel
            gweight, gbias = torch.zeros_like(weight), weight.new_zeros(weight.shape[0])
        tensors = native.pointers(qkv, gates, weight, gh, gqkv, ggates, gweight, gbias)
        _kernel().mlstm_backward(*tensors, *_sizes(qkv))
        if weight is None:
            return gqkv, ggates, None, None
        return gqkv, None, gweight, gbias


def available(*tensors: torch.Tensor) -> bool:
    """Whether the kernel serves these inputs (float32 on CPU, and it was built)."""
    return native.cpu_float32(*tensors) and _kernel() is not None


def fused_mlstm(qkv: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
    heads = qkv.shape[2]
    if qkv.shape[-1] % 3 or gates.shape != (*qkv.shape[:2], 2 * heads):
        raise ValueError(
            f"qkv {tuple(qkv.shape)} must be (B, T, H, 3d) and gates (B, T, 2H), got gates "
            f"{tuple(gates.shape)}"
        )
    return _FusedMLSTM.apply(qkv, gates, None, None)


def fused_gated_mlstm(qkv: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor):
    """`fused_mlstm(qkv, F.linear(qkv.flatten(2), weight, bias))`, the gates computed in
    the kernel (module docstring). weight (2H, 3 H d), bias (2H,)."""
    heads = qkv.shape[2]
    if qkv.shape[-1] % 3 or weight.shape != (2 * heads, heads * qkv.shape[-1]):
        raise ValueError(
            f"qkv {tuple(qkv.shape)} must be (B, T, H, 3d) and the gates' weight (2H, 3Hd), "
            f"got weight {tuple(weight.shape)}"
        )
    return _FusedMLSTM.apply(qkv, None, weight, bias)
