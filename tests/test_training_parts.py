"""The parts of training: the task on the device, windows and horizons, batches,
augmentation and the learning-rate schedules."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from expsearch.data.sources import DataError
from expsearch.features.store import StoreError
from expsearch.training.batches import EpochSampler, augment
from expsearch.training.data import load_task, shift_out, window
from expsearch.training.optim import STEP_MILESTONES, lr_factor, make_optimizer

from .training_data import STEPS


@pytest.fixture(scope="module")
def task(task_files):
    return load_task(task_files["features"] / "vjepa2", task_files["manifest"], task_files["clips"])


def test_task_holds_train_and_val_and_keeps_test_sealed(task, task_files):
    manifest = json.loads(task_files["manifest"].read_text())
    assert task.train.ids == manifest["splits"]["train"]
    assert task.val.ids == manifest["splits"]["val"]
    assert task.sealed_names() == ["test"]
    with pytest.raises(DataError, match="sealed"):
        task.split("test")
    assert task.split("test", unseal=True).ids == manifest["splits"]["test"]


def test_features_are_standardised_with_train_statistics_and_padding_stays_zero(task):
    x, lengths = task.train.features, task.train.lengths
    valid = torch.arange(STEPS).unsqueeze(0) >= (STEPS - lengths).unsqueeze(1)
    steps = x[valid]
    assert torch.allclose(steps.mean(0), torch.zeros(steps.shape[1]), atol=1e-4)
    assert torch.allclose(steps.std(0), torch.ones(steps.shape[1]), atol=1e-2)
    assert (x[~valid] == 0).all() and (~valid).any()


def test_window_takes_the_last_steps():
    x = torch.arange(6.0).reshape(1, 6, 1).repeat(2, 1, 1)
    lengths = torch.tensor([6, 2])
    w, n = window(x, lengths, 4)
    assert w[0, :, 0].tolist() == [2, 3, 4, 5]
    assert n.tolist() == [4, 2]
    with pytest.raises(DataError, match="longer than the stored window"):
        window(x, lengths, 7)


def test_shift_out_drops_the_end_and_pads_the_start():
    x = torch.arange(1.0, 6.0).reshape(1, 5, 1)
    moved, n = shift_out(x, torch.tensor([4]), torch.tensor([2]))
    assert moved[0, :, 0].tolist() == [0, 0, 1, 2, 3]
    assert n.tolist() == [2]


def test_horizon_view_removes_what_comes_later_than_h_before_the_event(task):
    val = task.val
    i = int(np.flatnonzero(np.isfinite(val.end_to_event_s))[0])
    lead = val.end_to_event_s[i]  # the window ends `lead` s before the event (0.5-1 s)
    for h in (0.5, 1.0, 1.5):
        x, lengths, targets, excluded = val.horizon_view(h)
        assert excluded == 0 and len(targets) == len(val)
        drop = max(0, int(np.ceil((h - lead) * val.fps - 1e-6)))
        assert int(lengths[i]) == int(val.lengths[i]) - drop
        # Windows end exactly `drop` steps earlier: the same features, shifted right.
        assert torch.equal(x[i, drop:], val.features[i, : STEPS - drop])
    negatives = np.flatnonzero(val.targets.numpy() == 0)
    x, lengths, *_ = val.horizon_view(1.5)
    assert torch.equal(x[negatives], val.features[negatives])


def test_a_store_made_for_other_labels_is_refused(task_files, tmp_path):
    store = tmp_path / "vjepa2"
    shutil.copytree(task_files["features"] / "vjepa2", store)
    index = json.loads((store / "index.json").read_text())
    index["labels_sha256"] = "0" * 64
    (store / "index.json").write_text(json.dumps(index))
    with pytest.raises(StoreError, match="labels"):
        load_task(store, task_files["manifest"], task_files["clips"])


def test_a_corrupt_store_names_the_file(task_files, tmp_path):
    store = tmp_path / "vjepa2"
    shutil.copytree(task_files["features"] / "vjepa2", store)
    with open(store / "features.npy", "r+b") as handle:
        handle.seek(-8, 2)
        handle.write(b"\xff" * 8)
    with pytest.raises(StoreError, match=r"features\.npy"):
        load_task(store, task_files["manifest"], task_files["clips"])


def test_oversampling_counts():
    targets = torch.tensor([1.0, 0, 0, 1, 0])
    whole = EpochSampler(targets, 3.0, 4, seed=0)
    counts = np.bincount(np.concatenate([b.numpy() for b in whole.epoch()]), minlength=5)
    assert counts.tolist() == [3, 1, 1, 3, 1]
    fractional = EpochSampler(targets, 2.5, 4, seed=0)
    draws = np.concatenate([fractional.draws() for _ in range(2000)])
    per_epoch = np.bincount(draws, minlength=5) / 2000
    assert per_epoch[[1, 2, 4]].tolist() == [1, 1, 1]
    assert per_epoch[[0, 3]] == pytest.approx([2.5, 2.5], abs=0.05)


def test_sampler_batches_cover_the_epoch_and_are_seeded():
    targets = torch.tensor([1.0, 0] * 20)
    a = [b.tolist() for b in EpochSampler(targets, 1.0, 16, seed=5).epoch()]
    b = [b.tolist() for b in EpochSampler(targets, 1.0, 16, seed=5).epoch()]
    c = [b.tolist() for b in EpochSampler(targets, 1.0, 16, seed=6).epoch()]
    assert a == b and a != c
    assert [len(batch) for batch in a] == [16, 16, 8]
    assert sorted(i for batch in a for i in batch) == list(range(40))


def test_mixup_blends_features_and_targets_with_one_lambda():
    x = torch.zeros(4, 3, 2)
    x[1], x[3] = 1.0, 1.0
    y = torch.tensor([0.0, 1, 0, 1])
    lengths = torch.tensor([3, 1, 2, 3])
    rng = np.random.default_rng(0)
    mixed, n, t = augment(
        x, lengths, y, mixup_alpha=0.4, feature_noise=0.0, rng=rng, generator=torch.Generator()
    )
    lam = float(np.random.default_rng(0).beta(0.4, 0.4))
    partner = np.random.default_rng(0)
    partner.beta(0.4, 0.4)
    partner = partner.permutation(4)
    assert torch.allclose(t, lam * y + (1 - lam) * y[partner])
    assert torch.allclose(mixed[:, 0, 0], t)  # features of 1-clips are 1: they mix like targets
    assert n.tolist() == torch.maximum(lengths, lengths[partner]).tolist()


def test_feature_noise_touches_valid_steps_only():
    x = torch.zeros(2, 5, 3)
    lengths = torch.tensor([2, 5])
    noisy, *_ = augment(
        x,
        lengths,
        torch.zeros(2),
        mixup_alpha=0.0,
        feature_noise=0.1,
        rng=np.random.default_rng(0),
        generator=torch.Generator().manual_seed(0),
    )
    assert (noisy[0, :3] == 0).all() and (noisy[0, 3:] != 0).all() and (noisy[1] != 0).all()
    assert 0.03 < noisy[1].std() < 0.3


def test_schedules():
    total, warm = 100, 10
    assert [lr_factor(s, total, warm, "cosine") for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1])
    for schedule in ("cosine", "linear", "step"):
        assert lr_factor(warm, total, warm, schedule) == 1.0
    assert lr_factor(total, total, warm, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(55, total, warm, "linear") == pytest.approx(0.5)
    p = [warm + round(m * (total - warm)) for m in STEP_MILESTONES]
    assert lr_factor(p[0] - 1, total, warm, "step") == 1.0
    assert lr_factor(p[0], total, warm, "step") == pytest.approx(0.1)
    assert lr_factor(p[1], total, warm, "step") == pytest.approx(0.01)
    with pytest.raises(ValueError, match="scheduler"):
        lr_factor(50, total, warm, "exponential")


def test_weight_decay_spares_biases_and_norms():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    before = [p.detach().clone() for p in model.parameters()]
    optimizer, _ = make_optimizer(
        model, lr=1e-3, weight_decay=0.1, schedule="cosine", total_steps=10, warmup_fraction=0.2
    )
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert [p.numel() for p in decayed["params"]] == [12]  # the weight matrix, flattened
    assert [p.numel() for p in plain["params"]] == [4 + 4 + 4]  # bias, norm weight and bias
    optimizer.step()  # zero gradients: only decoupled weight decay moves anything
    after = list(model.parameters())
    torch.testing.assert_close(after[0], before[0] * (1 - 1e-3 / 2 * 0.1))
    for was, now in zip(before[1:], after[1:], strict=True):
        assert torch.equal(was, now)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 / 2)  # step 0 of 2 warm-up steps


def _two_models(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.LayerNorm(8), torch.nn.GELU(), torch.nn.Linear(8, 1)
    )
    twin = copy.deepcopy(model)
    return model, twin


def test_flat_adamw_trains_as_fused_adamw_on_separate_tensors():
    model, twin = _two_models()
    optimizer, _ = make_optimizer(
        model, lr=1e-2, weight_decay=0.05, schedule="cosine", total_steps=20, warmup_fraction=0.1
    )
    params = list(twin.parameters())
    reference = torch.optim.AdamW(
        [{"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.05},
         {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
        lr=optimizer.param_groups[0]["lr"], fused=True,  # the schedule's rate at step 0
    )  # fmt: skip
    gen = torch.Generator().manual_seed(1)
    for _ in range(6):
        x, y = torch.randn(16, 5, generator=gen), torch.randn(16, 1, generator=gen)
        optimizer.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        norm = optimizer.clip_grad_norm(0.5)
        reference.zero_grad()
        ((twin(x) - y) ** 2).mean().backward()
        want = torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.5)
        torch.testing.assert_close(norm, want)
        for p, q in zip(model.parameters(), twin.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad)  # zeroed in place: no accumulation
        optimizer.step()
        reference.step()
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    # The model's tensors are views of the flat ones: loading a state writes through.
    model.load_state_dict(twin.state_dict())
    flat = optimizer.param_groups[0]["params"][0]
    assert torch.equal(flat[: 5 * 8].view(8, 5), twin[0].weight)


def test_flat_adamw_refuses_gradients_that_are_no_longer_its_views():
    model, _ = _two_models()
    optimizer, _ = make_optimizer(
        model, lr=1e-2, weight_decay=0.0, schedule="linear", total_steps=5, warmup_fraction=0.2
    )
    model.zero_grad(set_to_none=True)  # would leave every later update silently zero
    model(torch.randn(2, 5)).sum().backward()
    with pytest.raises(RuntimeError, match="gradient was replaced"):
        optimizer.step()


def test_schedule_sets_the_rates_lambda_lr_would():
    model, twin = _two_models()
    optimizer, schedule = make_optimizer(
        model, lr=2e-3, weight_decay=0.01, schedule="step", total_steps=12, warmup_fraction=0.25
    )
    reference = torch.optim.AdamW(twin.parameters(), lr=2e-3)
    lambda_lr = torch.optim.lr_scheduler.LambdaLR(
        reference, lambda step: lr_factor(step, 12, 3, "step")
    )
    for _ in range(14):
        assert schedule.get_last_lr() == pytest.approx(lambda_lr.get_last_lr() * 2)
        assert [g["lr"] for g in optimizer.param_groups] == schedule.get_last_lr()
        reference.step()
        schedule.step()
        lambda_lr.step()


def test_training_imports_no_compiler(tmp_path):
    """torch.optim.Optimizer imports torch._dynamo on first use (1.7 s of every
    training job's start); FlatAdamW and its schedule do without it."""
    script = (
        "import sys, torch\n"
        "from expsearch.models.classifier import ClipClassifier\n"
        "from expsearch.training.optim import make_optimizer\n"
        "model = ClipClassifier(8, 'retnet', 'mean', 16, 1, 0.1)\n"
        "optimizer, schedule = make_optimizer(model, lr=1e-3, weight_decay=0.01,\n"
        "    schedule='cosine', total_steps=4, warmup_fraction=0.25)\n"
        "model(torch.randn(2, 5, 8), torch.tensor([5, 3])).sum().backward()\n"
        "optimizer.clip_grad_norm(1.0); optimizer.step(); schedule.step()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "False", done.stderr
