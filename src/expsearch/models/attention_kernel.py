"""Zipformer's self-attention core as one C kernel on the CPU, forward and backward
(`attention.c`).

    y = fused_attention(qkv, rel_bias, mask, heads)
        # qkv (B, T, 3 H d): the fused projection's output; rel_bias (H, 2 R + 1): the
        # bias per clipped distance; mask bool (B, T), True = valid key -> y (B, T, H d)

It computes `zipformer.attention_reference` (softmax(q k^T / sqrt(d) + bias) v over the
valid keys, per head) on float32 CPU tensors, reading the projection's layout in place
and writing the output projection's: no permutes to (B, H, T, d), one (B, H, T, T)
tensor (the weights, kept for the backward only when one will run), and a backward
that writes the three gradients into one (B, T, 3 H d) tensor instead of
concatenating them. `zipformer.SelfAttention` dispatches here when
`available` says so and to the PyTorch form otherwise (a GPU, another dtype,
EXPSEARCH_NATIVE=0, no compiler); the two agree to float32 rounding
(tests/test_zipformer.py).
"""

from __future__ import annotations

import ctypes

import torch
from torch.autograd.function import once_differentiable

from . import native


def _kernel() -> ctypes.CDLL | None:
    return native.kernel("attention", attention_forward=(5, 5), attention_backward=(5, 5))


def _sizes(qkv, rel_bias, heads: int) -> list[int]:
    """The kernel's dimensions: batch, steps, heads, head size, largest distance R."""
    batch, steps, width3 = qkv.shape
    return [batch, steps, heads, width3 // 3 // heads, (rel_bias.shape[1] - 1) // 2]


def _forward(qkv, rel_bias, mask, heads: int, weights: torch.Tensor | None) -> torch.Tensor:
    """The kernel's output (B, T, H d); the weights P into `weights` (B, H, T, T) if given."""
    batch, steps, width3 = qkv.shape
    y = qkv.new_empty(batch, steps, width3 // 3)
    tensors = native.pointers(qkv, rel_bias, mask, y, weights)
    _kernel().attention_forward(*tensors, *_sizes(qkv, rel_bias, heads))
    return y


class _FusedAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, qkv, rel_bias, mask, heads: int) -> torch.Tensor:
        batch, steps, _ = qkv.shape
        weights = qkv.new_empty(batch, heads, steps, steps)  # P, kept for the backward
        y = _forward(qkv, rel_bias, mask, heads, weights)
        ctx.save_for_backward(qkv, weights)
        ctx.sizes = _sizes(qkv, rel_bias, heads)
        ctx.bias_shape = rel_bias.shape
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, gy: torch.Tensor):
        qkv, weights = ctx.saved_tensors
        gy = gy.contiguous()  # bound to a name: a temporary would be freed before the call
        gqkv, gbias = torch.empty_like(qkv), qkv.new_empty(ctx.bias_shape)
        _kernel().attention_backward(*native.pointers(qkv, weights, gy, gqkv, gbias), *ctx.sizes)
        return gqkv, gbias, None, None


def available(*tensors: torch.Tensor) -> bool:
    """Whether the kernel serves these inputs (float32 on CPU, and it was built)."""
    return native.cpu_float32(*tensors) and _kernel() is not None


def fused_attention(qkv, rel_bias, mask, heads: int) -> torch.Tensor:
    batch, steps, width3 = qkv.shape
    if (
        width3 % (3 * heads)
        or rel_bias.shape[0] != heads
        or rel_bias.shape[1] % 2 != 1
        or mask.shape != (batch, steps)
        or mask.dtype != torch.bool
    ):
        raise ValueError(
            f"qkv {tuple(qkv.shape)} must be (B, T, 3 H d), rel_bias (H, 2 R + 1) and mask "
            f"bool (B, T), for H = {heads}; got rel_bias {tuple(rel_bias.shape)}, mask "
            f"{tuple(mask.shape)} {mask.dtype}"
        )
    qkv, rel_bias, mask = qkv.contiguous(), rel_bias.contiguous(), mask.contiguous()
    if torch.is_grad_enabled() and (qkv.requires_grad or rel_bias.requires_grad):
        return _FusedAttention.apply(qkv, rel_bias, mask, heads)
    return _forward(qkv, rel_bias, mask, heads, None)  # no backward: P is not kept
