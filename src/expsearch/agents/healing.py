"""Self-healing (paper Appendix B), safely: named remediations, never code.

    error_class = classify_trace(trace_text, recorded="crash")
    healer = Healer(space, plans={"oom": ["halve_batch_size", ...], ...}, max_attempts=2,
                    diagnose=None)           # or an LLM call that picks a remediation name
    heal = healer.heal(failed_experiment, history)  # Proposal(source="heal") or None
    healer.log                                      # one row per decision, healed or not
    healing_stats(history)                          # attempts and first-attempt success rate

A failed experiment's class comes from its record, refined by its saved
trace (a `crash` whose trace says CUDA out of memory is `oom`). Each class
has an ordered list of remediations in params; the first that applies (a
batch size can only be halved while a smaller one exists) is taken. When an
LLM `diagnose` callable is configured it sees the trace and the applicable
remediation names and may choose one of them; anything else it answers is
ignored and recorded. Nothing an LLM writes is executed: a remediation is a
config change chosen from REMEDIATIONS. The healed config is a Proposal with
source `heal` and the failed experiment as parent; a chain stops after
`max_attempts` heals.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..failures import ERROR_CLASSES
from ..space import Config, Space
from .edits import neighbours, replace
from .history import Experiment, History
from .proposal import Proposal

# Trace patterns, tried in order; the first match wins.
TRACE_PATTERNS = (
    ("oom", r"out of memory|OutOfMemoryError|MemoryError|oom-kill|OOM"),
    ("timeout", r"DUE TO TIME LIMIT|TimeoutError|timed out|TIMEOUT"),
    ("nan", r"non-finite|\bnan\b|\binf\b loss|NaN"),
    ("data", r"StoreError|SplitError|DataError|FileNotFoundError|No such file"),
    ("config", r"ConfigError"),
)
GRAD_CLIP_HEALED = 0.5  # the gradient-norm limit that `clip_gradients` sets


@dataclass(frozen=True)
class Remediation:
    name: str
    description: str
    apply: Callable[[Space, Config, Mapping[str, Any]], tuple[Config, dict] | None]


def _halve_batch_size(space, config, overrides):
    if "batch_size" not in config:
        return None
    smaller = [v for v in space.dimensions["batch_size"].values if v <= config["batch_size"] // 2]
    return (replace(space, config, {"batch_size": max(smaller)}), {}) if smaller else None


def _lower_learning_rate(space, config, overrides):
    dim = space.dimensions.get("learning_rate")
    if dim is None or config["learning_rate"] <= dim.low:
        return None
    return replace(space, config, {"learning_rate": max(config["learning_rate"] / 3, dim.low)}), {}


def _fewer_epochs(space, config, overrides):
    if "epochs" not in config:
        return None
    before, _ = neighbours(space.dimensions["epochs"], config["epochs"])
    return (replace(space, config, {"epochs": before}), {}) if before is not None else None


def _clip_gradients(space, config, overrides):
    current = overrides.get("grad_clip_norm")
    if current is not None and current <= GRAD_CLIP_HEALED:
        return None
    return config, {"grad_clip_norm": GRAD_CLIP_HEALED}


REMEDIATIONS = {
    r.name: r
    for r in (
        Remediation("halve_batch_size", "the next batch size at most half the current one",
                    _halve_batch_size),
        Remediation("lower_learning_rate", "divide the learning rate by 3", _lower_learning_rate),
        Remediation("fewer_epochs", "the next smaller number of epochs", _fewer_epochs),
        Remediation("clip_gradients", f"clip the gradient norm at {GRAD_CLIP_HEALED}",
                    _clip_gradients),
    )
}  # fmt: skip


def classify_trace(trace: str | None, recorded: str | None = None) -> str:
    """The error class of a failure: a specific recorded class stands; a
    generic or missing one is refined from the trace."""
    if recorded in ERROR_CLASSES and recorded != "crash":
        return recorded
    for error_class, pattern in TRACE_PATTERNS:
        if trace and re.search(pattern, trace):
            return error_class
    return "crash"


@dataclass
class Healer:
    space: Space
    plans: Mapping[str, Sequence[str]]
    max_attempts: int = 2
    diagnose: Callable[[str, str, list[str]], str] | None = None
    log: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self):
        for error_class, names in self.plans.items():
            unknown = [name for name in names if name not in REMEDIATIONS]
            if error_class not in ERROR_CLASSES or unknown:
                raise ValueError(
                    f"healing plan {error_class!r}: unknown "
                    + (f"remediations {unknown}" if unknown else "error class")
                    + f"; known: {list(REMEDIATIONS)} for {list(ERROR_CLASSES)}"
                )

    def heal(self, failed: Experiment, history: History) -> Proposal | None:
        attempt = 1 + _heal_depth(failed, history)
        error_class = classify_trace(failed.trace or failed.error, failed.error_class)
        entry = {"experiment": failed.id, "error_class": error_class, "attempt": attempt}
        self.log.append(entry)
        if failed.config is None:
            entry["outcome"] = "not healable: the config is not in the space"
            return None
        if attempt > self.max_attempts:
            entry["outcome"] = f"gave up after {self.max_attempts} attempts"
            return None
        overrides = dict(failed.settings_overrides)
        options = {}
        for name in self.plans.get(error_class, ()):
            result = REMEDIATIONS[name].apply(self.space, failed.config, overrides)
            if result is not None:
                options[name] = result
        if not options:
            entry["outcome"] = f"no remediation applies to a {error_class} failure"
            return None
        choice, by = next(iter(options)), "rules"
        if self.diagnose is not None:
            try:
                answer = self.diagnose(
                    failed.trace or failed.error or "", error_class, list(options)
                )
            except Exception as exc:  # an LLM fault must not stop healing: rules decide
                answer = None
                entry["diagnosis_error"] = f"{type(exc).__name__}: {exc}"
            picked = _pick(answer, list(options))
            entry["diagnosis"] = answer
            if picked is not None:
                choice, by = picked, "llm"
            elif answer is not None:
                entry["diagnosis_ignored"] = "the answer names none of the offered remediations"
        config, new_overrides = options[choice]
        entry.update(outcome="healed", remediation=choice, chosen_by=by)
        return Proposal(
            config,
            agent="healer",
            source="heal",
            priority="high",
            rationale=f"heal {failed.id} ({error_class}, attempt {attempt}): "
            f"{REMEDIATIONS[choice].description}",
            parent_id=failed.id,
            idea_name=choice,
            settings_overrides={**overrides, **new_overrides},
        )


def _pick(answer: str | None, options: list[str]) -> str | None:
    """The first offered remediation name that the answer mentions."""
    if not answer:
        return None
    found = [(answer.find(name), name) for name in options if name in answer]
    return min(found)[1] if found else None


def _heal_depth(exp: Experiment, history: History) -> int:
    """How many heals led to `exp` (0 for an original experiment)."""
    depth, current = 0, exp
    while current is not None and current.source == "heal" and current.parent_id:
        depth += 1
        current = history.by_id(current.parent_id)
    return depth


def healing_stats(history: History) -> dict[str, Any]:
    """Heal attempts, and the share of first heals (of an original failure)
    that finished."""
    heals = [exp for exp in history.experiments if exp.source == "heal"]
    first = [exp for exp in heals if _heal_depth(exp, history) == 1]
    done = [exp for exp in first if exp.status in ("ok", "failed")]
    succeeded = sum(exp.status == "ok" for exp in done)
    return {
        "attempts": len(heals),
        "first_attempts": len(done),
        "first_attempt_successes": succeeded,
        "first_attempt_success_rate": succeeded / len(done) if done else None,
    }
