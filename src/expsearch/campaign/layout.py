"""Where a campaign's files live: the one definition of the ledger's layout.

    layout = CampaignLayout("results/campaigns")
    layout.plan("agents", 3)              # results/campaigns/agents/round_0003/plan.json
    layout.shard("agents", 3, 1)          # .../round_0003/shard_001.json
    layout.plan("{campaign}", "{round}")  # the same, as a Snakemake pattern
    layout.ledger("agents", 3)            # plans and experiments files of rounds 0, 1, 2
    layout.ledger("agents", 3, lag=1)     # plans of rounds 0, 1, 2; experiments of 0, 1
    ledger_rounds(3, lag=1)               # (range(0, 3), range(0, 2)): the rounds behind it
    rounds_waiting(0, rounds=3, lag=0)    # 2: rounds 1 and 2 wait on round 0, one after another

What a round reads is decided here, once: round r reads the plans of every
earlier round (so that dedup knows what is queued) and the experiments of
rounds 0 .. r-1-lag only, so with a campaign's `lag` > 0 round r is proposed
while the last `lag` rounds still train (ledger.py turns their plans into
queued rows). The simulation of the scheduling (simulate.py) asks the same
function which rounds a proposal waits for, and both order the jobs that are
ready by `rounds_waiting`: the rounds that others wait for first.

The Snakemake rules (workflow/rules/common.smk) and the `expsearch round` CLI
build their paths here; the library steps below them take paths as
arguments and never build one. A round index is formatted with four digits
and a shard with three; a string (a wildcard) is used as it is.
"""

from __future__ import annotations

from dataclasses import dataclass


def ledger_rounds(before_round: int, lag: int = 0) -> tuple[range, range]:
    """(plan rounds, experiment rounds) that round `before_round` reads: the
    plans of rounds 0 .. before_round-1, the experiments of 0 .. before_round-1-lag."""
    before_round, lag = int(before_round), int(lag)
    if before_round < 0 or lag < 0:
        raise ValueError(f"round and lag must be at least 0, got round {before_round}, lag {lag}")
    return range(before_round), range(max(0, before_round - lag))


def rounds_waiting(round_index: int, rounds: int, lag: int = 0) -> int:
    """How many later rounds wait, one after another, for round `round_index`'s
    results: the length of the chain of proposals below it (round r' reads the
    experiments of round r when r' - 1 - lag >= r).

    It is the priority of the round's jobs (critical path first): when the
    devices are full, a shard that later rounds wait for starts before one that
    nothing waits for, so a campaign that learns from its results is not held up
    by a baseline that learns from none (`lag` >= rounds - 1: 0 everywhere),
    whose shards fill the gaps at the other's round barriers instead."""
    round_index, rounds, lag = int(round_index), int(rounds), int(lag)
    if not 0 <= round_index < rounds or lag < 0:
        raise ValueError(f"round {round_index} of {rounds} rounds with lag {lag}")
    return (rounds - 1 - round_index) // (lag + 1)


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

    @staticmethod
    def runs_beside(shard_file: str) -> str:
        """The run folders of the round a shard file belongs to (`runs` beside it):
        the same folder as `runs`, found from a path a workflow module may have moved."""
        return f"{shard_file.rsplit('/', 1)[0]}/runs" if "/" in shard_file else "runs"

    def ledger(self, campaign: str, before_round: int, lag: int = 0) -> dict[str, list[str]]:
        """The files that round `before_round` reads (see `ledger_rounds`)."""
        plan_rounds, experiment_rounds = ledger_rounds(before_round, lag)
        return {
            "plans": [self.plan(campaign, r) for r in plan_rounds],
            "experiments": [self.experiments(campaign, r) for r in experiment_rounds],
        }
