# hepgenbench: benchmark generative models for high-energy physics.
# Thin by design: the stages live in workflow/rules/, the logic in src/hepgenbench/.
from snakemake.utils import min_version, validate

from hepgenbench.catalogue import load_catalogue

min_version("9.0")


# The default benchmark, unless the command line names its own config file(s): a
# --configfile replaces it instead of being merged into it (a merge would add the
# default's models to every small config).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"



# The model families (names, capabilities, hyperparameters) from their classes, through a
# cache that spares this process torch's import; the schema's family enum comes from them.
CATALOGUE = load_catalogue(config)

validate(config, CATALOGUE.config_schema(f"{workflow.basedir}/workflow/schemas/config.schema.yaml"))


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/budget.smk"
include: "workflow/rules/report.smk"


localrules:
    all,
    merge_pythia,
    report,


rule all:
    input:
        "results/report/index.html",
