"""The fast CPU paths the encoders use: Dropout's masks, the depthwise conv's two paths, the
Swoosh kernel, a hidden activation fused with its bias and dropout (GELU, Swoosh), and
Zipformer's Bypass fused with its sub-layer's dropout."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from expsearch.models import conv as conv_module
from expsearch.models import native
from expsearch.models.act_dropout import GELU, act_dropout
from expsearch.models.conv import TOEPLITZ_MAX_STEPS, DepthwiseConv1d, native_depthwise
from expsearch.models.dropout import Dropout, numpy_mask
from expsearch.models.residual import residual_dropout
from expsearch.models.swoosh import SOFTPLUS, SWOOSH_L, SWOOSH_R, reference, softplus, swoosh


def test_dropout_drops_p_of_the_elements_and_scales_the_rest_exactly():
    torch.manual_seed(0)
    p, n = 0.3, 400_000
    drop = Dropout(p).train()
    y = drop(torch.ones(n))
    dropped = float((y == 0).float().mean())
    # Binomial standard error of the dropped share: a real bias of 0.2 % would fail.
    assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / n)
    kept = y[y != 0]
    assert torch.equal(kept, torch.full_like(kept, 1 / (1 - p)))


def test_dropout_is_the_identity_in_eval_mode_and_at_zero():
    x = torch.randn(8, 5, 3)
    assert torch.equal(Dropout(0.4).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))


def test_dropout_masks_follow_the_torch_seed_and_differ_between_modules():
    def masks(seed):
        torch.manual_seed(seed)
        a, b = Dropout(0.5).train(), Dropout(0.5).train()
        x = torch.ones(1000)
        return a(x), a(x), b(x)

    first, again, other = masks(0)
    assert torch.equal(first, masks(0)[0]) and torch.equal(other, masks(0)[2])
    assert not torch.equal(first, again)  # a new mask per call
    assert not torch.equal(first, other)  # and per module
    assert not torch.equal(first, masks(1)[0])


def test_dropout_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(0)
    x = torch.randn(64, 7, requires_grad=True)
    y = Dropout(0.25).train()(x)
    y.sum().backward()
    expected = (y.detach() != 0).float() / 0.75
    assert torch.equal(x.grad, expected)


@pytest.mark.skipif(
    native.library("dropout") is None, reason="no C compiler: the kernel cannot be built"
)
def test_the_c_masks_are_the_numpy_fallbacks_bit_for_bit():
    """A machine without a C compiler trains with the same masks, only slower."""
    torch.manual_seed(0)
    drop = Dropout(0.3).train()
    for n in (1, 3, 4, 7, 1000, 4097, 10_001):  # the kernel works 4,096 elements at a time
        first = drop.draws
        mask = drop.cpu_mask(torch.Size([n]))
        expected = numpy_mask(n, drop.seed, first, drop.threshold, float(drop.scale))
        assert torch.equal(mask, torch.from_numpy(expected))
    assert drop.draws == sum((n + 3) // 4 for n in (1, 3, 4, 7, 1000, 4097, 10_001))


def test_a_modules_masks_do_not_depend_on_other_modules_calls():
    """Each module draws from its own stream: side by side as alone."""
    x = torch.ones(999)
    torch.manual_seed(1)
    a = Dropout(0.5).train()
    alone = [a(x) for _ in range(3)]
    torch.manual_seed(1)
    a, b = Dropout(0.5).train(), Dropout(0.5).train()
    mixed = []
    for _ in range(3):
        b(torch.ones(77))
        mixed.append(a(x))
    assert all(torch.equal(u, v) for u, v in zip(alone, mixed, strict=True))
    assert not torch.equal(alone[0], alone[1])  # the stream moves on between calls


def test_dropout_refuses_a_probability_outside_0_1():
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.5)


@pytest.fixture(params=["c_kernel", "toeplitz"])
def conv_path(request, monkeypatch):
    """Each CPU path of DepthwiseConv1d: the C kernel (when it builds) and the Toeplitz bmm."""
    if request.param == "toeplitz":
        monkeypatch.setattr(conv_module, "_kernel", lambda: None)
    elif conv_module._kernel() is None:
        pytest.skip("no C compiler: the depthwise kernel cannot be built")
    return request.param


@pytest.mark.parametrize("kernel,padding", [(4, 3), (15, 7), (3, 1), (7, 3)])
@pytest.mark.parametrize("steps", [1, 5, 30, TOEPLITZ_MAX_STEPS + 6])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last", "half_of_wider"])
@pytest.mark.parametrize("silu", [False, True], ids=["conv", "conv_silu"])
def test_depthwise_conv_equals_the_native_convolution(
    conv_path, kernel, padding, steps, layout, silu
):
    torch.manual_seed(0)
    conv = DepthwiseConv1d(12, kernel, padding=padding)
    if layout == "channels_first":
        x = torch.randn(3, 12, steps, requires_grad=True)
        view = x
    elif layout == "channels_last":  # what the encoders pass: (B, T, C) seen as (B, C, T)
        x = torch.randn(3, steps, 12, requires_grad=True)
        view = x.transpose(1, 2)
    else:  # BiMamba's and xLSTM's: a half of a wider projection, read in place
        x = torch.randn(3, steps, 24, requires_grad=True)
        view = x[..., 12:].transpose(1, 2)
        assert native.row_stride(view.transpose(1, 2)) == 24
    ours = conv(view, silu=silu)
    grad = torch.randn_like(ours)
    ours.backward(grad)
    ours_grads = [x.grad.clone(), conv.weight.grad.clone(), conv.bias.grad.clone()]
    for tensor in (x, conv.weight, conv.bias):
        tensor.grad = None
    reference = native_depthwise(conv, view)
    reference = torch.nn.functional.silu(reference) if silu else reference
    reference.backward(grad)
    assert ours.shape == (3, 12, steps)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    for got, want in zip(ours_grads, [x.grad, conv.weight.grad, conv.bias.grad], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("silu", [False, True], ids=["conv", "conv_silu"])
def test_depthwise_conv_without_bias(conv_path, silu):
    torch.manual_seed(1)
    conv = DepthwiseConv1d(5, 4, padding=3)
    conv.register_parameter("bias", None)
    x = torch.randn(2, 5, 9, requires_grad=True)
    ours = conv(x, silu=silu)
    ours.sum().backward()
    got = [x.grad.clone(), conv.weight.grad.clone()]
    x.grad = conv.weight.grad = None

    def native():
        y = native_depthwise(conv, x)
        return torch.nn.functional.silu(y) if silu else y

    native().sum().backward()
    torch.testing.assert_close(ours, native(), rtol=1e-5, atol=1e-5)
    for have, want in zip(got, [x.grad, conv.weight.grad], strict=True):
        torch.testing.assert_close(have, want, rtol=1e-5, atol=1e-5)


def test_depthwise_conv_is_a_conv1d_with_its_parameters_and_init():
    torch.manual_seed(3)
    ours = DepthwiseConv1d(8, 4, padding=3)
    torch.manual_seed(3)
    plain = nn.Conv1d(8, 8, 4, groups=8, padding=3)
    assert ours.state_dict().keys() == plain.state_dict().keys()
    for key, value in plain.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value)


@pytest.mark.skipif(
    native.library("swoosh") is None, reason="no C compiler: the kernel cannot be built"
)
@pytest.mark.parametrize("constants", [SWOOSH_L, SWOOSH_R, SOFTPLUS])
def test_the_swoosh_kernel_is_the_formula_forward_and_backward(constants):
    torch.manual_seed(0)
    x = torch.cat(
        [torch.randn(64, 20, 48) * 4, torch.linspace(-90, 90, 64 * 20).view(64, 20, 1)], -1
    )
    grad = torch.randn_like(x)
    ours = x.clone().requires_grad_()
    swoosh(ours, constants).backward(grad)
    theirs = x.clone().requires_grad_()
    expected = reference(theirs, *constants)
    expected.backward(grad)
    torch.testing.assert_close(swoosh(x, constants), expected.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(ours.grad).all()


def test_swoosh_takes_the_formula_where_the_kernel_does_not_apply():
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: swoosh(t, SWOOSH_L), (x,))
    strided = torch.randn(5, 6).t()  # not contiguous
    assert torch.equal(swoosh(strided, SWOOSH_R), reference(strided, *SWOOSH_R))


def _activate(x, activation):
    return torch.nn.functional.gelu(x) if activation == GELU else swoosh(x, activation)


@pytest.mark.skipif(
    native.library("act_dropout") is None, reason="no C compiler: the kernel cannot be built"
)
@pytest.mark.parametrize("activation", [GELU, SWOOSH_L], ids=["gelu", "swoosh_l"])
# Rows of 5 (a row's mask starts inside a draw), the embedded FFNs' 64 x 20 x 128-192, rows
# longer than the kernel's 4,096-element mask chunks; p 0 and eval: nothing dropped.
@pytest.mark.parametrize("shape", [(3, 7, 5), (64, 20, 192), (2, 4100)])
@pytest.mark.parametrize(("p", "training"), [(0.1, True), (0.5, True), (0.0, True), (0.3, False)])
def test_act_dropout_is_the_module_calls_it_fuses(activation, shape, p, training):
    torch.manual_seed(0)
    fused, plain = Dropout(p).train(training), Dropout(p).train(training)
    plain.seed = fused.seed
    fused.draws = plain.draws = 11  # a module that has drawn before
    h, bias = 3 * torch.randn(shape), torch.randn(shape[-1])
    grad = torch.randn(shape)
    inputs = [t.clone().requires_grad_() for t in (h, bias)]
    got = act_dropout(*inputs, activation, fused)
    got.backward(grad)
    twins = [t.clone().requires_grad_() for t in (h, bias)]
    want = plain(_activate(twins[0] + twins[1], activation))
    want.backward(grad)
    # The same elements dropped (where the activation itself is not ~0, e.g. GELU at -6).
    alive = _activate(h + bias, activation).abs() > 1e-6
    assert torch.equal((got == 0) & alive, (want == 0) & alive)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for ours, theirs in zip(inputs, twins, strict=True):
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-5, atol=1e-4)
    assert fused.draws == plain.draws
    if training and p > 0:
        assert 0.5 * p < ((got == 0) & alive).float().sum() / alive.sum() < 1.5 * p


def test_act_dropout_calls_the_modules_where_the_kernel_does_not_apply():
    torch.manual_seed(0)
    h, bias = torch.randn(5, 6), torch.randn(5)
    drop = Dropout(1.0).train()  # p = 1: the module's own F.dropout
    assert torch.equal(act_dropout(h.t(), bias, GELU, drop), torch.zeros(6, 5))
    drop = Dropout(0.5).train()
    twin = Dropout(0.5).train()
    twin.seed = drop.seed
    for x in (h.t(), h.double()):  # not contiguous; float64
        b = torch.randn(x.shape[-1], dtype=x.dtype)
        for activation in (GELU, SWOOSH_R):
            torch.testing.assert_close(act_dropout(x, b, activation, drop),
                                       twin(_activate(x + b, activation)))  # fmt: skip


@pytest.mark.skipif(
    native.library("residual") is None, reason="no C compiler: the kernel cannot be built"
)
# Rows of 5 (a row's mask starts inside a draw), an embedded residual 64 x 20 x 64 (rows
# past one mask chunk and past the blocked sums' 64), rows longer than a mask chunk.
@pytest.mark.parametrize("shape", [(3, 7, 5), (64, 20, 64), (2, 4100)])
@pytest.mark.parametrize(("p", "training"), [(0.1, True), (0.5, True), (0.0, True), (0.3, False)])
def test_residual_dropout_is_the_module_calls_it_fuses(shape, p, training):
    torch.manual_seed(0)
    fused, plain = Dropout(p).train(training), Dropout(p).train(training)
    plain.seed = fused.seed
    fused.draws = plain.draws = 11  # a module that has drawn before
    x, y, c = torch.randn(shape), 3 * torch.randn(shape), torch.rand(shape[-1]) + 0.5
    grad = torch.randn(shape)
    inputs = [t.clone().requires_grad_() for t in (x, y, c)]
    got = residual_dropout(*inputs, fused)
    kernel_ran = "ResidualDropout" in type(got.grad_fn).__name__
    assert kernel_ran == (training and p > 0)
    got.backward(grad)
    twins = [t.clone().requires_grad_() for t in (x, y, c)]
    want = torch.addcmul(twins[0], twins[2], plain(twins[1]))
    want.backward(grad)
    assert torch.equal(got == twins[0], want == twins[0])  # the same elements dropped
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for ours, theirs in zip(inputs, twins, strict=True):
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-5, atol=1e-4)
    assert fused.draws == plain.draws
    if training and p > 0:
        assert 0.5 * p < (got == inputs[0]).float().mean() < 1.5 * p


def test_residual_dropout_calls_the_modules_where_the_kernel_does_not_apply():
    torch.manual_seed(0)
    x, y, c = torch.randn(5, 6), torch.randn(5, 6), torch.rand(5)
    drop = Dropout(1.0).train()  # p = 1: the module's own F.dropout
    assert torch.equal(residual_dropout(x.t(), y.t(), c, drop), x.t())
    drop, twin = Dropout(0.5).train(), Dropout(0.5).train()
    twin.seed = drop.seed
    for a, b in ((x.t(), y.t()), (x.double(), y.double())):  # not contiguous; float64
        scale = torch.rand(a.shape[-1], dtype=a.dtype)
        torch.testing.assert_close(residual_dropout(a, b, scale, drop),
                                   torch.addcmul(a, scale, twin(b)))  # fmt: skip


def test_softplus_is_torchs():
    x = torch.linspace(-30, 30, 1001, requires_grad=True)
    ours = softplus(x)
    ours.sum().backward()
    y = x.detach().clone().requires_grad_()
    expected = torch.nn.functional.softplus(y)
    expected.sum().backward()
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(x.grad, y.grad, rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(native.library("mlstm") is None, reason="no C compiler")
def test_editing_an_included_header_rebuilds_the_kernel(tmp_path, monkeypatch):
    sources = tmp_path / "sources"
    sources.mkdir()
    (sources / "probe.c").write_text('#include "probe.h"\nint probe(void) { return VALUE; }\n')
    monkeypatch.setattr(native, "SOURCES", sources)
    monkeypatch.setenv("EXPSEARCH_CACHE", str(tmp_path / "cache"))
    answers = []
    for value in (1, 2):
        (sources / "probe.h").write_text(f"#define VALUE {value}\n")
        native.library.cache_clear()
        answers.append(native.library("probe").probe())
    native.library.cache_clear()
    assert answers == [1, 2]  # a stale build would answer 1 twice
    assert len(list((tmp_path / "cache").glob("probe-*.so"))) == 2
