"""The mLSTM cell as one C kernel on the CPU, forward and backward (`mlstm.c`).

    h = fused_mlstm(qkv, gates)   # qkv (B, T, H, 3d): each head's q | k | v; gates (B, T, 2H):
                                  # i of every head, then f; -> h (B, T, H, d)

It computes `xlstm.mlstm_parallel` (the stabilised parallel form; the formulation
is in models/xlstm.py and mlstm.c) on float32 CPU tensors, reading the block's
layout in place: no transposes to (B, H, T, d) and no (B, H, T, T) temporaries.
`models/xlstm.mlstm_cell` dispatches here when `available` says so, and to the
PyTorch form otherwise (a GPU, another dtype, EXPSEARCH_NATIVE=0, no compiler);
the two agree to float32 rounding (tests/test_xlstm.py).
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
    @staticmethod
    def forward(ctx, qkv: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        qkv, gates = qkv.contiguous(), gates.contiguous()
        batch, steps, heads, d = _sizes(qkv)
        h = qkv.new_empty(batch, steps, heads, d)
        _kernel().mlstm_forward(*native.pointers(qkv, gates, h), batch, steps, heads, d)
        ctx.save_for_backward(qkv, gates)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, gh: torch.Tensor):
        qkv, gates = ctx.saved_tensors
        gh = gh.contiguous()  # bound to a name: a temporary would be freed before the call
        gqkv, ggates = torch.empty_like(qkv), torch.empty_like(gates)
        _kernel().mlstm_backward(*native.pointers(qkv, gates, gh, gqkv, ggates), *_sizes(qkv))
        return gqkv, ggates


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
    return _FusedMLSTM.apply(qkv, gates)
