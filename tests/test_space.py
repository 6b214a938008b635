"""The configuration space C: cell count, config validation, canonical form,
fingerprint, round-trips, Jaccard similarity and uniform sampling."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from expsearch.space import Config, ConfigError, Space, SpaceError, normalise_float
from expsearch.yamlio import load_yaml

from .conftest import ROOT


# ------------------------------------------------------------------ cell count
def test_paper_space_has_108000_discrete_cells(space):
    assert space.discrete_cells == 108_000
    assert {g: space.cells(g) for g in ("arch", "loss", "train", "data")} == {
        "arch": 120,
        "loss": 3,
        "train": 300,
        "data": 1,
    }


def test_cell_count_is_computed_from_the_definition(params):
    dims = params["space"]["dimensions"]
    dims["backbone"]["values"].append("eva02")
    assert Space.from_params(params).discrete_cells == 108_000 // 6 * 7
    del dims["scheduler"]
    assert Space.from_params(params).discrete_cells == 108_000 // 6 * 7 // 3


def test_size_knobs_count_only_when_params_say_so(params):
    assert Space.from_params(params).cells(all_categorical=True) == 108_000 * 4 * 4
    params["space"]["dimensions"]["width"]["cells"] = True
    assert Space.from_params(params).discrete_cells == 108_000 * 4


def test_every_dimension_has_a_group_and_the_papers_domains(space):
    dims = space.dimensions
    assert set(dims["backbone"].values) == {
        "vjepa2",
        "dinov3_b",
        "dinov3_l",
        "dinov2_b",
        "siglip2",
        "convnext",
    }
    assert set(dims["encoder"].values) == {"zipformer", "retnet", "bimamba", "hybrid", "xlstm"}
    assert set(dims["pooling"].values) == {"attention", "mean", "last", "max"}
    assert (dims["learning_rate"].low, dims["learning_rate"].high, dims["learning_rate"].log) == (
        1e-5,
        1e-2,
        True,
    )
    assert dims["weight_decay"].log and dims["weight_decay"].high == 0.1
    assert (dims["focal_gamma"].low, dims["focal_gamma"].high) == (0.5, 5.0)
    assert (dims["focal_alpha"].low, dims["focal_alpha"].high) == (0.1, 0.9)
    assert dims["focal_gamma"].when == (("loss", ("focal",)),)
    assert dims["smoothing_epsilon"].when == (("loss", ("label_smoothing",)),)
    assert {d.group for d in dims.values()} == {"arch", "loss", "train", "data"}


def test_summary_reports_branches_and_groups(space):
    summary = space.summary()
    assert summary["discrete_cells"] == 108_000
    by_loss = {b["when"]["loss"]: b["continuous"] for b in summary["branches"]}
    # 6 unconditional floats; focal adds gamma and alpha, smoothing adds epsilon
    assert by_loss == {"focal": 8, "bce": 6, "label_smoothing": 7}
    assert summary["continuous_dimensions"] == {"min": 6, "max": 8}
    json.dumps(summary)  # JSON-able


# ------------------------------------------------------------------ validation
def test_valid_config_is_accepted_and_canonical(space, focal_config):
    config = space.validate(focal_config)
    assert isinstance(config, Config)
    assert list(config) == sorted(focal_config)
    assert config["learning_rate"] == 2e-4 and isinstance(config["dropout"], float)


@pytest.mark.parametrize(
    ("edit", "key", "fragment"),
    [
        (lambda c: c.update(learning_rat=1e-3), "learning_rat", "did you mean 'learning_rate'"),
        (lambda c: c.pop("batch_size"), "batch_size", "missing"),
        (lambda c: c.update(batch_size="64"), "batch_size", "wrong type str"),
        (lambda c: c.update(batch_size=48), "batch_size", "48 is not allowed"),
        (lambda c: c.update(backbone="resnet50"), "backbone", "'resnet50' is not allowed"),
        (lambda c: c.update(learning_rate=0.5), "learning_rate", "outside the space"),
        (lambda c: c.update(learning_rate="3e-4"), "learning_rate", "wrong type str"),
        (lambda c: c.update(dropout=True), "dropout", "wrong type bool"),
        (lambda c: c.update(mixup_alpha=float("nan")), "mixup_alpha", "outside the space"),
        (lambda c: c.update(focal_gamma=0.1), "focal_gamma", "outside the space"),
        (lambda c: c.pop("focal_alpha"), "focal_alpha", "required because loss is focal"),
        (
            lambda c: c.update(smoothing_epsilon=0.1),
            "smoothing_epsilon",
            "applies only when loss is label_smoothing",
        ),
    ],
)
def test_bad_configs_name_the_key(space, focal_config, edit, key, fragment):
    edit(focal_config)
    with pytest.raises(ConfigError) as info:
        space.validate(focal_config)
    assert info.value.key == key
    assert key in str(info.value) and fragment in str(info.value)


def test_conditional_dimensions_are_errors_when_they_do_not_apply(space, focal_config):
    focal_config["loss"] = "bce"  # gamma and alpha are still there
    with pytest.raises(ConfigError) as info:
        space.validate(focal_config)
    assert {key for key, _ in info.value.problems} == {"focal_gamma", "focal_alpha"}
    for key in ("focal_gamma", "focal_alpha"):
        del focal_config[key]
    assert space.validate(focal_config)["loss"] == "bce"


def test_all_problems_are_reported_at_once(space, focal_config):
    focal_config.update(encoder="lstm", learning_rate=1.0, extra=1)
    del focal_config["epochs"]
    with pytest.raises(ConfigError) as info:
        space.validate(focal_config)
    assert {key for key, _ in info.value.problems} == {
        "encoder",
        "learning_rate",
        "extra",
        "epochs",
    }


def test_a_non_mapping_is_rejected(space):
    with pytest.raises(ConfigError, match="expected a mapping"):
        space.validate(["backbone", "vjepa2"])


# -------------------------------------------------- canonical form, fingerprint
def test_equal_numbers_written_differently_share_a_fingerprint(space, focal_config):
    a = space.validate(focal_config)
    text = (
        "\n".join(f"{k}: {v}" for k, v in focal_config.items() if k != "learning_rate")
        + "\nlearning_rate: 2e-4\n"
    )
    b = space.validate(load_yaml(text))
    c = space.validate({**focal_config, "learning_rate": 0.0002, "oversample_ratio": 1})
    d = space.validate({**focal_config, "dropout": 0.1 + 0.30000000000000004})
    assert a == b == c == d
    assert a.fingerprint == b.fingerprint == c.fingerprint == d.fingerprint


def test_fingerprint_ignores_key_order_but_not_values(space, focal_config):
    reordered = dict(reversed(list(focal_config.items())))
    assert space.validate(reordered).fingerprint == space.validate(focal_config).fingerprint
    other = space.validate({**focal_config, "focal_gamma": 2.5})
    assert other.fingerprint != space.validate(focal_config).fingerprint


CANONICAL = (
    '{"backbone":"vjepa2","batch_size":64,"depth":2,"dropout":0.4,"encoder":"zipformer",'
    '"epochs":15,"feature_noise":0.0,"focal_alpha":0.25,"focal_gamma":3.0,'
    '"learning_rate":0.0002,"loss":"focal","mixup_alpha":0.0,"oversample_ratio":1.0,'
    '"pooling":"attention","scheduler":"cosine","seq_len":20,"weight_decay":0.01,"width":256}'
)


def test_fingerprint_is_the_sha256_of_the_canonical_json(space, focal_config):
    # The canonical form is written out here so that a change to it (which
    # would orphan every recorded experiment's fingerprint) cannot go unnoticed.
    config = space.validate(focal_config)
    assert config.canonical_json() == CANONICAL
    assert config.fingerprint == hashlib.sha256(CANONICAL.encode()).hexdigest()[:16]


def test_fingerprint_does_not_depend_on_the_process(space, focal_config):
    code = (
        "import sys, json; from expsearch.params import load_params; "
        "from expsearch.space import Space; "
        "s = Space.from_params(load_params(sys.argv[1])); "
        "print(s.validate(json.loads(sys.argv[2])).fingerprint)"
    )
    for hash_seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code, str(ROOT / "params.yaml"), json.dumps(focal_config)],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == space.validate(focal_config).fingerprint


def test_normalise_float_keeps_ten_significant_digits():
    assert normalise_float(3e-4) == normalise_float(0.0003) == 0.0003
    assert normalise_float(0.30000000000000004) == 0.3
    assert normalise_float(1.23456789012345) == 1.234567890


def test_config_is_immutable_and_hashable(space, focal_config):
    config = space.validate(focal_config)
    with pytest.raises(TypeError):
        config["epochs"] = 5  # type: ignore[index]
    assert len({config, space.validate(copy.deepcopy(focal_config))}) == 1


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_round_trip(space, fmt):
    for config in space.sample(50, seed=3):
        text = config.to_yaml() if fmt == "yaml" else config.to_json()
        back = space.validate(load_yaml(text) if fmt == "yaml" else json.loads(text))
        assert back == config and back.fingerprint == config.fingerprint


# ------------------------------------------------------------------- Jaccard
def test_jaccard_on_categorical_dimensions(space, focal_config):
    a = space.validate(focal_config)
    n_cat = len(space.categorical)  # 10 in the default space
    assert space.jaccard(a, a) == 1.0
    # continuous dimensions do not matter
    b = space.validate({**focal_config, "learning_rate": 1e-3, "focal_gamma": 1.0})
    assert space.jaccard(a, b) == 1.0
    # one categorical difference: (n-1) shared of n+1 distinct pairs
    c = space.validate({**focal_config, "encoder": "retnet"})
    assert space.jaccard(a, c) == pytest.approx((n_cat - 1) / (n_cat + 1))
    assert space.jaccard(a, c) == space.jaccard(c, a) < 0.9
    d = space.validate({**focal_config, "encoder": "retnet", "pooling": "max"})
    assert space.jaccard(a, d) == pytest.approx((n_cat - 2) / (n_cat + 2))


# ------------------------------------------------------------------ sampling
def test_sampling_is_seeded_and_valid(space):
    first, again, other = (
        space.sample(200, seed=7),
        space.sample(200, seed=7),
        space.sample(200, seed=8),
    )
    assert first == again and first != other
    for config in first:
        assert space.validate(config.to_dict()) == config


def _chi_square_uniform_p(observed_values, categories) -> float:
    counts = [sum(1 for v in observed_values if v == c) for c in categories]
    return stats.chisquare(counts).pvalue


def test_categorical_frequencies_are_uniform(space):
    configs = space.sample(6000, seed=2026)
    for dim in space.categorical:
        p = _chi_square_uniform_p([c[dim.name] for c in configs], dim.values)
        assert p > 1e-3, f"{dim.name}: frequencies not uniform (chi-square p = {p:.2g})"
    # conditional floats appear exactly when their condition holds
    for config in configs:
        assert ("focal_gamma" in config) == (config["loss"] == "focal")
        assert ("smoothing_epsilon" in config) == (config["loss"] == "label_smoothing")


def test_the_uniformity_check_has_power():
    """The same chi-square check rejects a sampler that favours one value."""
    rng = np.random.default_rng(0)
    biased = rng.choice(["a", "b", "c", "d"], p=[0.28, 0.24, 0.24, 0.24], size=6000)
    assert _chi_square_uniform_p(list(biased), ["a", "b", "c", "d"]) < 1e-3


def test_float_dimensions_are_uniform_on_their_scale(space):
    configs = space.sample(4000, seed=11)
    for dim in space.dimensions.values():
        if dim.categorical:
            continue
        xs = np.array([c[dim.name] for c in configs if dim.name in c])
        assert xs.min() >= dim.low and xs.max() <= dim.high
        if dim.log:
            xs, lo, hi = np.log(xs), math.log(dim.low), math.log(dim.high)
        else:
            lo, hi = dim.low, dim.high
        p = stats.kstest(xs, stats.uniform(loc=lo, scale=hi - lo).cdf).pvalue
        assert p > 1e-3, f"{dim.name}: not uniform on its scale (KS p = {p:.2g})"
    # and a log dimension is not uniform on the linear scale
    lr = np.array([c["learning_rate"] for c in configs])
    assert stats.kstest(lr, stats.uniform(loc=1e-5, scale=1e-2 - 1e-5).cdf).pvalue < 1e-6


# -------------------------------------------------------- space definition errors
@pytest.mark.parametrize(
    ("dimension", "spec", "key", "fragment"),
    [
        (
            "lr2",
            {"group": "train", "type": "float", "low": 1.0, "high": 0.5},
            "high",
            "greater than low",
        ),
        (
            "lr2",
            {"group": "train", "type": "float", "low": 0.0, "high": 1.0, "log": True},
            "low",
            "low > 0",
        ),
        ("lr2", {"group": "train", "type": "float", "low": 0.0}, "lr2", "needs `low` and `high`"),
        (
            "k",
            {"group": "arch", "type": "categorical", "values": [1, "a"]},
            "values",
            "all be strings",
        ),
        (
            "k",
            {"group": "arch", "type": "categorical", "values": [1], "low": 0},
            "low",
            "only float",
        ),
        (
            "k",
            {"group": "arch", "type": "float", "low": 0, "high": 1, "values": [1]},
            "values",
            "float dimensions",
        ),
        (
            "k",
            {"group": "loss", "type": "float", "low": 0, "high": 1, "when": {"losss": ["focal"]}},
            "when.losss",
            "unconditional categorical dimension",
        ),
        (
            "k",
            {"group": "loss", "type": "float", "low": 0, "high": 1, "when": {"loss": ["hinge"]}},
            "when.loss",
            "'hinge' is not a value of loss",
        ),
    ],
)
def test_bad_space_definitions_name_the_key(params, dimension, spec, key, fragment):
    params["space"]["dimensions"][dimension] = spec
    with pytest.raises(SpaceError) as info:
        Space.from_params(params)
    path = f"space.dimensions.{dimension}" + ("" if key == dimension else f".{key}")
    assert info.value.key == path
    assert fragment in str(info.value)
