# Data: the synthetic dashcam set (when data.source is synthetic), then the
# clip table and the hashed split manifest that every later stage rechecks.
# Paths are in common.smk.


if DATA["source"] == "synthetic":

    rule synthesize:
        output:
            labels=SYNTHETIC["labels"],
            scenarios=SYNTHETIC["scenarios"],
            videos=directory(SYNTHETIC["videos"]),
            record=SYNTHETIC["record"],
        params:
            synthetic=DATA["synthetic"],
        threads: DATA["synthetic"]["workers"]
        log:
            f"{LOGS}/synthesize.log",
        conda:
            ENV
        script:
            "../scripts/synthesize.py"


rule split:
    input:
        labels=LABELS,
        videos=VIDEOS,
        **{f"competition_{key}": path for key, path in COMPETITION.items()},
    output:
        clips=CLIPS,
        manifest=MANIFEST,
    params:
        data=DATA,
    log:
        f"{LOGS}/split.log",
    conda:
        ENV
    script:
        "../scripts/split.py"
