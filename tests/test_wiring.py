"""Every value of every dimension of the space changes what training computes.

The paper lost 8,975 experiments to knobs that were read nowhere. This suite
walks the space of params.yaml, so a dimension added later is covered
without editing it: for each dimension it trains the same base config with
each value of that dimension alone changed (categorical: every value; float:
low, middle, high) and requires all the runs to differ, in the training
losses or in the trained weights. Runs are deterministic on CPU (checked
first), so a difference is the knob's doing and never noise.
"""

from __future__ import annotations

import hashlib
import math

import pytest
import torch

from expsearch.features.store import stores_under
from expsearch.params import load_params
from expsearch.space import Dimension, Space
from expsearch.training.experiment import TaskCache
from expsearch.training.settings import TrainSettings
from expsearch.training.trainer import fit_config

from .conftest import ROOT

SPACE = Space.from_params(load_params(ROOT / "params.yaml"))
SETTINGS = TrainSettings(seed=0, device="cpu")


def values_of(dim: Dimension) -> list:
    if dim.categorical:
        return list(dim.values)
    middle = math.sqrt(dim.low * dim.high) if dim.log else (dim.low + dim.high) / 2
    return [dim.low, middle, dim.high]


def complete(partial: dict) -> dict:
    """`partial` made a point of the space: conditional dimensions that apply
    get their first value, those that do not are dropped."""
    config = dict(partial)
    for _ in range(len(SPACE.dimensions)):
        for name, dim in SPACE.dimensions.items():
            if dim.applies(config) and name not in config:
                config[name] = values_of(dim)[0]
            elif not dim.applies(config):
                config.pop(name, None)
    return SPACE.validate(config).to_dict()


def base_for(dim: Dimension, quick_config: dict) -> dict:
    """The quick config, with the conditions under which `dim` exists made true."""
    base = dict(quick_config)
    for key, allowed in dim.when:
        base[key] = allowed[0]
    return base


def trace(config: dict, tasks) -> str:
    fit = fit_config(SPACE.validate(config), tasks(config["backbone"]), SETTINGS)
    digest = hashlib.sha256()
    for row in fit.history:
        digest.update(repr(row["train_loss"]).encode())
    for tensor in fit.model.state_dict().values():
        digest.update(tensor.detach().to(torch.float64).numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def tasks(task_files):
    return TaskCache(
        stores_under(task_files["features"]), task_files["manifest"], task_files["clips"]
    )


def test_the_trace_is_deterministic(quick_config, tasks):
    config = complete({**quick_config, "mixup_alpha": 0.3, "feature_noise": 0.1})
    assert trace(config, tasks) == trace(config, tasks)


@pytest.mark.parametrize("name", list(SPACE.dimensions))
def test_every_value_changes_the_computation(name, quick_config, tasks):
    dim = SPACE.dimensions[name]
    base = base_for(dim, quick_config)
    traces: dict[str, list] = {}
    for value in values_of(dim):
        traces.setdefault(trace(complete({**base, name: value}), tasks), []).append(value)
    same = [values for values in traces.values() if len(values) > 1]
    assert not same, f"{name}: these values train identically (an ignored knob?): {same}"
