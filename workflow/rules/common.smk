# Helpers shared by the rules: which (dataset, model) pairs exist, their parameters, and
# the checks on the config that the schema cannot express. No stage logic lives here.
import glob
import shlex
from pathlib import Path

from hepgenbench import kinds, records
from hepgenbench.errors import InputError
from hepgenbench.records import EXTERNAL, MODEL_KEYS, REPLICA_SEP, external_samples, split_instance

FAMILIES = CATALOGUE.names()  # CATALOGUE: the family cards, loaded in the Snakefile

DATASETS = list(config["datasets"])
REPLICAS = int(config["replicas"])  # the schema fills in its default


class ConfigError(ValueError):
    """A config that passes the schema but cannot run; raised before any job starts."""


# Each dataset block is checked against its source's schema fragment (the kind registry),
# which fills in that source's defaults; an error names the key (datasets.<name>.<key>).
for _d in DATASETS:
    try:
        config["datasets"][_d] = kinds.validate_dataset(_d, config["datasets"][_d])
    except InputError as err:
        raise ConfigError(str(err)) from None


def dataset_source(name):
    """The registered source (generator or reader) of dataset ``name``."""
    return kinds.source(config["datasets"][name]["source"])


def dataset_kind(name):
    """The kind name of dataset ``name``: its source's, or its ``kind:`` for a shared reader."""
    return kinds.kind_of(config["datasets"][name]).name


def model_family(name):
    family = config["models"][name].get("family", name)
    if family != EXTERNAL and family not in CATALOGUE:
        raise ConfigError(
            f"config key models.{name}: unknown model family '{family}'; "
            f"known families: {', '.join(FAMILIES)} (or set models.{name}.family)"
        )
    return family


def models_for(dataset):
    """The model names trained on ``dataset``, without replica suffixes."""
    out = []
    for name, spec in config["models"].items():
        wanted = spec.get("datasets")
        for d in wanted or []:
            if d not in config["datasets"]:
                raise ConfigError(f"config key models.{name}.datasets names '{d}', which is not in datasets: {DATASETS}")
        if model_family(name) == EXTERNAL:
            if dataset in external_datasets(name):
                out.append(name)
            continue
        card = CATALOGUE[model_family(name)]
        if card.kinds:
            if wanted is None:
                wanted = [d for d in DATASETS if dataset_kind(d) in card.kinds]
            for d in wanted:
                if dataset_kind(d) not in card.kinds:
                    raise ConfigError(
                        f"config key models.{name}.datasets: '{card.name}' {card.needs()}, which dataset '{d}' "
                        f"(kind {dataset_kind(d)}) does not have; it runs on datasets of kind {', '.join(card.kinds)}"
                    )
        if wanted is None or dataset in wanted:
            out.append(name)
    return out


def external_datasets(name):
    """The datasets external model ``name`` has samples for: ``samples: {dataset: file}``'s
    keys, or the one dataset in its ``datasets:`` for ``samples: file``."""
    spec = config["models"][name]
    samples, wanted = spec["samples"], spec.get("datasets")
    if isinstance(samples, dict):
        unknown = [d for d in samples if d not in DATASETS]
        if unknown:
            raise ConfigError(f"config key models.{name}.samples names dataset(s) {unknown}, not in datasets: {DATASETS}")
        return [d for d in samples if wanted is None or d in wanted]
    if wanted is None and len(DATASETS) == 1:
        return DATASETS
    if not wanted or len(wanted) != 1:
        raise ConfigError(f"config key models.{name}: one samples file needs exactly one dataset in "
                          f"models.{name}.datasets (or samples: {{dataset: file}}); got {wanted}")
    return wanted


def is_external(instance):
    return model_family(split_instance(instance)[0]) == EXTERNAL


def instances_for(dataset):
    """Model instances (name, or name_rK for replica K > 0) of ``dataset``; an external
    model's samples are one file, not replicated."""
    return [m if r == 0 else f"{m}{REPLICA_SEP}{r}" for m in models_for(dataset)
            for r in range(1 if model_family(m) == EXTERNAL else REPLICAS)]


def trained_instances_for(dataset):
    return [m for m in instances_for(dataset) if not is_external(m)]


def external_file(model, dataset):
    """The user's samples file of an external model; a missing file fails before any job runs."""
    path = external_samples(config, model, dataset)
    if path is None or not Path(path).is_file():
        raise ConfigError(f"config key models.{model}.samples: '{path}' is not a file (working directory {Path.cwd()})")
    return path


def instance_regex(instances):
    """A wildcard constraint matching exactly ``instances`` (nothing when empty)."""
    return "|".join(sorted(instances, key=len, reverse=True)) or "(?!)"


def user_files(dataset):
    """The user's files of a dataset, expanded; a missing file fails here, before any job runs."""
    pattern = config["datasets"][dataset]["files"]
    found = []
    for p in [pattern] if isinstance(pattern, str) else pattern:
        hits = sorted(glob.glob(p))
        if not hits:
            raise ConfigError(f"config key datasets.{dataset}.files: '{p}' matches no file (working directory {Path.cwd()})")
        found.extend(hits)
    return found


def stage_params(stage, **wildcards):
    """The stage's parameter record (hepgenbench.records) as canonical JSON: the rule's
    ``params:``, so that a changed parameter reruns the job and nothing else does."""
    return records.STAGE_PARAMS[stage].from_config(config, **wildcards).to_json()


def hyperparameters(name):
    """The model's hyperparameters as the config gives them, checked against its family's
    (an unknown key or a wrong type fails here, at parse time, as it would in the train job)."""
    given = records.hyperparameters(config, name)
    CATALOGUE[model_family(name)].check_hparams(given, where=f"models.{name}")
    return given


def train_settings(dataset, instance):
    return records.TrainParams.from_config(config, dataset, instance).training


def io_args(wildcards, input, output):
    """Named inputs and outputs as ``--in NAME=PATH`` / ``--out NAME=PATH`` for the CLI."""
    args = []
    for flag, files in (("--in", input), ("--out", output)):
        for name, value in files.items():
            for path in [value] if isinstance(value, str) else value:
                args.append(f"{flag} {name}={shlex.quote(str(path))}")
    return " ".join(args)


def train_runtime(dataset, instance):
    """Minutes for the batch system: the wall-clock budget (an hour when training is bounded
    by epochs only) plus room for start-up and saving."""
    budget = train_settings(dataset, instance).time_budget_s or 3600
    return int(budget / 60) + 15


# --------------------------------------------------------------------------- input and param functions of the rules
def source_files(wildcards):
    src = dataset_source(wildcards.dataset)
    if src.embedded:
        return [f"results/{{dataset}}/source/events.{src.file_suffix}"]
    return user_files(wildcards.dataset)


def source_chunks(wildcards):
    n = records.SourceParams.from_config(config, wildcards.dataset).chunks
    return expand("results/{{dataset}}/source/chunks/{chunk}.root", chunk=range(n))


def evaluate_params(wildcards):
    return stage_params("evaluate", dataset=wildcards.dataset, model=wildcards.get("model", "truth"))


# Fail before any job runs on a config that cannot work.
for _m in config["models"]:
    if model_family(_m) != EXTERNAL:
        hyperparameters(_m)
for _d in DATASETS:
    if not trained_instances_for(_d):
        raise ConfigError(f"config: no model is trained on dataset '{_d}' (check models.*.datasets)")
    if not dataset_source(_d).embedded:
        user_files(_d)
    for _m in instances_for(_d):
        if is_external(_m):
            external_file(_m, _d)

# The train and sample rules make the trained models' samples, the external rule the others'.
EXTERNAL_INSTANCES = instance_regex({m for d in DATASETS for m in instances_for(d) if is_external(m)})
TRAINED_INSTANCES = instance_regex({m for d in DATASETS for m in trained_instances_for(d)})


wildcard_constraints:
    dataset="|".join(DATASETS),
    model=instance_regex({m for d in DATASETS for m in instances_for(d)}),
    chunk=r"\d+",
