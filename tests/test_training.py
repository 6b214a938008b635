"""Training one config end to end: learning, validation-only selection, a single
test evaluation, determinism, metrics.json, and classified failures."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil

import pytest
import torch

from expsearch.cli import main
from expsearch.features.store import stores_under
from expsearch.models.classifier import ClipClassifier
from expsearch.space import ConfigError, Space
from expsearch.training.data import SplitData, Task, load_task
from expsearch.training.experiment import TaskCache, classify, run_experiment
from expsearch.training.settings import TrainSettings
from expsearch.training.trainer import TrainingFailure, fit_config
from expsearch.yamlio import dump_yaml

SETTINGS = TrainSettings(seed=0, device="cpu")


@pytest.fixture(scope="module")
def tasks(task_files):
    return TaskCache(
        stores_under(task_files["features"]), task_files["manifest"], task_files["clips"]
    )


def test_a_quick_config_learns_the_tiny_task(quick_config, tasks, space):
    fit = fit_config(space.validate(quick_config), tasks("vjepa2"), SETTINGS)
    assert fit.val.ap > 0.8  # chance is 0.5
    assert fit.history[0]["train_loss"] > fit.history[-1]["train_loss"]


def test_the_epoch_is_chosen_by_validation_ap(quick_config, tasks, space):
    fit = fit_config(space.validate({**quick_config, "epochs": 10}), tasks("vjepa2"), SETTINGS)
    aps = [row["val_ap"] for row in fit.history]
    assert fit.best_epoch == aps.index(max(aps)) + 1  # the first of tied bests
    assert fit.val.ap == pytest.approx(max(aps))  # the restored weights are that epoch's


def test_training_never_reads_test_and_the_experiment_reads_it_once(
    quick_config, tasks, space, tmp_path, monkeypatch
):
    reads = []
    original = Task.split

    def spy(self, name, *, unseal=False):
        reads.append((name, unseal))
        return original(self, name, unseal=unseal)

    monkeypatch.setattr(Task, "split", spy)
    fit_config(space.validate(quick_config), tasks("vjepa2"), SETTINGS)
    assert reads == []
    metrics = run_experiment(quick_config, space, tasks, SETTINGS, tmp_path)
    assert reads == [("test", True)]
    assert metrics["status"] == "ok" and metrics["test"]["clips"] == 20


def test_runs_are_deterministic_on_cpu_and_the_seed_matters(quick_config, tasks, space):
    config = space.validate({**quick_config, "mixup_alpha": 0.2, "feature_noise": 0.05})
    a = fit_config(config, tasks("vjepa2"), SETTINGS)
    b = fit_config(config, tasks("vjepa2"), SETTINGS)
    c = fit_config(config, tasks("vjepa2"), TrainSettings(seed=1, device="cpu"))
    assert a.history == b.history
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)
    assert a.history != c.history


def test_metrics_json(quick_config, tasks, space, tmp_path):
    metrics = run_experiment(quick_config, space, tasks, SETTINGS, tmp_path)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == metrics
    config = space.validate(quick_config)
    assert metrics["fingerprint"] == config.fingerprint and metrics["config"] == config.to_dict()
    for key in ("val_ap", "test_ap", "val_auc", "test_auc", "val_horizon_map", "test_horizon_map"):
        assert 0 <= metrics[key] <= 1, key
    assert metrics["test_horizon_map"] == pytest.approx(
        sum(metrics["test"]["horizon_ap"].values()) / 3
    )
    assert 1 <= metrics["best_epoch"] <= metrics["epochs_run"] == 5
    assert metrics["device"] == "cpu" and metrics["peak_memory_mb"] > 0
    assert metrics["seconds"] >= metrics["train_seconds"] > 0
    assert metrics["code_version"].startswith("0.")
    assert len(metrics["history"]) == 5 and not (tmp_path / "trace.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # no temporaries


def failed(metrics, tmp_path, error_class, *words):
    assert metrics["status"] == "failed" and metrics["error_class"] == error_class
    for word in words:
        assert word in metrics["error"]
    assert json.loads((tmp_path / "metrics.json").read_text())["error_class"] == error_class
    assert "Traceback" in (tmp_path / metrics["trace"]).read_text()


def test_an_invalid_config_is_a_config_failure(quick_config, tasks, space, tmp_path):
    metrics = run_experiment({**quick_config, "epoch": 3}, space, tasks, SETTINGS, tmp_path)
    failed(metrics, tmp_path, "config", "epoch")


def test_a_key_that_training_does_not_consume_is_an_error(
    quick_config, tasks, default_params, tmp_path
):
    dimensions = dict(default_params["space"]["dimensions"])
    dimensions["warmup_epochs"] = {"group": "train", "type": "categorical", "values": [0, 1]}
    wider = Space.from_dict({"dimensions": dimensions})
    metrics = run_experiment({**quick_config, "warmup_epochs": 1}, wider, tasks, SETTINGS, tmp_path)
    failed(metrics, tmp_path, "config", "warmup_epochs", "not consumed")
    with pytest.raises(ConfigError, match="warmup_epochs"):
        fit_config(wider.validate({**quick_config, "warmup_epochs": 1}), tasks("vjepa2"), SETTINGS)


def test_a_corrupt_store_is_a_data_failure(quick_config, task_files, space, tmp_path):
    root = tmp_path / "features"
    shutil.copytree(task_files["features"] / "vjepa2", root / "vjepa2")
    (root / "vjepa2" / "features.npy").write_bytes(b"not an array")
    tasks = TaskCache(stores_under(root), task_files["manifest"], task_files["clips"])
    metrics = run_experiment(quick_config, space, tasks, SETTINGS, tmp_path / "run")
    failed(metrics, tmp_path / "run", "data", "features.npy")


def test_a_missing_store_is_a_data_failure(quick_config, task_files, space, tmp_path):
    nowhere = {"vjepa2": tmp_path / "nowhere" / "vjepa2" / "index.json"}
    tasks = TaskCache(nowhere, task_files["manifest"], task_files["clips"])
    metrics = run_experiment(quick_config, space, tasks, SETTINGS, tmp_path / "run")
    failed(metrics, tmp_path / "run", "data", "index.json")
    # A backbone with no store at all names the stores there are.
    tasks = TaskCache({}, task_files["manifest"], task_files["clips"])
    metrics = run_experiment(quick_config, space, tasks, SETTINGS, tmp_path / "run2")
    failed(metrics, tmp_path / "run2", "data", "no feature store for backbone 'vjepa2'")


def test_a_non_finite_loss_stops_the_run_as_nan(quick_config, task_files, space, tmp_path):
    task = load_task(task_files["features"] / "vjepa2", task_files["manifest"], task_files["clips"])
    task.train.features[3, -1, 0] = float("inf")  # a corrupt value that slipped past the store
    metrics = run_experiment(quick_config, space, lambda _: task, SETTINGS, tmp_path)
    failed(metrics, tmp_path, "nan", "epoch 1")
    with pytest.raises(TrainingFailure) as info:
        fit_config(space.validate(quick_config), task, SETTINGS)
    assert info.value.error_class == "nan"


def test_out_of_memory_is_classified(quick_config, tasks, space, tmp_path, monkeypatch):
    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr("expsearch.training.trainer.ClipClassifier.forward", no_memory)
    metrics = run_experiment(quick_config, space, tasks, SETTINGS, tmp_path)
    failed(metrics, tmp_path, "oom", "out of memory")


def test_classify():
    assert classify(RuntimeError("CUDA error: out of memory")) == "oom"
    assert classify(MemoryError()) == "oom"
    assert classify(ZeroDivisionError()) == "crash"
    assert classify(TrainingFailure("nan", "x")) == "nan"


def test_a_rerun_after_a_failure_clears_the_old_trace(quick_config, tasks, space, tmp_path):
    run_experiment({**quick_config, "epoch": 3}, space, tasks, SETTINGS, tmp_path)
    assert (tmp_path / "trace.txt").exists()
    assert run_experiment(quick_config, space, tasks, SETTINGS, tmp_path)["status"] == "ok"
    assert not (tmp_path / "trace.txt").exists()


def test_cli_train(quick_config, task_files, tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(dump_yaml({**quick_config, "epochs": 5}))
    args = ["--features", str(task_files["features"]), "--split", str(task_files["manifest"])]
    assert main(["train", str(config), *args, "--out", str(tmp_path / "a"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "epoch 5/5" in out and "val AP" in out and "test AP" in out
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["status"] == "ok" and not math.isnan(metrics["test_ap"])

    config.write_text(dump_yaml({**quick_config, "encoder": "transformer"}))
    assert main(["train", str(config), *args, "--out", str(tmp_path / "b"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "config" in err and "encoder" in err and "trace" in err


def test_bf16_autocast_path_trains(quick_config, tasks, space, monkeypatch):
    """The GPU path's mixed precision, exercised on the CPU (CI has no GPU) on
    a few clips (bf16 is slow on a CPU); each encoder's bf16 forward is
    checked against fp32 in tests/test_models.py."""
    full = tasks("vjepa2")
    few = SplitData(
        "train", full.train.ids[:32], full.train.features[:32], full.train.lengths[:32],
        full.train.targets[:32],
    )  # fmt: skip
    task = dataclasses.replace(full, train=few)
    dtypes = []
    forward = ClipClassifier.forward

    def recording(self, *args):
        out = forward(self, *args)
        dtypes.append(out.dtype)
        return out

    monkeypatch.setattr(ClipClassifier, "forward", recording)
    bf16 = TrainSettings(seed=0, device="cpu", precision="bf16")
    fit = fit_config(space.validate(quick_config), task, bf16)
    assert all(math.isfinite(row["train_loss"]) for row in fit.history)
    assert set(dtypes) == {torch.bfloat16} and fit.val.clips == 20
