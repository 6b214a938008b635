"""RetNet temporal encoder: shapes, the decay matrix, retention against a naive loop,
distinct per-head horizons, and the C kernel of the retention core against the PyTorch
form. Padding invariance and gradients: test_models."""

from __future__ import annotations

import math

import pytest
import torch

from expsearch.models import native, retention_kernel
from expsearch.models.retention_kernel import fused_retention
from expsearch.models.retnet import (
    MultiScaleRetention,
    RetNetEncoder,
    decay_matrix,
    head_count,
    head_log_gammas,
    retention,
    retention_parallel,
    rotary,
    rotary_angles,
)

from .conftest import prefix_mask, within_float32_error


@pytest.mark.parametrize(("width", "depth"), [(64, 1), (128, 2), (256, 4), (512, 1)])
def test_shapes_and_finite(width, depth):
    torch.manual_seed(0)
    encoder = RetNetEncoder(width, depth, dropout=0.1).eval()
    for steps, lengths in [(20, [20, 7, 1]), (1, [1, 1, 1]), (30, [30, 30, 2])]:
        out = encoder(torch.randn(3, steps, width), prefix_mask(lengths, steps))
        assert out.shape == (3, steps, width) and torch.isfinite(out).all()
    one = encoder(torch.randn(1, 13, width), prefix_mask([5], 13))
    assert one.shape == (1, 13, width) and torch.isfinite(one).all()


def test_seeded_determinism():
    x, mask = torch.randn(3, 12, 64), prefix_mask([12, 5, 9], 12)
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        encoder = RetNetEncoder(64, 2, dropout=0.2).train()
        torch.manual_seed(11)
        outs.append(encoder(x, mask))
    assert torch.equal(outs[0], outs[1])


def test_decay_matrix_is_symmetric_gamma_power_before_normalisation():
    retention = MultiScaleRetention(128)
    steps = 9
    raw = decay_matrix(retention.log_gamma, prefix_mask([steps], steps), normalise=False)[0]
    distance = (torch.arange(steps)[:, None] - torch.arange(steps)[None, :]).abs()
    for head, log_gamma in enumerate(retention.log_gamma):
        gamma = math.exp(log_gamma.item())
        assert torch.allclose(raw[head], raw[head].T)
        assert torch.allclose(raw[head], gamma ** distance.double().float(), atol=1e-6)
    scaled = decay_matrix(retention.log_gamma, prefix_mask([steps], steps))[0]
    assert torch.allclose(scaled, raw / raw.sum(-1, keepdim=True).sqrt())
    # padded keys get exactly zero weight, and do not enter the row sums
    padded = decay_matrix(retention.log_gamma, prefix_mask([4], steps))[0]
    assert padded[:, :, 4:].eq(0).all()
    short = raw[:, :4, :4]
    assert torch.allclose(padded[:, :4, :4], short / short.sum(-1, keepdim=True).sqrt())


def naive_retention(module: MultiScaleRetention, x: torch.Tensor, mask: torch.Tensor):
    """The formula of the module docstring, element by element, in float64."""
    batch, steps, _ = x.shape
    heads, d = module.heads, module.key_dim
    e = module.value_dim // heads
    q_all, k_all = x @ module.q_proj.weight.T, x @ module.k_proj.weight.T
    v_all, g_all = x @ module.v_proj.weight.T, x @ module.g_proj.weight.T + module.g_bias

    def rope(vec, pos):
        half, out = d // 2, vec.clone()
        for i in range(half):
            a = pos * 10000.0 ** (-i / half)
            out[i] = vec[i] * math.cos(a) - vec[i + half] * math.sin(a)
            out[i + half] = vec[i] * math.sin(a) + vec[i + half] * math.cos(a)
        return out

    out = torch.zeros(batch, steps, heads * e, dtype=x.dtype)
    for b in range(batch):
        for h in range(heads):
            gamma = math.exp(module.log_gamma[h].item())
            for n in range(steps):
                weights = [gamma ** abs(n - m) if mask[b, m] else 0.0 for m in range(steps)]
                row_sum = sum(weights)
                q = rope(q_all[b, n, h * d : (h + 1) * d], n)
                r = []
                for m in range(steps):
                    k = rope(k_all[b, m, h * d : (h + 1) * d], m) / math.sqrt(d)
                    r.append(float((q @ k).detach()) * weights[m] / math.sqrt(row_sum))
                s = max(sum(abs(value) for value in r), 1.0)
                o = sum(r[m] / s * v_all[b, m, h * e : (h + 1) * e] for m in range(steps))
                o = o / torch.sqrt((o**2).mean() + 1e-6)
                out[b, n, h * e : (h + 1) * e] = o
    return (torch.nn.functional.silu(g_all) * out) @ module.out_proj.weight.T


def test_retention_matches_a_naive_loop():
    torch.manual_seed(0)
    module = MultiScaleRetention(64).double()
    # larger projections so that some |R| row sums exceed 1 and the clamp is exercised
    with torch.no_grad():
        module.q_proj.weight.mul_(5)
        module.k_proj.weight.mul_(5)
        module.g_proj.weight.normal_(0, 0.1)  # the gate starts constant (open); make it vary
        module.g_bias.normal_(1.0, 0.5)
    x = torch.randn(2, 6, 64, dtype=torch.float64)
    mask = prefix_mask([6, 4], 6)
    got = module(x, mask)
    want = naive_retention(module, x, mask)
    assert torch.allclose(got, want, atol=1e-10)

    def split(y):  # (B, T, H d) -> (B, H, T, d)
        return y.view(*y.shape[:2], module.heads, -1).transpose(1, 2)

    q = rotary(split(module.q_proj(x)))
    k = rotary(split(module.k_proj(x))) / math.sqrt(module.key_dim)
    k = k * mask[:, None, :, None]
    row_sums = ((q @ k.transpose(-1, -2)) * decay_matrix(module.log_gamma, mask)).abs().sum(-1)
    assert (row_sums > 1).any() and (row_sums < 1).any()


def test_heads_have_different_horizons():
    assert [head_count(w) for w in (64, 128, 256, 512)] == [2, 4, 8, 8]
    module = MultiScaleRetention(256)
    gammas = module.log_gamma.exp()
    horizons = 1 / (1 - gammas)
    assert horizons[0] == pytest.approx(2.0, rel=1e-4)
    assert horizons[-1] == pytest.approx(20.0, rel=1e-4)
    steps, n = 20, 10
    decay = decay_matrix(module.log_gamma, prefix_mask([steps], steps))[0, :, n]
    near = decay[:, n - 2 : n + 3].sum(-1) / decay.sum(-1)
    assert (near[1:] < near[:-1] - 0.02).all(), near
    assert near[0] > 0.8 and near[-1] < 0.32, near


needs_kernel = pytest.mark.skipif(
    native.library("retention") is None, reason="no C compiler: the kernel cannot be built"
)


def _core_inputs(batch, steps, heads, d, e, lengths, scale, seed=0):
    """q, k (B, T, H d), v (B, T, H e) in float64 and the decay for `lengths` (None: no
    padding, one (1, H, T, T) matrix for every row, as the module passes it then)."""
    gen = torch.Generator().manual_seed(seed)
    q = scale * torch.randn(batch, steps, heads * d, generator=gen, dtype=torch.float64)
    k = scale * torch.randn(batch, steps, heads * d, generator=gen, dtype=torch.float64)
    v = torch.randn(batch, steps, heads * e, generator=gen, dtype=torch.float64)
    log_gamma = head_log_gammas(heads).double()
    if lengths is None:
        decay = decay_matrix(log_gamma, prefix_mask([steps], steps))
    else:
        mask = prefix_mask(lengths, steps)
        decay = decay_matrix(log_gamma, mask)
        k, v = k * mask[..., None], v * mask[..., None]  # as the module zeroes them
    return q, k, v, decay


def _kernel_call(q, k, v, decay, heads):
    cos, sin = rotary_angles(q.shape[1], q.shape[2] // heads // 2, q.device, q.dtype)
    return fused_retention(q, k, v, cos, sin, decay, heads)


@needs_kernel
# T = 1, padded rows (one of a single step), T one whole vector of 16 and past it, the
# embedded default's (T 20, 2 heads of 32 keys and 64 values), head sizes that are not
# whole vectors. Both sides of the normaliser's clamp: at scale 0.3 rows' sums of |R|
# fall below 1 (divided by 1), at scale 3 above (divided by the sum).
@pytest.mark.parametrize(
    ("shape", "lengths"),
    [
        ((1, 1, 1, 4, 4), None),
        ((3, 7, 2, 8, 16), [7, 5, 2]),
        ((2, 16, 1, 32, 64), None),
        ((2, 20, 2, 32, 64), None),
        ((4, 33, 3, 6, 10), [33, 1, 20, 17]),
    ],
)
@pytest.mark.parametrize("scale", [0.3, 3.0])
def test_kernel_equals_the_parallel_form_in_output_and_every_gradient(shape, lengths, scale):
    *reference, decay = _core_inputs(*shape, lengths, scale)
    heads = shape[2]
    within_float32_error(
        lambda q, k, v: _kernel_call(q, k, v, decay.float(), heads),
        lambda q, k, v: retention_parallel(q, k, v, decay.to(q.dtype), heads),
        reference,
        "yqkv",
    )
    q, k = (rotary(t.view(*t.shape[:2], heads, -1).transpose(1, 2)) for t in reference[:2])
    sums = ((q @ k.transpose(-1, -2)) * decay).abs().sum(-1) / math.sqrt(shape[3])
    assert ((sums < 1) if scale < 1 else (sums > 1)).any()


@needs_kernel
def test_kernel_reads_a_non_contiguous_upstream_gradient():
    q, k, v, decay = (t.float() for t in _core_inputs(3, 9, 2, 8, 12, [9, 4, 9], 1.0))
    inputs = [t.requires_grad_() for t in (q, k, v)]
    grad = torch.randn(3, 24, 9).transpose(1, 2)  # (B, T, H e) values, other strides
    assert not grad.is_contiguous()
    got = torch.autograd.grad(_kernel_call(*inputs, decay, 2), inputs, grad)
    want = torch.autograd.grad(_kernel_call(*inputs, decay, 2), inputs, grad.contiguous())
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)


@needs_kernel
def test_the_module_uses_the_kernel_on_cpu_float32_only(monkeypatch):
    calls = []
    real = retention_kernel.fused_retention
    monkeypatch.setattr(retention_kernel, "fused_retention", lambda *a: calls.append(a) or real(*a))
    torch.manual_seed(0)
    module = MultiScaleRetention(64)
    x, mask = torch.randn(2, 9, 64), prefix_mask([9, 6], 9)
    as32 = module(x, mask)
    assert len(calls) == 1
    as64 = module.double()(x.double(), mask)  # float64: the PyTorch form
    assert len(calls) == 1
    torch.testing.assert_close(as32.double(), as64, atol=1e-5, rtol=1e-4)
    q, k, v, decay = (t.float() for t in _core_inputs(2, 5, 2, 4, 8, None, 1.0))
    with pytest.raises(ValueError, match="decay"):
        _kernel_call(q, k, v, decay[..., :4], 2)
    with pytest.raises(ValueError, match="d even"):
        _kernel_call(q[..., :6], k[..., :6], v, decay, 2)  # heads of 3 keys


def test_disabled_kernels_run_the_parallel_form(native_disabled):
    q, k, v, decay = (t.float() for t in _core_inputs(2, 5, 2, 4, 8, [5, 3], 1.0))
    assert not retention_kernel.available(q, k, v, decay)
    torch.testing.assert_close(retention(q, k, v, decay, 2), retention_parallel(q, k, v, decay, 2))


def test_the_unpadded_decay_is_made_once_per_length_and_follows_the_gammas():
    module = MultiScaleRetention(64)
    full = prefix_mask([12, 12, 12], 12)
    first = module.decay(full)
    assert first.shape == (1, module.heads, 12, 12)
    assert module.decay(full) is first  # kept: the same tensor, not made again
    torch.testing.assert_close(first.expand(3, -1, -1, -1), decay_matrix(module.log_gamma, full))
    assert module.decay(prefix_mask([8], 8)).shape[-1] == 8  # another length: made anew
    padded = prefix_mask([12, 5, 12], 12)  # padding: per row, never kept
    torch.testing.assert_close(module.decay(padded), decay_matrix(module.log_gamma, padded))
    with torch.no_grad():
        module.log_gamma.mul_(2)  # an edit in place (a new _version): not the old matrix
    torch.testing.assert_close(module.decay(full)[0], decay_matrix(module.log_gamma, full)[0])
    assert module.double().decay(full).dtype == torch.float64  # .double(): a new buffer
