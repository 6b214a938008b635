"""An offline researcher that follows written rules (explicitly not an LLM).

    policy = RulesPolicy(space, top_k=5, explore_fraction=0.3, banned_recent=20)
    proposals = policy.propose(history, n=4, rng=np.random.default_rng(0))

With no finished experiment it explores: uniform draws whose encoders and
backbones cycle through the least-used values. Otherwise each round:
- explores in `max(1, explore_fraction * n)` slots (none when n = 1): the
  best config moved to the least-used encoder and backbone that differ from
  the leader's, so one idea meets both diversity rules of the paper's prompt
  (a non-leading backbone, a non-leading encoder);
- exploits in the rest: a leaderboard config (the top one twice as often as
  the next) with one or two dimensions mutated to nearby values; mutating
  the leader is high priority, others medium.
It never proposes a config that is taken (finished, queued, running) or
banned (one of the `banned_recent` latest failures), nor one twice. It is
the default agent when no LLM key is set.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ..space import Config, Space
from .edits import perturb, replace
from .history import Experiment, History
from .policy import Policy
from .proposal import Proposal

ARCHITECTURE = ("encoder", "backbone")


class RulesPolicy(Policy):
    policy = source = "rules"

    def __init__(
        self,
        space: Space,
        name: str | None = None,
        *,
        top_k: int = 5,
        explore_fraction: float = 0.3,
        banned_recent: int = 20,
    ):
        super().__init__(space, name)
        self.top_k, self.explore_fraction, self.banned_recent = (
            top_k,
            explore_fraction,
            banned_recent,
        )

    def _propose(self, history: History, n: int, rng: np.random.Generator) -> list[Proposal]:
        seen = history.taken_fingerprints()
        seen |= {exp.fingerprint for exp in history.failures(self.banned_recent) if exp.config}
        leaders = [exp for exp in history.leaderboard(self.top_k) if exp.config is not None]
        usage = {
            name: Counter(exp.raw_config.get(name) for exp in history.experiments)
            for name in ARCHITECTURE
            if name in self.space.dimensions
        }
        if not leaders:
            return [self._explore_blind(i, usage, seen, rng) for i in range(n)]
        n_explore = 0 if n == 1 else max(1, round(self.explore_fraction * n))
        proposals = [self._explore(leaders[0], usage, seen, rng) for _ in range(n_explore)]
        proposals += [self._exploit(leaders, seen, rng) for _ in range(n - n_explore)]
        return proposals

    # --------------------------------------------------------------- exploring
    def _least_used(self, name: str, usage, rng, avoid: Any = None) -> Any:
        values = [v for v in self.space.dimensions[name].values if v != avoid]
        if not values:  # a subspace with a single value: nothing else to explore
            return avoid
        fewest = min(usage[name][v] for v in values)
        ties = [v for v in values if usage[name][v] == fewest]
        choice = ties[int(rng.integers(len(ties)))]
        usage[name][choice] += 1  # the next explore slot moves on to another value
        return choice

    def _explore_blind(self, index, usage, seen, rng) -> Proposal:
        for _ in range(100):
            changes = {name: self._least_used(name, usage, rng) for name in usage}
            config = replace(self.space, self.space.sample_one(rng), changes, rng)
            if config.fingerprint not in seen:
                break
        else:
            config = self._novel_sample(rng, seen)
        seen.add(config.fingerprint)
        return self._proposal(
            config, "medium", "no results yet: explore the least-used architecture", None
        )

    def _explore(self, leader: Experiment, usage, seen, rng) -> Proposal:
        for _ in range(100):
            changes = {
                name: self._least_used(name, usage, rng, avoid=leader.config[name])
                for name in usage
            }
            config = replace(self.space, leader.config, changes, rng)
            if config.fingerprint not in seen:
                break
        else:
            config = self._novel_sample(rng, seen)
        seen.add(config.fingerprint)
        moved = ", ".join(f"{name} {leader.config[name]} -> {config[name]}" for name in usage)
        return self._proposal(
            config,
            "medium",
            f"diversity: the leader's config ({leader.id}, val AP {leader.val_ap:.3f}) on an "
            f"under-used architecture: {moved}",
            leader.id,
        )

    # -------------------------------------------------------------- exploiting
    def _exploit(self, leaders: list[Experiment], seen: set[str], rng) -> Proposal:
        # The leader gets weight 2, the others 1 each.
        weights = np.array([2.0] + [1.0] * (len(leaders) - 1))
        for _ in range(100):
            rank = int(rng.choice(len(leaders), p=weights / weights.sum()))
            parent = leaders[rank]
            config, changed = self._mutate(parent.config, rng)
            if config.fingerprint not in seen:
                break
        else:
            return self._proposal(
                self._novel_sample(rng, seen),
                "low",
                "mutations were all taken: a random draw",
                None,
            )
        seen.add(config.fingerprint)
        what = ", ".join(f"{key} {parent.config.get(key)} -> {config.get(key)}" for key in changed)
        return self._proposal(
            config,
            "high" if rank == 0 else "medium",
            f"exploit #{rank + 1} ({parent.id}, val AP {parent.val_ap:.3f}): {what}",
            parent.id,
        )

    def _mutate(self, config: Config, rng) -> tuple[Config, list[str]]:
        # Only dimensions that can change (a subspace may pin some to one value).
        names = [
            name
            for name in config
            if name not in ARCHITECTURE
            and not (self.space.dimensions[name].categorical
                     and len(self.space.dimensions[name].values) < 2)
        ]  # fmt: skip
        count = min(len(names), 1 if rng.random() < 0.6 else 2)
        chosen = [names[i] for i in rng.choice(len(names), size=count, replace=False)]
        changes = {name: perturb(self.space.dimensions[name], config[name], rng) for name in chosen}
        return replace(self.space, config, changes, rng), chosen

    def _proposal(self, config, priority, rationale, parent_id) -> Proposal:
        return Proposal(
            config,
            agent=self.name,
            source=self.source,
            priority=priority,
            rationale=rationale,
            parent_id=parent_id,
        )
