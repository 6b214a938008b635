"""BiMamba encoder: shapes, initialisation, the scan against a naive loop, and that the
backward branch (only) sees the future. Padding invariance and gradients: test_models."""

from __future__ import annotations

import math

import pytest
import torch

from expsearch.models.bimamba import (
    BiMambaBlock,
    BiMambaEncoder,
    MambaBlock,
    narrow_linear,
    padded_lengths,
    reverse_valid,
    selective_scan,
)

from .conftest import prefix_mask

WIDTH = 64


def _model(kind: str, width: int = WIDTH, depth: int = 2, dropout: float = 0.1, seed: int = 0):
    torch.manual_seed(seed)
    if kind == "block":
        return BiMambaBlock(width, dropout).eval()
    return BiMambaEncoder(width, depth, dropout).eval()


@pytest.mark.parametrize(("width", "depth"), [(64, 1), (128, 2), (256, 1), (512, 1)])
def test_shapes_and_finite(width, depth):
    model = _model("encoder", width, depth)
    for batch, steps in [(3, 20), (1, 1), (1, 30)]:
        x = torch.randn(batch, steps, width)
        mask = prefix_mask([max(1, steps - 2 * b) for b in range(batch)], steps)
        with torch.no_grad():
            out = model(x, mask)
        assert out.shape == (batch, steps, width)
        assert torch.isfinite(out).all()


def test_dt_rank_and_inits():
    block = MambaBlock(256)
    assert (block.d_inner, block.d_state, block.dt_rank) == (512, 16, 16)
    assert MambaBlock(64).dt_rank == 4
    assert torch.allclose(-torch.exp(block.A_log[0]), -torch.arange(1.0, 17.0))
    assert torch.equal(block.D, torch.ones(512))
    dt = torch.nn.functional.softplus(block.dt_proj.bias)
    assert dt.min() >= 1e-4 - 1e-7
    assert dt.max() <= 1e-1 + 1e-6


def test_reverse_valid_flips_only_the_prefix():
    x = torch.arange(10.0).view(2, 5, 1)
    out = reverse_valid(x, torch.tensor([3, 5]))
    assert out[..., 0].tolist() == [[2, 1, 0, 3, 4], [9, 8, 7, 6, 5]]
    assert torch.equal(reverse_valid(out, torch.tensor([3, 5])), x)


def test_reverse_valid_without_padding_is_a_flip_either_way():
    x = torch.randn(3, 6, 4, requires_grad=True)
    full = torch.full((3,), 6)
    assert padded_lengths(torch.ones(3, 6, dtype=torch.bool)) is None
    assert padded_lengths(torch.tensor([[True, False], [True, True]])).tolist() == [1, 2]
    fast, gathered = reverse_valid(x, None), reverse_valid(x, full)
    assert torch.equal(fast, gathered) and torch.equal(fast, x.flip(1))
    weights = torch.randn(3, 6, 4)
    (grad_fast,) = torch.autograd.grad((fast * weights).sum(), x)
    (grad_gathered,) = torch.autograd.grad((gathered * weights).sum(), x)
    assert torch.equal(grad_fast, grad_gathered)


def _naive_scan(u, dt, A, B, C, D):
    """Per batch, channel, state and step, in float64: the textbook recurrence."""
    batch, steps, d_inner = u.shape
    y = torch.zeros(batch, steps, d_inner, dtype=torch.float64)
    for b in range(batch):
        for d in range(d_inner):
            h = [0.0] * A.shape[1]
            for t in range(steps):
                acc = 0.0
                for n in range(A.shape[1]):
                    a_bar = math.exp(dt[b, t, d].item() * A[d, n].item())
                    h[n] = a_bar * h[n] + dt[b, t, d].item() * B[b, t, n].item() * u[b, t, d].item()
                    acc += C[b, t, n].item() * h[n]
                y[b, t, d] = acc + D[d].item() * u[b, t, d].item()
    return y


def test_selective_scan_matches_naive_loop():
    gen = torch.Generator().manual_seed(0)
    batch, steps, d_inner, d_state = 2, 6, 3, 4
    u = torch.randn(batch, steps, d_inner, generator=gen)
    dt = torch.rand(batch, steps, d_inner, generator=gen) + 0.05
    A = -torch.rand(d_inner, d_state, generator=gen) * 2
    B = torch.randn(batch, steps, d_state, generator=gen)
    C = torch.randn(batch, steps, d_state, generator=gen)
    D = torch.randn(d_inner, generator=gen)
    expected = _naive_scan(u, dt, A, B, C, D)
    got32 = selective_scan(u, dt, A, B, C, D).double()
    torch.testing.assert_close(got32, expected, atol=1e-5, rtol=1e-5)
    got64 = selective_scan(*(t.double() for t in (u, dt, A, B, C, D)))
    torch.testing.assert_close(got64, expected, atol=1e-12, rtol=1e-12)


def test_backward_branch_sees_the_future_and_forward_block_does_not():
    length, steps = 7, 10
    x = torch.randn(1, steps, WIDTH)
    changed = x.clone()
    changed[0, length - 1] += torch.randn(WIDTH)  # the last valid step
    mask = prefix_mask([length], steps)

    bi = _model("block")
    torch.manual_seed(0)
    fwd = MambaBlock(WIDTH).eval()
    with torch.no_grad():
        assert (bi(x, mask)[0, 0] - bi(changed, mask)[0, 0]).abs().max() > 1e-4
        out, out_changed = fwd(x), fwd(changed)
        assert torch.equal(out[0, : length - 1], out_changed[0, : length - 1])
        assert (out[0, length - 1] - out_changed[0, length - 1]).abs().max() > 1e-4


def test_large_long_inputs_stay_finite_and_runs_are_deterministic():
    model = _model("encoder", depth=4, dropout=0.0)
    x = 50 * torch.randn(2, 30, WIDTH)
    mask = prefix_mask([30, 1], 30)
    with torch.no_grad():
        out = model(x, mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(_model("encoder", depth=4, dropout=0.0)(x, mask), out)
    # Padded outputs are zeroed by the encoder.
    assert torch.equal(out[1, 1:], torch.zeros(29, WIDTH))

    model.train()
    x.requires_grad_(True)
    model(x, mask).square().mean().backward()
    assert torch.isfinite(x.grad).all()


def test_narrow_linear_matches_linear_with_exact_gradients():
    """dt_proj's product with its transposed backward: the value and both gradients of
    F.linear, on a strided input (a slice of x_proj's output, as in the block), checked
    against finite differences in float64."""
    torch.manual_seed(0)
    wide = torch.randn(3, 5, 12, dtype=torch.float64)
    weight = torch.randn(8, 4, dtype=torch.float64, requires_grad=True)
    x = wide[..., :4].detach().requires_grad_()  # a strided leaf: row stride 12
    assert torch.allclose(narrow_linear(x, weight), torch.nn.functional.linear(x, weight))
    assert torch.autograd.gradcheck(narrow_linear, (x, weight))
    strided = wide.detach().requires_grad_()
    grad = torch.randn(3, 5, 8, dtype=torch.float64)
    got = torch.autograd.grad(narrow_linear(strided[..., :4], weight), (strided, weight), grad)
    want = torch.autograd.grad(
        torch.nn.functional.linear(strided[..., :4], weight), (strided, weight), grad
    )
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
    assert not got[0][..., 4:].any()
