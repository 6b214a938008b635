"""One campaign's settings, from params.yaml's `campaign` section.

    settings = CampaignSettings.from_params(params, "agents")
    settings.space            # the space, narrowed by the campaign's `limits`
    settings.round_dir(3)     # results/campaigns/agents/round_0003

A campaign names its agents, its number of rounds, its shards per round,
its per-round budget and ideas per agent (overriding `agents`), and
optionally `limits` on the space (a subspace, e.g. small models for the
embedded default). The campaign's name and round seed the proposals, so
a rerun of a round proposes the same configs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..agents.plan import PlanSettings
from ..hashing import sha256_text
from ..space import Space


@dataclass(frozen=True)
class CampaignSettings:
    name: str
    root: Path
    agents: tuple[str, ...]
    rounds: int
    shards: int
    seed: int
    space: Space
    plan: PlanSettings

    @classmethod
    def from_params(cls, params: Mapping[str, Any], name: str) -> CampaignSettings:
        section = params["campaign"]
        if name not in section["campaigns"]:
            raise ValueError(
                f"unknown campaign {name!r}; params.yaml defines {sorted(section['campaigns'])}"
            )
        raw = section["campaigns"][name]
        plan = dataclasses.replace(
            PlanSettings.from_params(params["agents"]),
            budget=int(raw["budget_per_round"]),
            ideas_per_agent=int(raw["ideas_per_agent"]),
        )
        return cls(
            name=name,
            root=Path(section["root"]) / name,
            agents=tuple(raw["agents"]),
            rounds=int(raw["rounds"]),
            shards=int(raw["shards"]),
            # Different campaigns draw differently even with one campaign seed.
            seed=int(section["seed"]) + int(sha256_text(name)[:8], 16),
            space=Space.from_params(params).restrict(raw.get("limits") or {}),
            plan=plan,
        )

    def round_dir(self, round_index: int) -> Path:
        return self.root / f"round_{round_index:04d}"

    def plan_file(self, round_index: int) -> Path:
        return self.round_dir(round_index) / "plan.json"

    def shard_file(self, round_index: int, shard: int) -> Path:
        return self.round_dir(round_index) / f"shard_{shard:03d}.json"

    def run_dir(self, round_index: int, experiment_id: str) -> Path:
        return self.round_dir(round_index) / "runs" / experiment_id

    def experiments_file(self, round_index: int) -> Path:
        return self.round_dir(round_index) / "experiments.jsonl"
