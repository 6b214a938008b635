# The pipeline: params.yaml -> (data -> features -> campaigns -> dataset ->
# analyses -> paper). Stages land one rule file at a time under workflow/rules/.
#
#   snakemake                                # local: loads profiles/default (`make run`)
#   snakemake --profile profiles/slurm       # on a SLURM cluster

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "params.yaml"


# common.smk checks params with the library first (the schema plus the
# space's cross-field rules, with messages that name each bad key path);
# Snakemake's own validator then checks the same schema.
include: "workflow/rules/common.smk"


validate(config, "workflow/schemas/params.schema.yaml")


include: "workflow/rules/space.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/campaign.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/paper.smk"


rule all:
    input:
        rules.space_summary.output,
        STORE_FILES,
        rules.dataset.output,
        ANALYSIS_FILES,
        rules.paper.output,
        rules.overview.output,
    default_target: True
