"""Typed records at the stage boundaries: parameters in, records out.

Every stage of the workflow takes one *parameter record*, built by the rule from the
validated config and the rule's wildcards (``XParams.from_config``), and passed to the
stage as JSON (``to_json``). That JSON is the rule's ``params:``, so that Snakemake reruns a
job exactly when its parameters change. What a stage hands to the next one through a file
is an *output record*: the trained-model record in ``model.pt``, the training summary a
sample carries, the metrics record of one (dataset, model) and the plot manifest of one
dataset. A writer and a reader of one of those files share its record, so the format
cannot drift between them.

Records are frozen pydantic dataclasses: every field is typed, a wrong type or an unknown
key is an :class:`~hepgenbench.errors.InputError` naming the key, and the defaults here
are the project's only defaults (the config schema checks types and ranges;
``config/config.yaml`` sets only what the default benchmark deliberately changes).

This module imports neither torch nor numpy-heavy code: the Snakefile imports it while it
parses.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_args

from pydantic import AfterValidator, ConfigDict, Field, Strict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as _pydantic_dataclass

from hepgenbench.errors import InputError
from hepgenbench.seeding import derive_seed

Int = Annotated[int, Strict()]
PositiveInt = Annotated[int, Strict(), Field(ge=1)]
NonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
Float = Annotated[float, Strict()]
NonNegativeFloat = Annotated[float, Strict(), Field(ge=0)]
Str = Annotated[str, Strict()]
Bool = Annotated[bool, Strict()]

#: Separates a model's config name from its replica index in an instance name (``nsf_r1``).
REPLICA_SEP = "_r"
#: Keys of a model's config block that are not hyperparameters of its family.
MODEL_KEYS = ("family", "datasets", "training")
#: The family of a model whose samples were made outside hepgenbench (``samples:`` a file).
EXTERNAL = "external"

R = TypeVar("R", bound="Record")


def record(cls: type[R]) -> type[R]:
    """Make ``cls`` a frozen, validated record: unknown keys and wrong types are rejected."""
    return _input_errors(_pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))(cls))


def _mutable_record(cls: type[R]) -> type[R]:
    """As :func:`record`, for the training log that the training loop fills in place."""
    return _input_errors(_pydantic_dataclass(config=ConfigDict(extra="forbid"))(cls))


def _input_errors(cls: type[R]) -> type[R]:
    """Let the constructor raise InputError, as :meth:`Record.from_dict` does, not pydantic's error."""
    validated_init = cls.__init__

    @functools.wraps(validated_init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            validated_init(self, *args, **kwargs)
        except ValidationError as err:
            raise InputError(_describe(type(self), err, type(self).what)) from None

    cls.__init__ = __init__
    return cls


@functools.cache
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


class Record:
    """What every record can do: validate from a dict or JSON, and write itself back."""

    #: What the record is, for error messages ("train parameters").
    what: ClassVar[str] = "record"

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any] | None, where: str | None = None) -> R:
        """Validate ``data``; a wrong type or unknown key raises InputError naming the key."""
        if data is not None and not isinstance(data, Mapping):
            raise InputError(f"{where or cls.what}: expected a mapping of keys to values, got {type(data).__name__}")
        try:
            return _adapter(cls).validate_python(dict(data or {}))
        except ValidationError as err:
            raise InputError(_describe(cls, err, where or cls.what)) from None

    @classmethod
    def from_json(cls: type[R], text: str, where: str | None = None) -> R:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"{where or cls.what}: not valid JSON ({err})") from None
        return cls.from_dict(data, where)

    def to_dict(self) -> dict[str, Any]:
        return _adapter(type(self)).dump_python(self)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): equal records give equal strings, so a rule's
        ``params:`` changes exactly when a parameter does."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def read(cls: type[R], path: str | os.PathLike) -> R:
        """The record stored as JSON at ``path`` (written by :meth:`write`)."""
        from hepgenbench.io import read_json

        if not os.path.exists(path):
            raise InputError(f"{path}: {cls.what} file does not exist")
        try:
            data = read_json(path)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"{path}: not a {cls.what} JSON file ({err})") from None
        return cls.from_dict(data, where=str(path))

    def write(self, path: str | os.PathLike) -> None:
        """Write the record as indented JSON, atomically."""
        from hepgenbench.io import write_json

        write_json(path, self.to_dict())


def _describe(cls: type, err: ValidationError, where: str) -> str:
    # A config key ("config key datasets.zmumu") is continued by the field's key; a
    # description or a file is followed by it after a colon.
    dotted = where.startswith("config key ")
    problems = []
    for e in err.errors():
        loc = ".".join(str(part) for part in e["loc"])
        key = (f"{where}.{loc}" if dotted else loc) if loc else where
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            owner = _field_owner(cls, e["loc"][:-1])
            known = f"; known keys: {', '.join(f.name for f in dataclasses.fields(owner))}" if owner else ""
            problems.append(f"{key}: unknown key{known}")
        elif e["type"] in ("missing", "missing_argument"):
            problems.append(f"{key}: required key is missing")
        elif e["type"] == "value_error":
            problems.append(f"{key}: {message}")
        else:
            problems.append(f"{key}: {message[0].lower()}{message[1:]}, got {e.get('input')!r}")
    text = "; ".join(problems)
    return text if dotted or text.startswith(where) else f"{where}: {text}"


def _field_owner(cls: type, loc: tuple) -> type | None:
    """The record class at ``loc`` inside ``cls`` (through lists of records), to list its keys."""
    for part in loc:
        if isinstance(part, int):  # an item of a list of records: still the item's class
            continue
        fields = getattr(cls, "__pydantic_fields__", {})
        if part not in fields:
            return None
        annotation = fields[part].annotation
        nested = [a for a in (annotation, *get_args(annotation)) if dataclasses.is_dataclass(a)]
        if not nested:
            return None
        cls = nested[0]
    return cls if dataclasses.is_dataclass(cls) else None


# ====================================================================== helpers of the rules
def split_instance(instance: str) -> tuple[str, int]:
    """``("nsf", 1)`` for the model instance ``nsf_r1``; replica 0 has no suffix."""
    name, _, replica = instance.partition(REPLICA_SEP)
    return name, int(replica or 0)


def _dataset(config: Mapping[str, Any], dataset: str) -> Mapping[str, Any]:
    try:
        return config["datasets"][dataset]
    except KeyError:
        raise InputError(f"config key datasets: no dataset '{dataset}'") from None


def _merged(*blocks: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for block in blocks:
        out.update(block or {})
    return out


# ====================================================================== parameters in
@record
class NoParams(Record):
    """The parameters of a stage that needs none (merge, preprocess)."""

    what: ClassVar[str] = "parameters"

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **wildcards: str) -> NoParams:
        return cls()


@record
class SourceParams(Record):
    """One seeded generation job of an embedded dataset (one chunk of it).

    The source's own options (Pythia's ``level``, ...) are checked against its schema
    fragment in :mod:`hepgenbench.kinds`, which also fills in their defaults: a new source
    brings its options with it, and nothing here names one.
    """

    what: ClassVar[str] = "source parameters"

    source: Str
    #: events of this chunk (the dataset's ``n_events`` shared over its chunks)
    n_events: PositiveInt
    seed: NonNegativeInt
    #: parallel seeded generation jobs (chunked sources), merged afterwards
    chunks: PositiveInt = 1
    chunk: NonNegativeInt = 0
    #: the source's own options, defaults filled in
    options: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dataset: str, chunk: int | str = 0) -> SourceParams:
        from hepgenbench import kinds

        where = f"config key datasets.{dataset}"
        block = kinds.validate_dataset(dataset, _dataset(config, dataset))
        src = kinds.source(block["source"])
        if not src.embedded:
            raise InputError(f"{where}.source: '{src.name}' reads the user's files; the workflow generates only "
                             f"{', '.join(sorted(kinds.embedded_sources()))}")
        # Only a chunked source (Pythia) runs as several jobs; the others are one.
        chunks = block.get("chunks", 1) if src.chunked else 1
        chunk = int(chunk)
        # Chunks share the events evenly; the first takes the remainder.
        n = block["n_events"] // chunks + (block["n_events"] % chunks if chunk == 0 else 0)
        options = {k: v for k, v in block.items() if k not in (*_NOT_INGEST_KEYS, "source")}
        return cls.from_dict({"source": src.name, "n_events": n, "seed": derive_seed(config["seed"], dataset, "source", chunk),
                              "chunks": chunks, "chunk": chunk, "options": options}, where)

    def block(self) -> dict[str, Any]:
        """The dataset block a source's ``generate`` reads: its options, events and seed."""
        return {**self.options, "source": self.source, "n_events": self.n_events, "seed": self.seed}


#: Keys of a dataset's config block that are read by other stages than ingest.
_NOT_INGEST_KEYS = ("n_events", "chunks", "split", "training", "files")


@record
class IngestParams(Record):
    """How to read one dataset's files into the flat feature table: the dataset's name,
    source and kind, and its source's options (checked against the source's schema
    fragment by :func:`hepgenbench.kinds.validate_dataset`, defaults filled in)."""

    what: ClassVar[str] = "ingest parameters"

    name: Str
    source: Str
    #: the physics of the dataset, which decides its observables and checks
    kind: Str = "generic"
    options: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dataset: str) -> IngestParams:
        from hepgenbench import kinds

        block = kinds.validate_dataset(dataset, _dataset(config, dataset))
        options = {k: v for k, v in block.items() if k not in (*_NOT_INGEST_KEYS, "source", "kind")}
        return cls.from_dict({"name": dataset, "source": block["source"], "kind": kinds.kind_of(block).name,
                              "options": options}, f"config key datasets.{dataset}")

    def block(self) -> dict[str, Any]:
        """The dataset block a source's ``read`` takes."""
        return {**self.options, "name": self.name, "source": self.source, "kind": self.kind}


@record
class SplitFractions(Record):
    """Fractions of the events in the train, validation, test and truth-holdout sets."""

    what: ClassVar[str] = "split fractions"

    train: Float = 0.5
    val: Float = 0.1
    test: Float = 0.1
    truth: Float = 0.3

    def __post_init__(self) -> None:
        parts = (self.train, self.val, self.test, self.truth)
        if any(p <= 0 for p in parts) or abs(sum(parts) - 1) > 1e-6:
            raise InputError(f"split fractions must be positive and sum to 1, got {parts}")


@record
class SplitParams(Record):
    what: ClassVar[str] = "split parameters"

    seed: NonNegativeInt
    split: SplitFractions = SplitFractions()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dataset: str) -> SplitParams:
        seed = derive_seed(config["seed"], dataset, "split")
        where = f"config key datasets.{dataset}"
        fractions = _dataset(config, dataset).get("split") or {}
        try:
            return cls.from_dict({"seed": seed, "split": fractions}, where)
        except InputError:
            raise
        except ValueError as err:  # __post_init__ of the fractions
            raise InputError(f"{where}.split: {err}") from None


@_mutable_record
class TrainSettings(Record):
    """What the shared training loop needs to know: the config's ``training`` block
    (global, per dataset and per model, merged in that order), the job's seed and threads."""

    what: ClassVar[str] = "training settings"

    max_epochs: PositiveInt = 300
    batch_size: PositiveInt = 512
    learning_rate: NonNegativeFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.0
    #: early stopping: stop after this many epochs without a better validation loss
    patience: PositiveInt = 20
    #: wall-clock budget in seconds; None trains for max_epochs (or until early stopping)
    time_budget_s: NonNegativeFloat | None = None
    seed: NonNegativeInt = 0
    threads: PositiveInt = 1
    #: "auto" picks CUDA when present, "cpu", "cuda" or "cuda:N"
    device: Annotated[str, Strict(), Field(pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$")] = "auto"
    #: density-trained models (iaf): Monte-Carlo batch per step and steps per "epoch"
    density_batch_size: PositiveInt = 2048
    density_steps_per_epoch: PositiveInt = 100
    #: optimizer-step budget: stop after this many training steps (batches); None: no limit
    max_steps: PositiveInt | None = None
    #: what the budget counts, for the checkpoint fractions and the report's compute axis:
    #: "wall-clock" (time_budget_s), "steps" (max_steps) or "epochs" (max_epochs); "auto"
    #: takes max_steps if set, else time_budget_s if set, else max_epochs
    budget: Literal["auto", "wall-clock", "steps", "epochs"] = "auto"
    #: fractions of the budget at which the weights are kept and scored (quality vs compute)
    checkpoint_fractions: list[Annotated[float, Strict(), Field(gt=0, le=1)]] = dataclasses.field(
        default_factory=lambda: [0.25, 0.5, 1.0])
    #: showers: train without the showers of this incident energy (MeV) and score the model at
    #: it (leave-one-energy-out, :mod:`hepgenbench.leave_out`); a dataset's setting, not a model's
    leave_out_energy: Annotated[float, Field(gt=0)] | None = None

    def __post_init__(self) -> None:
        fractions = self.checkpoint_fractions
        if not fractions or any(b <= a for a, b in zip(fractions, fractions[1:])):
            raise InputError(f"checkpoint_fractions: expected increasing fractions in (0, 1], got {fractions}")
        axis = self.budget_axis
        if axis == "steps" and self.max_steps is None:
            raise InputError("budget: 'steps' needs max_steps (the optimizer steps that make the whole budget)")
        if axis == "wall-clock" and self.time_budget_s is None:
            raise InputError("budget: 'wall-clock' needs time_budget_s (the seconds that make the whole budget)")

    @property
    def budget_axis(self) -> Literal["wall-clock", "steps", "epochs"]:
        """What the budget counts: :attr:`budget`, with ``auto`` resolved."""
        if self.budget != "auto":
            return self.budget
        if self.max_steps is not None:
            return "steps"
        return "wall-clock" if self.time_budget_s is not None else "epochs"

    @property
    def budget_total(self) -> float:
        """The whole budget in units of :attr:`budget_axis` (seconds, steps or epochs)."""
        axis = self.budget_axis
        if axis == "wall-clock":
            return float(self.time_budget_s)
        return float(self.max_steps if axis == "steps" else self.max_epochs)


@record
class TrainParams(Record):
    """One training job: a family with its hyperparameters, on one dataset, one replica."""

    what: ClassVar[str] = "train parameters"

    family: Str
    training: TrainSettings
    hparams: dict[str, Any] = dataclasses.field(default_factory=dict)
    replica: NonNegativeInt = 0

    @property
    def seed(self) -> int:
        return self.training.seed

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dataset: str, model: str) -> TrainParams:
        name, replica = split_instance(model)
        spec = config["models"][name] or {}
        if "leave_out_energy" in (spec.get("training") or {}):
            raise InputError(f"config key models.{name}.training.leave_out_energy: the energy left out is a "
                             f"dataset's setting (every model trains on the same showers); set it in "
                             f"datasets.{dataset}.training")
        options = training_options(config, dataset, name)
        seed = derive_seed(config["seed"], dataset, name, "train", replica)
        return cls.from_dict(
            {
                "family": spec.get("family", name),
                "hparams": hyperparameters(config, name),
                "training": {**options, "seed": seed},
                "replica": replica,
            },
            f"train parameters of model '{model}' on dataset '{dataset}' (config keys training, "
            f"datasets.{dataset}.training, models.{name})",
        )


def leave_out_energy(config: Mapping[str, Any], dataset: str) -> float | None:
    """The incident energy (MeV) that ``dataset``'s models train without: the ``training``
    blocks of the config and of the dataset, merged (:mod:`hepgenbench.leave_out`)."""
    value = _merged(config.get("training"), _dataset(config, dataset).get("training")).get("leave_out_energy")
    return None if value is None else float(value)


@record
class PreprocessParams(Record):
    """Fitting the preprocessing on the training split (without the energy left out)."""

    what: ClassVar[str] = "preprocess parameters"

    leave_out_energy: Annotated[float, Field(gt=0)] | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dataset: str) -> PreprocessParams:
        return cls(leave_out_energy=leave_out_energy(config, dataset))


def hyperparameters(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The hyperparameters of model ``name``: its config block without :data:`MODEL_KEYS`."""
    return {k: v for k, v in (config["models"][name] or {}).items() if k not in MODEL_KEYS}


def training_options(config: Mapping[str, Any], dataset: str, name: str) -> dict[str, Any]:
    """The ``training`` blocks that apply to model ``name`` on ``dataset``, merged: global,
    then the dataset's, then the model's (the later wins)."""
    return _merged(config.get("training"), _dataset(config, dataset).get("training"),
                   (config["models"][name] or {}).get("training"))


@record
class SampleParams(Record):
    """Sampling one trained model: as many events as truth-holdout A holds."""

    what: ClassVar[str] = "sample parameters"

    model: Str
    seed: NonNegativeInt
    #: events per call of the model's sampler
    batch_size: PositiveInt = 10_000
    #: truth events whose likelihood under the model is computed (NLL, importance weights)
    nll_max_events: Annotated[int, Strict(), Field(ge=10)] = 10_000
    #: batch sizes at which the generation time per event is measured (the CaloChallenge's)
    rate_batch_sizes: list[PositiveInt] = dataclasses.field(default_factory=lambda: [1, 100, 10_000])

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dataset: str, model: str) -> SampleParams:
        seed = derive_seed(config["seed"], dataset, model, "sample")
        return cls.from_dict({**(config.get("sampling") or {}), "model": model, "seed": seed}, "config key sampling")


#: Classifiers of the C2ST (:data:`hepgenbench.metrics.classifier.CLASSIFIERS`).
C2stClassifier = Literal["hgb", "mlp", "cc22"]


@record
class EvalOptions(Record):
    """Options of the metric suite; the fields are the keys of the config's ``evaluation:`` block.

    The defaults keep the whole suite on 1e5 vs 1e5 events with 10 features under a minute
    on 2 cores (see ``benchmarks/results/metrics.md``).
    """

    what: ClassVar[str] = "evaluation"

    n_bootstrap: PositiveInt = 10  #: bootstrap replicas of W1 and the histogram divergences
    n_bins: PositiveInt = 50  #: truth-quantile bins per feature for KL/JSD/separation power
    #: events each W1 bootstrap replica resamples (m-out-of-n, spread scaled by √(m/n)); the value uses all
    w1_bootstrap_events: PositiveInt = 20_000
    emd_subsample: PositiveInt = 1500  #: events per sample in each exact-EMD repeat (cost ∝ n²–n³)
    emd_repeats: PositiveInt = 3
    emd_num_itermax: PositiveInt = 1_000_000  #: network-simplex iteration cap; not converging is an error
    swd_projections: PositiveInt = 50  #: random directions per sliced-Wasserstein estimate
    swd_seeds: PositiveInt = 4  #: independent direction sets (their spread is the error)
    swd_max_events: PositiveInt = 200_000  #: events per sample in the sliced W (subsampled beyond)
    #: "hgb" (gradient-boosted trees), "mlp", or "cc22": the CaloChallenge's network and protocol,
    #: on the scale of its published AUCs (hepgenbench.metrics.cc22)
    c2st_classifier: C2stClassifier = "hgb"
    c2st_folds: Annotated[int, Strict(), Field(ge=2)] = 5
    c2st_max_events: PositiveInt = 50_000  #: events per class fed to the C2ST
    fpd_min_samples: PositiveInt = 20_000
    fpd_max_samples: PositiveInt = 50_000
    fpd_points: PositiveInt = 10
    fpd_resamples: PositiveInt = 20
    kpd_batch_size: PositiveInt = 5_000
    kpd_batches: PositiveInt = 10
    memorisation_max_events: PositiveInt = 10_000  #: generated/truth events queried against train
    memorisation_max_train: PositiveInt = 100_000
    energy_bins: PositiveInt = 5  #: calo: quantile bins of E_inc when it is not discrete
    #: the cc22 classifier: width of its layers, epochs, batch and Adam's learning rate
    #: (the challenge's values; smaller ones only for tests and quick looks)
    cc22_width: PositiveInt = 2048
    cc22_epochs: PositiveInt = 50
    cc22_batch_size: PositiveInt = 1000
    cc22_learning_rate: Annotated[float, Strict(), Field(gt=0)] = 2e-4
    prdc_k: PositiveInt = 5  #: calo: nearest neighbours of PRDC (arXiv:2002.09797)
    prdc_max_events: Annotated[int, Strict(), Field(ge=10)] = 5_000  #: events per sample in each PRDC repeat
    prdc_repeats: Annotated[int, Strict(), Field(ge=2)] = 3
    #: truth and generated events per class of the C2ST that scores each budget checkpoint
    budget_auc_events: Annotated[int, Strict(), Field(ge=50)] = 2000

    @property
    def cc22(self) -> dict[str, Any]:
        """The options of :class:`hepgenbench.metrics.cc22.CC22Settings` these set."""
        return {"width": self.cc22_width, "epochs": self.cc22_epochs, "batch_size": self.cc22_batch_size,
                "learning_rate": self.cc22_learning_rate}

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> EvalOptions:
        """Build from the config's ``evaluation:`` block; unknown keys and bad values raise InputError."""
        return cls.from_dict(config, "config key evaluation")


@record
class EvaluateParams(Record):
    """Scoring one sample (or truth B, for ``model == "truth"``) against truth A."""

    what: ClassVar[str] = "evaluate parameters"

    dataset: Str
    #: the instance: nsf, or nsf_r1 for replica 1; "truth" for the noise floor
    model: Str
    #: the config name that replicas share
    name: Str
    seed: NonNegativeInt
    evaluation: EvalOptions = EvalOptions()
    #: showers: the incident energy (MeV) the models trained without, scored on its own
    leave_out_energy: Annotated[float, Field(gt=0)] | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dataset: str, model: str = "truth") -> EvaluateParams:
        # Every row of a dataset uses the same metric seed: common random numbers make the
        # rows comparable, and the truth row is the exact same computation on truth B.
        options = EvalOptions.from_config(config.get("evaluation"))
        return cls(dataset=dataset, model=model, name=split_instance(model)[0], evaluation=options,
                   seed=derive_seed(config["seed"], dataset, "evaluate"),
                   leave_out_energy=leave_out_energy(config, dataset))


@record
class BudgetParams(Record):
    """Scoring the weights one model kept at fractions of its training budget."""

    what: ClassVar[str] = "budget parameters"

    dataset: Str
    model: Str
    name: Str
    seed: NonNegativeInt
    #: truth and generated events per class of each checkpoint's C2ST
    n_events: Annotated[int, Strict(), Field(ge=50)] = 2000
    classifier: C2stClassifier = "hgb"
    folds: Annotated[int, Strict(), Field(ge=2)] = 5
    #: events per call of the model's sampler
    batch_size: PositiveInt = 10_000

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dataset: str, model: str) -> BudgetParams:
        # Only the options the scoring reads: changing another metric's does not rerun it.
        options = EvalOptions.from_config(config.get("evaluation"))
        sampling = config.get("sampling") or {}
        return cls(dataset=dataset, model=model, name=split_instance(model)[0],
                   seed=derive_seed(config["seed"], dataset, "budget"), n_events=options.budget_auc_events,
                   classifier=options.c2st_classifier, folds=options.c2st_folds,
                   batch_size=sampling.get("batch_size", 10_000))


#: Headline metrics whose truth null the default run draws: every two-sample distance of the
#: suite but the three that cost most per call at 1e4 events (KPD 4.6 s, NN-distance ratio
#: 1.4 s, exact EMD 0.9 s; the eight below take 0.8 s together); the likelihood metrics,
#: the unweighting efficiency and the unphysical fraction are properties of the model, not
#: of two samples.
DEFAULT_NULL_METRICS = ("c2st_auc", "w1_mean", "w1_observables_mean", "jsd_mean", "kl_mean",
                        "separation_power_mean", "swd", "fpd")  # fmt: skip


@record
class ConfidenceOptions(Record):
    """The config's ``confidence:`` block: the truth null, the p-values and the ranking draws.

    The null of a dataset is ``null_replicas`` truth-vs-truth evaluations at the models'
    sample size N, each on a fresh random split of the truth holdout A ∪ B into two
    disjoint halves (:mod:`hepgenbench.null`); the smallest p-value it can give is
    1/(null_replicas + 1). The N_eq curve adds ``neq_replicas`` evaluations at each
    fraction of N in ``neq_fractions``.
    """

    what: ClassVar[str] = "confidence options"

    #: truth-vs-truth evaluations at N per dataset; 0 draws no null (no p-values, no N_eq)
    null_replicas: NonNegativeInt = 39
    #: headline metrics with a null (and a p-value and an N_eq)
    null_metrics: list[Str] = dataclasses.field(default_factory=lambda: list(DEFAULT_NULL_METRICS))
    #: sizes of the N_eq curve below N, as fractions of N (N itself is the null's)
    neq_fractions: list[Annotated[float, Strict(), Field(gt=0, lt=1)]] = dataclasses.field(
        default_factory=lambda: [1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2])
    #: truth-vs-truth evaluations at each size of the N_eq curve
    neq_replicas: PositiveInt = 2
    #: α of the "compatible with truth" verdict (Benjamini–Hochberg adjusted p-values)
    level: Annotated[float, Strict(), Field(gt=0, lt=1)] = 0.05
    #: draws of the ranking probabilities (P(best), rank interval)
    ranking_draws: PositiveInt = 4000

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> ConfidenceOptions:
        """Build from the config's ``confidence:`` block; unknown keys and bad values raise InputError."""
        return cls.from_dict(config, "config key confidence")


@record
class NullParams(Record):
    """Drawing one dataset's truth null with the evaluate stage's own options and seed."""

    what: ClassVar[str] = "null parameters"

    dataset: Str
    #: the evaluate stage's metric seed of the dataset: the null repeats the rows' computation
    seed: NonNegativeInt
    evaluation: EvalOptions = EvalOptions()
    confidence: ConfidenceOptions = ConfidenceOptions()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dataset: str) -> NullParams:
        evaluate = EvaluateParams.from_config(config, dataset)
        return cls(dataset=dataset, seed=evaluate.seed, evaluation=evaluate.evaluation,
                   confidence=ConfidenceOptions.from_config(config.get("confidence")))


@record
class ExternalCost(Record):
    """What an external model cost, as its user states it (``models.<name>.cost``)."""

    what: ClassVar[str] = "external model cost"

    train_time_s: NonNegativeFloat | None = None
    #: trainable parameters
    params: NonNegativeInt | None = None
    #: events per second when sampling ``sample_batch_size`` at a time on ``device``
    sample_rate: Annotated[float, Field(gt=0)] | None = None
    sample_batch_size: PositiveInt = 10_000
    device: Literal["cpu", "cuda"] = "cpu"

    def sample_cost(self) -> SampleCost:
        """As the trained models' cost: the rate becomes milliseconds per event at its batch size."""
        per_event = {} if self.sample_rate is None else {
            f"{self.device}_{self.sample_batch_size}": 1000.0 / self.sample_rate}
        return SampleCost(n_parameters=self.params, train_time_s=self.train_time_s, time_per_event_ms=per_event)


@record
class ExternalParams(Record):
    """Bringing a user's samples into the DAG: read in the dataset's own format, checked
    against its truth (:func:`hepgenbench.scoring.check_generated`)."""

    what: ClassVar[str] = "external parameters"

    dataset: Str
    model: Str
    #: how the dataset's files are read: the same reader and options as its ingest
    reading: IngestParams
    seed: NonNegativeInt
    cost: ExternalCost | None = None
    #: warn, rather than refuse, when the samples' conditions are drawn unlike truth's
    allow_condition_mismatch: Bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dataset: str, model: str) -> ExternalParams:
        spec = config["models"][model]
        return cls.from_dict({
            "dataset": dataset, "model": model, "reading": IngestParams.from_config(config, dataset).to_dict(),
            "seed": derive_seed(config["seed"], dataset, model, "external"), "cost": spec.get("cost"),
            "allow_condition_mismatch": spec.get("allow_condition_mismatch", False),
        }, f"config key models.{model}")


def external_samples(config: Mapping[str, Any], model: str, dataset: str) -> str | None:
    """The file of ``model``'s samples for ``dataset`` if ``model`` is external, else None.
    ``samples:`` is one path (for the model's one dataset) or ``{dataset: path}``."""
    spec = config.get("models", {}).get(model) or {}
    if spec.get("family") != EXTERNAL:
        return None
    samples = spec["samples"]
    return samples.get(dataset) if isinstance(samples, Mapping) else samples


@record
class PlotsParams(Record):
    what: ClassVar[str] = "plots parameters"

    dataset: Str
    #: the model instances of the dataset, in the config's order
    models: list[Str]
    #: those of them whose samples were made outside hepgenbench (no training log)
    external: list[Str] = dataclasses.field(default_factory=list)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dataset: str, models: list[str]) -> PlotsParams:
        external = [m for m in models if external_samples(config, split_instance(m)[0], dataset) is not None]
        return cls(dataset=dataset, models=list(models), external=external)


@record
class ReportParams(Record):
    what: ClassVar[str] = "report parameters"

    #: the whole validated config, shown in the report's provenance
    config: dict[str, Any]
    title: Str = "hepgenbench report"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ReportParams:
        return cls.from_dict({**(config.get("report") or {}), "config": dict(config)}, "config key report")


# ====================================================================== records out
@_mutable_record
class EpochRecord(Record):
    epoch: Int
    train_loss: Float
    val_loss: Float
    learning_rate: Float
    time_s: Float  # wall time since the start of training
    steps: NonNegativeInt = 0  # training steps (batches) since the start of training


@_mutable_record
class BudgetPoint(Record):
    """Where training stood when the weights at one fraction of its budget were kept.

    The weights kept are those the run would have delivered had its budget ended there: the
    best validation loss so far (as ``model.pt`` holds the best of the whole run), taken at
    the end of the first epoch at which the budget used reached the fraction. A run that
    stopped before reaching it (early stopping, another limit) keeps its final weights there,
    with ``reached`` false: a longer budget would not have changed them.
    """

    what: ClassVar[str] = "budget checkpoint"

    fraction: Float
    axis: Literal["wall-clock", "steps", "epochs"]
    #: the budget used when the weights were kept, in the axis's unit, and as a fraction
    used: Float
    epoch: NonNegativeInt
    steps: NonNegativeInt
    time_s: Float
    best_epoch: Int
    reached: Bool


@_mutable_record
class TrainingLog(Record):
    """The record of one training run; saved in ``model.pt`` and as CSV."""

    what: ClassVar[str] = "training log"

    epochs: list[EpochRecord] = dataclasses.field(default_factory=list)
    best_epoch: Int = -1
    best_val_loss: Float = math.inf
    stopped_because: Literal["", "max_epochs", "max_steps", "early_stopping", "time_budget", "diverged"] = ""
    diverged: Bool = False
    divergence_reason: Str = ""
    wall_time_s: Float = 0.0
    time_to_best_s: Float = 0.0
    n_parameters: Int = 0
    device: Str = "cpu"
    budget: Literal["", "epochs", "steps", "wall-clock"] = ""  # which budget bounded the run
    steps: NonNegativeInt = 0  # training steps (batches) run
    #: the weights kept at fractions of the budget (``budget_checkpoints.pt``), in order
    checkpoints: list[BudgetPoint] = dataclasses.field(default_factory=list)


@record
class Provenance(Record):
    """Where, when and on what a model was trained."""

    what: ClassVar[str] = "training provenance"

    hostname: Str
    machine: Str
    device: Str
    gpu: Str | None
    trained_at: Str  # ISO 8601, UTC
    replica: NonNegativeInt
    seed: NonNegativeInt
    peak_memory_mb: NonNegativeFloat


@record
class TrainingCost(Record):
    """What training one model cost."""

    n_parameters: Int
    train_time_s: Float
    time_to_best_s: Float
    peak_memory_mb: Float


@record
class TrainingInfo(Record):
    """How a model was trained, as the report lists it."""

    hostname: Str | None
    machine: Str | None
    device: Str | None
    gpu: Str | None
    trained_at: Str | None
    replica: Int | None
    seed: Int | None
    best_epoch: Int
    stopped_because: Str
    budget: Str
    epochs: Int  # epochs run


@record
class TrainingSummary(Record):
    """What the evaluation reports of how a sample's model was trained. The sample
    carries it (``meta["trained"]``) so that scoring the sample needs neither the model
    nor torch."""

    what: ClassVar[str] = "training summary of the sample ('trained' in its metadata)"

    likelihood_is_bound: Bool
    diverged: Bool
    divergence_reason: Str
    cost: TrainingCost
    training: TrainingInfo


@record
class TrainedModelRecord(Record):
    """Everything ``model.pt`` holds besides the weights (``hepgenbench.train.save_model``)."""

    what: ClassVar[str] = "trained-model record"

    training_log: TrainingLog | None = None
    settings: TrainSettings | None = None
    provenance: Provenance | None = None

    def summary(self, likelihood_is_bound: bool) -> TrainingSummary:
        """The :class:`TrainingSummary` a sample of this model carries."""
        log = self.training_log or TrainingLog()
        prov = self.provenance
        peak = prov.peak_memory_mb if prov else 0.0
        return TrainingSummary(
            likelihood_is_bound=likelihood_is_bound,
            diverged=log.diverged,
            divergence_reason=log.divergence_reason,
            cost=TrainingCost(n_parameters=log.n_parameters, train_time_s=log.wall_time_s,
                              time_to_best_s=log.time_to_best_s, peak_memory_mb=peak),
            training=TrainingInfo(
                **{k: getattr(prov, k) if prov else None
                   for k in ("hostname", "machine", "device", "gpu", "trained_at", "replica", "seed")},
                best_epoch=log.best_epoch, stopped_because=log.stopped_because, budget=log.budget,
                epochs=len(log.epochs),
            ),
        )


@record
class SampleCost(Record):
    """Training cost plus what sampling measured: events per second per batch size.
    An external model's cost holds what its user gave (:class:`ExternalCost`), else nothing."""

    n_parameters: Int | None = None
    train_time_s: Float | None = None
    time_to_best_s: Float | None = None
    peak_memory_mb: Float | None = None
    #: events/s on the CPU at each batch size (the key, as a string); None where it was not measured
    sample_rate: dict[str, Float | None] = dataclasses.field(default_factory=dict)
    #: milliseconds per event by "<device>_<batch size>" (cpu_1, cuda_10000, ...), as the
    #: CaloChallenge reports generation time (hepgenbench.cost); None where not measured
    time_per_event_ms: dict[str, Float | None] = dataclasses.field(default_factory=dict)
    #: seconds of the first sampling call, per device ("cpu", "cuda")
    warmup_s: dict[str, Float] = dataclasses.field(default_factory=dict)
    #: seconds to read model.pt and build the model
    load_time_s: Float | None = None
    #: floating-point operations per generated event (torch.utils.flop_counter)
    flops_per_event: Float | None = None


def _metric_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A :class:`~hepgenbench.metrics.base.MetricResult` as stored: ``{value, error, **details}``."""
    for key in ("value", "error"):
        if key not in entry:
            raise ValueError(f"a metric entry needs 'value' and 'error' (MetricResult.to_dict), lacks '{key}'")
        v = entry[key]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ValueError(f"metric '{key}' must be a number or null, got {v!r}")
    return entry


MetricEntry = Annotated[dict[str, Any], AfterValidator(_metric_entry)]


@record
class MetricsRecord(Record):
    """Every metric of one (dataset, model) row, and how its model was trained and sampled.

    The truth row (``model == "truth"``, truth B against truth A) has no cost and no training.
    """

    what: ClassVar[str] = "metrics record"

    dataset: Str
    model: Str  # the instance: nsf, or nsf_r1 for replica 1
    name: Str  # the config name that replicas share
    family: Str
    n_truth: NonNegativeInt
    n_generated: NonNegativeInt
    metrics: dict[str, MetricEntry]
    #: "flagged": scored, with a warning in status_detail (a C2ST AUC below chance, say)
    status: Literal["ok", "diverged", "flagged"] = "ok"
    status_detail: Str = ""
    cost: SampleCost | None = None
    training: TrainingInfo | None = None

    @property
    def is_truth(self) -> bool:
        return self.model == "truth"


@record
class NullRecord(Record):
    """One dataset's truth null (``results/{dataset}/null.json``, :mod:`hepgenbench.null`).

    ``replicas[key]`` holds the metric's values on ``n_replicas`` random splits of the
    truth pool (``n_pool`` events) into two disjoint samples of ``n_truth`` and
    ``n_generated`` events, the sizes of the model rows. ``curve[key][i]`` holds its values
    at ``curve_sizes[i]`` events per side (the last size is N, the replicas themselves).
    None marks a value the metric could not give; ``notes[key]`` says why.
    """

    what: ClassVar[str] = "truth null record"

    dataset: Str
    n_truth: NonNegativeInt
    n_generated: NonNegativeInt
    n_pool: NonNegativeInt
    n_replicas: NonNegativeInt
    seed: NonNegativeInt
    method: Str
    replicas: dict[str, list[Float | None]]
    curve_sizes: list[NonNegativeInt]
    curve: dict[str, list[list[Float | None]]]
    notes: dict[str, Str] = dataclasses.field(default_factory=dict)


@record
class PlotRecord(Record):
    """One written figure, as the report and the manifest list it."""

    path_png: Str
    path_pdf: Str
    kind: Str
    title: Str
    caption: Str


@record
class PlotManifest(Record):
    """The figures of one dataset (``plots/manifest.json``), for the report."""

    what: ClassVar[str] = "plot manifest"

    dataset: Str
    plots: list[PlotRecord]


@record
class BudgetCurvePoint(Record):
    """One checkpoint's score: where training stood (:class:`BudgetPoint`) and its C2ST AUC."""

    fraction: Float
    used: Float
    epoch: NonNegativeInt
    steps: NonNegativeInt
    time_s: Float
    best_epoch: Int
    reached: Bool
    auc: Float
    auc_error: Float


@record
class BudgetCurve(Record):
    """Quality against training compute of one model (``results/{dataset}/budget/{model}.json``):
    the C2ST AUC of the weights kept at each fraction of its budget, all on the same truth
    events and with the same classifier seed, and truth-vs-truth on as many events."""

    what: ClassVar[str] = "budget curve"

    dataset: Str
    model: Str
    name: Str
    family: Str
    #: what the budget counts and how much of it the whole budget is (seconds, steps, epochs)
    axis: Literal["wall-clock", "steps", "epochs"]
    total: Float
    stopped_because: Str
    n_per_class: NonNegativeInt
    truth_auc: Float
    truth_auc_error: Float
    points: list[BudgetCurvePoint]


#: The parameter record of every stage, by the stage's name (``hepgenbench <stage>``).
STAGE_PARAMS: dict[str, type[Record]] = {
    "source": SourceParams,
    "merge": NoParams,
    "ingest": IngestParams,
    "split": SplitParams,
    "preprocess": PreprocessParams,
    "train": TrainParams,
    "sample": SampleParams,
    "external": ExternalParams,
    "evaluate": EvaluateParams,
    "null": NullParams,
    "budget": BudgetParams,
    "budget_plots": PlotsParams,
    "plots": PlotsParams,
    "report": ReportParams,
}


__all__ = [
    "ConfidenceOptions", "NullParams", "NullRecord",
    "BudgetCurve", "BudgetCurvePoint", "BudgetParams", "BudgetPoint", "PreprocessParams", "leave_out_energy",
    "EXTERNAL", "EpochRecord", "EvalOptions", "EvaluateParams", "ExternalCost", "ExternalParams",
    "IngestParams", "MetricsRecord", "NoParams", "PlotManifest",
    "PlotRecord", "PlotsParams", "Provenance", "Record", "ReportParams", "SampleCost", "SampleParams",
    "SourceParams", "SplitFractions", "SplitParams", "STAGE_PARAMS", "TrainParams", "TrainSettings",
    "TrainedModelRecord", "TrainingCost", "TrainingInfo", "TrainingLog", "TrainingSummary", "hyperparameters",
    "split_instance", "training_options", "external_samples",
]
