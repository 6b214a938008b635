"""Simulated cluster utilisation under our round/shard scheduling.

    result = simulate(SimulationSettings(devices=16, campaigns=2, rounds=50,
                                         configs_per_round=25, shards=16, lag=1))
    result["busy_fraction"], result["experiments_per_device_hour"]
    result["rounds"]   # per round: proposal started, proposed, collected (seconds)

An event simulation of what the Snakemake DAG does on a cluster: a round is
a proposal step (`propose_s`, no device), then `shards` jobs, each training
its configs one after another on one device, then a collect step
(`collect_s`) after the last shard. Round r's proposal starts when round
r-1 has been proposed (its plan is an input) and the rounds whose
experiments it reads are collected: the DAG's own rule, from
`layout.ledger_rounds` with the campaign's `lag` (lag 0: round r-1, the
round barrier; lag k: round r-1-k, so k rounds train while the next is
proposed). Configs take the paper's 3-10 minutes (uniform); they are packed
into shards by the campaign's own packing (`shards.pack`, longest first) on
an *estimate* that is off by a log-normal factor (`estimate_error`), as a
real cost estimate is. Shard jobs of all rounds and campaigns queue for
`devices` devices in the workflow's priority order (`layout.rounds_waiting`:
the rounds that later ones wait for first), then in submission order. Busy
fraction = device-seconds of training / (devices x makespan).
"""

from __future__ import annotations

import heapq
from dataclasses import asdict, dataclass

import numpy as np

from .layout import ledger_rounds, rounds_waiting
from .shards import pack


@dataclass(frozen=True)
class SimulationSettings:
    devices: int = 16
    campaigns: int = 1
    rounds: int = 50
    configs_per_round: int = 25
    shards: int = 16
    minutes: tuple[float, float] = (3.0, 10.0)  # the paper's per-experiment duration range
    propose_s: float = 120.0  # an LLM round trip plus planning
    collect_s: float = 10.0
    estimate_error: float = 0.3  # sigma of the log-normal error of the cost estimate
    lag: int = 0  # each campaign's lag (layout.ledger_rounds)
    seed: int = 0


def simulate(settings: SimulationSettings) -> dict:
    rng = np.random.default_rng(settings.seed)
    low, high = settings.minutes
    free_devices = settings.devices
    # (-rounds waiting on it, submitted, campaign, seq, round, s): the workflow's job priority
    waiting: list[tuple[int, float, int, int, int, float]] = []
    events: list[tuple[float, int, str, int, int, float]] = []  # (time, seq, kind, c, round, value)
    sequence = 0
    busy = 0.0
    experiments = 0
    # Per campaign and round: when its proposal started, it was proposed, it was collected.
    timeline = [[{"round": r} for r in range(settings.rounds)] for _ in range(settings.campaigns)]
    left = [[0] * settings.rounds for _ in range(settings.campaigns)]  # shards still training
    proposing = [False] * settings.campaigns
    next_round = [0] * settings.campaigns  # the next round to propose

    def push(time: float, kind: str, campaign: int, round_index: int, value: float = 0.0) -> None:
        nonlocal sequence
        sequence += 1
        heapq.heappush(events, (time, sequence, kind, campaign, round_index, value))

    def try_propose(time: float, campaign: int) -> None:
        """Start the campaign's next proposal if the DAG lets it start now."""
        r = next_round[campaign]
        if proposing[campaign] or r >= settings.rounds:
            return
        reads = ledger_rounds(r, settings.lag)[1]
        if all("collected" in timeline[campaign][k] for k in reads):
            proposing[campaign] = True
            timeline[campaign][r]["proposal_started"] = time
            push(time + settings.propose_s, "proposed", campaign, r)

    for campaign in range(settings.campaigns):
        try_propose(0.0, campaign)
    now = 0.0
    while events:
        now, _, kind, campaign, round_index, value = heapq.heappop(events)
        record = timeline[campaign][round_index]
        if kind == "proposed":
            record["proposed"] = now
            durations = rng.uniform(low, high, settings.configs_per_round) * 60.0
            estimates = durations * rng.lognormal(0.0, settings.estimate_error, durations.size)
            rows = [{"id": i, "estimate": float(e)} for i, e in enumerate(estimates)]
            packed = pack(rows, settings.shards, cost=lambda row: row["estimate"])
            shards = [s for s in packed if s]
            left[campaign][round_index] = len(shards)
            priority = rounds_waiting(round_index, settings.rounds, settings.lag)
            for shard in shards:
                sequence += 1
                duration = float(durations[shard].sum())
                waiting.append((-priority, now, campaign, sequence, round_index, duration))
            if not shards:
                push(now + settings.collect_s, "collected", campaign, round_index)
            experiments += settings.configs_per_round
            proposing[campaign] = False
            next_round[campaign] += 1
        elif kind == "shard_done":
            free_devices += 1
            busy += value
            left[campaign][round_index] -= 1
            if left[campaign][round_index] == 0:
                push(now + settings.collect_s, "collected", campaign, round_index)
        elif kind == "collected":
            record["collected"] = now
        try_propose(now, campaign)
        waiting.sort()
        while free_devices and waiting:
            _, _, job_campaign, _, job_round, duration = waiting.pop(0)
            free_devices -= 1
            push(now + duration, "shard_done", job_campaign, job_round, duration)
    makespan = now
    return {
        "settings": asdict(settings),
        "makespan_h": round(makespan / 3600, 3),
        "experiments": experiments,
        "busy_fraction": round(busy / (settings.devices * makespan), 4),
        "experiments_per_device_hour": round(experiments / (settings.devices * makespan / 3600), 3),
        "rounds": timeline,
    }
