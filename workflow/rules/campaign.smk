# Campaigns: round r = propose (head node) -> S shards (GPU jobs) -> collect.
# Round r's proposal reads the ledger of rounds < r through round r-1's
# experiments file, so the DAG is static: rounds x (1 + S + 1) jobs. Every
# campaign in params.yaml runs side by side on the same feature stores.
# Paths and input functions are in common.smk.


wildcard_constraints:
    campaign="|".join(CAMPAIGNS),
    round=r"\d{4}",
    shard=r"\d{3}",


rule propose:
    input:
        previous_round,
    output:
        f"{CROOT}/{{campaign}}/round_{{round}}/plan.json",
    params:
        params=CAMPAIGN_PARAMS,
    localrule: True
    log:
        f"{RESULTS}/logs/campaigns/{{campaign}}/propose_{{round}}.log",
    conda:
        ENV
    script:
        "../scripts/propose.py"


rule shard:
    input:
        plan=f"{CROOT}/{{campaign}}/round_{{round}}/plan.json",
        manifest=MANIFEST,
        stores=STORES,
    output:
        f"{CROOT}/{{campaign}}/round_{{round}}/shard_{{shard}}.json",
    params:
        params=CAMPAIGN_PARAMS,
    threads: CAMPAIGN["resources"]["shard"]["cpus"]
    resources:
        slurm_partition=CAMPAIGN["resources"]["shard"]["slurm_partition"],
        gpu=CAMPAIGN["resources"]["shard"]["gpu"],
        mem_mb=CAMPAIGN["resources"]["shard"]["mem_mb"],
        runtime=CAMPAIGN["resources"]["shard"]["runtime"],
    log:
        f"{RESULTS}/logs/campaigns/{{campaign}}/shard_{{round}}_{{shard}}.log",
    conda:
        ENV
    script:
        "../scripts/train_shard.py"


rule collect:
    input:
        plan=f"{CROOT}/{{campaign}}/round_{{round}}/plan.json",
        shards=round_shards,
    output:
        f"{CROOT}/{{campaign}}/round_{{round}}/experiments.jsonl",
    params:
        params=CAMPAIGN_PARAMS,
    resources:
        slurm_partition=CAMPAIGN["resources"]["collect"]["slurm_partition"],
        mem_mb=CAMPAIGN["resources"]["collect"]["mem_mb"],
        runtime=CAMPAIGN["resources"]["collect"]["runtime"],
    log:
        f"{RESULTS}/logs/campaigns/{{campaign}}/collect_{{round}}.log",
    conda:
        ENV
    script:
        "../scripts/collect_round.py"


rule dataset:
    input:
        all_rounds("experiments.jsonl"),
    output:
        experiments=f"{DATASET}/experiments.parquet",
        proposals=f"{DATASET}/proposals.parquet",
        agent_log=f"{DATASET}/agent_log.jsonl",
        summary=f"{DATASET}/summary.json",
    params:
        params=CAMPAIGN_PARAMS,
    resources:
        slurm_partition=CAMPAIGN["resources"]["collect"]["slurm_partition"],
        mem_mb=CAMPAIGN["resources"]["collect"]["mem_mb"],
        runtime=CAMPAIGN["resources"]["collect"]["runtime"],
    log:
        f"{RESULTS}/logs/dataset.log",
    conda:
        ENV
    script:
        "../scripts/compile_dataset.py"
