# Helpers shared by the rules: which (dataset, model) pairs exist, their parameters, and
# the checks on the config that the schema cannot express. No stage logic lives here.
import glob
import json
import shlex
from pathlib import Path

from hepgenbench.seeding import derive_seed

FAMILIES = CATALOGUE.names()  # CATALOGUE: the family cards, loaded in the Snakefile
EMBEDDED = {"pythia": "zmumu", "phasespace": "phasespace", "calo": "calo"}
MODEL_KEYS = ("family", "datasets", "training")
REPLICA_SEP = "_r"

DATASETS = list(config["datasets"])
REPLICAS = int(config.get("replicas", 1))


class ConfigError(ValueError):
    """A config that passes the schema but cannot run; raised before any job starts."""


def dataset_kind(name):
    ds = config["datasets"][name]
    return EMBEDDED.get(ds["source"], "calo" if ds["source"] == "calochallenge" else ds.get("kind", "generic"))


def model_family(name):
    family = config["models"][name].get("family", name)
    if family not in CATALOGUE:
        raise ConfigError(
            f"config key models.{name}: unknown model family '{family}'; "
            f"known families: {', '.join(FAMILIES)} (or set models.{name}.family)"
        )
    return family


def models_for(dataset):
    """The model names trained on ``dataset``, without replica suffixes."""
    out = []
    for name, spec in config["models"].items():
        card = CATALOGUE[model_family(name)]
        wanted = spec.get("datasets")
        for d in wanted or []:
            if d not in config["datasets"]:
                raise ConfigError(f"config key models.{name}.datasets names '{d}', which is not in datasets: {DATASETS}")
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


def instances_for(dataset):
    """Model instances (name, or name_rK for replica K > 0) of ``dataset``."""
    return [m if r == 0 else f"{m}{REPLICA_SEP}{r}" for m in models_for(dataset) for r in range(REPLICAS)]


def split_instance(instance):
    name, _, replica = instance.partition(REPLICA_SEP)
    return name, int(replica or 0)


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


def merged(*dicts):
    out = {}
    for d in dicts:
        out.update(d or {})
    return out


def training_options(dataset, name):
    return merged(config.get("training"), config["datasets"][dataset].get("training"), config["models"][name].get("training"))


def hyperparameters(name):
    """The model's hyperparameters as the config gives them, checked against its family's
    (an unknown key or a wrong type fails here, at parse time, as it would in the train job)."""
    given = {k: v for k, v in config["models"][name].items() if k not in MODEL_KEYS}
    CATALOGUE[model_family(name)].check_hparams(given, where=f"models.{name}")
    return given


def io_args(wildcards, input, output):
    """Named inputs and outputs as ``--in NAME=PATH`` / ``--out NAME=PATH`` for the CLI."""
    args = []
    for flag, files in (("--in", input), ("--out", output)):
        for name, value in files.items():
            for path in [value] if isinstance(value, str) else value:
                args.append(f"{flag} {name}={shlex.quote(str(path))}")
    return " ".join(args)


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def train_runtime(dataset, name):
    """Minutes for the batch system: the wall-clock budget plus room for start-up and saving."""
    budget = training_options(dataset, name).get("time_budget_s") or 3600
    return int(budget / 60) + 15


# Fail before any job runs on a config that cannot work.
for _m in config["models"]:
    hyperparameters(_m)
for _d in DATASETS:
    if not instances_for(_d):
        raise ConfigError(f"config: no model is trained on dataset '{_d}' (check models.*.datasets)")
    if config["datasets"][_d]["source"] in ("root", "hdf5", "calochallenge"):
        user_files(_d)


wildcard_constraints:
    dataset="|".join(DATASETS),
    model="|".join(sorted({m for d in DATASETS for m in instances_for(d)}, key=len, reverse=True)),
    chunk=r"\d+",
