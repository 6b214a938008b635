"""Pool baselines: random orders against their exact expectation, the oracle
above every policy, the TPE nearest-config rule, and bad input."""

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

from expsearch.analysis.baselines import (
    PoolEncoder,
    baselines,
    expected_random_best,
    random_pool_curve,
    tpe_on_pool,
)
from expsearch.analysis.planted import planted_table
from expsearch.analysis.result import jsonable
from expsearch.analysis.table import TableError, experiment_table


def test_expected_random_best_equals_brute_force_over_all_orders():
    values = np.array([0.3, 0.9, 0.5, 0.7, 0.1])
    for n in range(1, len(values) + 1):
        brute = np.mean([max(order[:n]) for order in itertools.permutations(values)])
        assert expected_random_best(values, n) == pytest.approx(brute, abs=1e-12)


def test_random_pool_mean_matches_the_closed_form_within_monte_carlo_error():
    values = np.random.default_rng(3).beta(5, 2, size=300)
    mean, low, high = random_pool_curve(values, permutations=2000, seed=1)
    for n in (1, 2, 5, 20, 100, 300):
        runs_sd = (high[n - 1] - low[n - 1]) / 4 + 1e-12  # band ~ 4 sd
        assert mean[n - 1] == pytest.approx(
            expected_random_best(values, n), abs=5 * runs_sd / math.sqrt(2000)
        )
    assert np.all(low <= high)  # (a skewed spread can put the mean outside the band)
    assert mean[-1] == pytest.approx(values.max())  # every order ends at the pool's best


def test_random_pool_is_seeded():
    values = np.linspace(0, 1, 50)
    first = random_pool_curve(values, permutations=10, seed=5)[0]
    assert np.array_equal(first, random_pool_curve(values, permutations=10, seed=5)[0])
    assert not np.array_equal(first, random_pool_curve(values, permutations=10, seed=6)[0])


@pytest.fixture(scope="module")
def planted(space):
    return experiment_table(planted_table(space, n=400, seed=2, n_random=60), source="planted")


def test_oracle_is_at_least_every_policy_at_every_n(planted, space):
    result = baselines(planted, space, at_n=(1, 5, 20, 50, 100), permutations=200, tpe_seeds=1)
    policies = result["policies"]
    for n in ("1", "5", "20", "50", "100"):
        oracle = policies["oracle"]["ap_at"][n]
        for name in ("search", "rand_pool", "tpe_pool"):
            assert oracle >= policies[name]["ap_at"][n]
    assert policies["oracle"]["fit"]["status"] == "insufficient_data"  # a flat curve has no fit
    assert policies["rand_pool"]["fit"]["status"] == "ok"
    jsonable(result)


def test_pool_excludes_failed_runs_and_counts_them(planted, space):
    result = baselines(planted, space, at_n=(5,), permutations=10, tpe_seeds=1)
    frame = planted.frame
    pool = frame[frame["campaign"] == "agents"]
    assert result["pool"]["finished"] == int((pool["status"] == "ok").sum())
    assert result["pool"]["failed"] == int((pool["status"] == "failed").sum()) > 0
    assert result["policies"]["search"]["n"] == result["pool"]["finished"]
    best = pool.loc[pool["status"] == "ok", "val_ap"].max()
    assert result["policies"]["oracle"]["best"] == pytest.approx(best)
    gen = frame[(frame["campaign"] == "random") & (frame["status"] == "ok")]
    assert result["policies"]["rand_gen"]["n"] == len(gen)
    assert result["policies"]["rand_gen"]["best"] == pytest.approx(gen["val_ap"].max())


def test_ap_at_n_beyond_a_curve_is_skipped(planted, space):
    result = baselines(planted, space, at_n=(10, 10_000), permutations=10, tpe_seeds=0)
    assert result["policies"]["tpe_pool"]["status"] == "insufficient_data"
    assert result["policies"]["rand_gen"]["ap_at"]["10000"] is None
    assert result["policies"]["rand_gen"]["ap_at"]["10"] is not None


def _pool(space, configs, values):
    frame = pd.DataFrame(
        {"id": [f"p{i}" for i in range(len(configs))], "status": "ok", "val_ap": values,
         "config": [json.dumps(c) for c in configs]}
    )  # fmt: skip
    return experiment_table(frame, source="pool").finished("val_ap")


def test_nearest_config_rule(space):
    base = dict(space.sample(1, seed=0)[0])
    base.update(loss="bce", learning_rate=1e-3, dropout=0.2)
    for key in ("focal_gamma", "focal_alpha", "smoothing_epsilon"):
        base.pop(key, None)
    other_backbone = next(b for b in space.dimensions["backbone"].values if b != base["backbone"])
    focal = {**base, "loss": "focal", "focal_gamma": 2.0, "focal_alpha": 0.5}
    configs = [
        {**base, "backbone": other_backbone},  # 1 categorical mismatch
        {**base, "dropout": 0.3},  # 0.1 / 0.5 = 0.2 on the [0, 1] scale
        {**base, "learning_rate": 1e-2},  # log scale: 1/3 of the range
        focal,  # loss differs (1) + two floats present only here (1 each)
        {**base, "dropout": 0.3},  # a tie with row 1
    ]
    encoder = PoolEncoder(space, _pool(space, configs, [0.1, 0.2, 0.3, 0.4, 0.5]))
    distances = encoder.distances(base)
    assert distances == pytest.approx([1.0, 0.2, 1 / 3, 3.0, 0.2])
    taken = np.zeros(5, dtype=bool)
    assert encoder.nearest(base, taken) == 1  # ties go to the earliest row
    taken[1] = True
    assert encoder.nearest(base, taken) == 4
    assert encoder.nearest(focal, taken) == 3  # distance 0 to itself
    assert encoder.params(3) == {key: value for key, value in focal.items() if key in encoder.names}


def test_tpe_on_pool_draws_distinct_rows_reproducibly(planted, space):
    pool = planted.finished("val_ap")
    pool = pool[pool["campaign"] == "agents"]
    first = tpe_on_pool(pool, space, metric="val_ap", trials=30, seed=4, n_startup_trials=5)
    again = tpe_on_pool(pool, space, metric="val_ap", trials=30, seed=4, n_startup_trials=5)
    assert first["rows"] == again["rows"]
    assert len(set(first["rows"])) == 30
    assert np.allclose(first["values"], pool["val_ap"].to_numpy()[first["rows"]])
    small = tpe_on_pool(pool.iloc[:7], space, metric="val_ap", trials=30, seed=4)
    assert sorted(small["rows"]) == list(range(7))  # never more draws than the pool has


def test_insufficient_and_bad_input(space, planted):
    failed = pd.DataFrame(
        {"id": ["a", "b"], "status": ["failed", "failed"], "val_ap": [None, None],
         "campaign": ["agents", "agents"]}
    )  # fmt: skip
    result = baselines(experiment_table(failed), space, permutations=5)
    assert result["status"] == "insufficient_data"
    assert result["pool"]["failed"] == 2
    assert result["policies"]["search"]["status"] == "insufficient_data"
    assert result["policies"]["rand_gen"]["status"] == "insufficient_data"
    jsonable(result)
    with pytest.raises(ValueError, match=r"pool campaign.*nosuch"):
        baselines(planted, space, pool_campaigns=["nosuch"], permutations=5)
    no_campaign = experiment_table(pd.DataFrame({"id": ["a"], "status": ["ok"], "val_ap": [0.5]}))
    with pytest.raises(TableError, match="campaign"):
        baselines(no_campaign, space, pool_campaigns=["agents"], permutations=5)
    with pytest.raises(TableError, match="val_ap"):
        baselines(experiment_table(pd.DataFrame({"id": ["a"], "status": ["ok"]})), space)
