# Helpers shared by the rules: which (dataset, model) pairs exist, their parameters, and
# the checks on the config that the schema cannot express. No stage logic lives here.
import glob
import shlex
from pathlib import Path

from hepgenbench import kinds, records
from hepgenbench.errors import InputError
from hepgenbench.records import MODEL_KEYS, REPLICA_SEP, split_instance

FAMILIES = ("vae", "gan", "wgan", "maf", "realnvp", "nsf", "iaf", "cfm", "hurdlevae")
# Families that need something only some kinds of dataset have: the kinds, and what it is.
# Without `datasets:` such a family trains on every dataset of those kinds.
KIND_BOUND_FAMILIES = {
    "iaf": (("phasespace",), "trains on a known density"),
    "hurdlevae": (("calo",), "models calorimeter cells"),
}

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
    if family not in FAMILIES:
        raise ConfigError(
            f"config key models.{name}: unknown model family '{family}'; "
            f"known families: {', '.join(FAMILIES)} (or set models.{name}.family)"
        )
    return family


def models_for(dataset):
    """The model names trained on ``dataset``, without replica suffixes."""
    out = []
    for name, spec in config["models"].items():
        family = model_family(name)
        wanted = spec.get("datasets")
        for d in wanted or []:
            if d not in config["datasets"]:
                raise ConfigError(f"config key models.{name}.datasets names '{d}', which is not in datasets: {DATASETS}")
        if family in KIND_BOUND_FAMILIES:
            kinds, needs = KIND_BOUND_FAMILIES[family]
            if wanted is None:
                wanted = [d for d in DATASETS if dataset_kind(d) in kinds]
            for d in wanted:
                if dataset_kind(d) not in kinds:
                    raise ConfigError(
                        f"config key models.{name}.datasets: '{family}' {needs}, which dataset '{d}' "
                        f"(kind {dataset_kind(d)}) does not have; it runs on datasets of kind {', '.join(kinds)}"
                    )
        if wanted is None or dataset in wanted:
            out.append(name)
    return out


def instances_for(dataset):
    """Model instances (name, or name_rK for replica K > 0) of ``dataset``."""
    return [m if r == 0 else f"{m}{REPLICA_SEP}{r}" for m in models_for(dataset) for r in range(REPLICAS)]


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
    return records.hyperparameters(config, name)


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


# Fail before any job runs on a config that cannot work.
for _d in DATASETS:
    if not instances_for(_d):
        raise ConfigError(f"config: no model is trained on dataset '{_d}' (check models.*.datasets)")
    if not dataset_source(_d).embedded:
        user_files(_d)


wildcard_constraints:
    dataset="|".join(DATASETS),
    model="|".join(sorted({m for d in DATASETS for m in instances_for(d)}, key=len, reverse=True)),
    chunk=r"\d+",
