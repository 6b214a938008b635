"""Propose one round of a campaign: ledger so far -> agents -> plan.json."""

from expsearch.joblog import job_log

with job_log(snakemake):
    from expsearch.campaign.describe import describe_plan
    from expsearch.campaign.steps import propose_round
    from expsearch.settings import campaign_settings

    plan = propose_round(
        campaign_settings(snakemake.params.params, snakemake.wildcards.campaign),
        int(snakemake.wildcards.round),
        snakemake.input.get("plans", []),
        snakemake.input.get("experiments", []),
        out=snakemake.output[0],
    )
    print(describe_plan(plan))
