# The configuration space C: its summary (cell counts, dimensions, branches)
# and a small seeded sample of configs, so a new user sees what a config
# looks like (the sample size and seed only affect this illustration).


rule space_summary:
    output:
        json=f"{RESULTS}/space/summary.json",
        markdown=report(
            f"{RESULTS}/space/summary.md", caption="../report/space.rst", category="Space"
        ),
        sample=f"{RESULTS}/space/sample.yaml",
    params:
        space=PARAMS["space"],
        n_sample=8,
        seed=0,
    log:
        f"{LOGS}/space_summary.log",
    conda:
        ENV
    script:
        "../scripts/space_summary.py"
