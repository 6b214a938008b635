"""Read the clip table of the data source and write the hashed split manifest."""

from expsearch.data.splits import SPLITS, split_source

data = snakemake.params.data
manifest = split_source(
    data["source"],
    data["root"],
    data["videos"],
    data["labels"],
    fractions={name: data["split"][name] for name in SPLITS},
    seed=data["split"]["seed"],
    clips_out=snakemake.output.clips,
    manifest_out=snakemake.output.manifest,
)
with open(snakemake.log[0], "w") as log:
    for name, ids in manifest.splits.items():
        print(f"{name}: {len(ids)} clips", file=log)
