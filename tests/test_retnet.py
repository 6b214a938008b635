"""RetNet temporal encoder: shapes, the decay matrix, retention against a naive loop,
and distinct per-head horizons. Padding invariance and gradients: test_models."""

from __future__ import annotations

import math

import pytest
import torch

from expsearch.models.retnet import (
    MultiScaleRetention,
    RetNetEncoder,
    decay_matrix,
    head_count,
    rotary,
)

from .conftest import prefix_mask


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
    q = rotary(module.split(module.q_proj(x)))
    k = rotary(module.split(module.k_proj(x))) / math.sqrt(module.key_dim)
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
