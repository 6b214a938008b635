"""xLSTM (bidirectional mLSTM) encoder: shapes, non-finite padding, the stabilised cell
against the unstabilised formula, and overflow safety. Padding invariance and gradients:
test_models."""

from __future__ import annotations

import pytest
import torch

from expsearch.models.xlstm import XLSTMEncoder, mlstm_parallel, mlstm_recurrent

from .conftest import prefix_mask

WIDTH = 64


def _model(width: int = WIDTH, depth: int = 2, dropout: float = 0.1, seed: int = 0):
    torch.manual_seed(seed)
    return XLSTMEncoder(width, depth, dropout).eval()


def _unstabilised(q, k, v, i_pre, f_pre, dtype=torch.float64):
    """The mLSTM without the max trick: C~_t = f C~_{t-1} + exp(i) k v^T etc. and
    h_t = C~_t^T q_t / max(|n~_t^T q_t|, 1) (the stabilised h equals this exactly)."""
    q, k, v, i_pre, f_pre = (t.to(dtype) for t in (q, k, v, i_pre, f_pre))
    batch, heads, steps, d = q.shape
    C = torch.zeros(batch, heads, d, d, dtype=dtype)
    n = torch.zeros(batch, heads, d, dtype=dtype)
    hs = []
    for t in range(steps):
        f = torch.sigmoid(f_pre[..., t])[..., None]
        i = torch.exp(i_pre[..., t])[..., None]
        k_t = k[..., t, :] / d**0.5
        C = f[..., None] * C + i[..., None] * k_t[..., :, None] * v[..., t, None, :]
        n = f * n + i * k_t
        num = torch.einsum("bhij,bhi->bhj", C, q[..., t, :])
        den = (n * q[..., t, :]).sum(-1).abs().clamp(min=1.0)
        hs.append(num / den[..., None])
    return torch.stack(hs, dim=2)


def _cell_inputs(scale: float, seed: int = 0, shape=(2, 3, 12, 8)):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(shape, generator=gen) for _ in range(3))
    i_pre = scale * torch.randn(shape[:3], generator=gen)
    f_pre = scale * torch.randn(shape[:3], generator=gen) + 2.0
    return q, k, v, i_pre, f_pre


@pytest.mark.parametrize(("width", "depth"), [(64, 1), (128, 2), (256, 1), (512, 1)])
def test_shapes_and_finite(width, depth):
    model = _model(width, depth)
    for batch, steps in [(3, 20), (1, 1), (1, 30)]:
        x = torch.randn(batch, steps, width)
        mask = prefix_mask([max(1, steps - 2 * b) for b in range(batch)], steps)
        with torch.no_grad():
            out = model(x, mask)
        assert out.shape == (batch, steps, width)
        assert torch.isfinite(out).all()


def test_non_finite_padding_does_not_leak():
    model = _model()
    x = torch.randn(2, 9, WIDTH)
    mask = prefix_mask([9, 4], 9)
    with torch.no_grad():
        clean = model(x, mask)
        x[1, 4:] = float("nan")
        x[1, 6] = float("inf")
        dirty = model(x, mask)
    torch.testing.assert_close(dirty[1, :4], clean[1, :4], atol=1e-5, rtol=0)
    assert torch.isfinite(dirty).all()


def test_stabilised_cell_equals_unstabilised_formula():
    inputs = _cell_inputs(scale=1.0)
    expected = _unstabilised(*inputs)
    torch.testing.assert_close(mlstm_recurrent(*inputs).double(), expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mlstm_parallel(*inputs).double(), expected, atol=1e-5, rtol=1e-4)
    as64 = [t.double() for t in inputs]
    torch.testing.assert_close(mlstm_parallel(*as64), expected, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(mlstm_recurrent(*as64), expected, atol=1e-12, rtol=1e-10)


def test_stabiliser_prevents_overflow_on_large_gates():
    # Gate pre-activations x50: exp(i) overflows float32 (e^88), not float64 (e^709).
    inputs = _cell_inputs(scale=50.0)
    expected = _unstabilised(*inputs)
    assert torch.isfinite(expected).all()
    naive32 = _unstabilised(*inputs, dtype=torch.float32)
    assert not torch.isfinite(naive32).all(), "the inputs should overflow the naive float32 cell"
    for cell in (mlstm_parallel, mlstm_recurrent):
        got = cell(*inputs)
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got.double(), expected, atol=1e-4, rtol=1e-3)
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    mlstm_parallel(*leaves).square().sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in leaves)


def test_cell_is_causal():
    q, k, v, i_pre, f_pre = _cell_inputs(scale=1.0)
    out = mlstm_parallel(q, k, v, i_pre, f_pre)
    v2, i2 = v.clone(), i_pre.clone()
    v2[..., 8:, :] += 5.0
    i2[..., 8:] += 5.0
    out2 = mlstm_parallel(q, k, v2, i2, f_pre)
    assert torch.equal(out[..., :8, :], out2[..., :8, :])
    assert not torch.allclose(out[..., 8:, :], out2[..., 8:, :])


def test_encoder_sees_the_future_through_the_backward_direction():
    model = _model()
    length, steps = 7, 10
    x = torch.randn(1, steps, WIDTH)
    changed = x.clone()
    changed[0, length - 1] += torch.randn(WIDTH)
    mask = prefix_mask([length], steps)
    with torch.no_grad():
        assert (model(x, mask)[0, 0] - model(changed, mask)[0, 0]).abs().max() > 1e-4


def test_large_long_inputs_stay_finite_and_runs_are_deterministic():
    model = _model(depth=4, dropout=0.0)
    x = 50 * torch.randn(2, 30, WIDTH)
    mask = prefix_mask([30, 1], 30)
    with torch.no_grad():
        out = model(x, mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(_model(depth=4, dropout=0.0)(x, mask), out)
    assert torch.equal(out[1, 1:], torch.zeros(29, WIDTH))

    model.train()
    x.requires_grad_(True)
    model(x, mask).square().mean().backward()
    assert torch.isfinite(x.grad).all()
