"""Propose one round of a campaign: ledger so far -> agents -> plan.json."""

from expsearch.campaign.settings import CampaignSettings
from expsearch.campaign.steps import propose_round

params = snakemake.params.params
settings = CampaignSettings.from_params(params, snakemake.wildcards.campaign)
plan = propose_round(settings, params, int(snakemake.wildcards.round))
with open(snakemake.log[0], "w") as log:
    for entry in plan["agent_log"]:
        print(f"{entry['agent']} ({entry['policy']}): error={entry['error']} note={entry['note']} "
              f"tokens={entry['input_tokens']}/{entry['output_tokens']} cost=${entry['cost_usd']:.4f}",
              file=log)  # fmt: skip
    kept = sum(row["fate"] == "kept" for row in plan["rows"])
    print(f"{kept} kept of {len(plan['rows'])} candidates; shards {plan['shards']}", file=log)
print(f"[{settings.name} round {snakemake.wildcards.round}] proposed: "
      f"{sum(row['fate'] == 'kept' for row in plan['rows'])} configs in "
      f"{len(plan['shards'])} shards")  # fmt: skip
