"""Duplicate detection: exact fingerprints and the paper's near-duplicates.

    dedup = Deduplicator(space, jaccard_threshold=0.9, continuous_tolerance=0.05)
    dedup.add("r0001-rules-00", config)         # finished, queued, or kept this round
    dedup.check(config)   # None, or Match(fate="duplicate"|"near_duplicate", of=id, reason=...)

Exact: same fingerprint. Near (paper Appendix B): categorical Jaccard
similarity above the threshold. The paper's rule alone would also remove
every learning-rate variant of a sweep (their categorical values are equal,
Jaccard 1.0), which contradicts the paper's own auto-sweep; so a near
duplicate must also be within `continuous_tolerance` on every continuous
dimension, measured as a share of the dimension's range (log range for log
dimensions). `continuous_tolerance: null` restores the paper's rule.

A round checks each candidate against every finished and queued config (the
paper's ledger: 10,000 and more), so the known configs are kept as arrays
(categorical values as codes, continuous values scaled to their range): a
check is the Jaccard similarity to all of them at once, then the continuous
distance to those above the threshold. The arrays only narrow the search:
the first config they flag that the scalar rule (`continuous_distance`)
confirms is the match, so a value on the tolerance's edge is judged as the
pairwise definition judges it, whatever the rounding of scaled values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..space import Config, Space

ABSENT = -1  # the code of a categorical dimension a config does not have
SLACK = 1e-9  # how far past the tolerance the arrays still flag a config


@dataclass(frozen=True)
class Match:
    fate: str  # duplicate | near_duplicate
    of: str
    reason: str


class Deduplicator:
    def __init__(
        self,
        space: Space,
        jaccard_threshold: float = 0.9,
        continuous_tolerance: float | None = 0.05,
    ):
        self.space = space
        self.jaccard_threshold = jaccard_threshold
        self.continuous_tolerance = continuous_tolerance
        self._by_fingerprint: dict[str, str] = {}
        self._ids: list[str] = []
        self._configs: list[Config] = []
        self._categorical = [dim.name for dim in space.dimensions.values() if dim.categorical]
        self._continuous = [dim for dim in space.dimensions.values() if not dim.categorical]
        # Codes are handed out as values turn up, so a value outside the
        # space's list still compares by equality, as the item sets did.
        self._codes: list[dict[Any, int]] = [{} for _ in self._categorical]
        self._cat = _Rows(len(self._categorical), np.int32)
        self._cont = _Rows(len(self._continuous), np.float64)

    def add(self, experiment_id: str, config: Config) -> None:
        if config.fingerprint not in self._by_fingerprint:
            self._by_fingerprint[config.fingerprint] = experiment_id
            self._ids.append(experiment_id)
            self._configs.append(config)
            self._cat.append(self._encode(config))
            self._cont.append(self._scale(config))

    def check(self, config: Config) -> Match | None:
        same = self._by_fingerprint.get(config.fingerprint)
        if same is not None:
            return Match("duplicate", same, f"duplicate of {same} (same fingerprint)")
        similarity = self._jaccard(self._encode(config))
        near = np.flatnonzero(similarity > self.jaccard_threshold)
        if self.continuous_tolerance is not None and len(near):
            scaled = self._distance(self._scale(config), near)
            near = near[scaled <= self.continuous_tolerance + SLACK]
        for index in near:
            known = self._configs[index]
            distance = self.continuous_distance(config, known)
            if self.continuous_tolerance is None or distance <= self.continuous_tolerance:
                of = self._ids[index]
                return Match(
                    "near_duplicate",
                    of,
                    f"near-duplicate of {of} (categorical Jaccard {similarity[index]:.2f} > "
                    f"{self.jaccard_threshold:g}, continuous distance {distance:.3f})",
                )
        return None

    def continuous_distance(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
        """Largest per-dimension difference over continuous dimensions, as a share
        of the range; 1.0 when one config has a dimension the other lacks."""
        distance = 0.0
        for dim in self._continuous:
            if dim.name not in a and dim.name not in b:
                continue
            if dim.name not in a or dim.name not in b:
                return 1.0
            if dim.log:
                share = abs(math.log(a[dim.name] / b[dim.name])) / math.log(dim.high / dim.low)
            else:
                share = abs(a[dim.name] - b[dim.name]) / (dim.high - dim.low)
            distance = max(distance, share)
        return distance

    # ------------------------------------------------------------------ arrays
    def _encode(self, config: Mapping[str, Any]) -> list[int]:
        return [
            codes.setdefault(config[name], len(codes)) if name in config else ABSENT
            for name, codes in zip(self._categorical, self._codes, strict=True)
        ]

    def _scale(self, config: Mapping[str, Any]) -> list[float]:
        """Continuous values as shares of their range (of the log range on log
        dimensions), NaN where the config lacks the dimension."""
        return [
            float(dim.unit(config[dim.name])) if dim.name in config else math.nan
            for dim in self._continuous
        ]

    def _jaccard(self, codes: list[int]) -> np.ndarray:
        """Categorical Jaccard of `codes` with every known config: shared
        (dimension, value) items over the items of either."""
        known = self._cat.view
        candidate = np.asarray(codes, dtype=np.int32)
        present = candidate != ABSENT
        shared = ((known == candidate) & present).sum(axis=1)
        union = (known != ABSENT).sum(axis=1) + present.sum() - shared
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, shared / union, 1.0)

    def _distance(self, scaled: list[float], rows: np.ndarray) -> np.ndarray:
        """`continuous_distance` of the candidate to the known configs `rows`."""
        known = self._cont.view[rows]
        candidate = np.asarray(scaled, dtype=np.float64)
        known_has, candidate_has = ~np.isnan(known), ~np.isnan(candidate)
        share = np.where(known_has & candidate_has, np.abs(known - candidate), 0.0)
        share = np.where(known_has != candidate_has, 1.0, share)
        return share.max(axis=1, initial=0.0)


class _Rows:
    """A 2-D array that grows by rows, doubling its capacity when full."""

    def __init__(self, width: int, dtype: type):
        self._data = np.empty((64, width), dtype=dtype)
        self._size = 0

    def append(self, row: list) -> None:
        if self._size == len(self._data):
            self._data = np.concatenate([self._data, np.empty_like(self._data)])
        self._data[self._size] = row
        self._size += 1

    @property
    def view(self) -> np.ndarray:
        return self._data[: self._size]
