# Campaigns: round r = propose (head node) -> S shards (GPU jobs) -> collect (head node).
# Round r's proposal declares the ledger before it (the plans of rounds < r and
# the experiments of rounds < r - lag; lag 0: all of them, a barrier between
# rounds), so the DAG is static: rounds x (1 + S + 1) jobs. A round's jobs run
# critical path first (round_priority): the rounds later ones wait for.
# Every campaign in params.yaml runs side by side on the same feature stores.
# Paths and input functions are in common.smk (from the library's CampaignLayout).


wildcard_constraints:
    campaign="|".join(CAMPAIGNS),
    round=r"\d{4}",
    shard=r"\d{3}",


rule propose:
    priority: round_priority
    input:
        unpack(round_ledger),
    output:
        LAYOUT.plan("{campaign}", "{round}"),
    params:
        params=CAMPAIGN_PARAMS,
    localrule: True
    log:
        f"{LOGS}/campaigns/{{campaign}}/propose_{{round}}.log",
    conda:
        ENV
    script:
        "../scripts/propose.py"


rule shard:
    priority: round_priority
    input:
        plan=LAYOUT.plan("{campaign}", "{round}"),
        manifest=MANIFEST,
        clips=CLIPS,
        stores=STORE_FILES,
    output:
        LAYOUT.shard("{campaign}", "{round}", "{shard}"),
    params:
        params=CAMPAIGN_PARAMS,
        # Each config's run folder (runs/<id>/metrics.json): the shard's own
        # scratch, kept between attempts so that a killed shard resumes.
        scratch=round_runs,
    threads: CAMPAIGN["resources"]["shard"]["cpus"]
    resources:
        slurm_partition=CAMPAIGN["resources"]["shard"]["slurm_partition"],
        gpu=CAMPAIGN["resources"]["shard"]["gpu"],
        mem_mb=CAMPAIGN["resources"]["shard"]["mem_mb"],
        runtime=CAMPAIGN["resources"]["shard"]["runtime"],
    log:
        f"{LOGS}/campaigns/{{campaign}}/shard_{{round}}_{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/campaigns/{{campaign}}/shard_{{round}}_{{shard}}.tsv"
    conda:
        ENV
    script:
        "../scripts/train_shard.py"


rule collect:
    priority: round_priority
    input:
        plan=LAYOUT.plan("{campaign}", "{round}"),
        shards=round_shards,
    output:
        LAYOUT.experiments("{campaign}", "{round}"),
    params:
        params=CAMPAIGN_PARAMS,
    # On the head node, as the proposal it feeds: a few JSON files read and one
    # written, and a cluster queue between the rounds would idle the GPUs.
    localrule: True
    log:
        f"{LOGS}/campaigns/{{campaign}}/collect_{{round}}.log",
    conda:
        ENV
    script:
        "../scripts/collect_round.py"


rule dataset:
    input:
        plans=every_round(lambda c, r: [LAYOUT.plan(c, r)]),
        shards=every_round(lambda c, r: LAYOUT.shards(c, r, CAMPAIGNS[c]["shards"])),
        experiments=every_round(lambda c, r: [LAYOUT.experiments(c, r)]),
    output:
        experiments=report(
            f"{DATASET}/experiments.parquet",
            caption="../report/dataset.rst",
            category="Dataset",
        ),
        proposals=f"{DATASET}/proposals.parquet",
        agent_log=f"{DATASET}/agent_log.jsonl",
        summary=report(
            f"{DATASET}/summary.json", caption="../report/summary.rst", category="Dataset"
        ),
    params:
        params=CAMPAIGN_PARAMS,
    resources:
        slurm_partition=CAMPAIGN["resources"]["collect"]["slurm_partition"],
        mem_mb=CAMPAIGN["resources"]["collect"]["mem_mb"],
        runtime=CAMPAIGN["resources"]["collect"]["runtime"],
    log:
        f"{LOGS}/dataset.log",
    conda:
        ENV
    script:
        "../scripts/compile_dataset.py"
