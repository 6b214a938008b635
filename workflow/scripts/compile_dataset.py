"""Compile every campaign's ledger into results/dataset/."""

from expsearch.joblog import job_log

with job_log(snakemake):
    from expsearch.campaign.dataset import DatasetFiles, compile_dataset
    from expsearch.campaign.describe import describe_summary
    from expsearch.settings import all_campaigns

    summary = compile_dataset(
        all_campaigns(snakemake.params.params),
        plans=snakemake.input.plans,
        shards=snakemake.input.shards,
        experiments=snakemake.input.experiments,
        out=DatasetFiles(**dict(snakemake.output.items())),
    )
    print(describe_summary(summary))
