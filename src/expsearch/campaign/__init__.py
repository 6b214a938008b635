"""Campaigns: rounds of propose -> shards -> collect, and the ledger they leave.

    settings = CampaignSettings.from_params(params, "agents")        # settings.py
    propose_round(settings, params, round_index)    # steps.py: writes round_<r>/plan.json
    run_shard(settings, params, round_index, shard)  # trains its configs -> shard_<s>.json
    collect_round(settings, round_index)             # -> round_<r>/experiments.jsonl
    compile_dataset(params, out_dir)                 # dataset.py: every campaign -> tables

The Snakemake rules in workflow/rules/campaign.smk call these through thin
scripts; every file is written atomically and a round's files never change
once its experiments.jsonl exists, so a killed run resumes where it stopped.
"""
