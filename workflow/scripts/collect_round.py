"""Collect one round: its plan and its runs' metrics -> experiments.jsonl."""

from expsearch.campaign.settings import CampaignSettings
from expsearch.campaign.steps import collect_round

params = snakemake.params.params
settings = CampaignSettings.from_params(params, snakemake.wildcards.campaign)
rows = collect_round(settings, int(snakemake.wildcards.round))
with open(snakemake.log[0], "w") as log:
    finished = sum(row["status"] == "ok" for row in rows)
    print(f"{len(rows)} experiments, {finished} finished", file=log)
