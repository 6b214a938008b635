"""AP and AUC against their definitions, including ties and degenerate labels."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import rankdata

from expsearch.training.metrics import (
    average_precision,
    average_ranks,
    mean_over_horizons,
    roc_auc,
)


def ap_by_definition(y, scores) -> float:
    """Sum over distinct thresholds t (high to low) of (R(t) - R(t_prev)) * P(t)."""
    y, scores = np.asarray(y), np.asarray(scores, float)
    total, previous_recall = 0.0, 0.0
    for t in sorted(set(scores), reverse=True):
        chosen = scores >= t
        recall = y[chosen].sum() / y.sum()
        total += (recall - previous_recall) * y[chosen].mean()
        previous_recall = recall
    return total


def auc_by_pairs(y, scores) -> float:
    y, scores = np.asarray(y), np.asarray(scores, float)
    pos, neg = scores[y == 1], scores[y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_known_values():
    assert average_precision([1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision([0, 1, 1, 0], [0.1, 0.9, 0.8, 0.2]) == 1.0
    assert roc_auc([0, 1, 1, 0], [0.1, 0.9, 0.8, 0.2]) == 1.0
    assert roc_auc([1, 0], [0.1, 0.9]) == 0.0


def test_all_tied_scores_give_the_prevalence_and_half_auc():
    y = [1, 0, 0, 0]
    assert average_precision(y, [0.3] * 4) == pytest.approx(0.25)
    assert roc_auc(y, [0.3] * 4) == 0.5


@pytest.mark.parametrize("seed", range(20))
def test_random_cases_with_ties_match_the_definitions(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 40))
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    scores = rng.integers(0, 6, n) / 5  # many ties
    assert average_precision(y, scores) == pytest.approx(ap_by_definition(y, scores), abs=1e-12)
    assert roc_auc(y, scores) == pytest.approx(auc_by_pairs(y, scores), abs=1e-12)


def test_single_class_is_undefined_not_a_number_that_looks_real():
    assert math.isnan(average_precision([1, 1], [0.2, 0.3]))
    assert math.isnan(roc_auc([0, 0, 0], [0.2, 0.3, 0.1]))


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="scores"):
        average_precision([1, 0], [0.5])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([1, 0], [0.5, float("nan")])
    with pytest.raises(ValueError, match="0 or 1"):
        average_precision([2, 0], [0.5, 0.1])


def test_horizon_map_is_the_mean():
    assert mean_over_horizons({0.5: 0.6, 1.0: 0.7, 1.5: 0.8}) == pytest.approx(0.7)
    assert math.isnan(mean_over_horizons({}))


@pytest.mark.parametrize("seed", range(5))
def test_average_ranks_are_scipys(seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 6, size=40).astype(float)  # many ties
    np.testing.assert_array_equal(average_ranks(values), rankdata(values))
    values = rng.normal(size=25)
    np.testing.assert_array_equal(average_ranks(values), rankdata(values))
    assert average_ranks(np.array([3.0])).tolist() == [1.0]
