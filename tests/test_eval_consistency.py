"""Evaluation sees the model exactly as training fed it.

The wiring suite proves that every knob changes training, not that
evaluation reads clips the way training did: with evaluation taking each
clip's full 30-step window instead of the config's `seq_len`, every training
and wiring test still passed (the paper's fourth bug was of this class:
evaluation in another mode than training). Here a trained model's evaluation
scores must equal a forward pass through the training path (the sampler's
batch view `SplitData.batch`, the run's autocast) in eval mode on the same
clips, over configs that vary every knob touching the input: window,
padding (short clips), pooling, encoder, dropout, train-only augmentation,
batch size and precision. Two planted bugs (the full window; dropout left
on) must be caught by the same check, and every split must be standardised
with the training split's statistics.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from expsearch.features.store import open_store, stores_under
from expsearch.params import load_params
from expsearch.space import Space
from expsearch.training import trainer
from expsearch.training.data import load_task
from expsearch.training.experiment import TaskCache
from expsearch.training.metrics import average_precision
from expsearch.training.settings import TrainSettings
from expsearch.training.trainer import evaluate, fit_config, predict

from .conftest import ROOT

SPACE = Space.from_params(load_params(ROOT / "params.yaml"))
SETTINGS = TrainSettings(seed=0, device="cpu")


@pytest.fixture(scope="module")
def tasks(task_files):
    return TaskCache(
        stores_under(task_files["features"]), task_files["manifest"], task_files["clips"]
    )


def training_path_scores(model, split, seq_len: int, settings: TrainSettings) -> np.ndarray:
    """Scores through what training runs on a batch (minus the train-only augmentation)."""
    model.eval()
    x, lengths, _ = split.batch(torch.arange(len(split)), seq_len)
    with torch.no_grad(), settings.autocast(x.device):
        return torch.sigmoid(model(x, lengths).float()).numpy()


def mismatch(fit, split, settings: TrainSettings) -> float:
    got = predict(fit.model, split.features, split.lengths, fit.seq_len, settings)
    want = training_path_scores(fit.model, split, fit.seq_len, settings)
    return float(np.abs(got - want).max())


def config(quick_config, **changes) -> dict:
    base = {**quick_config, "width": 64, "epochs": 5, "dropout": 0.3, "seq_len": 15}
    return SPACE.validate({**base, **changes}).to_dict()


KNOBS = [
    {"encoder": "retnet", "pooling": "last", "seq_len": 10},
    {"encoder": "zipformer", "pooling": "attention", "seq_len": 15},
    {"encoder": "bimamba", "pooling": "max", "seq_len": 30},
    {"encoder": "xlstm", "pooling": "mean", "seq_len": 10, "batch_size": 16},
    {"encoder": "hybrid", "pooling": "last", "seq_len": 20, "mixup_alpha": 0.4},
    {"encoder": "retnet", "pooling": "attention", "seq_len": 25, "feature_noise": 0.1},
]


@pytest.mark.parametrize("knobs", KNOBS, ids=lambda k: f"{k['encoder']}-{k['pooling']}")
def test_evaluation_scores_are_the_training_forward_in_eval_mode(knobs, quick_config, tasks):
    task = tasks("vjepa2")
    fit = fit_config(config(quick_config, **knobs), task, SETTINGS)
    assert mismatch(fit, task.val, SETTINGS) < 1e-6
    test = task.split("test", unseal=True)
    assert mismatch(fit, test, SETTINGS) < 1e-6
    # The reported metrics are computed from those scores.
    scores = training_path_scores(fit.model, task.val, fit.seq_len, SETTINGS)
    assert fit.val.ap == pytest.approx(average_precision(task.val.targets.numpy(), scores))
    assert evaluate(fit.model, test, fit.seq_len, SETTINGS).ap == pytest.approx(
        average_precision(
            test.targets.numpy(), training_path_scores(fit.model, test, fit.seq_len, SETTINGS)
        )
    )


def test_scores_hold_under_bf16_autocast(quick_config, tasks):
    settings = TrainSettings(seed=0, device="cpu", precision="bf16")
    task = tasks("vjepa2")
    fit = fit_config(config(quick_config, encoder="zipformer", pooling="mean"), task, settings)
    assert mismatch(fit, task.val, settings) < 1e-6
    # and bf16 is really in effect: the same model's fp32 forward gives other scores
    bf16 = predict(fit.model, task.val.features, task.val.lengths, fit.seq_len, settings)
    fp32 = training_path_scores(fit.model, task.val, fit.seq_len, SETTINGS)
    assert np.abs(bf16 - fp32).max() > 1e-4


def test_horizon_views_of_unshifted_clips_score_as_the_full_evaluation(quick_config, tasks):
    task = tasks("vjepa2")
    fit = fit_config(config(quick_config, encoder="bimamba", pooling="attention"), task, SETTINGS)
    val = task.val
    full = predict(fit.model, val.features, val.lengths, fit.seq_len, SETTINGS)
    negatives = np.flatnonzero(~np.isfinite(val.end_to_event_s))  # no event: nothing cut away
    assert len(negatives) > 0
    for horizon in SETTINGS.horizons_s:
        x, lengths, _, _ = val.horizon_view(horizon)
        scores = predict(fit.model, x, lengths, fit.seq_len, SETTINGS)
        position = np.cumsum(_kept(val, horizon)) - 1  # row -> its row in the view
        np.testing.assert_allclose(scores[position[negatives]], full[negatives], atol=1e-6)


def _kept(split, horizon: float) -> np.ndarray:
    """The rows horizon_view keeps (its rule, restated)."""
    late = np.nan_to_num(horizon - split.end_to_event_s, nan=0.0)
    drop = np.maximum(0, np.ceil(late * split.fps - 1e-6))
    return split.lengths.numpy() - drop >= 1


@pytest.mark.parametrize("bug", ["full_window", "dropout_left_on"])
def test_the_check_catches_a_planted_mismatch(bug, quick_config, tasks, monkeypatch):
    task = tasks("vjepa2")
    fit = fit_config(config(quick_config, encoder="retnet", pooling="mean"), task, SETTINGS)
    assert mismatch(fit, task.val, SETTINGS) < 1e-6
    if bug == "full_window":  # evaluation reads all 30 steps, training read seq_len
        monkeypatch.setattr(
            trainer, "window", lambda features, lengths, seq_len: (features, lengths)
        )
    else:  # predict forgets model.eval(): dropout stays on
        monkeypatch.setattr(type(fit.model), "eval", lambda self: self.train())
    assert mismatch(fit, task.val, SETTINGS) > 1e-4


def test_every_split_is_standardised_with_the_training_statistics(task_files):
    store = open_store(task_files["features"] / "vjepa2")
    task = load_task(store.directory, task_files["manifest"], task_files["clips"])
    row = {clip: i for i, clip in enumerate(store.ids)}

    def raw(split):
        rows = [row[clip] for clip in split.ids]
        lengths = store.valid_lengths[rows]
        valid = np.arange(store.steps)[None, :] >= store.steps - lengths[:, None]  # left-padded
        return np.asarray(store.features[rows], dtype=np.float64), valid

    train, valid = raw(task.train)
    mean, std = train[valid].mean(0), train[valid].std(0)
    for split in (task.val, task.split("test", unseal=True)):
        features, valid = raw(split)
        want = np.where(valid[..., None], (features - mean) / std, 0.0)
        np.testing.assert_allclose(split.features.numpy(), want, atol=1e-5)
