"""Mamba-1's selective scan: a fused C kernel on CPU, a loop over time elsewhere.

    y = selective_scan(u, dt, A, B, C, D)
    # u, dt: (batch, T, d_inner); A: (d_inner, d_state); B, C: (batch, T, d_state)
    # D: (d_inner,). y_t = C_t h_t + D u_t, h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t, h_0 = 0
    out = selective_scan(u, delta, A, B, C, D, z=z, dt_bias=b, z_bias=c, dt_softplus=True)
    # Mamba's fused form: dt = softplus(delta + b), out = y * silu(z + c)

Why a kernel: the recurrence is elementwise work on (batch, d_inner, d_state)
tensors, about ten of them per time step in PyTorch, each written to memory and
read back; at width 64 that was most of a BiMamba training step on one core,
while the arithmetic itself is a few MFLOP. `selective_scan.c` runs a row's
recurrence for 4, 8 or 16 channels at a time (one vector register; the state
in L1), forward and backward. As in Mamba's own kernel, the step size's softplus
and the output gate are done inside it, per (row, step, channel), where they
cost little next to the recurrence: as PyTorch ops they were about ten more
passes over (batch, T, d_inner) tensors each way.

Dispatch: float32 CPU tensors use the kernel when models/native.py could build
it; CUDA tensors, other dtypes and EXPSEARCH_NATIVE=0 use `selective_scan_loop`
(on a GPU the per-step ops are launches on small tensors, cheap next to a
device sync; a Triton/CUDA kernel is the next step there). Both compute the
same function; they agree to float32 rounding (tests/test_scan.py).
"""

from __future__ import annotations

import ctypes

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import native


def selective_scan_loop(
    u, dt, A, B, C, D, z=None, dt_bias=None, z_bias=None, dt_softplus=False
) -> torch.Tensor:
    """The scan as PyTorch ops, one time step at a time (any device and dtype)."""
    if dt_bias is not None:
        dt = dt + dt_bias
    if dt_softplus:
        dt = F.softplus(dt)
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
    y = torch.stack(ys, dim=1) + u * D
    if z is not None:
        y = y * F.silu(z if z_bias is None else z + z_bias)
    return y


def _kernel() -> ctypes.CDLL | None:
    return native.kernel("selective_scan", scan_forward=(11, 6), scan_backward=(20, 6))


class FusedSelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, dt, A, B, C, D, z=None, dt_bias=None, z_bias=None, dt_softplus=False):
        u, dt, A, B, C, D = (t.contiguous() for t in (u, dt, A, B, C, D))
        dt_bias, z_bias = (None if t is None else t.contiguous() for t in (dt_bias, z_bias))
        z_stride = 0
        if z is not None:
            z_stride = native.row_stride(z)
            if z_stride is None:
                z = z.contiguous()
                z_stride = z.shape[-1]
        batch, steps, d_inner = u.shape
        out = torch.empty_like(u)
        # The step sizes after bias and softplus, kept for the backward (see the kernel).
        dts = torch.empty_like(u) if any(ctx.needs_input_grad) else None
        sizes = (batch, steps, d_inner, A.shape[1], z_stride, int(dt_softplus))
        tensors = native.pointers(u, dt, A, B, C, D, z, dt_bias, z_bias, out, dts)
        _kernel().scan_forward(*tensors, *sizes)
        ctx.save_for_backward(u, dt, A, B, C, D, z, dt_bias, z_bias, dts)
        ctx.sizes = sizes
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, gout):
        u, dt, A, B, C, D, z, dt_bias, z_bias, dts = ctx.saved_tensors
        gout = gout.contiguous()
        gu, gdt = torch.empty_like(u), torch.empty_like(dt)
        gA, gB, gC, gD = (torch.zeros_like(t) for t in (A, B, C, D))
        gz = None if z is None else torch.empty_like(u)
        gdt_bias, gz_bias = (None if t is None else torch.zeros_like(t) for t in (dt_bias, z_bias))
        tensors = (u, dt, A, B, C, D, z, dt_bias, z_bias, dts, gout)
        grads = (gu, gdt, gA, gB, gC, gD, gz, gdt_bias, gz_bias)
        _kernel().scan_backward(*native.pointers(*tensors, *grads), *ctx.sizes)
        return (*grads, None)


def fused_available(*tensors: torch.Tensor | None) -> bool:
    """Whether the C kernel serves these inputs (float32 on CPU, and it was built)."""
    return native.cpu_float32(*tensors) and _kernel() is not None


def selective_scan(
    u, dt, A, B, C, D, *, z=None, dt_bias=None, z_bias=None, dt_softplus=False
) -> torch.Tensor:
    """The scan in the module docstring, (batch, T, d_inner); causal in T. With the
    options: dt = softplus(dt + dt_bias) (dt_softplus) and out = y * silu(z + z_bias)."""
    options = (z, dt_bias, z_bias, dt_softplus)
    if fused_available(u, dt, A, B, C, D, z, dt_bias, z_bias):
        return FusedSelectiveScan.apply(u, dt, A, B, C, D, *options)
    return selective_scan_loop(u, dt, A, B, C, D, *options)
