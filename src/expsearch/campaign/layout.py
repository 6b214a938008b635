"""Where a campaign's files live: the one definition of the ledger's layout.

    layout = CampaignLayout("results/campaigns")
    layout.plan("agents", 3)              # results/campaigns/agents/round_0003/plan.json
    layout.shard("agents", 3, 1)          # .../round_0003/shard_001.json
    layout.plan("{campaign}", "{round}")  # the same, as a Snakemake pattern
    layout.ledger("agents", 3)            # plans and experiments files of rounds 0, 1, 2

The Snakemake rules (workflow/rules/common.smk) and the `expsearch round` CLI
build their paths here; the library steps below them take paths as
arguments and never build one. A round index is formatted with four digits
and a shard with three; a string (a wildcard) is used as it is.
"""

from __future__ import annotations

from dataclasses import dataclass


def _number(value: int | str, digits: int) -> str:
    return value if isinstance(value, str) else f"{int(value):0{digits}d}"


@dataclass(frozen=True)
class CampaignLayout:
    root: str

    def round_dir(self, campaign: str, round_index: int | str) -> str:
        return f"{self.root}/{campaign}/round_{_number(round_index, 4)}"

    def plan(self, campaign: str, round_index: int | str) -> str:
        return f"{self.round_dir(campaign, round_index)}/plan.json"

    def shard(self, campaign: str, round_index: int | str, shard: int | str) -> str:
        return f"{self.round_dir(campaign, round_index)}/shard_{_number(shard, 3)}.json"

    def shards(self, campaign: str, round_index: int | str, count: int) -> list[str]:
        return [self.shard(campaign, round_index, s) for s in range(count)]

    def experiments(self, campaign: str, round_index: int | str) -> str:
        return f"{self.round_dir(campaign, round_index)}/experiments.jsonl"

    def runs(self, campaign: str, round_index: int | str) -> str:
        """A round's run folders (runs/<id>/): each shard's resume scratch space."""
        return f"{self.round_dir(campaign, round_index)}/runs"

    def ledger(self, campaign: str, before_round: int) -> dict[str, list[str]]:
        """The files of rounds 0 .. before_round - 1: what round `before_round` reads."""
        rounds = range(int(before_round))
        return {
            "plans": [self.plan(campaign, r) for r in rounds],
            "experiments": [self.experiments(campaign, r) for r in rounds],
        }
