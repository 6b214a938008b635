# Shared by every rule file (the library on the path, the checked params, the
# software environment, the result paths, and the campaigns' paths and input functions).

import os
import sys

# Jobs run this checkout's library (src/), whatever environment they run in:
# the project venv, a conda env from workflow/envs/, or a cluster node.
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
# (Jobs inherit the environment, locally and through sbatch.)
os.environ.update(PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])))

from expsearch.params import check_params

PARAMS = check_params(config, source="params.yaml")
ENV = "../envs/expsearch.yaml"  # conda env of every rule (used with --sdm conda)
RESULTS = "results"


# ---- campaigns (rules in campaign.smk)
# DAG construction recurses once per dependency link (three per round);
# Python's default limit breaks at about 140 rounds, campaigns run hundreds.
sys.setrecursionlimit(max(sys.getrecursionlimit(), 100_000))

CAMPAIGN = PARAMS["campaign"]
CAMPAIGNS = CAMPAIGN["campaigns"]
CROOT = CAMPAIGN["root"]
DATASET = f"{RESULTS}/dataset"
# What a round's jobs read of params (a change reruns the rounds it affects).
CAMPAIGN_PARAMS = {key: PARAMS[key] for key in ("space", "agents", "campaign", "training", "features")}


def round_path(campaign, round_index, name):
    return f"{CROOT}/{campaign}/round_{int(round_index):04d}/{name}"


def previous_round(wildcards):
    r = int(wildcards.round)
    return [] if r == 0 else [round_path(wildcards.campaign, r - 1, "experiments.jsonl")]


def round_shards(wildcards):
    shards = CAMPAIGNS[wildcards.campaign]["shards"]
    return [round_path(wildcards.campaign, wildcards.round, f"shard_{s:03d}.json") for s in range(shards)]


def all_rounds(name):
    return [
        round_path(campaign, r, name)
        for campaign, spec in CAMPAIGNS.items()
        for r in range(spec["rounds"])
    ]
