"""Train one shard of a round (resuming configs that already finished)."""

import torch

from expsearch.campaign.settings import CampaignSettings
from expsearch.campaign.steps import run_shard

torch.set_num_threads(snakemake.threads)  # the cores Snakemake gave this job, no more
params = snakemake.params.params
settings = CampaignSettings.from_params(params, snakemake.wildcards.campaign)
with open(snakemake.log[0], "w") as log:

    def say(line: str) -> None:
        print(line, flush=True)
        print(line, file=log, flush=True)

    run_shard(
        settings,
        params,
        int(snakemake.wildcards.round),
        int(snakemake.wildcards.shard),
        manifest=snakemake.input.manifest,
        log=say,
    )
