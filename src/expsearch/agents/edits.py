"""Named changes to a config that keep it a point of the space.

    edited = replace(space, config, {"loss": "focal"}, rng)   # fills focal_gamma/alpha, drops others
    perturb(space.dimensions["learning_rate"], 1e-3, rng)    # a nearby value of one dimension
    neighbours(space.dimensions["batch_size"], 64)           # (32, 128): the values either side

Changing a controller (loss) changes which dimensions exist; `replace`
draws the newly applicable ones from `rng` (or takes their domain's middle
when no rng is given, so sweeps and remediations stay deterministic) and
drops those that no longer apply. Used by the rules policy, sweeps and
self-healing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..space import Config, Dimension, Space, normalise_float


def middle(dim: Dimension) -> Any:
    if dim.categorical:
        return dim.values[len(dim.values) // 2]
    if dim.log:
        return normalise_float(math.sqrt(dim.low * dim.high))
    return normalise_float((dim.low + dim.high) / 2)


def replace(
    space: Space,
    config: Mapping[str, Any],
    changes: Mapping[str, Any],
    rng: np.random.Generator | None = None,
) -> Config:
    """`config` with `changes` applied and conditional dimensions repaired;
    raises ConfigError if a changed value is outside the space."""
    values = {**config, **changes}
    repaired: dict[str, Any] = {}
    for dim in space.resolution_order:
        if not dim.applies(repaired):
            continue
        if dim.name in values:
            repaired[dim.name] = values[dim.name]
        else:
            repaired[dim.name] = dim.draw(rng) if rng is not None else middle(dim)
    return space.validate(repaired)


def perturb(dim: Dimension, value: Any, rng: np.random.Generator) -> Any:
    """A value of `dim` near `value` and different from it (categorical: another
    value, preferring neighbours in the listed order)."""
    if dim.categorical:
        others = [v for v in dim.values if v != value]
        if not others:
            raise ValueError(f"{dim.name} has the single value {value!r}: nothing to perturb to")
        if value in dim.values:
            near = [v for v in neighbours(dim, value) if v is not None]
            if near and rng.random() < 0.7:
                return near[int(rng.integers(len(near)))]
        return others[int(rng.integers(len(others)))]
    # Move by 10-30% of the range (log range for log dimensions), away from a
    # bound when the value sits on it: smaller steps are near-duplicates.
    share = rng.uniform(0.1, 0.3)
    if dim.log:
        span = math.log(dim.high / dim.low)
        step = math.exp(share * span)
        up = value * step <= dim.high and (value / step < dim.low or rng.random() < 0.5)
        moved = value * step if up else value / step
    else:
        step = share * (dim.high - dim.low)
        up = value + step <= dim.high and (value - step < dim.low or rng.random() < 0.5)
        moved = value + step if up else value - step
    return normalise_float(min(max(moved, dim.low), dim.high))


def neighbours(dim: Dimension, value: Any) -> tuple[Any, Any]:
    """The categorical values listed just before and after `value` (None at an end)."""
    index = dim.values.index(value)
    before = dim.values[index - 1] if index > 0 else None
    after = dim.values[index + 1] if index + 1 < len(dim.values) else None
    return before, after
