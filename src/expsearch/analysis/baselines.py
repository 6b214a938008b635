"""Pool baselines (the paper's Table 2): how fast other policies would have
found the best config, replayed on the experiments a campaign already ran.

    result = baselines(table, space, pool_campaigns=None, generative_campaign="random",
                       at_n=(50, 100, 500), permutations=1000, tpe_seeds=1, seed=0)

Policies, each a cumulative-best curve AP*(N) with AP@N, and the fitted
power law a - b N^-c (a <= a_max) with its c and R^2:
  search     the pool in its own completion order: what the search policy did
  rand_pool  random orderings of the pool (mean of `permutations` seeded
             shuffles, with the 2.5/97.5 % band); its expectation has a closed
             form (`expected_random_best`), which the tests check it against
  tpe_pool   Optuna TPE run offline with the pool as its oracle (`tpe_on_pool`)
  oracle     the pool sorted best first (a flat curve: no fit)
  rand_gen   the campaign that drew from the whole space (`generative_campaign`)
The pool is the finished experiments of `pool_campaigns` (None: every
campaign but the generative one). Failed runs are not in the pool and are
counted. AP@N for an N larger than a curve is reported as skipped.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState, create_trial
from scipy.special import gammaln

from ..agents.tpe import distribution
from ..space import Space
from .powerlaw import fit_power_law, running_best
from .result import insufficient, ok
from .table import ExperimentTable

PERMUTATION_CHUNK = 128  # shuffles per block: bounds memory at 128 x pool floats


def baselines(
    table: ExperimentTable,
    space: Space,
    *,
    metric: str = "val_ap",
    pool_campaigns: Sequence[str] | None = None,
    generative_campaign: str | None = "random",
    at_n: Sequence[int] = (50, 100, 500),
    permutations: int = 1000,
    tpe_seeds: int = 1,
    tpe_startup_trials: int = 10,
    tpe_multivariate: bool = True,
    a_max: float | None = 1.0,
    min_points: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    pool_table, gen_table, pool_label = _split_pool(table, pool_campaigns, generative_campaign)
    pool = pool_table.finished(metric)
    values = pool[metric].to_numpy(dtype=float)
    fit = {"a_max": a_max, "min_points": min_points}
    policies: dict[str, Any] = {}
    curves: dict[str, np.ndarray] = {}
    if len(values) == 0:
        empty = insufficient(f"the pool ({pool_label}) has no finished experiment")
        policies = {name: empty for name in ("search", "rand_pool", "tpe_pool", "oracle")}
    else:
        curves["search"] = running_best(values)
        mean, low, high = random_pool_curve(values, permutations=permutations, seed=seed)
        curves["rand_pool"] = mean
        curves["oracle"] = np.full(len(values), values.max())
        horizon = min(len(values), max(at_n))
        tpe = [
            tpe_on_pool(pool, space, metric=metric, trials=horizon, seed=seed + k,
                        n_startup_trials=tpe_startup_trials, multivariate=tpe_multivariate)
            for k in range(tpe_seeds)
        ]  # fmt: skip
        if tpe:
            curves["tpe_pool"] = running_best(np.vstack([t["values"] for t in tpe])).mean(axis=0)
        for name in curves:
            policies[name] = _policy(curves[name], at_n, **fit)
        policies["rand_pool"]["band"] = {"low": _at(low, at_n), "high": _at(high, at_n)}
        policies["rand_pool"]["permutations"] = permutations
        if tpe:
            policies["tpe_pool"].update(seeds=tpe_seeds, mapping=TPE_MAPPING)
        else:
            policies["tpe_pool"] = insufficient("not run (tpe_seeds is 0)")
        curves["rand_pool_low"], curves["rand_pool_high"] = low, high
    if gen_table is None:
        policies["rand_gen"] = insufficient(
            f"no generative campaign: {generative_campaign!r} is not in the table"
            if generative_campaign else "no generative campaign named (generative_campaign: null)"
        )  # fmt: skip
    else:
        gen = gen_table.finished(metric)[metric].to_numpy(dtype=float)
        if len(gen) == 0:
            policies["rand_gen"] = insufficient(f"{generative_campaign}: no finished experiment")
        else:
            curves["rand_gen"] = running_best(gen)
            policies["rand_gen"] = _policy(curves["rand_gen"], at_n, **fit)
        policies["rand_gen"]["counts"] = gen_table.counts(metric)
    facts = {
        "metric": metric,
        "pool": {"campaigns": pool_label, **pool_table.counts(metric)},
        "generative_campaign": generative_campaign,
        "at_n": list(at_n),
        "policies": policies,
        "curve": _curve_rows(curves),
    }
    if not any(policy.get("status") == "ok" for policy in policies.values()):
        return insufficient("no policy has a finished experiment", **facts)
    return ok(**facts)


def random_pool_curve(
    values: np.ndarray, *, permutations: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, 2.5 % and 97.5 % of the running best over seeded random orders."""
    rng = np.random.default_rng(seed)
    blocks = []
    for start in range(0, permutations, PERMUTATION_CHUNK):
        count = min(PERMUTATION_CHUNK, permutations - start)
        shuffled = rng.permuted(np.tile(values, (count, 1)), axis=1)
        blocks.append(np.maximum.accumulate(shuffled, axis=1))
    runs = np.vstack(blocks)
    low, high = np.percentile(runs, [2.5, 97.5], axis=0)
    return runs.mean(axis=0), low, high


def expected_random_best(values: np.ndarray, n: int) -> float:
    """E[max of the first n of a uniformly random order], exactly: the k-th
    largest value is the maximum with probability C(len-k, n-1) / C(len, n)."""
    ordered = np.sort(np.asarray(values, dtype=float))[::-1]
    total = len(ordered)
    ks = np.arange(1, total - n + 2)
    log_p = _log_comb(total - ks, n - 1) - _log_comb(np.array([total]), n)
    return float(np.sum(ordered[: len(ks)] * np.exp(log_p)))


def _log_comb(n: np.ndarray, k: int) -> np.ndarray:
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


TPE_MAPPING = (
    "each TPE suggestion is evaluated as the nearest pool config not yet drawn, "
    "under the distance: 1 per categorical dimension that differs, plus per float "
    "dimension the absolute difference on its [0, 1] (log where the space is log) "
    "scale, 1 where the dimension exists in only one of the two, 0 where in neither; "
    "ties go to the earliest pool row; TPE is told the pool config and its value"
)


def tpe_on_pool(
    pool: pd.DataFrame,
    space: Space,
    *,
    metric: str,
    trials: int,
    seed: int,
    n_startup_trials: int = 10,
    multivariate: bool = True,
) -> dict[str, Any]:
    """Optuna TPE against the pool as oracle (see TPE_MAPPING): the values it
    drew, in order, and which pool rows."""
    encoder = PoolEncoder(space, pool)
    study = _study(seed, n_startup_trials, multivariate)
    taken = np.zeros(len(pool), dtype=bool)
    drawn, values = [], []
    for _ in range(min(trials, len(pool))):
        trial = study.ask()
        suggestion: dict[str, Any] = {}
        for dim in space.resolution_order:
            if dim.applies(suggestion) and dim.name in encoder.names:
                suggestion[dim.name] = (
                    trial.suggest_categorical(dim.name, dim.values) if dim.categorical
                    else trial.suggest_float(dim.name, dim.low, dim.high, log=dim.log)
                )  # fmt: skip
        index = encoder.nearest(suggestion, taken)
        taken[index] = True
        study.tell(trial, state=TrialState.FAIL)  # the suggestion itself was never run
        params = encoder.params(index)
        value = float(pool[metric].iloc[index])
        study.add_trial(
            create_trial(
                params=params,
                distributions={key: distribution(space.dimensions[key]) for key in params},
                value=value,
            )
        )
        drawn.append(index)
        values.append(value)
    return {"rows": drawn, "values": np.array(values)}


def _study(seed: int, n_startup_trials: int, multivariate: bool) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=n_startup_trials,
            multivariate=multivariate,
            group=multivariate,
        )
    return optuna.create_study(direction="maximize", sampler=sampler)


class PoolEncoder:
    """The pool's configs as arrays, for the nearest-config rule of TPE_MAPPING."""

    def __init__(self, space: Space, pool: pd.DataFrame):
        dims = [dim for dim in space.dimensions.values() if dim.name in pool.columns]
        self.space = space
        self.pool = pool
        self.names = {dim.name for dim in dims}
        self.categorical = [dim for dim in dims if dim.categorical]
        self.floats = [dim for dim in dims if not dim.categorical]
        self.codes = np.column_stack(
            [_codes(pool[dim.name], dim.values) for dim in self.categorical]
        ) if self.categorical else np.zeros((len(pool), 0), dtype=int)  # fmt: skip
        self.scaled = np.column_stack(
            [dim.unit(pd.to_numeric(pool[dim.name], errors="coerce").to_numpy(float))
             for dim in self.floats]
        ) if self.floats else np.zeros((len(pool), 0))  # fmt: skip

    def distances(self, config: Mapping[str, Any]) -> np.ndarray:
        codes = np.array(
            [dim.values.index(config[dim.name]) if dim.name in config else ABSENT
             for dim in self.categorical], dtype=int,
        )  # fmt: skip
        scaled = np.array(
            [dim.unit(config[dim.name]) if dim.name in config else np.nan
             for dim in self.floats], dtype=float,
        )  # fmt: skip
        categorical = (self.codes != codes).sum(axis=1)
        present_pool, present_config = ~np.isnan(self.scaled), ~np.isnan(scaled)
        gap = np.where(
            present_pool & present_config,
            np.abs(self.scaled - scaled),
            (present_pool != present_config).astype(float),
        )
        return categorical + np.nan_to_num(gap).sum(axis=1)

    def nearest(self, config: Mapping[str, Any], taken: np.ndarray) -> int:
        distance = np.where(taken, np.inf, self.distances(config))
        return int(np.argmin(distance))  # the first minimum: ties go to the earliest row

    def params(self, index: int) -> dict[str, Any]:
        """The pool config as TPE params (values outside the space left out)."""
        out = {}
        for dim, code in zip(self.categorical, self.codes[index], strict=True):
            if code >= 0:
                out[dim.name] = dim.values[code]
        row = self.pool.iloc[index]
        for dim in self.floats:
            value = pd.to_numeric(row[dim.name], errors="coerce")
            if np.isfinite(value) and dim.low <= value <= dim.high:
                out[dim.name] = float(value)
        return out


ABSENT = -1  # a conditional dimension that does not apply
UNKNOWN = -2  # a value outside the space: never equal to a suggestion


def _codes(column: pd.Series, values: Sequence[Any]) -> np.ndarray:
    lookup = {value: index for index, value in enumerate(values)}
    out = np.empty(len(column), dtype=int)
    for i, value in enumerate(column):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out[i] = ABSENT
        else:
            out[i] = lookup.get(value, UNKNOWN)
    return out


def _policy(curve: np.ndarray, at_n: Sequence[int], **fit: Any) -> dict[str, Any]:
    result = fit_power_law(curve, **fit)
    return ok(n=len(curve), best=float(curve[-1]), ap_at=_at(curve, at_n), fit=result)


def _at(curve: np.ndarray, at_n: Sequence[int]) -> dict[str, Any]:
    """AP@N for each N the curve reaches; None (skipped) beyond its length."""
    return {str(n): float(curve[n - 1]) if n <= len(curve) else None for n in at_n}


def _split_pool(
    table: ExperimentTable, pool_campaigns: Sequence[str] | None, generative: str | None
) -> tuple[ExperimentTable, ExperimentTable | None, str]:
    frame = table.frame
    if "campaign" not in frame.columns:
        if pool_campaigns is not None:
            table.require(["campaign"], "baselines (pool_campaigns is set)")
        return table, None, "every row (no campaign column)"
    campaigns = frame["campaign"].astype(str)
    present = set(campaigns)
    gen = table.subset(campaigns == generative, str(generative)) if generative in present else None
    if pool_campaigns is None:
        names = sorted(present - {generative})
    else:
        unknown = sorted(set(pool_campaigns) - present)
        if unknown:
            raise ValueError(
                f"{table.source}: pool campaign(s) {', '.join(unknown)} not in the table "
                f"(campaigns: {', '.join(sorted(present))})"
            )
        names = list(pool_campaigns)
    return table.subset(campaigns.isin(names), "pool"), gen, ", ".join(names) or "none"


def _curve_rows(curves: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """Long-format rows (policy, N, best) for a CSV the figures draw."""
    return [
        {"policy": name, "N": n + 1, "best": float(value)}
        for name, curve in curves.items()
        for n, value in enumerate(curve)
    ]
