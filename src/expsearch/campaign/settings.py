"""One campaign's settings: what its rounds need, parsed once.

    settings = campaign_settings(params, "agents")   # expsearch.settings builds it
    settings.space            # the space, narrowed by the campaign's `limits`
    settings.plan             # sweeps, dedup and the campaign's budget and ideas per agent

A campaign names its agents, its number of rounds, its shards per round,
its per-round budget and ideas per agent (overriding `agents`), and
optionally its `fallback` for unused budget (overriding `agents.fallback`;
in `agent_settings`) and `limits` on the space (a subspace, e.g. small
models for the embedded default), and its `lag`: how many of the latest
rounds a proposal may run ahead of (0: every round waits for the results
of all earlier rounds; see layout.ledger_rounds). The campaign's name and round seed the
proposals, so a rerun of a round proposes the same configs. Where its
files live is the layout's business (layout.py), not the settings'.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..agents.plan import PlanSettings
from ..agents.registry import AgentSettings
from ..space import Space
from ..training.settings import TrainSettings


@dataclass(frozen=True)
class CampaignSettings:
    name: str
    agents: tuple[str, ...]
    rounds: int
    shards: int
    seed: int
    space: Space
    agent_settings: AgentSettings
    training: TrainSettings
    lag: int = 0  # rounds whose results a proposal does not wait for (layout.ledger_rounds)
    streams: int = 1  # configs a shard trains at once on its device (training.concurrent)

    @property
    def plan(self) -> PlanSettings:
        return self.agent_settings.plan
