"""The search-policy interface pi(c | H), and the uniform random policy.

    policy = RandomPolicy(space)                     # or TPEPolicy, RulesPolicy, LLMPolicy
    proposals = policy.propose(history, n=4, rng=np.random.default_rng(0))
    policy.report                                    # AgentReport of that call

Every policy returns at most `n` proposals, each a validated Config that is
neither finished, queued nor running in `history` and not repeated within
the call. Offline policies return exactly `n` and are deterministic given
the rng. What else happened in a call (rejected ideas, LLM calls, failures)
is in `policy.report`, which the round planner reads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..space import Config, Space
from .history import History
from .proposal import AgentReport, Proposal


class PolicyError(RuntimeError):
    """A policy could not propose (the space is exhausted, or its provider failed)."""


class Policy(ABC):
    policy = "abstract"  # the policy's kind: random | tpe | rules | llm
    source = "random"  # the `source` of its proposals

    def __init__(self, space: Space, name: str | None = None):
        self.space = space
        self.name = name or self.policy
        self.note: str | None = None  # said in every report, e.g. who it stands in for
        self.report = AgentReport(self.name, self.policy)

    def propose(self, history: History, n: int, rng: np.random.Generator) -> list[Proposal]:
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        self.report = AgentReport(self.name, self.policy, note=self.note)
        return self._propose(history, n, rng)

    @abstractmethod
    def _propose(self, history: History, n: int, rng: np.random.Generator) -> list[Proposal]: ...

    def _novel_sample(self, rng: np.random.Generator, seen: set[str]) -> Config:
        """A uniform draw whose fingerprint is not in `seen` (which it joins)."""
        for _ in range(1000):
            config = self.space.sample_one(rng)
            if config.fingerprint not in seen:
                seen.add(config.fingerprint)
                return config
        raise PolicyError(
            f"{self.name}: 1000 uniform draws were all taken; is the space exhausted?"
        )


class RandomPolicy(Policy):
    """Uniform over C: categorical uniform x (log-)uniform continuous (paper's pi_rand)."""

    policy = source = "random"

    def _propose(self, history: History, n: int, rng: np.random.Generator) -> list[Proposal]:
        seen = history.taken_fingerprints()
        return [
            Proposal(
                self._novel_sample(rng, seen),
                agent=self.name,
                source=self.source,
                priority="medium",
                rationale="uniform draw over the space",
            )
            for _ in range(n)
        ]
