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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..space import Config, Space


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
        self._known: list[tuple[str, Config, frozenset]] = []

    def add(self, experiment_id: str, config: Config) -> None:
        if config.fingerprint not in self._by_fingerprint:
            self._by_fingerprint[config.fingerprint] = experiment_id
            items = frozenset(self.space.categorical_items(config))
            self._known.append((experiment_id, config, items))

    def check(self, config: Config) -> Match | None:
        same = self._by_fingerprint.get(config.fingerprint)
        if same is not None:
            return Match("duplicate", same, f"duplicate of {same} (same fingerprint)")
        items = self.space.categorical_items(config)
        for experiment_id, known, known_items in self._known:
            union = len(items | known_items)
            similarity = len(items & known_items) / union if union else 1.0
            if similarity <= self.jaccard_threshold:
                continue
            distance = self.continuous_distance(config, known)
            if self.continuous_tolerance is None or distance <= self.continuous_tolerance:
                return Match(
                    "near_duplicate",
                    experiment_id,
                    f"near-duplicate of {experiment_id} (categorical Jaccard {similarity:.2f} > "
                    f"{self.jaccard_threshold:g}, continuous distance {distance:.3f})",
                )
        return None

    def continuous_distance(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
        """Largest per-dimension difference over continuous dimensions, as a share
        of the range; 1.0 when one config has a dimension the other lacks."""
        distance = 0.0
        for dim in self.space.dimensions.values():
            if dim.categorical or (dim.name not in a and dim.name not in b):
                continue
            if dim.name not in a or dim.name not in b:
                return 1.0
            if dim.log:
                share = abs(math.log(a[dim.name] / b[dim.name])) / math.log(dim.high / dim.low)
            else:
                share = abs(a[dim.name] - b[dim.name]) / (dim.high - dim.low)
            distance = max(distance, share)
        return distance
