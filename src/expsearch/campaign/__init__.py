"""Campaigns: rounds of propose -> shards -> collect, and the ledger they leave.

    settings = campaign_settings(params, "agents")       # expsearch.settings
    layout = CampaignLayout("results/campaigns")         # layout.py: every path of a round
    layout.ledger(name, r, settings.lag)                 # what round r reads (its `lag`)
    propose_round(settings, r, ledger_plans, ledger_experiments, out)   # steps.py -> plan.json
    run_shard(settings, plan=..., shard=s, stores=..., manifest=..., clips=..., runs=..., out=...)
    collect_round(settings, plan=..., shards=[...], out=...)            # -> experiments.jsonl
    compile_dataset(campaigns, plans=..., shards=..., experiments=..., out=DatasetFiles(...))

The Snakemake rules in workflow/rules/campaign.smk call these through thin
scripts, with the paths of CampaignLayout; `expsearch round` runs the same
steps on the same paths outside Snakemake. Every file is written atomically
and a round's files never change once its experiments.jsonl exists, so a
killed run resumes where it stopped.
"""
