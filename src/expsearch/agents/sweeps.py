"""Sweeps: list values in an idea, and automatic variants of promising bases.

    variants = expand_axes({"learning_rate": [1e-4, 3e-4], "seq_len": 20, ...}, limit=8)
    auto = auto_sweep(space, base_config, SweepSettings(...))   # [(label, config), ...]

A list value in an agent's idea is a sweep axis; several axes give their
product. Beyond `limit` variants the idea is rejected with a SweepError
naming the axes and the count (never passed on unexpanded). The auto-sweep
expands a promising base the way the paper's sweep module did: a learning
rate grid (the base rate times each factor, inside the space) and, for a
focal loss, the listed focal gammas; at most `max_variants`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..space import Config, ConfigError, Space, normalise_float
from .edits import replace


class SweepError(ValueError):
    """An idea's sweep cannot be expanded (empty axis, or over the limit)."""


@dataclass(frozen=True)
class SweepSettings:
    max_variants: int = 8  # limit of an idea's own sweep axes, and of an auto-sweep
    auto_priorities: tuple[str, ...] = ("high",)  # bases of these priorities are auto-swept
    learning_rate_factors: tuple[float, ...] = (0.3, 3.0)
    focal_gammas: tuple[float, ...] = (1.0, 2.0, 3.0)


def expand_axes(idea: Mapping[str, Any], limit: int) -> list[dict[str, Any]]:
    """The ideas that `idea`'s list values stand for (one if it has none)."""
    axes = {key: value for key, value in idea.items() if isinstance(value, list)}
    for key, values in axes.items():
        if not values:
            raise SweepError(f"{key}: an empty list is not a sweep axis")
    count = math.prod(len(values) for values in axes.values())
    if count > limit:
        sizes = " x ".join(f"{key} ({len(values)})" for key, values in axes.items())
        raise SweepError(f"the sweep {sizes} gives {count} variants, over the limit of {limit}")
    return [
        {**idea, **dict(zip(axes, combo, strict=True))}
        for combo in itertools.product(*axes.values())
    ]


def auto_sweep(space: Space, base: Config, settings: SweepSettings) -> list[tuple[str, Config]]:
    """Variants of `base`, each with a label saying what changed; variants that
    fall outside the space or equal the base are skipped."""
    changes: list[tuple[str, dict[str, Any]]] = []
    if "learning_rate" in base:
        for factor in settings.learning_rate_factors:
            changes.append(
                (f"learning_rate x{factor:g}", {"learning_rate": base["learning_rate"] * factor})
            )
    if base.get("loss") == "focal" and "focal_gamma" in base:
        for gamma in settings.focal_gammas:
            changes.append((f"focal_gamma {gamma:g}", {"focal_gamma": gamma}))
    variants: list[tuple[str, Config]] = []
    seen = {base.fingerprint}
    for label, change in changes:
        try:
            config = replace(space, base, _clip(space, change))
        except ConfigError:
            continue
        if config.fingerprint not in seen:
            seen.add(config.fingerprint)
            variants.append((label, config))
    return variants[: settings.max_variants]


def _clip(space: Space, change: Mapping[str, Any]) -> dict[str, Any]:
    """Float values moved inside their dimension's bounds (a x3 grid at the edge
    of the space still yields the edge value)."""
    out = {}
    for key, value in change.items():
        dim = space.dimensions.get(key)
        if dim is not None and not dim.categorical:
            value = normalise_float(min(max(float(value), dim.low), dim.high))
        out[key] = value
    return out
