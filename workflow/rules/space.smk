# The configuration space C: its summary (cell counts, dimensions, branches)
# and a small seeded sample of configs, so a new user sees what a config
# looks like (the sample size and seed only affect this illustration).

rule space_summary:
    input:
        "params.yaml",
    output:
        json=f"{RESULTS}/space/summary.json",
        markdown=f"{RESULTS}/space/summary.md",
        sample=f"{RESULTS}/space/sample.yaml",
    params:
        space=PARAMS["space"],
        n_sample=8,
        seed=0,
    log:
        f"{RESULTS}/logs/space_summary.log",
    conda:
        ENV
    script:
        "../scripts/space_summary.py"
