"""Power-law fits of the cumulative best: planted parameters, the vectorised fit, model choice."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from expsearch.analysis import powerlaw
from expsearch.analysis.powerlaw import (
    compare_models,
    fit_power_law,
    fit_power_law_many,
    running_best,
)
from expsearch.analysis.result import jsonable

STEPS = np.arange(1, 401, dtype=float)


def power(a: float, b: float, c: float, n: int = 400) -> np.ndarray:
    return a - b * np.arange(1, n + 1, dtype=float) ** -c


def noisy(curve: np.ndarray, sd: float, seed: int) -> np.ndarray:
    return curve + np.random.default_rng(seed).normal(0, sd, len(curve))


def test_running_best_on_a_curve_and_on_rows():
    assert running_best([0.2, 0.1, 0.5, 0.3]).tolist() == [0.2, 0.2, 0.5, 0.5]
    rows = running_best([[0.3, 0.1, 0.4], [0.1, 0.2, 0.0]])
    assert rows.tolist() == [[0.3, 0.3, 0.4], [0.1, 0.2, 0.2]]


@pytest.mark.parametrize("c", [0.1, 0.5, 1.0])
def test_fit_recovers_planted_parameters(c):
    a, b = 0.9, 0.5
    fit = fit_power_law(noisy(power(a, b, c), 0.002, seed=int(c * 10)))
    assert fit["status"] == "ok" and fit["n_points"] == 400
    # Within 4 standard errors and within a stated absolute/relative tolerance.
    for name, planted, tolerance in (("a", a, 0.05), ("b", b, 0.05), ("c", c, 0.1 * c)):
        assert abs(fit[name] - planted) < 4 * fit["se"][name], name
        assert abs(fit[name] - planted) < tolerance, name
    assert fit["r2"] > 0.99
    assert not fit["c_at_bound"]
    assert "bound_binds" not in fit
    jsonable(fit)


def test_bounded_fit_reports_when_a_le_1_binds():
    above = noisy(power(1.05, 0.6, 0.3), 0.002, seed=1)  # stays below 0.95, heads for 1.05
    assert above.max() < 1
    free = fit_power_law(above)
    bounded = fit_power_law(above, a_max=1.0)
    assert free["a"] > 1.02
    assert bounded["bound_binds"] is True and bounded["a"] == 1.0
    assert bounded["se"]["a"] is None and bounded["se"]["c"] > 0
    assert bounded["rss"] > free["rss"]  # the bound costs fit
    assert bounded["r2"] < free["r2"]

    below = noisy(power(0.95, 0.6, 0.3), 0.002, seed=1)
    bounded = fit_power_law(below, a_max=1.0)
    assert bounded["bound_binds"] is False
    assert bounded["a"] == pytest.approx(fit_power_law(below)["a"], abs=1e-6)


@pytest.mark.parametrize("a_max", [None, 1.0])
def test_vectorised_fit_equals_scipy_fit(a_max, monkeypatch):
    planted = [(0.9, 0.5, 0.1), (0.9, 0.5, 0.5), (0.8, 0.3, 1.0), (1.05, 0.6, 0.3), (0.7, 0.4, 2.0)]
    curves = np.array([noisy(power(*p), 0.003, seed=i) for i, p in enumerate(planted)])
    # Small chunks so that rows are fitted in several pieces.
    monkeypatch.setattr(powerlaw, "CHUNK_ELEMENTS", 2 * curves.shape[1])
    many = fit_power_law_many(curves, a_max=a_max)
    for i, curve in enumerate(curves):
        single = fit_power_law(curve, a_max=a_max)
        assert many["c"][i] == pytest.approx(single["c"], rel=1e-3)
        assert many["r2"][i] == pytest.approx(single["r2"], abs=1e-6)
        assert many["a"][i] == pytest.approx(single["a"], abs=1e-3)
    if a_max is not None:
        assert many["a"][3] == 1.0  # the planted a = 1.05 curve sits on the bound
        assert np.all(many["a"] <= 1.0)


def test_vectorised_fit_marks_flat_curves_as_missing():
    curves = np.vstack([np.full(50, 0.7), power(0.9, 0.5, 0.5, n=50)])
    many = fit_power_law_many(curves)
    assert np.isnan(many["r2"][0]) and np.isnan(many["c"][0])
    assert many["r2"][1] > 0.999999


def test_log_model_aic_bic_equal_statsmodels_ols():
    y = noisy(0.3 + 0.05 * np.log(STEPS), 0.01, seed=4)
    result = compare_models(y)
    ols = sm.OLS(y, sm.add_constant(np.log(STEPS))).fit()
    log_model = result["models"]["logarithmic"]
    assert log_model["k"] == 2
    assert log_model["aic"] == pytest.approx(ols.aic, rel=1e-10)
    assert log_model["bic"] == pytest.approx(ols.bic, rel=1e-10)
    assert log_model["a"] == pytest.approx(ols.params[0], abs=1e-10)


@pytest.mark.parametrize(
    ("family", "curve"),
    [
        ("power", 0.9 - 0.5 * STEPS**-0.5),
        ("exponential", 0.9 - 0.5 * np.exp(-0.02 * STEPS)),
        ("logarithmic", 0.3 + 0.05 * np.log(STEPS)),
    ],
)
def test_model_comparison_picks_the_planted_family(family, curve):
    result = compare_models(noisy(curve, 0.001, seed=5))
    assert result["best_by_aic"] == family
    assert result["best_by_bic"] == family
    assert result["models"][family]["delta_aic"] == 0
    assert all(m["delta_aic"] > 0 for name, m in result["models"].items() if name != family)
    jsonable(result)
