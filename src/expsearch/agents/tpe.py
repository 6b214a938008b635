"""Tree-structured Parzen Estimator over C (paper's pi_TPE), through Optuna.

    policy = TPEPolicy(space, n_startup_trials=10, warm_start=500)
    proposals = policy.propose(history, n=4, rng=np.random.default_rng(0))

Each call builds a fresh in-memory study, warm-started from the history
(finished experiments as complete trials with their validation AP, failed
ones as failed trials), then asks `n` times without telling: Optuna's
constant liar spreads the batch instead of asking n times for one point.
Conditional dimensions are suggested only where they apply (focal_gamma
only under loss = focal), which Optuna's grouped multivariate TPE models as
separate subspaces. The study's seed is drawn from `rng`, so the same history
and rng give the same proposals.

The warm start is bounded (params `agents.tpe.warm_start`, K = 500): the K
most recent finished or failed experiments plus the K best finished ones, in
ledger order; `None` takes the whole history. Each round is a new process,
so nothing carries over between calls, and adding 10,000 experiments as
trials (about 0.3 ms each, mostly Optuna copying every trial) and sampling
over them took 5 s a round; K = 500 takes 0.4 s. For K >= 250 the model of
the good configs is the one the whole history gives: Optuna's default TPE
builds it from the best min(10 %, 25) complete trials, the best 25 once
there are 250, which the K best hold. Only the density of the other configs
is estimated from fewer trials, the recent ones that Optuna weights most.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from ..space import Config, Dimension, Space
from .history import Experiment, History
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
        warm_start: int | None = 500,
    ):
        super().__init__(space, name)
        if warm_start is not None and warm_start < 1:
            raise ValueError(f"warm_start must be at least 1 (or None: all), got {warm_start}")
        self.n_startup_trials = n_startup_trials
        self.multivariate = multivariate
        self.warm_start = warm_start

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
        shared = {name: distribution(dim) for name, dim in self.space.dimensions.items()}
        trials = []
        for exp in self.warm_experiments(history):
            params = dict(exp.config)
            distributions = {key: shared[key] for key in params}
            if exp.finished:
                trials.append(
                    create_trial(params=params, distributions=distributions, value=exp.val_ap)
                )
            else:
                trials.append(
                    create_trial(params=params, distributions=distributions, state=TrialState.FAIL)
                )
        study.add_trials(trials)
        return study

    def warm_experiments(self, history: History) -> list[Experiment]:
        """The experiments the study starts from, in ledger order: the
        `warm_start` most recent finished or failed ones and the `warm_start`
        best finished ones (ties: earlier first), or all when `warm_start` is None."""
        usable = [
            exp
            for exp in history.experiments
            if exp.config is not None and (exp.finished or exp.status == "failed")
        ]
        k = self.warm_start
        if k is None or len(usable) <= k:
            return usable
        finished = [index for index, exp in enumerate(usable) if exp.finished]
        best = sorted(finished, key=lambda index: -usable[index].val_ap)[:k]
        chosen = set(best) | set(range(len(usable) - k, len(usable)))
        return [usable[index] for index in sorted(chosen)]

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
