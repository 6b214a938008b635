"""The configuration space C of the paper (Definition 1) and the configs in it.

    space = Space.from_params(params)      # params: a loaded params.yaml
    cfg = space.validate(mapping)           # a Config, or ConfigError naming each bad key
    cfg.fingerprint                         # stable hash of the canonical form
    cfg.to_yaml(), cfg.to_json()            # both round-trip through space.validate
    space.jaccard(a, b)                     # the paper's categorical Jaccard similarity
    space.sample(n, seed=0)                 # seeded uniform sampling over C
    space.discrete_cells                    # 108,000 for the paper's space
    space.summary()                         # a JSON-able description

A dimension is categorical (a finite set of values) or float (an interval,
optionally log-scaled). Each belongs to one group (arch, loss, train, data)
and may exist only under a condition on unconditional categorical dimensions
(`when`: focal_gamma exists only when loss = focal). The discrete cell count
is the product of the sizes of the categorical dimensions whose `cells` flag
is true, so model-size knobs can be searched without changing the paper's
108,000 unless params say so.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .yamlio import dump_yaml

GROUPS = ("arch", "loss", "train", "data")
FLOAT_DIGITS = 10  # significant digits kept by the canonical form of a float


class SpaceError(ValueError):
    """The space definition itself is wrong; `key` is the path inside `space`."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")


class ConfigError(ValueError):
    """A config is not a point of the space. `problems` lists (key, reason) pairs."""

    def __init__(self, problems: Sequence[tuple[str, str]]):
        self.problems = list(problems)
        self.key = self.problems[0][0]
        super().__init__("; ".join(f"{key}: {reason}" for key, reason in self.problems))


def normalise_float(value: float) -> float:
    """Round to FLOAT_DIGITS significant digits so that equal numbers written
    differently (3e-4, 0.0003, 0.00030000000000000003) have one canonical form."""
    return float(f"{value:.{FLOAT_DIGITS}g}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Dimension:
    """One axis of C. Built by Space.from_dict, which checks the definition."""

    name: str
    group: str
    type: str  # "categorical" | "float"
    values: tuple = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    cells: bool = True
    when: tuple[tuple[str, tuple], ...] = ()

    @property
    def categorical(self) -> bool:
        return self.type == "categorical"

    def applies(self, config: Mapping[str, Any]) -> bool:
        """Whether this dimension exists for a config with these controller values."""
        return all(config.get(dim) in allowed for dim, allowed in self.when)

    def describe_when(self) -> str:
        return " and ".join(
            f"{dim} is {allowed[0]}" if len(allowed) == 1 else f"{dim} is one of {list(allowed)}"
            for dim, allowed in self.when
        )

    def domain(self) -> str:
        if self.categorical:
            return f"one of {list(self.values)}"
        scale = ", log scale" if self.log else ""
        return f"a number in [{self.low:g}, {self.high:g}]{scale}"

    def canonical(self, value: Any) -> Any:
        """The canonical form of `value`, or a ConfigError naming this dimension."""
        if self.categorical:
            for allowed in self.values:
                if type(value) is type(allowed) and value == allowed:
                    return allowed
            if any(type(value) is type(allowed) for allowed in self.values):
                reason = f"{value!r} is not allowed; expected {self.domain()}"
            else:
                kind = type(self.values[0]).__name__
                reason = f"wrong type {type(value).__name__} ({value!r}); expected {kind}, {self.domain()}"
            raise ConfigError([(self.name, reason)])
        if not _is_number(value):
            raise ConfigError(
                [
                    (
                        self.name,
                        f"wrong type {type(value).__name__} ({value!r}); expected {self.domain()}",
                    )
                ]
            )
        number = float(value)
        if not math.isfinite(number) or not self.low <= number <= self.high:
            raise ConfigError(
                [(self.name, f"{value!r} is outside the space; expected {self.domain()}")]
            )
        return normalise_float(number)

    def unit(self, value: Any) -> Any:
        """A float dimension's value as a share of its range, of its log range on
        log dimensions (0 at low, 1 at high); scalars or numpy arrays."""
        if self.log:
            return np.log(np.divide(value, self.low)) / math.log(self.high / self.low)
        return np.subtract(value, self.low) / (self.high - self.low)

    def draw(self, rng: np.random.Generator) -> Any:
        """A uniform (log-uniform on log dimensions) draw from the domain."""
        if self.categorical:
            return self.values[int(rng.integers(len(self.values)))]
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return normalise_float(min(max(value, self.low), self.high))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"group": self.group, "type": self.type}
        if self.categorical:
            out["values"] = list(self.values)
            out["cells"] = self.cells
        else:
            out.update(low=self.low, high=self.high, log=self.log)
        if self.when:
            out["when"] = {dim: list(allowed) for dim, allowed in self.when}
        return out


class Config(Mapping[str, Any]):
    """An immutable, validated point of C in canonical form (keys sorted,
    floats normalised). Made by Space.validate; compare, hash and fingerprint it."""

    __slots__ = ("_fingerprint", "_items")

    def __init__(self, items: Mapping[str, Any]):
        self._items = dict(sorted(items.items()))
        digest = hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()
        self._fingerprint = digest[:16]

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._fingerprint)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Config):
            return self._fingerprint == other._fingerprint and self._items == other._items
        return NotImplemented

    def __repr__(self) -> str:
        return f"Config({self._fingerprint}, {self._items})"

    @property
    def fingerprint(self) -> str:
        """First 16 hex digits of the SHA-256 of the canonical JSON."""
        return self._fingerprint

    def canonical_json(self) -> str:
        return json.dumps(self._items, sort_keys=True, separators=(",", ":"))

    def to_dict(self) -> dict[str, Any]:
        return dict(self._items)

    def to_json(self) -> str:
        return json.dumps(self._items, sort_keys=True, indent=2)

    def to_yaml(self) -> str:
        return dump_yaml(self._items)


class Space:
    """The configuration space: an ordered set of dimensions."""

    def __init__(self, dimensions: Sequence[Dimension]):
        self.dimensions: dict[str, Dimension] = {dim.name: dim for dim in dimensions}
        # Unconditional dimensions first: conditions read their values.
        self._resolution_order = sorted(self.dimensions.values(), key=lambda dim: bool(dim.when))

    # ---------------------------------------------------------------- building
    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Space:
        return cls.from_dict(params["space"])

    @classmethod
    def from_dict(cls, space: Mapping[str, Any]) -> Space:
        """Build from the `space` section of params.yaml, checking what the
        JSON schema cannot: bounds, value types, and conditions."""
        built: dict[str, Dimension] = {}
        for name, spec in space["dimensions"].items():
            built[name] = _build_dimension(name, spec, built)
        return cls(list(built.values()))

    def restrict(self, limits: Mapping[str, Any]) -> Space:
        """A subspace: categorical dimensions keep only the listed values, float
        dimensions take narrower [low, high]. `limits` maps a dimension name to
        a list (categorical) or {low, high} (float); the result is checked
        like any space (SpaceError names a value that is not in the space)."""
        dimensions = []
        for name, dim in self.dimensions.items():
            limit = limits.get(name)
            if limit is None:
                dimensions.append(dim)
                continue
            path = f"limits.{name}"
            if dim.categorical:
                values = tuple(limit)
                outside = [v for v in values if v not in dim.values]
                if outside or not values:
                    raise SpaceError(
                        path, f"{outside or 'no values'}: expected values of {dim.values}"
                    )
                dimensions.append(dataclasses.replace(dim, values=values))
            else:
                low, high = float(limit["low"]), float(limit["high"])
                if not dim.low <= low < high <= dim.high:
                    raise SpaceError(
                        path, f"[{low:g}, {high:g}] is not inside [{dim.low:g}, {dim.high:g}]"
                    )
                dimensions.append(dataclasses.replace(dim, low=low, high=high))
        unknown = sorted(set(limits) - set(self.dimensions))
        if unknown:
            raise SpaceError("limits", f"unknown dimensions {unknown}; the space has {self.names}")
        return Space(dimensions)

    # ------------------------------------------------------------- properties
    @property
    def names(self) -> list[str]:
        return list(self.dimensions)

    @property
    def resolution_order(self) -> list[Dimension]:
        """Dimensions with unconditional ones first, the order in which a
        config's values can be resolved (conditions read earlier values)."""
        return list(self._resolution_order)

    @property
    def categorical(self) -> list[Dimension]:
        return [dim for dim in self.dimensions.values() if dim.categorical]

    def cells(self, group: str | None = None, *, all_categorical: bool = False) -> int:
        """Discrete cell count, over one group or all; `all_categorical` also
        counts categorical dimensions marked `cells: false`."""
        return math.prod(
            len(dim.values)
            for dim in self.categorical
            if (group is None or dim.group == group) and (dim.cells or all_categorical)
        )

    @property
    def discrete_cells(self) -> int:
        return self.cells()

    # ------------------------------------------------------------- validation
    def validate(self, raw: Any) -> Config:
        """Return the canonical Config for `raw`, or raise ConfigError listing
        every unknown, missing, mistyped, out-of-space or inapplicable key."""
        if not isinstance(raw, Mapping):
            raise ConfigError(
                [
                    (
                        "<config>",
                        f"expected a mapping of dimension names to values, got {type(raw).__name__}",
                    )
                ]
            )
        problems: list[tuple[str, str]] = []
        for key in raw:
            if key not in self.dimensions:
                problems.append((str(key), self._unknown_key_reason(key)))
        values: dict[str, Any] = {}
        for dim in self._resolution_order:
            given = dim.name in raw
            if dim.when:
                if any(ctrl not in values for ctrl, _ in dim.when):
                    continue  # its controller is already reported as bad
                if not dim.applies(values):
                    if given:
                        problems.append(
                            (dim.name, f"given, but it applies only when {dim.describe_when()}")
                        )
                    continue
            if not given:
                when = f" (required because {dim.describe_when()})" if dim.when else ""
                problems.append((dim.name, f"missing{when}; expected {dim.domain()}"))
                continue
            try:
                values[dim.name] = dim.canonical(raw[dim.name])
            except ConfigError as exc:
                problems.extend(exc.problems)
        if problems:
            raise ConfigError(problems)
        return Config(values)

    def is_valid(self, raw: Any) -> bool:
        try:
            self.validate(raw)
        except ConfigError:
            return False
        return True

    def _unknown_key_reason(self, key: Any) -> str:
        close = difflib.get_close_matches(str(key), self.names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key; {hint}the space's dimensions are {self.names}"

    # -------------------------------------------------------------- similarity
    def categorical_items(self, config: Mapping[str, Any]) -> set[tuple[str, Any]]:
        return {(dim.name, config[dim.name]) for dim in self.categorical if dim.name in config}

    def jaccard(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
        """|A & B| / |A | B| over the (dimension, value) pairs of the categorical
        dimensions (paper Appendix B: > 0.9 marks a near-duplicate)."""
        items_a, items_b = self.categorical_items(a), self.categorical_items(b)
        union = items_a | items_b
        return len(items_a & items_b) / len(union) if union else 1.0

    # ---------------------------------------------------------------- sampling
    def sample_one(self, rng: np.random.Generator) -> Config:
        values: dict[str, Any] = {}
        for dim in self._resolution_order:
            if dim.applies(values):
                values[dim.name] = dim.draw(rng)
        return Config(values)

    def sample(self, n: int, seed: int = 0) -> list[Config]:
        """n configs drawn independently and uniformly (log-uniformly on log
        dimensions); the same seed gives the same list."""
        rng = np.random.default_rng(seed)
        return [self.sample_one(rng) for _ in range(n)]

    # ----------------------------------------------------------------- summary
    def branches(self) -> list[dict[str, Any]]:
        """Dimension counts for each combination of the values that conditions
        read (the paper's 'continuous volume of dimension 6-8 by loss type')."""
        controllers = sorted({ctrl for dim in self.dimensions.values() for ctrl, _ in dim.when})
        combos = itertools.product(*(self.dimensions[name].values for name in controllers))
        out = []
        for combo in combos:
            point = dict(zip(controllers, combo, strict=True))
            active = [dim for dim in self.dimensions.values() if dim.applies(point)]
            n_cat = sum(dim.categorical for dim in active)
            out.append(
                {
                    "when": point,
                    "categorical": n_cat,
                    "continuous": len(active) - n_cat,
                    "total": len(active),
                }
            )
        return out

    def summary(self) -> dict[str, Any]:
        branches = self.branches()
        continuous = [branch["continuous"] for branch in branches]
        return {
            "discrete_cells": self.discrete_cells,
            "discrete_cells_with_uncounted": self.cells(all_categorical=True),
            "groups": {
                group: {
                    "cells": self.cells(group),
                    "dimensions": [d.name for d in self.dimensions.values() if d.group == group],
                }
                for group in GROUPS
            },
            "n_dimensions": len(self.dimensions),
            "continuous_dimensions": {"min": min(continuous), "max": max(continuous)},
            "branches": branches,
            "dimensions": {name: dim.to_dict() for name, dim in self.dimensions.items()},
        }


def _build_dimension(
    name: str, spec: Mapping[str, Any], earlier: Mapping[str, Dimension]
) -> Dimension:
    path = f"space.dimensions.{name}"

    def fail(field: str, message: str) -> SpaceError:
        return SpaceError(f"{path}.{field}" if field else path, message)

    kind = spec["type"]
    if spec.get("group") not in GROUPS:
        raise fail("group", f"{spec.get('group')!r} is not one of {list(GROUPS)}")
    if kind == "categorical":
        for field in ("low", "high", "log"):
            if field in spec:
                raise fail(
                    field, "only float dimensions have bounds; categorical ones list `values`"
                )
        values = spec.get("values")
        if not values:
            raise fail("values", "a categorical dimension needs a non-empty list of values")
        kinds = {type(v) for v in values}
        if bool in kinds or len(kinds) != 1:
            raise fail(
                "values", f"values must all be strings or all numbers of one type, got {values}"
            )
        if len(set(values)) != len(values):
            raise fail("values", f"values repeat: {values}")
        common = dict(values=tuple(values), cells=bool(spec.get("cells", True)))
    elif kind == "float":
        for field in ("values", "cells"):
            if field in spec:
                raise fail(field, "float dimensions have `low`, `high` and `log`, not this")
        if "low" not in spec or "high" not in spec:
            raise fail("", "a float dimension needs `low` and `high`")
        low, high, log = float(spec["low"]), float(spec["high"]), bool(spec.get("log", False))
        if not low < high:
            raise fail("high", f"high ({high:g}) must be greater than low ({low:g})")
        if log and low <= 0:
            raise fail("low", f"a log-scale dimension needs low > 0, got {low:g}")
        common = dict(low=low, high=high, log=log)
    else:
        raise fail("type", f"{kind!r} is not one of ['categorical', 'float']")

    when = []
    for ctrl, allowed in (spec.get("when") or {}).items():
        target = earlier.get(ctrl)
        if target is None or not target.categorical or target.when:
            raise fail(
                f"when.{ctrl}",
                "a condition must name an unconditional categorical dimension defined above "
                f"(defined so far: {[d.name for d in earlier.values() if d.categorical and not d.when]})",
            )
        for value in allowed:
            if value not in target.values:
                raise fail(
                    f"when.{ctrl}", f"{value!r} is not a value of {ctrl}: {list(target.values)}"
                )
        when.append((ctrl, tuple(allowed)))
    return Dimension(name=name, group=spec["group"], type=kind, when=tuple(when), **common)


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """A human-readable table of a Space.summary()."""
    lines = [
        "# Configuration space",
        "",
        f"Discrete cells: **{summary['discrete_cells']:,}**"
        + (
            f" ({summary['discrete_cells_with_uncounted']:,} counting the size knobs marked `cells: false`)"
            if summary["discrete_cells_with_uncounted"] != summary["discrete_cells"]
            else ""
        ),
        f"Continuous dimensions per branch: {summary['continuous_dimensions']['min']}"
        f"-{summary['continuous_dimensions']['max']}",
        "",
        "| dimension | group | domain | condition |",
        "|---|---|---|---|",
    ]
    for name, dim in summary["dimensions"].items():
        if dim["type"] == "categorical":
            domain = ", ".join(str(v) for v in dim["values"])
            domain = f"{{{domain}}}" + ("" if dim["cells"] else " (not counted in cells)")
        else:
            domain = f"[{dim['low']:g}, {dim['high']:g}]" + (" log" if dim["log"] else "")
        when = ", ".join(f"{k} in {v}" for k, v in dim.get("when", {}).items())
        lines.append(f"| {name} | {dim['group']} | {domain} | {when} |")
    lines += ["", "| group | cells |", "|---|---|"]
    lines += [f"| {group} | {info['cells']:,} |" for group, info in summary["groups"].items()]
    return "\n".join(lines) + "\n"
