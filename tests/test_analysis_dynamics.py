"""Search dynamics: entropy, JSD, log fit and innovation against independent references."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy, linregress

from expsearch.analysis.dynamics import (
    dynamics,
    entropy_series,
    innovation,
    jsd,
    log_fit,
    windowed_entropy,
)
from expsearch.analysis.powerlaw import fit_power_law
from expsearch.analysis.result import jsonable
from expsearch.analysis.table import TableError, experiment_table

LOG2 = math.log(2)
BACKBONES = ["vjepa2", "dinov3_b", "dinov3_l", "dinov2_b", "siglip2", "convnext"]
ENCODERS = ["zipformer", "retnet", "bimamba", "hybrid", "xlstm"]


def config(**override) -> dict:
    base = {
        "backbone": "vjepa2",
        "encoder": "zipformer",
        "pooling": "mean",
        "loss": "bce",
        "batch_size": 32,
        "scheduler": "cosine",
        "seq_len": 20,
        "epochs": 10,
    }
    return {**base, **override}


def make_table(configs, agents, values=None, status=None):
    n = len(configs)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    frame = pd.DataFrame(
        {
            "id": [f"e{i}" for i in range(n)],
            "status": status if status is not None else ["ok"] * n,
            "val_ap": values if values is not None else np.linspace(0.1, 0.9, n),
            "agent": agents,
            "finished": [(start + timedelta(minutes=i)).isoformat() for i in range(n)],
            "config": configs,
        }
    )
    return experiment_table(frame, source="test")


def random_configs(rng, n):
    return [
        config(
            backbone=str(rng.choice(BACKBONES)),
            encoder=str(rng.choice(ENCODERS)),
            pooling=str(rng.choice(["attention", "mean"])),
            batch_size=int(rng.choice([16, 32])),
            epochs=int(rng.choice([5, 10, 20])),
        )
        for _ in range(n)
    ]


def reference_entropy(cells):
    """scipy entropy of the counts after each t, recounted from scratch."""
    return np.array([entropy(list(Counter(cells[: t + 1]).values())) for t in range(len(cells))])


# --- entropy ---------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_entropy_of_a_uniform_cycle_is_log_k(k):
    cells = [f"cell{i % k}" for i in range(12 * k)]
    h = entropy_series(cells)
    assert len(h) == 12 * k
    np.testing.assert_allclose(h[k - 1 :: k], math.log(k), atol=1e-12)


def test_entropy_of_one_cell_is_zero():
    assert np.all(entropy_series([("a", 1)] * 40) == 0)
    assert np.all(windowed_entropy([("a", 1)] * 40, 7) == 0)
    assert len(entropy_series([])) == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_incremental_entropy_equals_scipy_at_every_t(seed):
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(9, 0.5))  # skewed, so counts are uneven
    cells = [(f"b{i}", i % 3) for i in rng.choice(9, size=300, p=weights)]
    np.testing.assert_allclose(entropy_series(cells), reference_entropy(cells), atol=1e-10)


@pytest.mark.parametrize("window", [1, 3, 8, 50, 500])
def test_windowed_entropy_equals_scipy_over_each_window(window):
    rng = np.random.default_rng(window)
    cells = list(rng.choice(list("abcdef"), size=200, p=[0.4, 0.2, 0.2, 0.1, 0.05, 0.05]))
    expected = [
        entropy(list(Counter(cells[max(0, t - window + 1) : t + 1]).values()))
        for t in range(len(cells))
    ]
    np.testing.assert_allclose(windowed_entropy(cells, window), expected, atol=1e-10)


def test_windowed_entropy_shows_a_phase_the_cumulative_one_hides():
    cells = [i % 6 for i in range(120)] + [0] * 60  # explore, then exploit one cell
    assert windowed_entropy(cells, 30)[-1] == 0
    assert entropy_series(cells)[-1] > 1.0


def test_windowed_entropy_rejects_a_zero_window():
    with pytest.raises(ValueError, match="window"):
        windowed_entropy([1, 2, 3], 0)


# --- JSD ---------------------------------------------------------------------------


def test_jsd_identical_disjoint_and_symmetric():
    p = {"a": 3, "b": 1, "c": 2}
    assert jsd(p, {"a": 6, "b": 2, "c": 4}) == pytest.approx(0, abs=1e-12)
    assert jsd({"a": 5, "b": 1}, {"c": 2, "d": 9}) == pytest.approx(LOG2, abs=1e-12)
    q = {"a": 1, "d": 4}
    assert jsd(p, q) == pytest.approx(jsd(q, p), abs=1e-15)


@pytest.mark.parametrize("seed", range(5))
def test_jsd_equals_scipy_jensenshannon_squared(seed):
    rng = np.random.default_rng(seed)
    p = rng.integers(0, 10, size=12).astype(float)
    q = rng.integers(0, 10, size=12).astype(float)
    p[0] = q[1] = 1  # neither is empty
    assert jsd(p, q) == pytest.approx(jensenshannon(p, q) ** 2, abs=1e-12)
    as_dicts = jsd(dict(enumerate(p)), {i: v for i, v in enumerate(q) if v})
    assert as_dicts == pytest.approx(jensenshannon(p, q) ** 2, abs=1e-12)


def test_jsd_refuses_empty_negative_or_misaligned_counts():
    for p, q in [([0, 0], [1, 1]), ([1, -1], [1, 1]), ([1, 2, 3], [1, 2]), ({}, {"a": 1})]:
        with pytest.raises(ValueError):
            jsd(p, q)


# --- log fit -----------------------------------------------------------------------


def test_log_fit_matches_linregress():
    rng = np.random.default_rng(3)
    t = np.arange(1, 401)
    h = 0.4 + 0.7 * np.log(t) + rng.normal(0, 0.3, size=len(t))
    fit = log_fit(h)
    reference = linregress(np.log(t), h)
    assert fit["status"] == "ok"
    assert fit["k"] == pytest.approx(reference.slope, rel=1e-10)
    assert fit["H0"] == pytest.approx(reference.intercept, rel=1e-10)
    assert fit["r2"] == pytest.approx(reference.rvalue**2, rel=1e-10)
    assert 0 < fit["r2"] < 1


def test_log_fit_exact_constant_and_short():
    exact = log_fit(1.5 + 0.25 * np.log(np.arange(1, 30)))
    assert exact["H0"] == pytest.approx(1.5) and exact["k"] == pytest.approx(0.25)
    assert exact["r2"] == pytest.approx(1.0)
    assert log_fit(np.zeros(20))["status"] == "insufficient_data"
    assert log_fit([0.0, 0.7])["status"] == "insufficient_data"
    jsonable(log_fit(np.zeros(20)))


# --- innovation --------------------------------------------------------------------


def records(values):
    """Reference indicator: a plain loop over the running best."""
    best, out = -math.inf, []
    for v in values:
        out.append(int(v > best))
        best = max(best, v)
    return out


def test_innovation_indicator_and_ties():
    result = innovation([0.3, 0.1, 0.5, 0.5, 0.7, 0.2, 0.71], window=3)
    assert list(result["indicator"]) == [1, 0, 1, 0, 1, 0, 1]  # a tie is no improvement
    assert result["improvements"] == 4 and result["n"] == 7


def test_innovation_rate_is_the_indicator_mean_in_each_window():
    rng = np.random.default_rng(5)
    values = np.cumsum(rng.normal(0, 1, size=300))  # a random walk improves in bursts
    for window in (1, 10, 50, 1000):
        result = innovation(values, window=window)
        iota = records(values)
        assert list(result["indicator"]) == iota
        expected = [np.mean(iota[max(0, t - window + 1) : t + 1]) for t in range(len(iota))]
        np.testing.assert_allclose(result["rate"], expected, atol=1e-12)


def test_innovation_on_iid_values_recovers_alpha_one():
    values = np.random.default_rng(11).random(20000)
    result = innovation(values, window=50)
    assert result["status"] == "ok"
    assert 0.02 < result["alpha_se"] < 0.6
    assert abs(result["alpha"] - 1) < 3 * result["alpha_se"]
    assert 0.2 < result["A"] < 5


def test_innovation_standard_error_is_calibrated():
    rng = np.random.default_rng(12)
    fits = [innovation(rng.random(2000), window=50) for _ in range(60)]
    alpha = np.array([f["alpha"] for f in fits])
    se = np.array([f["alpha_se"] for f in fits])
    # robust spread: a sequence with a few late records gives an honest outlier
    spread = 1.4826 * np.median(np.abs(alpha - np.median(alpha)))
    assert 0.6 < spread / np.median(se) < 1.6
    assert np.mean(np.abs(alpha - 1) < 2 * se) > 0.85
    assert np.mean(np.abs(alpha - 1) < 3 * se) > 0.95
    assert abs(np.median(alpha) - 1) < 0.1


def test_innovation_recovers_a_known_power_law():
    # Bernoulli draws with P = 0.8 t^-0.5 (not records): a fit that is not the 1/t case
    t = np.arange(2, 8001)
    hits = np.random.default_rng(13).random(len(t)) < 0.8 * t**-0.5
    values = np.r_[0.0, np.where(hits, t, -1.0)]  # a hit is a new best, a miss is below all
    result = innovation(values, window=50)
    assert list(result["indicator"][1:]) == hits.astype(int).tolist()
    assert abs(result["alpha"] - 0.5) < 3 * result["alpha_se"] < 0.3
    assert result["A"] == pytest.approx(0.8, rel=0.3)


def test_innovation_of_a_strictly_increasing_sequence():
    result = innovation(np.arange(40.0), window=10)
    assert list(result["indicator"]) == [1] * 40
    assert np.all(np.asarray(result["rate"]) == 1)
    assert result["alpha"] == pytest.approx(0, abs=1e-9)
    assert result["A"] == pytest.approx(1)
    jsonable(result)


def test_innovation_insufficient():
    short = innovation([0.1, 0.2, 0.3], window=5, min_points=5)
    assert short["status"] == "insufficient_data"
    assert list(short["indicator"]) == [1, 1, 1]
    flat = innovation([0.9, 0.1, 0.2, 0.3, 0.4, 0.5], window=5)
    assert flat["status"] == "insufficient_data" and "improved" in flat["reason"]
    empty = innovation([], window=5)
    assert empty["status"] == "insufficient_data" and empty["n"] == 0
    for result in (short, flat, empty):
        jsonable(result)


# --- dynamics on tables -----------------------------------------------------------


def by_pair(result):
    """The flat JSD rows, grouped by pair of agents, in window order."""
    pairs = {}
    for row in result["jsd"]:
        pairs.setdefault((row["agent_a"], row["agent_b"]), []).append(row)
    return pairs


def test_dynamics_entropy_per_agent_and_combined():
    # explorer cycles through 6 backbones; exploiter never leaves one cell
    n = 60
    configs, agents = [], []
    for i in range(n):
        configs.append(config(backbone=BACKBONES[i % 6], scheduler=["cosine", "step"][i % 2]))
        agents.append("explorer")
        configs.append(config())
        agents.append("exploiter")
    result = dynamics(make_table(configs, agents), window=12, step=6, innovation_window=10)
    jsonable(result)
    assert result["status"] == "ok"
    explorer, exploiter = result["agents"]["explorer"], result["agents"]["exploiter"]
    assert explorer["H_arch"]["final"] == pytest.approx(math.log(6))
    assert explorer["H_train"]["final"] == pytest.approx(LOG2)
    assert explorer["H"]["final"] == pytest.approx(math.log(6))  # scheduler follows backbone
    assert exploiter["H"]["final"] == 0 and exploiter["H_arch"]["final"] == 0
    assert explorer["H_arch"]["cells_seen"] == 6

    cells = [tuple(c[k] for k in ("backbone", "scheduler")) for c in configs]
    series = pd.DataFrame(result["series"])
    combined = series[series["scope"] == "combined"]
    np.testing.assert_allclose(combined["H"], reference_entropy(cells), atol=1e-10)
    assert combined["t"].tolist() == list(range(1, 2 * n + 1))
    mine = series[(series["scope"] == "agent") & (series["agent"] == "explorer")]
    np.testing.assert_allclose(mine["H_arch"], reference_entropy(cells[::2]), atol=1e-10)
    expected_window = [
        entropy(list(Counter(cells[::2][max(0, t - 11) : t + 1]).values())) for t in range(n)
    ]
    np.testing.assert_allclose(mine["H_arch_window"], expected_window, atol=1e-10)
    assert mine["id"].tolist() == [f"e{i}" for i in range(0, 2 * n, 2)]

    # change rate: the ratio of mean |step change| of the two cumulative series
    ratio = explorer["change_rate"]
    expected = np.abs(np.diff(mine["H_arch"])).mean() / np.abs(np.diff(mine["H_train"])).mean()
    assert ratio["status"] == "ok" and ratio["ratio"] == pytest.approx(expected)
    assert exploiter["change_rate"]["status"] == "insufficient_data"
    assert "H_train never changes" in exploiter["change_rate"]["reason"]


def test_dynamics_jsd_identical_and_disjoint_agents():
    # a and b interleave with the same configs: every even-aligned window is identical;
    # c's arch cells are never a's or b's
    rng = np.random.default_rng(7)
    shared = random_configs(rng, 40)
    configs, agents = [], []
    for cfg in shared:
        configs += [cfg, cfg]
        agents += ["a", "b"]
    configs += [config(backbone="convnext", encoder="xlstm", pooling="max")] * 20
    agents += ["c"] * 20
    result = dynamics(make_table(configs, agents), window=20, step=10)
    jsonable(result)
    pairs = by_pair(result)
    assert set(pairs) == {("a", "b"), ("a", "c"), ("b", "c")}
    assert result["jsd_summary"]["pairs"] == [["a", "b"], ["a", "c"], ["b", "c"]]
    ab = pairs[("a", "b")]
    assert [(w["t_start"], w["t_end"]) for w in ab] == [(s + 1, s + 20) for s in range(0, 81, 10)]
    for w in ab[:7]:  # windows 1-20 ... 61-80 hold whole a/b pairs only
        assert w["jsd_all"] == pytest.approx(0, abs=1e-12)
        assert w["jsd_arch"] == pytest.approx(0, abs=1e-12)
        assert w["n_a"] == w["n_b"] == 10
    # 71-90: a and b each have 5 rows, c has 10 with cells neither used
    bc = pairs[("b", "c")][7]
    assert (bc["t_start"], bc["n_a"], bc["n_b"]) == (71, 5, 10)
    assert bc["jsd_all"] == pytest.approx(LOG2) and bc["jsd_arch"] == pytest.approx(LOG2)
    # 81-100 has c only: no JSD, and the reason names the missing agent
    last = pairs[("a", "b")][8]
    assert last["jsd_all"] is None and last["jsd_arch"] is None and "a and b" in last["reason"]
    assert pairs[("a", "c")][0]["jsd_all"] is None and "from c " in pairs[("a", "c")][0]["reason"]


def test_dynamics_jsd_matches_a_recount_and_backbone_shares():
    rng = np.random.default_rng(8)
    n = 230
    configs = random_configs(rng, n)
    agents = list(rng.choice(["x", "y", "z"], size=n, p=[0.5, 0.3, 0.2]))
    result = dynamics(make_table(configs, agents), window=40, step=15)
    jsonable(result)
    arch = [tuple(c[k] for k in ("backbone", "encoder", "pooling")) for c in configs]
    full = [tuple(sorted(c.items())) for c in configs]
    assert len({tuple(row) for row in result["jsd"]}) == 1  # same columns on every CSV row
    checked = 0
    for (a, b), windows in by_pair(result).items():
        starts = [w["t_start"] - 1 for w in windows]
        assert starts == [*range(0, n - 40 + 1, 15), n - 40]  # the last window ends at n
        for w in windows:
            rows = range(w["t_start"] - 1, w["t_end"])
            for label, cells in (("jsd_arch", arch), ("jsd_all", full)):
                p = Counter(cells[i] for i in rows if agents[i] == a)
                q = Counter(cells[i] for i in rows if agents[i] == b)
                keys = sorted(set(p) | set(q))
                expected = jensenshannon([p[k] for k in keys], [q[k] for k in keys]) ** 2
                assert w[label] == pytest.approx(expected, abs=1e-12)
            for side, agent in (("a", a), ("b", b)):
                mine = [configs[i]["backbone"] for i in rows if agents[i] == agent]
                for backbone in BACKBONES:  # every backbone, zeros included
                    share = w[f"share_{side}_{backbone}"]
                    assert share == pytest.approx(mine.count(backbone) / len(mine))
            checked += 1
    assert checked == 3 * 14


def test_dynamics_innovation_uses_finished_rows_only():
    values = [0.5, 0.9, 0.6, 0.95, 0.1, 0.99, 0.2, 0.3]
    status = ["ok", "failed", "ok", "ok", "ok", "failed", "ok", "ok"]
    table = make_table([config()] * 8, ["a"] * 8, values=values, status=status)
    result = dynamics(table, innovation_window=3, min_points=3)
    jsonable(result)
    finished = [v for v, s in zip(values, status, strict=True) if s == "ok"]
    series = [r for r in result["series"] if r["scope"] == "combined"]
    assert [r["iota"] for r in series if r["iota"] is not None] == records(finished)
    assert "indicator" not in result["combined"]["innovation"]  # in the series table only
    assert result["combined"]["innovation"]["c_of_same_curve"] == pytest.approx(
        fit_power_law(np.maximum.accumulate(finished), a_max=1.0, min_points=3)["c"]
    )
    assert [r["iota"] for r in series] == [1, None, 1, 1, 0, None, 0, 0]
    assert series[3]["innovation_rate"] == pytest.approx(1.0)
    assert series[7]["innovation_rate"] == pytest.approx(0.0)


def test_dynamics_on_an_empty_table():
    frame = pd.DataFrame(columns=["id", "status", "val_ap", "agent", "finished", "config"])
    result = dynamics(experiment_table(frame, source="test"))
    assert result["status"] == "insufficient_data" and "no experiments" in result["reason"]
    jsonable(result)


def test_dynamics_with_one_agent_has_no_pairs():
    rng = np.random.default_rng(9)
    result = dynamics(make_table(random_configs(rng, 30), ["solo"] * 30), window=10)
    jsonable(result)
    assert result["jsd_summary"]["status"] == "insufficient_data"
    assert "one agent" in result["jsd_summary"]["reason"]
    assert result["jsd"] == [] and result["jsd_summary"]["pairs"] == []
    assert result["agents"]["solo"]["status"] == "ok"
    assert result["combined"]["H"]["final"] == result["agents"]["solo"]["H"]["final"]


def test_dynamics_with_an_agent_of_two_rows():
    rng = np.random.default_rng(10)
    agents = ["big"] * 30 + ["tiny"] * 2
    result = dynamics(make_table(random_configs(rng, 32), agents), window=10, step=5)
    jsonable(result)
    tiny = result["agents"]["tiny"]
    assert tiny["status"] == "insufficient_data" and "2 experiments" in tiny["reason"]
    assert tiny["innovation"]["status"] == "insufficient_data"
    assert result["agents"]["big"]["status"] == "ok"
    windows = result["jsd"]
    assert [(w["t_start"], w["t_end"]) for w in windows][-2:] == [(21, 30), (23, 32)]
    assert [w["jsd_all"] is None for w in windows] == [True] * 5 + [False]
    assert windows[-1]["n_b"] == 2 and windows[0]["share_b_vjepa2"] is None


def test_dynamics_with_all_runs_failed():
    rng = np.random.default_rng(11)
    n = 40
    table = make_table(
        random_configs(rng, n),
        ["a", "b"] * (n // 2),
        values=[float("nan")] * n,
        status=["failed"] * n,
    )
    result = dynamics(table, window=10)
    jsonable(result)
    assert result["counts"]["failed"] == n
    assert result["combined"]["H"]["final"] > 1  # proposals still spread over cells
    assert result["combined"]["H"]["log_fit"]["status"] == "ok"
    assert result["combined"]["innovation"]["status"] == "insufficient_data"
    assert result["agents"]["a"]["innovation"]["n"] == 0
    assert all(r["iota"] is None and r["innovation_rate"] is None for r in result["series"])


def test_dynamics_names_a_missing_column():
    configs = [{k: v for k, v in config().items() if k != "scheduler"}] * 6
    with pytest.raises(TableError, match="scheduler"):
        dynamics(make_table(configs, ["a"] * 6))
    table = make_table([config()] * 6, ["a"] * 6)
    with pytest.raises(TableError, match="agent"):
        dynamics(experiment_table(table.frame.drop(columns="agent"), source="test"))


def test_dynamics_at_scale_has_every_pair_and_window():
    # (its speed is measured by benchmarks/bench_analysis.py, not here)
    rng = np.random.default_rng(12)
    n = 3000
    configs = random_configs(rng, n)
    agents = list(rng.choice(["claude", "gemini", "random", "rules"], size=n))
    status = np.where(rng.random(n) < 0.1, "failed", "ok")
    table = make_table(configs, agents, values=rng.random(n), status=status)
    result = dynamics(table)
    out = jsonable(result)
    assert len(out["series"]) == 2 * n
    assert len(out["jsd_summary"]["pairs"]) == 6
    assert len(out["jsd"]) == 6 * out["jsd_summary"]["windows"]
    assert out["combined"]["innovation"]["status"] == "ok"
