"""FLOP accounting: counted passes against closed forms, and an experiment's sum."""

import importlib

import pytest
import torch

from expsearch.models.bimamba import MambaBlock
from expsearch.models.classifier import ClipClassifier
from expsearch.training.flops import (
    SCAN_BACKWARD,
    SCAN_FORWARD,
    experiment_flops,
    matmul_gflops,
    pass_flops,
)


def _config(encoder, **overrides):
    config = {"encoder": encoder, "pooling": "mean", "width": 32, "depth": 1, "dropout": 0.0,
              "batch_size": 16, "seq_len": 10, "oversample_ratio": 1.0, "epochs": 3}  # fmt: skip
    return {**config, **overrides}


def test_a_linear_layer_counts_its_multiply_adds():
    model = torch.nn.Linear(8, 4)

    class Wrapped(torch.nn.Module):  # the (x, lengths) interface pass_flops drives
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x, lengths):
            return self.inner(x).sum(-1).sum(-1)

    flops = pass_flops(Wrapped(), batch=5, steps=3, width=8)
    forward = 2 * 5 * 3 * 8 * 4  # one multiply-add per weight per row
    assert flops["forward"] == forward
    # backward: the weight gradient, a matmul of the same size; no input gradient, as the
    # input is data (a deeper layer would add one more)
    assert flops["train_step"] == 2 * forward
    assert flops["scan_share"] == 0


def test_the_selective_scan_is_counted_per_element_and_step():
    model = ClipClassifier(16, "bimamba", "mean", 32, 1, 0.0)
    mixers = [m for m in model.modules() if isinstance(m, MambaBlock)]
    assert len(mixers) == 2  # forward and backward directions
    flops = pass_flops(model, batch=4, steps=6, width=16)
    elements = sum(4 * 6 * m.d_inner * m.d_state for m in mixers)
    scan = (SCAN_FORWARD + SCAN_BACKWARD) * elements
    assert flops["scan_share"] == pytest.approx(scan / flops["train_step"])
    without = ClipClassifier(16, "retnet", "mean", 32, 1, 0.0)
    assert pass_flops(without, batch=4, steps=6, width=16)["scan_share"] == 0


@pytest.mark.parametrize(
    ("encoder", "width", "kernel"),
    [
        ("xlstm", 32, "mlstm_kernel"),
        ("retnet", 64, "retention_kernel"),
        ("zipformer", 64, "attention_kernel"),  # depth 2: a stack at half the rate
    ],
)
def test_the_count_does_not_depend_on_which_path_ran(monkeypatch, encoder, width, kernel):
    module = importlib.import_module(f"expsearch.models.{kernel}")
    if not module.available(torch.zeros(1)):
        pytest.skip(f"no C compiler: {kernel} cannot be built")
    model = ClipClassifier(16, encoder, "mean", width, 2, 0.0)
    with_kernel = pass_flops(model, batch=4, steps=7, width=16)  # odd: 4 steps at half rate
    # The PyTorch form, whose (T, T) matmuls the counter sees itself.
    monkeypatch.setattr(module, "available", lambda *tensors: False)
    assert pass_flops(model, batch=4, steps=7, width=16) == with_kernel


def test_an_experiment_is_its_steps_and_its_evaluations():
    config = _config("retnet")
    cost = experiment_flops(config, feature_width=16, n_train=40, n_val=10, n_test=7)
    # 40 clips, half positive, ratio 1: 40 draws per epoch in batches of 16 -> 3 steps
    assert cost["steps"] == 3 * 3
    assert cost["training"] == cost["steps"] * cost["train_step"]
    assert cost["evaluation"] == (3 * 10 + 10 + 7) * cost["forward_per_clip"]
    longer = experiment_flops({**config, "epochs": 6}, feature_width=16, n_train=40, n_val=10,
                              n_test=7)  # fmt: skip
    assert longer["training"] == 2 * cost["training"]
    oversampled = experiment_flops({**config, "oversample_ratio": 3.0}, feature_width=16,
                                   n_train=40, n_val=10, n_test=7)  # fmt: skip
    assert oversampled["steps"] == 3 * 5  # 20 + 3 x 20 = 80 draws: 5 batches


def test_matmul_rate_is_positive_and_restores_threads():
    before = torch.get_num_threads()
    assert matmul_gflops(threads=1, size=128, repeats=3) > 0
    assert torch.get_num_threads() == before
