"""Train one shard of a round (resuming configs that already finished)."""

from expsearch.joblog import job_log

with job_log(snakemake):
    import torch

    from expsearch.campaign.steps import run_shard
    from expsearch.settings import campaign_settings

    torch.set_num_threads(snakemake.threads)  # the cores Snakemake gave this job, no more
    run_shard(
        campaign_settings(snakemake.params.params, snakemake.wildcards.campaign),
        plan=snakemake.input.plan,
        shard=int(snakemake.wildcards.shard),
        stores=snakemake.input.stores,
        manifest=snakemake.input.manifest,
        clips=snakemake.input.clips,
        runs=snakemake.params.scratch,
        out=snakemake.output[0],
        log=lambda line: print(line, flush=True),
    )
