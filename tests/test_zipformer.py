"""Zipformer encoder: shapes and its building blocks. Padding invariance and gradients
at every depth: test_models."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from expsearch.models.zipformer import (
    FACTORS,
    BiasNorm,
    Bypass,
    Downsample,
    ZipformerEncoder,
    swoosh_l,
    swoosh_r,
)

from .conftest import prefix_mask


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


def test_swoosh_values():
    x = torch.tensor([-2.0, 0.0, 1.0, 4.0])
    sp = torch.nn.functional.softplus
    assert torch.allclose(swoosh_r(x), sp(x - 1) - 0.08 * x - 0.313261687)
    assert torch.allclose(swoosh_l(x), sp(x - 4) - 0.08 * x - 0.035)
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
