"""Ranking metrics of a binary clip classifier: AP, ROC AUC, horizon mAP.

    average_precision(y, scores)     # the paper's primary metric
    roc_auc(y, scores)
    mean_over_horizons({0.5: ap, 1.0: ap, 1.5: ap})

AP is the step-wise area under the precision-recall curve,
sum_k (R_k - R_{k-1}) P_k over the distinct score thresholds (tied scores
enter together), which is what scikit-learn and the Nexar challenge compute;
no interpolation. AUC is the Mann-Whitney statistic with ties counted half.
Both are undefined (NaN) when the labels hold a single class.

Plain NumPy (the average ranks too, as scipy.stats.rankdata gives them):
every training job imports this module, and scipy.stats would add half a
second to each job's start.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def _check(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, scores = np.asarray(y).astype(np.int64).ravel(), np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != scores.shape:
        raise ValueError(f"{y.size} labels but {scores.size} scores")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or inf")
    return y, scores


def average_precision(y, scores) -> float:
    y, scores = _check(y, scores)
    positives = int(y.sum())
    if positives == 0 or positives == y.size:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    y, scores = y[order], scores[order]
    # The last index of each run of equal scores is where a threshold cuts.
    cuts = np.r_[np.flatnonzero(np.diff(scores)), y.size - 1]
    true_pos = np.cumsum(y)[cuts]
    precision = true_pos / (cuts + 1)
    recall_gain = np.diff(np.r_[0, true_pos]) / positives
    return float(np.sum(recall_gain * precision))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of a flat array without NaN (as `_check` leaves scores), tied
    values sharing the mean of their ranks: scipy.stats.rankdata's "average"."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], values.size]  # one past each run of equal values
    runs = np.repeat(np.arange(starts.size), ends - starts)
    ranks = np.empty(values.size)
    ranks[order] = ((starts + 1 + ends) / 2)[runs]  # mean of ranks starts+1 .. ends
    return ranks


def roc_auc(y, scores) -> float:
    y, scores = _check(y, scores)
    positives = int(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = average_ranks(scores)  # a tie counts one half
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def mean_over_horizons(per_horizon: Mapping[float, float]) -> float:
    """The Nexar challenge's mAP: the mean of the APs at each horizon."""
    values = list(per_horizon.values())
    return float(np.mean(values)) if values else float("nan")
