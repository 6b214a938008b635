"""Collect one round: its plan and its shards' summaries -> experiments.jsonl."""

from expsearch.joblog import job_log

with job_log(snakemake):
    from expsearch.campaign.steps import collect_round
    from expsearch.settings import campaign_settings

    rows = collect_round(
        campaign_settings(snakemake.params.params, snakemake.wildcards.campaign),
        plan=snakemake.input.plan,
        shards=snakemake.input.shards,
        out=snakemake.output[0],
    )
    print(f"{len(rows)} experiments, {sum(row['status'] == 'ok' for row in rows)} finished")
