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


# Each further task (params.yaml `tasks`, paper Section 5.4) is this workflow
# again, as a module with the task's params, its paths moved from results/ to
# results/tasks/<name>/; its rules are named <name>_<rule>. The paper and the
# rule-graph figure are drawn once, by the primary task.
for TASK in TASKS:

    module:
        name:
            TASK
        snakefile:
            "Snakefile"
        config:
            TASKS[TASK]
        replace_prefix:
            task_prefix(TASK)

    TASK_RULES = f"{TASK}_"

    use rule * from TASK exclude all, paper, overview as TASK_RULES*


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
