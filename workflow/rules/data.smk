# Data: the synthetic dashcam set (when data.source is synthetic), then the
# clip table and the hashed split manifest that every later stage rechecks.

DATA = PARAMS["data"]
DATA_ROOT = DATA["root"]
LABELS = f"{DATA_ROOT}/{DATA['labels']}"
CLIPS = f"{RESULTS}/split/clips.csv"
MANIFEST = f"{RESULTS}/split/manifest.json"


if DATA["source"] == "synthetic":

    rule synthesize:
        output:
            labels=LABELS,
            scenarios=f"{DATA_ROOT}/scenarios.csv",
            videos=directory(f"{DATA_ROOT}/{DATA['videos']}"),
        params:
            synthetic=DATA["synthetic"],
        threads: DATA["synthetic"]["workers"]
        log:
            f"{RESULTS}/logs/synthesize.log",
        conda:
            ENV
        script:
            "../scripts/synthesize.py"


rule split:
    input:
        labels=LABELS,
    output:
        clips=CLIPS,
        manifest=MANIFEST,
    params:
        data=DATA,
    log:
        f"{RESULTS}/logs/split.log",
    conda:
        ENV
    script:
        "../scripts/split.py"
