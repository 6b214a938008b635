"""Tree-structured Parzen Estimator over C (paper's pi_TPE), through Optuna.

    policy = TPEPolicy(space, n_startup_trials=10)
    proposals = policy.propose(history, n=4, rng=np.random.default_rng(0))

Each call builds a fresh in-memory study, warm-started from the history
(finished experiments as complete trials with their validation AP, failed
ones as failed trials), then asks `n` times without telling: Optuna's
constant liar spreads the batch instead of asking n times for one point.
Conditional dimensions are suggested only where they apply (focal_gamma
only under loss = focal), which Optuna's grouped multivariate TPE models as
separate subspaces. The study's seed is drawn from `rng`, so the same history
and rng give the same proposals.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from ..space import Config, Dimension, Space
from .history import History
from .policy import Policy, PolicyError
from .proposal import Proposal


def distribution(dim: Dimension) -> BaseDistribution:
    if dim.categorical:
        return CategoricalDistribution(dim.values)
    return FloatDistribution(dim.low, dim.high, log=dim.log)


class TPEPolicy(Policy):
    policy = source = "tpe"

    def __init__(
        self,
        space: Space,
        name: str | None = None,
        *,
        n_startup_trials: int = 10,
        multivariate: bool = True,
    ):
        super().__init__(space, name)
        self.n_startup_trials = n_startup_trials
        self.multivariate = multivariate

    def _propose(self, history: History, n: int, rng: np.random.Generator) -> list[Proposal]:
        study = self._warm_study(history, seed=int(rng.integers(2**31 - 1)))
        # Counted once: study.trials deep-copies every trial on each access.
        warm = len(study.get_trials(deepcopy=False))
        seen = history.taken_fingerprints()
        proposals: list[Proposal] = []
        for _ in range(50 * n):
            if len(proposals) == n:
                break
            config = self._ask(study)
            if config.fingerprint in seen:
                continue
            seen.add(config.fingerprint)
            proposals.append(
                Proposal(
                    config,
                    agent=self.name,
                    source=self.source,
                    priority="medium",
                    rationale=f"TPE suggestion from {warm} earlier results",
                )
            )
        if len(proposals) < n:
            raise PolicyError(f"{self.name}: TPE kept suggesting taken configs")
        return proposals

    def _warm_study(self, history: History, seed: int) -> optuna.Study:
        # Optuna logs one INFO line per trial and warns that multivariate/group
        # are experimental; neither helps a user reading a round's output.
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=self.n_startup_trials,
                multivariate=self.multivariate,
                group=self.multivariate,  # grouping needs the multivariate model
                constant_liar=True,
            )
        study = optuna.create_study(direction="maximize", sampler=sampler)
        trials = []
        for exp in history.experiments:
            if exp.config is None or exp.status not in ("ok", "failed"):
                continue
            params = dict(exp.config)
            distributions = {key: distribution(self.space.dimensions[key]) for key in params}
            if exp.finished:
                trials.append(
                    create_trial(params=params, distributions=distributions, value=exp.val_ap)
                )
            elif exp.status == "failed":
                trials.append(
                    create_trial(params=params, distributions=distributions, state=TrialState.FAIL)
                )
        study.add_trials(trials)
        return study

    def _ask(self, study: optuna.Study) -> Config:
        trial = study.ask()
        values: dict[str, Any] = {}
        for dim in self.space.resolution_order:
            if dim.applies(values):
                values[dim.name] = _suggest(trial, dim)
        return self.space.validate(values)


def _suggest(trial: optuna.Trial, dim: Dimension) -> Any:
    if dim.categorical:
        return trial.suggest_categorical(dim.name, dim.values)
    return trial.suggest_float(dim.name, dim.low, dim.high, log=dim.log)
