"""Zipformer encoder: shapes, its building blocks, and the C kernels of its attention core
and of BiasNorm against their PyTorch forms. Padding invariance and gradients at every
depth: test_models."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from expsearch.models import attention_kernel, bias_norm, native
from expsearch.models.attention_kernel import fused_attention
from expsearch.models.swoosh import swoosh_l, swoosh_r
from expsearch.models.zipformer import (
    FACTORS,
    BiasNorm,
    Bypass,
    Downsample,
    SelfAttention,
    ZipformerEncoder,
    attention_reference,
    limit,
)

from .conftest import prefix_mask, within_float32_error


def encoder(width=64, depth=1, dropout=0.0, seed=0):
    torch.manual_seed(seed)
    return ZipformerEncoder(width, depth, dropout)


GRID = [(w, d) for w in (64, 128) for d in (1, 2, 3, 4)] + [(256, 1), (256, 4), (512, 2)]


@pytest.mark.parametrize(("width", "depth"), GRID)
def test_shapes_and_finite(width, depth):
    model = encoder(width, depth).eval()
    x = torch.randn(3, 13, width)
    out = model(x, prefix_mask([13, 6, 1], 13))
    assert out.shape == (3, 13, width) and torch.isfinite(out).all()


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_single_step_and_batch_of_one(depth):
    model = encoder(depth=depth)
    for mode in (model.train, model.eval):
        mode()
        assert torch.isfinite(model(torch.randn(1, 1, 64), prefix_mask([1], 1))).all()
        assert torch.isfinite(model(torch.randn(2, 30, 64), prefix_mask([1, 30], 30))).all()


def test_seeded_determinism():
    x, mask = torch.randn(3, 12, 64), prefix_mask([12, 5, 9], 12)
    outs = []
    for _ in range(2):
        model = encoder(depth=4, dropout=0.2, seed=3).train()
        torch.manual_seed(11)
        outs.append(model(x, mask))
    assert torch.equal(outs[0], outs[1])


def test_layout():
    assert len(encoder(depth=4).stacks) == len(FACTORS[4]) == 4
    with pytest.raises(ValueError, match="depth"):
        ZipformerEncoder(64, 5, 0.0)


def test_bias_norm_formula():
    torch.manual_seed(0)
    norm = BiasNorm(8)
    with torch.no_grad():
        norm.bias.normal_()
        norm.log_scale.fill_(0.3)
    x = torch.randn(2, 5, 8)
    direct = x * math.exp(0.3) / torch.sqrt(((x - norm.bias) ** 2).mean(-1, keepdim=True) + 1e-6)
    assert torch.allclose(norm(x), direct, atol=1e-6)
    with torch.no_grad():
        norm.log_scale.fill_(4.0)  # limited to 1.5
    direct = direct / math.exp(0.3) * math.exp(1.5)
    assert torch.allclose(norm(x), direct, atol=1e-5)


needs_norm_kernel = pytest.mark.skipif(
    native.library("bias_norm") is None, reason="no C compiler: the kernel cannot be built"
)


@needs_norm_kernel
# One channel; rows of a few channels (not a whole vector); the embedded default's 64; a
# paper-size 256 with more rows than one block of the bias gradient's float sums.
# Spread 1e-3 around the bias: mean squares near eps, which then matters.
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 7, 10), (64, 20, 64), (2, 90, 256)])
@pytest.mark.parametrize("spread", [3.0, 1e-3])
def test_bias_norm_kernel_equals_the_pytorch_form_in_output_and_every_gradient(shape, spread):
    gen = torch.Generator().manual_seed(0)
    bias = torch.randn(shape[-1], generator=gen, dtype=torch.float64)
    x = spread * torch.randn(*shape, generator=gen, dtype=torch.float64) + bias
    within_float32_error(
        lambda *inputs: bias_norm.bias_norm(*inputs, 1e-6),
        lambda *inputs: bias_norm.reference(*inputs, 1e-6),
        [x, bias, torch.tensor(0.7, dtype=torch.float64)],
        ["y", "x", "bias", "log_scale"],
        floor=1e-6,
    )


@needs_norm_kernel
def test_bias_norm_kernel_takes_strided_inputs_and_gradients(monkeypatch):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 16, 5, generator=gen).transpose(1, 2).requires_grad_()  # (6, 5, 16)
    bias, log_scale = torch.randn(16, generator=gen), torch.tensor(0.2, requires_grad=True)
    grad = torch.randn(6, 16, 5, generator=gen).transpose(1, 2)
    assert not x.is_contiguous() and not grad.is_contiguous()
    got = bias_norm.bias_norm(x, bias, log_scale, 1e-6)
    got_grads = torch.autograd.grad(got, (x, log_scale), grad)
    want = bias_norm.reference(x, bias, log_scale, 1e-6)
    want_grads = torch.autograd.grad(want, (x, log_scale), grad)
    torch.testing.assert_close(got, want)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w)
    calls = []
    monkeypatch.setattr(bias_norm, "reference", lambda *a: calls.append(a) or want)
    bias_norm.bias_norm(x.double(), bias.double(), log_scale.double(), 1e-6)  # float64: PyTorch
    assert len(calls) == 1


def test_disabled_kernels_run_the_pytorch_bias_norm(native_disabled, monkeypatch):
    calls = []
    real = bias_norm.reference
    monkeypatch.setattr(bias_norm, "reference", lambda *a: calls.append(a) or real(*a))
    norm = BiasNorm(8)
    x = torch.randn(2, 3, 8)
    torch.testing.assert_close(norm(x), real(x, norm.bias, norm.log_scale, norm.eps))
    assert len(calls) == 1


def test_swoosh_values():
    x = torch.tensor([-2.0, 0.0, 1.0, 4.0])
    sp = torch.nn.functional.softplus
    # Within float32 rounding of terms near 0.3 (an ulp there is 3e-8): SwooshR(0) is a
    # difference of two such numbers, where libm's and the kernel's softplus may differ
    # by an ulp.
    expected_r, expected_l = sp(x - 1) - 0.08 * x - 0.313261687, sp(x - 4) - 0.08 * x - 0.035
    torch.testing.assert_close(swoosh_r(x), expected_r, atol=1e-7, rtol=1e-6)
    torch.testing.assert_close(swoosh_l(x), expected_l, atol=1e-7, rtol=1e-6)
    assert abs(swoosh_r(torch.tensor(0.0)).item()) < 1e-6  # SwooshR(0) = 0
    assert swoosh_r(torch.tensor(1.0)).item() == pytest.approx(math.log(2) - 0.393261687)
    assert swoosh_l(torch.tensor(4.0)).item() == pytest.approx(math.log(2) - 0.355)


def test_bypass_clamp_schedule():
    bypass = Bypass(4, warmup=10)
    with torch.no_grad():
        bypass.scale.copy_(torch.tensor([0.0, 0.5, 0.95, 1.5]))
    x, y = torch.zeros(1, 4), torch.ones(1, 4)
    bypass.train()
    mins = []
    for _ in range(12):
        lo = bypass.scale_min().item()
        out = bypass(x, y)[0]  # = effective c
        assert (out >= lo - 1e-6).all() and (out <= 1).all()
        mins.append(lo)
    assert mins[0] == pytest.approx(0.9) and mins[-1] == pytest.approx(0.2)
    assert all(a > b for a, b in itertools.pairwise(mins[:11]))
    assert int(bypass.step) == 12

    bypass.eval()  # the same limit as training at this step: no train/eval gap
    expected = bypass.scale.detach().clamp(bypass.scale_min().item(), 1.0)
    assert torch.allclose(bypass(x, y)[0], expected)
    assert int(bypass.step) == 12  # eval does not advance the schedule


def test_bypass_limit_lets_gradient_back_in_range():
    bypass = Bypass(2, warmup=10).train()
    with torch.no_grad():
        bypass.scale.fill_(0.5)  # below scale_min = 0.9
    x, y = torch.zeros(1, 2), torch.ones(1, 2)
    (bypass(x, y) * torch.tensor([[1.0, -1.0]])).sum().backward()
    # descent would lower channel 0 further below the range (blocked), raises channel 1
    assert bypass.scale.grad.tolist() == [0.0, -1.0]


def test_limit_clamps_and_blocks_only_gradients_that_push_further_out():
    p = torch.tensor([0.5, 0.5, 1.0, 1.5, 2.0, 2.5, 2.5], requires_grad=True)
    out = limit(p, 1.0, 2.0)
    assert out.tolist() == [1.0, 1.0, 1.0, 1.5, 2.0, 2.0, 2.0]
    grad = torch.tensor([1.0, -1.0, 1.0, -1.0, -1.0, -1.0, 1.0])
    out.backward(grad)
    # below the range a positive gradient (descent lowers p) is blocked, above it a
    # negative one; inside and on the bounds every gradient passes
    assert p.grad.tolist() == [0.0, -1.0, 1.0, -1.0, -1.0, 0.0, 1.0]
    lo = torch.tensor([0.0, 1.5])  # tensor bounds, as Bypass's schedule gives
    q = torch.tensor([1.0, 1.0], requires_grad=True)
    limit(q, lo, 2.0).backward(torch.tensor([1.0, 1.0]))
    assert q.grad.tolist() == [1.0, 0.0]


def test_downsample_equal_weights_is_masked_mean():
    torch.manual_seed(0)
    down = Downsample(4)
    x = torch.randn(2, 7, 3)
    mask = prefix_mask([6, 2], 7)
    out, small = down(x, mask)
    assert out.shape == (2, 2, 3) and small.tolist() == [[True, True], [True, False]]
    assert torch.allclose(out[0, 0], x[0, :4].mean(0))
    assert torch.allclose(out[0, 1], x[0, 4:6].mean(0))
    assert torch.allclose(out[1, 0], x[1, :2].mean(0))
    assert torch.isfinite(out).all()


needs_kernel = pytest.mark.skipif(
    native.library("attention") is None, reason="no C compiler: the kernel cannot be built"
)


def _attention_inputs(batch, steps, heads, d, max_rel, scale, seed=0):
    """qkv (B, T, 3 H d) and the bias table (H, 2 R + 1), float64."""
    gen = torch.Generator().manual_seed(seed)
    qkv = scale * torch.randn(batch, steps, 3 * heads * d, generator=gen, dtype=torch.float64)
    bias = torch.randn(heads, 2 * max_rel + 1, generator=gen, dtype=torch.float64)
    return qkv, bias


@needs_kernel
# T = 1; padded rows (one with a single valid key); T one whole vector of 16; the embedded
# default (T 20, 2 heads of 32, distances up to 31); T past a vector with head sizes that
# are not whole vectors and distances clipped (R = 3 < T - 1). Scale 4: scores tens apart,
# so a softmax without its maximum subtracted would overflow.
@pytest.mark.parametrize(
    ("shape", "lengths"),
    [
        ((1, 1, 1, 4, 31), None),
        ((3, 7, 2, 8, 31), [7, 5, 1]),
        ((2, 16, 1, 32, 31), None),
        ((2, 20, 2, 32, 31), None),
        ((4, 33, 3, 6, 3), [33, 1, 20, 17]),
    ],
)
@pytest.mark.parametrize("scale", [0.5, 4.0])
def test_attention_kernel_equals_the_pytorch_form_in_output_and_every_gradient(
    shape, lengths, scale
):
    batch, steps, heads = shape[:3]
    mask = prefix_mask(lengths or [steps] * batch, steps)
    inputs = _attention_inputs(*shape, scale)
    got = within_float32_error(
        lambda qkv, bias: fused_attention(qkv, bias, mask, heads),
        lambda qkv, bias: attention_reference(qkv, bias, mask, heads),
        inputs,
        ["y", "qkv", "bias"],
    )
    with torch.no_grad():  # no backward to come: the kernel keeps no weights
        as32 = [t.float() for t in inputs]
        torch.testing.assert_close(fused_attention(*as32, mask, heads), got[0])


@needs_kernel
def test_attention_kernel_ignores_masked_keys_and_reads_a_non_contiguous_gradient():
    qkv, bias = (t.float() for t in _attention_inputs(3, 9, 2, 8, 31, 1.0))
    mask = prefix_mask([9, 4, 9], 9)
    changed = qkv.clone()
    changed[1, 4:] = 1e4  # keys and values past row 1's length: no valid step sees them
    torch.testing.assert_close(
        fused_attention(changed, bias, mask, 2)[1, :4], fused_attention(qkv, bias, mask, 2)[1, :4]
    )
    inputs = [t.requires_grad_() for t in (qkv, bias)]
    grad = torch.randn(3, 16, 9).transpose(1, 2)  # (B, T, H d) values, other strides
    assert not grad.is_contiguous()
    got = torch.autograd.grad(fused_attention(*inputs, mask, 2), inputs, grad)
    want = torch.autograd.grad(fused_attention(*inputs, mask, 2), inputs, grad.contiguous())
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)


@needs_kernel
def test_the_attention_module_uses_the_kernel_on_cpu_float32_only(monkeypatch):
    calls = []
    real = attention_kernel.fused_attention
    monkeypatch.setattr(attention_kernel, "fused_attention", lambda *a: calls.append(a) or real(*a))
    torch.manual_seed(0)
    module = SelfAttention(64, 2, 0.0)
    with torch.no_grad():
        module.rel_bias.normal_()
    x, mask = torch.randn(2, 9, 64), prefix_mask([9, 6], 9)
    as32 = module(x, mask)
    assert len(calls) == 1
    as64 = module.double()(x.double(), mask)  # float64: the PyTorch form
    assert len(calls) == 1
    torch.testing.assert_close(as32.double(), as64, atol=1e-5, rtol=1e-4)
    qkv, bias = (t.float() for t in _attention_inputs(2, 5, 2, 4, 31, 1.0))
    with pytest.raises(ValueError, match="mask"):
        fused_attention(qkv, bias, mask[:, :5].float(), 2)
    with pytest.raises(ValueError, match="rel_bias"):
        fused_attention(qkv, bias[:, 1:], mask[:, :5], 2)


def test_disabled_kernels_run_the_pytorch_attention(native_disabled):
    assert not attention_kernel.available(torch.zeros(1))
    torch.manual_seed(0)
    module = SelfAttention(16, 2, 0.0)
    x, mask = torch.randn(2, 5, 16), prefix_mask([5, 3], 5)
    qkv = module.qkv(x)
    want = module.out(attention_reference(qkv, module.rel_bias, mask, 2))
    torch.testing.assert_close(module(x, mask), want)
