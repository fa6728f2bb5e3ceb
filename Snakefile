# hepgenbench: benchmark generative models for high-energy physics.
# Thin by design: the stages live in workflow/rules/, the logic in src/hepgenbench/.
from snakemake.utils import min_version, validate

min_version("9.0")


# The default benchmark, unless the command line names its own config file(s): a
# --configfile replaces it instead of being merged into it (a merge would add the
# default's models to every small config).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"



validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


localrules:
    all,
    merge_pythia,
    report,


rule all:
    input:
        "results/report/index.html",
