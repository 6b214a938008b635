"""Self-healing: classify the trace, choose a named remediation, never run LLM text."""

from __future__ import annotations

import pytest

from expsearch.agents.healing import (
    GRAD_CLIP_HEALED,
    REMEDIATIONS,
    Healer,
    classify_trace,
    healing_stats,
)
from expsearch.agents.history import History

PLANS = {
    "oom": ["halve_batch_size", "fewer_epochs"],
    "nan": ["lower_learning_rate", "clip_gradients"],
    "timeout": ["fewer_epochs"],
    "crash": ["lower_learning_rate"],
    "data": [],
}


@pytest.mark.parametrize(
    ("trace", "recorded", "expected"),
    [
        ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate", "crash", "oom"),
        ("RuntimeError: CUDA error: out of memory", None, "oom"),
        ("slurmstepd: error: *** JOB 12 CANCELLED AT ... DUE TO TIME LIMIT ***", None, "timeout"),
        ("TrainingFailure: non-finite loss at epoch 3", "crash", "nan"),
        ("expsearch.features.store.StoreError: corrupt shard", None, "data"),
        ("ZeroDivisionError: division by zero", None, "crash"),
        ("anything at all", "nan", "nan"),  # a specific recorded class stands
        (None, None, "crash"),
    ],
)
def test_failures_are_classified_from_record_and_trace(trace, recorded, expected):
    assert classify_trace(trace, recorded) == expected


def failed_row(config, error_class, trace="", **extra):
    return {"id": "f1", "config": config, "status": "failed", "error_class": error_class,
            "trace": trace, **extra}  # fmt: skip


def test_oom_halves_the_batch_then_cuts_epochs(space, focal_config):
    history = History.from_rows([failed_row(focal_config, "oom")], space)
    heal = Healer(space, PLANS).heal(history.experiments[0], history)
    assert heal.config["batch_size"] == 32 and heal.source == "heal" and heal.parent_id == "f1"
    smallest = focal_config | {"batch_size": 16}
    history = History.from_rows([failed_row(smallest, "oom")], space)
    healer = Healer(space, PLANS)
    heal = healer.heal(history.experiments[0], history)
    assert heal.config["batch_size"] == 16 and heal.config["epochs"] == 10
    assert healer.log[-1]["remediation"] == "fewer_epochs"


def test_nan_lowers_the_learning_rate_then_clips_gradients(space, focal_config):
    history = History.from_rows([failed_row(focal_config, "nan")], space)
    heal = Healer(space, PLANS).heal(history.experiments[0], history)
    assert heal.config["learning_rate"] == pytest.approx(2e-4 / 3)
    floor = focal_config | {"learning_rate": 1e-5}
    history = History.from_rows([failed_row(floor, "nan")], space)
    heal = Healer(space, PLANS).heal(history.experiments[0], history)
    assert heal.config == history.experiments[0].config
    assert heal.settings_overrides == {"grad_clip_norm": GRAD_CLIP_HEALED}


def test_chains_stop_after_max_attempts_and_data_failures_are_not_healed(space, focal_config):
    rows = [
        failed_row(focal_config, "oom"),
        failed_row(
            focal_config | {"batch_size": 32}, "oom", id="f2", source="heal", parent_id="f1"
        ),
        failed_row(
            focal_config | {"batch_size": 16}, "oom", id="f3", source="heal", parent_id="f2"
        ),
    ]
    history = History.from_rows(rows, space)
    healer = Healer(space, PLANS, max_attempts=2)
    assert healer.heal(history.by_id("f2"), history) is not None
    assert healer.heal(history.by_id("f3"), history) is None
    assert healer.log[-1]["outcome"] == "gave up after 2 attempts"
    data = History.from_rows([failed_row(focal_config, "data")], space)
    assert healer.heal(data.experiments[0], data) is None
    assert "no remediation applies" in healer.log[-1]["outcome"]


def test_an_llm_may_only_choose_among_the_offered_remediations(space, focal_config):
    history = History.from_rows([failed_row(focal_config, "oom", "CUDA out of memory")], space)
    seen = {}

    def diagnose(trace, error_class, options):
        seen.update(trace=trace, error_class=error_class, options=options)
        return "The activations are too big; use fewer_epochs."

    healer = Healer(space, PLANS, diagnose=diagnose)
    heal = healer.heal(history.experiments[0], history)
    assert seen["options"] == ["halve_batch_size", "fewer_epochs"]
    assert seen["trace"] == "CUDA out of memory"
    assert heal.idea_name == "fewer_epochs" and healer.log[-1]["chosen_by"] == "llm"

    def patcher(trace, error_class, options):
        return "```python\nimport os; os.system('rm -rf /')\n```"

    healer = Healer(space, PLANS, diagnose=patcher)
    heal = healer.heal(history.experiments[0], history)
    assert heal.idea_name == "halve_batch_size"  # the rules' choice; the patch is ignored
    assert healer.log[-1]["chosen_by"] == "rules"
    assert "names none" in healer.log[-1]["diagnosis_ignored"]

    def broken(trace, error_class, options):
        raise TimeoutError("provider timed out")

    healer = Healer(space, PLANS, diagnose=broken)
    assert healer.heal(history.experiments[0], history).idea_name == "halve_batch_size"
    assert "timed out" in healer.log[-1]["diagnosis_error"]


def test_unknown_remediations_in_plans_are_refused(space):
    with pytest.raises(ValueError, match="unknown remediations"):
        Healer(space, {"oom": ["patch_the_code"]})
    assert set(REMEDIATIONS) == {
        "halve_batch_size", "lower_learning_rate", "fewer_epochs", "clip_gradients"
    }  # fmt: skip


def test_stats_count_attempts_and_first_attempt_successes(space, focal_config):
    rows = [
        failed_row(focal_config, "oom"),
        {"id": "h1", "config": focal_config | {"batch_size": 32}, "status": "ok", "val_ap": 0.7,
         "source": "heal", "parent_id": "f1"},
        failed_row(focal_config | {"seq_len": 10}, "nan", id="f2"),
        failed_row(focal_config | {"seq_len": 10, "learning_rate": 1e-4}, "nan", id="h2",
                   source="heal", parent_id="f2"),
        {"id": "h3", "config": focal_config | {"seq_len": 10, "learning_rate": 3e-5},
         "status": "ok", "val_ap": 0.6, "source": "heal", "parent_id": "h2"},
    ]  # fmt: skip
    stats = healing_stats(History.from_rows(rows, space))
    assert stats["attempts"] == 3 and stats["first_attempts"] == 2
    assert stats["first_attempt_success_rate"] == 0.5
