"""The vectorised near-duplicate search against its pairwise definition."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from expsearch.agents.dedup import Deduplicator
from expsearch.space import Space

# A conditional categorical dimension on each branch of `arch`, and few
# categorical dimensions, so that one changed value moves Jaccard a lot.
CONDITIONAL = Space.from_dict(
    {
        "dimensions": {
            "arch": {"group": "arch", "type": "categorical", "values": ["a", "b", "c"]},
            "heads": {"group": "arch", "type": "categorical", "values": [1, 2, 4],
                      "when": {"arch": ["a"]}},
            "kernel": {"group": "arch", "type": "categorical", "values": [3, 5],
                       "when": {"arch": ["b", "c"]}},
            "dropout": {"group": "arch", "type": "float", "low": 0.0, "high": 0.5},
            "loss": {"group": "loss", "type": "categorical", "values": ["x", "y"]},
            "gamma": {"group": "loss", "type": "float", "low": 0.5, "high": 5.0,
                      "when": {"loss": ["x"]}},
            "lr": {"group": "train", "type": "float", "low": 1e-5, "high": 1e-2, "log": True},
            "batch": {"group": "train", "type": "categorical", "values": [16, 32]},
        }
    }
)  # fmt: skip


def within(space: Space, a, b, tolerance: float) -> bool:
    """Every continuous value within `tolerance` of its range; a dimension
    only one config has is out of it."""
    for dim in space.dimensions.values():
        if dim.categorical or (dim.name not in a and dim.name not in b):
            continue
        if (dim.name in a) != (dim.name in b):
            return False
        if dim.log:
            share = abs(math.log(a[dim.name] / b[dim.name])) / math.log(dim.high / dim.low)
        else:
            share = abs(a[dim.name] - b[dim.name]) / (dim.high - dim.low)
        if share > tolerance:
            return False
    return True


def pairwise(space: Space, known: dict, config, threshold: float, tolerance: float | None):
    """(fate, id) by the definition: the first known config with the same
    fingerprint, else the first above the Jaccard threshold and within tolerance."""
    for experiment_id, other in known.items():
        if other.fingerprint == config.fingerprint:
            return "duplicate", experiment_id
    for experiment_id, other in known.items():
        if space.jaccard(config, other) > threshold and (
            tolerance is None or within(space, config, other, tolerance)
        ):
            return "near_duplicate", experiment_id
    return None


def variant(space: Space, base, rng: np.random.Generator):
    """`base` with a categorical value redrawn now and then (conditional
    dimensions appear and go) and continuous values moved by up to 8 % of
    their range, so that candidates land on both sides of the tolerance."""
    values = dict(base)
    for dim in space.resolution_order:
        if not dim.applies(values):
            values.pop(dim.name, None)
        elif dim.name not in values or (dim.categorical and rng.random() < 0.08):
            values[dim.name] = dim.draw(rng)
        elif not dim.categorical and rng.random() < 0.5:
            if dim.log:
                span = math.log(dim.high / dim.low)
                moved = values[dim.name] * math.exp(rng.uniform(-0.08, 0.08) * span)
            else:
                moved = values[dim.name] + rng.uniform(-0.08, 0.08) * (dim.high - dim.low)
            values[dim.name] = min(max(moved, dim.low), dim.high)
    return space.validate(values)


@pytest.mark.parametrize(
    "which, threshold, tolerance",
    [("default", 0.9, 0.05), ("default", 0.9, None), ("default", 0.8, 0.05),
     ("conditional", 0.5, 0.05), ("conditional", 0.7, 0.1), ("conditional", 0.7, None)],
)  # fmt: skip
def test_vectorised_check_matches_the_pairwise_definition(space, which, threshold, tolerance):
    space = space if which == "default" else CONDITIONAL
    rng = np.random.default_rng(7)
    bases = space.sample(15, seed=3)
    dedup = Deduplicator(space, threshold, tolerance)
    known: dict = {}
    fates = Counter()
    for number in range(300):
        if known and rng.random() < 0.1:
            config = list(known.values())[int(rng.integers(len(known)))]
        else:
            config = variant(space, bases[int(rng.integers(len(bases)))], rng)
        expected = pairwise(space, known, config, threshold, tolerance)
        match = dedup.check(config)
        assert (None if match is None else (match.fate, match.of)) == expected, number
        fates[expected[0] if expected else "new"] += 1
        dedup.add(f"c{number}", config)
        if config.fingerprint not in {other.fingerprint for other in known.values()}:
            known[f"c{number}"] = config
    assert min(fates["duplicate"], fates["near_duplicate"], fates["new"]) >= 10, fates


def test_a_distance_on_the_tolerances_edge_is_judged_by_the_pairwise_rule(space, focal_config):
    # Scaled to their range, both pairs are exactly 5 % apart; unscaled, the
    # first is a hair over and the second a hair under.
    base = focal_config | {"oversample_ratio": 1.702, "mixup_alpha": 0.2092}
    dedup = Deduplicator(space, 0.9, 0.05)
    dedup.add("base", space.validate(base))
    over = space.validate(base | {"oversample_ratio": 2.152})
    under = space.validate(base | {"mixup_alpha": 0.2292})
    assert dedup.continuous_distance(base, over) > 0.05
    assert dedup.continuous_distance(base, under) <= 0.05
    assert dedup.check(over) is None
    assert dedup.check(under).of == "base"


def test_an_empty_deduplicator_and_one_without_continuous_dimensions():
    flat = Space.from_dict(
        {"dimensions": {"a": {"group": "arch", "type": "categorical", "values": [1, 2, 3]}}}
    )
    dedup = Deduplicator(flat, 0.5, 0.05)
    one, two = flat.validate({"a": 1}), flat.validate({"a": 2})
    assert dedup.check(one) is None
    dedup.add("one", one)
    assert dedup.check(one).fate == "duplicate"
    assert dedup.check(two) is None


def test_many_known_configs_grow_the_arrays(space):
    configs = space.sample(300, seed=11)
    dedup = Deduplicator(space)
    for number, config in enumerate(configs):
        dedup.add(f"e{number}", config)
    assert dedup.check(configs[250]).of == "e250"
    near = space.validate(dict(configs[299]) | {"dropout": configs[299]["dropout"] / 2 + 0.125})
    expected = pairwise(space, {f"e{i}": c for i, c in enumerate(configs)}, near, 0.9, 0.05)
    match = dedup.check(near)
    assert (None if match is None else (match.fate, match.of)) == expected
