"""Shared fixtures: the repository root, the default params and its space."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

from expsearch.params import load_params
from expsearch.space import Space

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def close_figures():
    """Figures a test builds to inspect (the paper's writer closes the ones it saves) are
    closed after it: pyplot keeps every open figure and warns past 20."""
    yield
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


@pytest.fixture(scope="session")
def default_params() -> dict:
    return load_params(ROOT / "params.yaml")


@pytest.fixture
def params(default_params) -> dict:
    """A private deep copy that a test may edit."""
    return copy.deepcopy(default_params)


@pytest.fixture(scope="session")
def space(default_params) -> Space:
    return Space.from_params(default_params)


@pytest.fixture
def focal_config() -> dict:
    """A valid config of the default space (the paper's Table 1 winner, roughly)."""
    return {
        "backbone": "vjepa2",
        "encoder": "zipformer",
        "pooling": "attention",
        "width": 256,
        "depth": 2,
        "dropout": 0.4,
        "loss": "focal",
        "focal_gamma": 3.0,
        "focal_alpha": 0.25,
        "learning_rate": 2.0e-4,
        "weight_decay": 0.01,
        "batch_size": 64,
        "scheduler": "cosine",
        "seq_len": 20,
        "epochs": 15,
        "oversample_ratio": 1.0,
        "mixup_alpha": 0.0,
        "feature_noise": 0.0,
    }


def prefix_mask(lengths: list[int], steps: int) -> torch.Tensor:
    """(B, steps) bool mask whose row b is True on its first lengths[b] steps."""
    return torch.arange(steps).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)


def within_float32_error(kernel, reference, inputs, names, floor: float = 1e-5) -> list:
    """Check a C kernel against its PyTorch form: `kernel` and `reference` take `inputs` in
    float32, `reference` also in float64 (the exact values). The kernel's output and the
    gradients of every input must each be within 5x the PyTorch form's own float32 error
    plus `floor`, relative to the exact value's scale (max |value| + 1). `names`: the
    output's and the inputs'. Returns the kernel's output and gradients (float32)."""
    exact_inputs = [t.detach().double().requires_grad_() for t in inputs]
    expected = reference(*exact_inputs)
    grad_out = torch.randn_like(expected)
    exact = [expected, *torch.autograd.grad(expected, exact_inputs, grad_out)]

    def run(function) -> list:
        as32 = [t.detach().float().requires_grad_() for t in exact_inputs]
        out = function(*as32)
        return [out, *torch.autograd.grad(out, as32, grad_out.float())]

    got, yardstick = run(kernel), run(reference)
    assert got[0].shape == expected.shape and torch.isfinite(got[0]).all()
    for name, value, torch32, want in zip(names, got, yardstick, exact, strict=True):
        scale = want.abs().max().item() + 1.0
        error = (value.double() - want).abs().max().item() / scale
        assert error < 5 * (torch32.double() - want).abs().max().item() / scale + floor, name
    return got


def dead_parameters(model: torch.nn.Module) -> list[str]:
    """Parameters that the last backward gave no finite, nonzero gradient."""
    return [
        name
        for name, p in model.named_parameters()
        if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0
    ]


@pytest.fixture(scope="session")
def task_files(tmp_path_factory) -> dict[str, Path]:
    """A tiny training task on disk (see tests/training_data.py); read-only for tests."""
    from .training_data import write_task

    return write_task(tmp_path_factory.mktemp("task"))


@pytest.fixture
def quick_config(focal_config) -> dict:
    """A config of the default space that trains in about a second on the tiny task."""
    return {
        **focal_config,
        "encoder": "retnet",
        "pooling": "mean",
        "width": 64,
        "depth": 1,
        "dropout": 0.1,
        "learning_rate": 3.0e-3,
        "batch_size": 32,
        "epochs": 5,
    }


@pytest.fixture(scope="session")
def planted_analysis(tmp_path_factory, space) -> Path:
    """`expsearch analyze all --tables` on a planted 300-row table: one JSON result
    per family and the CSV tables, as make run's results/analysis holds them."""
    import json

    from expsearch.analysis.planted import planted_table
    from expsearch.cli import main

    root = tmp_path_factory.mktemp("planted_analysis")
    runs = root / "runs.csv"
    planted_table(space, n=300, seed=1, n_random=40).to_csv(runs, index=False)
    results = root / "analysis"
    argv = ["analyze", "all", "--params", str(ROOT / "params.yaml"), "--data", str(runs),
            "--out", str(root / "all.json"), "--tables", str(results),
            "--permutations", "50", "--bootstrap", "50"]  # fmt: skip
    assert main(argv) == 0
    for family, result in json.loads((root / "all.json").read_text()).items():
        (results / f"{family}.json").write_text(json.dumps(result))
    return results


@pytest.fixture
def native_disabled(monkeypatch):
    """EXPSEARCH_NATIVE=0 for one test: every kernel reports unavailable, and the
    libraries loaded before it are loaded again after it."""
    from expsearch.models import native

    monkeypatch.setenv("EXPSEARCH_NATIVE", "0")
    native.library.cache_clear()
    native.kernel.cache_clear()
    yield
    native.library.cache_clear()
    native.kernel.cache_clear()
