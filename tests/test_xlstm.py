"""xLSTM (bidirectional mLSTM) encoder: shapes, non-finite padding, the stabilised cell
against the unstabilised formula, overflow safety, and the C kernels of the cell and of
the direction's output (per-head norm, gain, skip) against their PyTorch forms. Padding invariance and gradients: test_models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from expsearch.models import gated_mix, head_norm, mlstm_kernel, native
from expsearch.models.mlstm_kernel import fused_gated_mlstm, fused_mlstm
from expsearch.models.xlstm import (
    MLSTMDirection,
    XLSTMEncoder,
    mlstm_cell,
    mlstm_parallel,
    mlstm_parallel_block,
    mlstm_recurrent,
)

from .conftest import prefix_mask, within_float32_error

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


def test_projection_gives_each_head_its_q_k_from_the_conv_branch_and_v_from_x_m():
    torch.manual_seed(0)
    direction = MLSTMDirection(inner=12, heads=3).double()  # head size 4
    x_c, x_m = (
        torch.randn(2, 5, 12, dtype=torch.float64),
        torch.randn(2, 5, 12, dtype=torch.float64),
    )
    got = direction.project(x_c, x_m)
    assert got.shape == (2, 5, 3, 12)
    for h in range(3):
        heads = slice(4 * h, 4 * h + 4)
        want = torch.cat(
            [
                x_c[..., heads] @ direction.qkv[0, h],
                x_c[..., heads] @ direction.qkv[1, h],
                x_m[..., heads] @ direction.qkv[2, h],
            ],
            dim=-1,
        )
        torch.testing.assert_close(got[:, :, h], want)


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


needs_kernel = pytest.mark.skipif(
    native.library("mlstm") is None, reason="no C compiler: the kernel cannot be built"
)


def _block_inputs(batch, steps, heads, d, scale, seed=0):
    """qkv (B, T, H, 3d) and gates (B, T, 2H), float64, as the block lays them out."""
    gen = torch.Generator().manual_seed(seed)
    qkv = torch.randn(batch, steps, heads, 3 * d, generator=gen, dtype=torch.float64)
    gates = scale * torch.randn(batch, steps, 2 * heads, generator=gen, dtype=torch.float64)
    gates[..., heads:] += 2.0  # forget gates mostly open, as the block initialises them
    return qkv, gates


@needs_kernel
# T = 1, a T past one vector of 16 steps, a head size that is not a whole number of
# vectors, the embedded default's (T 20, 4 heads of 32), and 3 vectors of steps.
@pytest.mark.parametrize(
    "shape", [(1, 1, 1, 4), (3, 17, 2, 5), (2, 12, 3, 8), (4, 20, 4, 32), (2, 40, 2, 16)]
)
@pytest.mark.parametrize("scale", [1.0, 50.0])  # 50: exp(i) overflows float32 unstabilised
def test_kernel_equals_the_parallel_form_in_output_and_every_gradient(shape, scale):
    # Large gates make the cell ill-conditioned: the PyTorch form's own float32 error, the
    # yardstick, reaches ~1e-4 of the gradients' scale at 50.
    within_float32_error(
        fused_mlstm, mlstm_parallel_block, _block_inputs(*shape, scale), ["h", "qkv", "gates"]
    )


@needs_kernel
def test_kernel_reads_a_non_contiguous_upstream_gradient():
    qkv, gates = (t.float().requires_grad_() for t in _block_inputs(3, 9, 2, 8, 1.0))
    grad = torch.randn(3, 2, 9, 8).transpose(1, 2)  # (B, T, H, d) values, other strides
    assert not grad.is_contiguous()
    got = torch.autograd.grad(fused_mlstm(qkv, gates), [qkv, gates], grad)
    want = torch.autograd.grad(fused_mlstm(qkv, gates), [qkv, gates], grad.contiguous())
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)


def _gate_map(heads, d, seed=1):
    """The gates' linear map (weight (2H, 3Hd), bias (2H,)), float64, forget bias open."""
    gen = torch.Generator().manual_seed(seed)
    weight = 0.1 * torch.randn(2 * heads, 3 * heads * d, generator=gen, dtype=torch.float64)
    bias = torch.randn(2 * heads, generator=gen, dtype=torch.float64)
    bias[heads:] += 2.0
    return weight, bias


def _gated_parallel(qkv, weight, bias):
    return mlstm_parallel_block(qkv, F.linear(qkv.flatten(2), weight, bias))


@needs_kernel
# Gates: 2 (none of the kernel's blocks of 4), 4, 6 (a block and 2 more), 8; inputs per
# step 12, 30, 72 and 384: a whole number of vector pairs or not, with and without a tail.
@pytest.mark.parametrize("shape", [(1, 1, 1, 4), (3, 17, 2, 5), (2, 12, 3, 8), (4, 20, 4, 32)])
def test_gated_kernel_equals_linear_then_parallel_form_in_every_gradient(shape):
    """The kernel computing its gates (qkv's gradient through them added in place) against
    nn.Linear then the parallel form: the output and the gradients of qkv, weight, bias."""
    qkv, _ = _block_inputs(*shape, 1.0)
    inputs = [qkv, *_gate_map(shape[2], shape[3])]
    within_float32_error(fused_gated_mlstm, _gated_parallel, inputs, ["h", "qkv", "weight", "bias"])


@needs_kernel
def test_the_block_uses_the_kernel_on_cpu_float32_only(monkeypatch):
    calls = []
    real = mlstm_kernel.fused_gated_mlstm
    monkeypatch.setattr(mlstm_kernel, "fused_gated_mlstm", lambda *a: calls.append(a) or real(*a))
    qkv, gates = _block_inputs(2, 5, 2, 4, 1.0)
    weight, bias = _gate_map(2, 4)
    as32 = mlstm_cell(qkv.float(), weight.float(), bias.float())
    assert len(calls) == 1
    as64 = mlstm_cell(qkv, weight, bias)  # float64: the PyTorch form
    assert len(calls) == 1
    torch.testing.assert_close(as32.double(), as64, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="gates"):
        fused_mlstm(qkv.float(), gates.float()[..., :3])
    with pytest.raises(ValueError, match="weight"):
        fused_gated_mlstm(qkv.float(), weight.float()[:, :5], bias.float())


@needs_kernel
def test_the_cell_leaves_the_kernel_under_autocast():
    """Under autocast the gates' product would come out in bf16 inside the kernel's
    function, which reads float32: the cell takes the PyTorch form there, as a GPU does."""
    qkv, _ = (t.float() for t in _block_inputs(2, 5, 2, 4, 1.0))
    weight, bias = (t.float() for t in _gate_map(2, 4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = mlstm_cell(qkv, weight, bias)
        want = _gated_parallel(qkv, weight, bias)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want)


def test_disabled_kernels_run_the_parallel_form(native_disabled):
    qkv, _ = (t.float() for t in _block_inputs(2, 5, 2, 4, 1.0))
    weight, bias = (t.float() for t in _gate_map(2, 4))
    assert not mlstm_kernel.available(qkv, weight)
    torch.testing.assert_close(mlstm_cell(qkv, weight, bias), _gated_parallel(qkv, weight, bias))


needs_norm_kernel = pytest.mark.skipif(
    native.library("head_norm") is None, reason="no C compiler: the kernel cannot be built"
)


def _head_norm_inputs(batch, steps, heads, d, spread, seed=0):
    """h (B, T, H, d), x_c (B, T, H d), weight and skip (H d), float64."""
    gen = torch.Generator().manual_seed(seed)
    h = spread * torch.randn(batch, steps, heads, d, generator=gen, dtype=torch.float64) + 0.5
    rest = (torch.randn(*s, generator=gen, dtype=torch.float64) for s in
            [(batch, steps, heads * d), (heads * d,), (heads * d,)])  # fmt: skip
    return [h, *rest]


@needs_norm_kernel
# One channel of one head; heads of a few channels; the embedded default's (4 heads of
# 32); more rows than one block of the gain's and skip's float sums. Spread 1e-3: a
# head's variance near eps, which then matters.
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 7, 2, 5), (64, 20, 4, 32), (2, 90, 4, 64)])
@pytest.mark.parametrize("spread", [2.0, 1e-3])
def test_head_norm_kernel_equals_the_pytorch_form_in_output_and_every_gradient(shape, spread):
    within_float32_error(
        head_norm.head_norm_skip, head_norm.reference, _head_norm_inputs(*shape, spread),
        ["y", "h", "x_c", "weight", "skip"], floor=1e-6,
    )  # fmt: skip


@needs_norm_kernel
def test_head_norm_kernel_takes_strided_inputs_and_dispatches_float32_only(monkeypatch):
    h, x_c, weight, skip = (t.float() for t in _head_norm_inputs(3, 6, 2, 8, 1.0))
    h = h.transpose(0, 1).contiguous().transpose(0, 1).requires_grad_()  # other strides
    grad = torch.randn(6, 3, 16).transpose(0, 1)
    assert not h.is_contiguous() and not grad.is_contiguous()
    inputs = [h, x_c.requires_grad_(), weight.requires_grad_(), skip.requires_grad_()]
    got = head_norm.head_norm_skip(*inputs)
    want = head_norm.reference(*inputs)
    torch.testing.assert_close(got, want)
    for g, w in zip(torch.autograd.grad(got, inputs, grad),
                    torch.autograd.grad(want, inputs, grad), strict=True):  # fmt: skip
        torch.testing.assert_close(g, w)
    with pytest.raises(ValueError, match="skip"):
        head_norm.head_norm_skip(h, x_c, weight, skip[:-1])
    calls = []
    monkeypatch.setattr(head_norm, "reference", lambda *a: calls.append(a) or want)
    head_norm.head_norm_skip(*(t.double() for t in inputs))  # float64: PyTorch
    assert len(calls) == 1


def test_disabled_kernels_run_the_pytorch_head_norm(native_disabled, monkeypatch):
    calls = []
    real = head_norm.reference
    monkeypatch.setattr(head_norm, "reference", lambda *a: calls.append(a) or real(*a))
    inputs = [t.float() for t in _head_norm_inputs(2, 3, 2, 4, 1.0)]
    torch.testing.assert_close(head_norm.head_norm_skip(*inputs), real(*inputs))
    assert len(calls) == 1


needs_mix_kernel = pytest.mark.skipif(
    native.library("gated_mix") is None, reason="no C compiler: the kernel cannot be built"
)


def _mix_inputs(batch, steps, channels, z_scale, seed=0):
    """h, r (B, T, C); z_wide (B, T, 2C), whose second half is z; z_bias (C); a, b 0-d."""
    gen = torch.Generator().manual_seed(seed)
    h, r = (torch.randn(batch, steps, channels, generator=gen, dtype=torch.float64) for _ in "hr")
    z_wide = z_scale * torch.randn(batch, steps, 2 * channels, generator=gen, dtype=torch.float64)
    z_bias = torch.randn(channels, generator=gen, dtype=torch.float64)
    a, b = torch.rand(2, generator=gen, dtype=torch.float64).unbind()
    return [h, r, z_wide, z_bias, a.clone(), b.clone()]


def _second_half(function):
    """`function` with z read as the second half of a wider tensor, as the block's `up`."""
    return lambda h, r, z_wide, z_bias, a, b: function(
        h, r, z_wide[..., z_wide.shape[-1] // 2 :], z_bias, a, b
    )


@needs_mix_kernel
# One element; odd widths; the embedded block (64 x 20 x 128); more rows than one block of
# the bias gradient's float sums. z scale 40: the gate's sigmoid saturated both ways.
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 7, 5), (64, 20, 128), (2, 90, 16)])
@pytest.mark.parametrize("z_scale", [1.0, 40.0])
def test_gated_mix_kernel_equals_the_pytorch_form_in_output_and_every_gradient(shape, z_scale):
    names = ["out", "h", "r", "z", "z_bias", "a", "b"]
    within_float32_error(
        _second_half(gated_mix.gated_mix), _second_half(gated_mix.reference),
        _mix_inputs(*shape, z_scale), names, floor=1e-6,
    )  # fmt: skip


@needs_mix_kernel
def test_gated_mix_uses_the_kernel_for_cpu_float32_only_and_names_bad_shapes():
    h, r, z_wide, z_bias, a, b = _mix_inputs(2, 3, 4, 1.0)
    z = z_wide[..., 4:]
    as32 = [t.float().requires_grad_() for t in (h, r)]
    out = gated_mix.gated_mix(*as32, z.float(), z_bias.float(), a.float(), b.float())
    assert "GatedMix" in type(out.grad_fn).__name__
    out64 = gated_mix.gated_mix(h.requires_grad_(), r, z, z_bias, a, b)  # float64: PyTorch
    assert "GatedMix" not in type(out64.grad_fn).__name__
    torch.testing.assert_close(out64, gated_mix.reference(h, r, z, z_bias, a, b))
    with pytest.raises(ValueError, match="one shape"):
        gated_mix.gated_mix(h, r[:, :2], z, z_bias, a, b)


def test_disabled_kernels_run_the_pytorch_gated_mix(native_disabled):
    h, r, z_wide, z_bias, a, b = (t.float() for t in _mix_inputs(2, 3, 4, 1.0))
    z = z_wide[..., 4:]
    out = gated_mix.gated_mix(h.requires_grad_(), r, z, z_bias, a, b)
    assert "GatedMix" not in type(out.grad_fn).__name__
    torch.testing.assert_close(out, gated_mix.reference(h, r, z, z_bias, a, b))
