"""Mamba-1's selective scan: a fused C kernel on CPU, a loop over time elsewhere.

    y = selective_scan(u, dt, A, B, C, D)
    # u, dt: (batch, T, d_inner); A: (d_inner, d_state); B, C: (batch, T, d_state)
    # D: (d_inner,). y_t = C_t h_t + D u_t, h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t, h_0 = 0

Why a kernel: the recurrence is elementwise work on (batch, d_inner, d_state)
tensors, about ten of them per time step in PyTorch, each written to memory and
read back; at width 64 that was most of a BiMamba training step on one core,
while the arithmetic itself is a few MFLOP. `selective_scan.c` runs a row's
recurrence for 16 channels at a time (the channels as vector lanes, the state
in L1), forward and backward.

Dispatch: float32 CPU tensors use the kernel when models/native.py could build
it; CUDA tensors, other dtypes and EXPSEARCH_NATIVE=0 use `selective_scan_loop`
(on a GPU the per-step ops are launches on small tensors, cheap next to a
device sync; a Triton/CUDA kernel is the next step there). Both compute the
same recurrence; they agree to float32 rounding (tests/test_scan.py).
"""

from __future__ import annotations

import ctypes

import torch
from torch.autograd.function import once_differentiable

from . import native


def selective_scan_loop(u, dt, A, B, C, D) -> torch.Tensor:
    """The recurrence as PyTorch ops, one time step at a time (any device and dtype)."""
    batch, _, d_inner = u.shape
    h = u.new_zeros(batch, d_inner, A.shape[1])
    dtu = dt * u
    ys = []
    # Discretise inside the loop rather than materialising (b, T, d, n) tensors: each step's
    # (b, d, n) temporaries stay in cache. unbind, not x[:, t]: the backward of T indexing
    # ops would fill T full-size zero tensors, which dominated the CPU backward time.
    steps = zip(dt.unbind(1), dtu.unbind(1), B.unbind(1), C.unbind(1), strict=True)
    for dt_t, dtu_t, B_t, C_t in steps:
        A_bar = torch.exp(dt_t.unsqueeze(-1) * A)  # dt > 0, A < 0: in (0, 1)
        h = A_bar * h + dtu_t.unsqueeze(-1) * B_t.unsqueeze(1)  # B_bar x = dt B x
        ys.append((h * C_t.unsqueeze(1)).sum(-1))  # C_t h_t (faster than a tiny bmm on CPU)
    return torch.stack(ys, dim=1) + u * D


def _kernel() -> ctypes.CDLL | None:
    return native.kernel("selective_scan", scan_forward=(7, 4), scan_backward=(13, 4))


class FusedSelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, dt, A, B, C, D):
        u, dt, A, B, C, D = (t.contiguous() for t in (u, dt, A, B, C, D))
        batch, steps, d_inner = u.shape
        y = torch.empty_like(u)
        _kernel().scan_forward(
            *native.pointers(u, dt, A, B, C, D, y), batch, steps, d_inner, A.shape[1]
        )
        ctx.save_for_backward(u, dt, A, B, C, D)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        u, dt, A, B, C, D = ctx.saved_tensors
        gy = gy.contiguous()
        gu, gdt = torch.empty_like(u), torch.empty_like(dt)
        gA, gB, gC, gD = (torch.zeros_like(t) for t in (A, B, C, D))
        _kernel().scan_backward(
            *native.pointers(u, dt, A, B, C, D, gy, gu, gdt, gA, gB, gC, gD), *u.shape, A.shape[1]
        )
        return gu, gdt, gA, gB, gC, gD


def fused_available(*tensors: torch.Tensor) -> bool:
    """Whether the C kernel serves these inputs (float32 on CPU, and it was built)."""
    on_cpu = all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
    return on_cpu and _kernel() is not None


def selective_scan(u, dt, A, B, C, D) -> torch.Tensor:
    """y (batch, T, d_inner) of the recurrence in the module docstring; causal in T."""
    if fused_available(u, dt, A, B, C, D):
        return FusedSelectiveScan.apply(u, dt, A, B, C, D)
    return selective_scan_loop(u, dt, A, B, C, D)
