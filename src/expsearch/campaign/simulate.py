"""Simulated cluster utilisation under our round/shard scheduling.

    result = simulate(SimulationSettings(devices=16, campaigns=2, rounds=50,
                                         configs_per_round=25, shards=16))
    result["busy_fraction"], result["experiments_per_device_hour"]

An event simulation of what the Snakemake DAG does on a cluster: each
campaign runs its rounds one after another; a round is a proposal step
(`propose_s`, no device), then `shards` jobs, each training its configs one
after another on one device, then a collect step (`collect_s`) after the
last shard (the round barrier). Configs take the paper's 3-10 minutes
(uniform); they are packed into shards by the campaign's own packing
(`shards.pack`, longest first) on an *estimate* that is off by a log-normal
factor (`estimate_error`), as a real cost estimate is. Shard jobs of all
campaigns queue for `devices` devices in submission order. Busy fraction =
device-seconds of training / (devices x makespan).
"""

from __future__ import annotations

import heapq
from dataclasses import asdict, dataclass

import numpy as np

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
    seed: int = 0


def simulate(settings: SimulationSettings) -> dict:
    rng = np.random.default_rng(settings.seed)
    low, high = settings.minutes
    free_devices = settings.devices
    waiting: list[tuple[float, int, int, float]] = []  # (submitted, campaign, seq, duration)
    events: list[tuple[float, int, str, int, float]] = []  # (time, seq, kind, campaign, value)
    sequence = 0
    busy = 0.0
    experiments = 0
    left_in_round = [0] * settings.campaigns
    rounds_done = [0] * settings.campaigns

    def push(time: float, kind: str, campaign: int, value: float = 0.0) -> None:
        nonlocal sequence
        sequence += 1
        heapq.heappush(events, (time, sequence, kind, campaign, value))

    for campaign in range(settings.campaigns):
        push(settings.propose_s, "proposed", campaign)
    now = 0.0
    while events:
        now, _, kind, campaign, value = heapq.heappop(events)
        if kind == "proposed":
            durations = rng.uniform(low, high, settings.configs_per_round) * 60.0
            estimates = durations * rng.lognormal(0.0, settings.estimate_error, durations.size)
            rows = [{"id": i, "estimate": float(e)} for i, e in enumerate(estimates)]
            packed = pack(rows, settings.shards, cost=lambda row: row["estimate"])
            shards = [s for s in packed if s]
            left_in_round[campaign] = len(shards)
            for shard in shards:
                sequence += 1
                waiting.append((now, campaign, sequence, float(durations[shard].sum())))
            experiments += settings.configs_per_round
        elif kind == "shard_done":
            free_devices += 1
            busy += value
            left_in_round[campaign] -= 1
            if left_in_round[campaign] == 0:
                push(now + settings.collect_s, "collected", campaign)
        elif kind == "collected":
            rounds_done[campaign] += 1
            if rounds_done[campaign] < settings.rounds:
                push(now + settings.propose_s, "proposed", campaign)
        waiting.sort()
        while free_devices and waiting:
            _, job_campaign, _, duration = waiting.pop(0)
            free_devices -= 1
            push(now + duration, "shard_done", job_campaign, duration)
    makespan = now
    return {
        "settings": asdict(settings),
        "makespan_h": round(makespan / 3600, 3),
        "experiments": experiments,
        "busy_fraction": round(busy / (settings.devices * makespan), 4),
        "experiments_per_device_hour": round(experiments / (settings.devices * makespan / 3600), 3),
    }
