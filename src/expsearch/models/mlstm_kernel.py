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

`fused_gated_mlstm` computes the gates from qkv itself, as the block does, so
that its backward adds the gates' gradient into qkv's in place (one `addmm`).
As an nn.Linear before the cell, qkv had two gradients, and autograd's sum was
one more pass over a (B, T, H, 3d) tensor each way: an xLSTM step x1.02-1.04.
"""

from __future__ import annotations

import ctypes

import torch
from torch.autograd.function import once_differentiable

from . import native


def _kernel() -> ctypes.CDLL | None:
    return native.kernel("mlstm", mlstm_forward=(3, 4), mlstm_backward=(5, 4))


def _sizes(qkv: torch.Tensor) -> tuple[int, int, int, int]:
    batch, steps, heads, three_d = qkv.shape
    return batch, steps, heads, three_d // 3


class _FusedMLSTM(torch.autograd.Function):
    """The cell on qkv and either the gates (weight None) or the gates' linear map."""

    @staticmethod
    def forward(ctx, qkv, gates, weight, bias) -> torch.Tensor:
        qkv = qkv.contiguous()
        batch, steps, heads, d = _sizes(qkv)
        if weight is not None:
            flat = qkv.view(batch * steps, 3 * heads * d)
            gates = torch.addmm(bias, flat, weight.t()).view(batch, steps, 2 * heads)
        gates = gates.contiguous()
        h = qkv.new_empty(batch, steps, heads, d)
        _kernel().mlstm_forward(*native.pointers(qkv, gates, h), batch, steps, heads, d)
        ctx.save_for_backward(qkv, gates, weight)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, gh: torch.Tensor):
        qkv, gates, weight = ctx.saved_tensors
        gh = gh.contiguous()  # bound to a name: a temporary would be freed before the call
        gqkv, ggates = torch.empty_like(qkv), torch.empty_like(gates)
        _kernel().mlstm_backward(*native.pointers(qkv, gates, gh, gqkv, ggates), *_sizes(qkv))
        if weight is None:
            return gqkv, ggates, None, None
        rows = gates.shape[0] * gates.shape[1]
        flat_ggates, flat_gqkv = ggates.view(rows, -1), gqkv.view(rows, -1)
        # qkv's gradient through the gates, added in place; addmm(out=), not addmm_, which
        # torch's FLOP counter does not count (training/flops.py).
        torch.addmm(flat_gqkv, flat_ggates, weight, out=flat_gqkv)
        return gqkv, None, flat_ggates.t() @ qkv.view(rows, -1), flat_ggates.sum(0)


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
    """`fused_mlstm(qkv, F.linear(qkv.flatten(2), weight, bias))`, with the gates' gradient
    added into qkv's in place (module docstring). weight (2H, 3 H d), bias (2H,)."""
    heads = qkv.shape[2]
    if qkv.shape[-1] % 3 or weight.shape != (2 * heads, heads * qkv.shape[-1]):
        raise ValueError(
            f"qkv {tuple(qkv.shape)} must be (B, T, H, 3d) and the gates' weight (2H, 3Hd), "
            f"got weight {tuple(weight.shape)}"
        )
    return _FusedMLSTM.apply(qkv, None, weight, bias)
