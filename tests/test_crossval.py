"""Cross-validated evaluation: stratified folds, fold tasks built like load_task,
per-fold selection on validation only, and the corrected t-test against scipy."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from expsearch.cli import main
from expsearch.data.sources import DataError
from expsearch.data.splits import load_manifest, write_manifest
from expsearch.features.store import StoreError, open_store
from expsearch.params import load_params
from expsearch.space import Space
from expsearch.training.crossval import (
    FoldRun,
    assign_folds,
    corrected_t,
    cross_validate,
    fold_tasks,
    select_per_fold,
    summary,
)
from expsearch.training.settings import TrainSettings
from expsearch.yamlio import dump_yaml

from .conftest import ROOT

SETTINGS = TrainSettings(seed=0, device="cpu")
PARAMS = str(ROOT / "params.yaml")


def test_folds_are_a_stratified_partition():
    targets = np.array([1] * 37 + [0] * 64)
    folds = assign_folds(targets, k=10, seed=3)
    sizes = np.bincount(folds, minlength=10)
    positives = np.bincount(folds[targets == 1], minlength=10)
    assert sizes.sum() == len(targets) and sizes.max() - sizes.min() <= 1
    assert positives.max() - positives.min() <= 1
    assert np.array_equal(folds, assign_folds(targets, k=10, seed=3))
    assert not np.array_equal(folds, assign_folds(targets, k=10, seed=4))


@pytest.mark.parametrize(
    ("targets", "k", "message"),
    [
        ([0, 1] * 10, 2, "k >= 3"),
        ([1] * 4 + [0] * 50, 5, "4 positives and 50 negatives"),
        ([0] * 20, 3, "0 positives and 20 negatives"),
    ],
)
def test_too_few_folds_or_clips_is_refused_with_the_counts(targets, k, message):
    with pytest.raises((ValueError, DataError), match=message):
        assign_folds(np.array(targets), k=k, seed=0)


@pytest.fixture(scope="module")
def folds(task_files):
    return fold_tasks(
        task_files["features"] / "vjepa2", task_files["manifest"], task_files["clips"], k=5
    )


def test_fold_tasks_rotate_test_and_val_over_every_clip(folds, task_files):
    manifest = load_manifest(task_files["manifest"])
    every = {clip for ids in manifest.splits.values() for clip in ids}
    tests = [set(task.split("test", unseal=True).ids) for task in folds]
    assert set().union(*tests) == every and sum(map(len, tests)) == len(every)
    for f, task in enumerate(folds):
        train, val = set(task.train.ids), set(task.val.ids)
        assert val == tests[(f + 1) % len(folds)]
        assert not train & val and not train & tests[f]
        assert train | val | tests[f] == every
    with pytest.raises(DataError, match="sealed"):
        folds[0].split("test")


def test_each_fold_is_standardised_with_its_own_training_clips(folds, task_files):
    store = open_store(task_files["features"] / "vjepa2")
    task = folds[2]
    rows = store.rows(task.train.ids)
    raw, lengths = store.features[rows], store.valid_lengths[rows]
    valid = np.arange(raw.shape[1])[None, :] >= (raw.shape[1] - lengths)[:, None]
    mean, std = raw[valid].mean(0), raw[valid].std(0)
    test = task.split("test", unseal=True)
    test_rows = store.rows(test.ids)
    x, n = store.features[test_rows], store.valid_lengths[test_rows]
    test_valid = np.arange(x.shape[1])[None, :] >= (x.shape[1] - n)[:, None]
    expected = np.where(test_valid[..., None], (x - mean) / std, 0.0)
    np.testing.assert_allclose(test.features.numpy(), expected, rtol=1e-4, atol=1e-5)
    table = pd.read_csv(task_files["clips"], dtype={"id": str}).set_index("id")
    assert test.targets.tolist() == table.loc[test.ids, "target"].astype(float).tolist()


def test_a_store_of_other_labels_is_refused(task_files, tmp_path):
    other = tmp_path / "manifest.json"
    manifest = load_manifest(task_files["manifest"])
    write_manifest(other, dataclasses.replace(manifest, labels_sha256="0" * 64))
    with pytest.raises(StoreError, match="extracted for labels"):
        fold_tasks(task_files["features"] / "vjepa2", other, task_files["clips"], k=5)


def test_every_candidate_on_every_fold_selected_on_validation(folds, quick_config):
    candidates = [quick_config, {**quick_config, "learning_rate": 1e-4, "epochs": 1}]
    runs = cross_validate(candidates, lambda backbone: folds[:3], SETTINGS)
    assert sorted((r.fold, r.candidate) for r in runs) == [(f, c) for f in range(3) for c in (0, 1)]
    chosen = select_per_fold(runs)
    for run in chosen:
        rivals = [r for r in runs if r.fold == run.fold]
        assert run.val_ap == max(r.val_ap for r in rivals)
        assert 0 < run.test_ap <= 1
    # Fold f trains with seed settings.seed + f, whatever else is trained beside it.
    again = cross_validate(candidates[:1], lambda backbone: folds[:2], SETTINGS)
    assert (again[1].val_ap, again[1].test_ap) == (runs[1].val_ap, runs[1].test_ap)


def test_selection_breaks_ties_to_the_first_candidate_and_never_picks_nan():
    runs = [
        FoldRun(0, 0, 0.7, 0.1, 1), FoldRun(1, 0, 0.7, 0.9, 1),
        FoldRun(0, 1, math.nan, 0.9, 1), FoldRun(1, 1, 0.2, 0.3, 1),
    ]  # fmt: skip
    assert select_per_fold(runs) == [runs[0], runs[3]]


def test_corrected_t_is_scipys_one_sample_t_with_the_inflated_variance():
    d = [0.05, 0.02, 0.08, -0.01, 0.04, 0.06, 0.03, 0.00, 0.07, 0.05]
    k, fraction = len(d), 0.1
    plain = stats.ttest_1samp(d, 0.0)
    shrink = math.sqrt((1 / k) / (1 / k + fraction / (1 - 2 * fraction)))
    out = corrected_t(d, fraction)
    assert out["t"] == pytest.approx(plain.statistic * shrink)
    assert out["p"] == pytest.approx(2 * stats.t.sf(abs(plain.statistic * shrink), k - 1))
    assert out["p"] > plain.pvalue  # the correction is conservative
    assert corrected_t([0.1] * 4, fraction)["p"] == 0.0
    assert corrected_t([0.0] * 4, fraction)["p"] == 1.0
    with pytest.raises(ValueError, match="test_fraction"):
        corrected_t(d, 0.5)


def test_the_cli_writes_each_folds_choice_and_refuses_a_bad_config(
    task_files, quick_config, tmp_path, capsys
):
    paths = []
    for name, config in (("a", quick_config), ("b", {**quick_config, "pooling": "last"})):
        paths.append(tmp_path / f"{name}.yaml")
        paths[-1].write_text(dump_yaml(config))
    common = ["--params", PARAMS, "--features", str(task_files["features"]),
              "--split", str(task_files["manifest"]), "--folds", "3"]  # fmt: skip
    out = tmp_path / "cv.json"
    assert main(["crossval", *map(str, paths), *common, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["folds"] == 3 and len(result["chosen"]) == 3
    assert [c["fingerprint"] for c in result["configs"]] == [
        Space.from_params(load_params(PARAMS)).validate(c).fingerprint
        for c in (quick_config, {**quick_config, "pooling": "last"})
    ]
    assert result["test_ap"] == pytest.approx(np.mean([c["test_ap"] for c in result["chosen"]]))
    assert "3-fold test AP" in capsys.readouterr().err
    # Without --out the JSON alone is on stdout; progress goes to stderr.
    assert main(["crossval", str(paths[0]), *common]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["folds"] == 3 and "candidate 0, fold 1" in printed.err

    bad = tmp_path / "bad.yaml"
    bad.write_text(dump_yaml({**quick_config, "pooling": "cls"}))
    assert main(["crossval", str(paths[0]), str(bad), *common]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "pooling" in err

    other = tmp_path / "other.yaml"
    other.write_text(dump_yaml({**quick_config, "backbone": "siglip2"}))
    empty = tmp_path / "no_stores"
    empty.mkdir()
    assert main(["crossval", str(other), *common[:2], "--features", str(empty), *common[4:]]) == 2
    assert "no feature store for backbone 'siglip2'" in capsys.readouterr().err


def test_a_failed_run_is_kept_with_its_error_and_never_chosen(folds, quick_config, monkeypatch):
    import expsearch.training.crossval as crossval

    real_fit = crossval.fit_config

    def fit(config, task, settings):
        if config["learning_rate"] > 0.5:
            raise crossval.TrainingFailure("nan", "training loss became nan at epoch 1")
        return real_fit(config, task, settings)

    monkeypatch.setattr(crossval, "fit_config", fit)
    lines = []
    candidates = [{**quick_config, "learning_rate": 0.9}, {**quick_config, "epochs": 1}]
    runs = cross_validate(candidates, lambda backbone: folds[:2], SETTINGS, progress=lines.append)
    failed = [r for r in runs if r.candidate == 0]
    assert all(math.isnan(r.val_ap) and "nan at epoch 1" in r.error for r in failed)
    assert [r.candidate for r in select_per_fold(runs)] == [1, 1]
    assert sum("failed" in line for line in lines) == 2
    result = summary(runs, 2)
    assert result["candidates"][0] == {"candidate": 0, "val_ap": None, "test_ap": None, "failed": 2}
    assert math.isfinite(result["test_ap"])
