"""Losses of the space: formulas against direct computations, stability, and
that each loss parameter changes the result."""

from __future__ import annotations

import pytest
import torch

from expsearch.training.losses import LOSSES, focal_loss, make_loss

CONFIGS = {
    "focal": {"loss": "focal", "focal_gamma": 2.0, "focal_alpha": 0.25},
    "bce": {"loss": "bce"},
    "label_smoothing": {"loss": "label_smoothing", "smoothing_epsilon": 0.1},
}


def test_every_loss_of_the_space_is_covered():
    assert set(CONFIGS) == set(LOSSES)


def test_focal_matches_the_papers_formula():
    logits = torch.tensor([2.0, -1.0, 0.5, -3.0])
    y = torch.tensor([1.0, 1.0, 0.0, 0.0])
    gamma, alpha = 3.0, 0.3
    p = torch.sigmoid(logits)
    p_y = torch.where(y == 1, p, 1 - p)
    alpha_y = torch.where(y == 1, torch.tensor(alpha), torch.tensor(1 - alpha))
    expected = (-alpha_y * (1 - p_y) ** gamma * torch.log(p_y)).mean()
    assert torch.allclose(focal_loss(logits, y, gamma, alpha), expected, atol=1e-6)


def test_focal_with_gamma_0_and_alpha_half_is_half_bce():
    logits, y = torch.randn(50), torch.randint(0, 2, (50,)).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
    assert torch.allclose(focal_loss(logits, y, 0.0, 0.5), bce / 2, atol=1e-6)


def test_label_smoothing_targets():
    fn, used = make_loss(CONFIGS["label_smoothing"])
    logits, y = torch.randn(20), torch.randint(0, 2, (20,)).float()
    smoothed = y * 0.9 + 0.05
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, smoothed)
    assert torch.allclose(fn(logits, y), expected) and used == {"loss", "smoothing_epsilon"}


@pytest.mark.parametrize("kind", LOSSES)
def test_stable_for_extreme_logits_and_soft_targets(kind):
    fn, _ = make_loss(CONFIGS[kind])
    logits = torch.tensor([80.0, -80.0, 80.0, -80.0], requires_grad=True)
    value = fn(logits, torch.tensor([0.0, 1.0, 0.3, 0.7]))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize(
    ("kind", "key", "other"),
    [
        ("focal", "focal_gamma", 4.0),
        ("focal", "focal_alpha", 0.8),
        ("label_smoothing", "smoothing_epsilon", 0.2),
    ],
)
def test_each_loss_parameter_changes_the_loss(kind, key, other):
    logits, y = (
        torch.randn(30, generator=torch.Generator().manual_seed(0)),
        torch.tensor([0.0, 1.0] * 15),
    )
    fn, used = make_loss(CONFIGS[kind])
    changed, _ = make_loss({**CONFIGS[kind], key: other})
    assert key in used and not torch.allclose(fn(logits, y), changed(logits, y))


def test_unknown_loss():
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss({"loss": "hinge"})
