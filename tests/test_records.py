"""The typed stage records: built from the real configs, validated, written and read back
by the stages that exchange them, and the only place that holds a default."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
import typing

import pytest
import yaml

from conftest import ROOT
from hepgenbench import records, stages
from hepgenbench.errors import InputError
from hepgenbench import kinds
from hepgenbench.records import (
    STAGE_PARAMS,
    EvalOptions,
    EvaluateParams,
    IngestParams,
    MetricsRecord,
    NoParams,
    PlotManifest,
    PlotsParams,
    ReportParams,
    SampleParams,
    SourceParams,
    SplitParams,
    TrainedModelRecord,
    TrainingSummary,
    TrainParams,
    TrainSettings,
)

CONFIGS = {name: yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text()) for name in ("config", "quick")}
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())


def params_of(config: dict) -> list[records.Record]:
    """Every stage's parameter record of every dataset and model of ``config``, as the rules build them."""
    out: list[records.Record] = [ReportParams.from_config(config)]
    for dataset, spec in config["datasets"].items():
        out += [IngestParams.from_config(config, dataset), SplitParams.from_config(config, dataset),
                EvaluateParams.from_config(config, dataset), PlotsParams.from_config(config, dataset, list(config["models"]))]
        if "n_events" in spec:
            out.append(SourceParams.from_config(config, dataset))
        for model in config["models"]:
            out += [TrainParams.from_config(config, dataset, f"{model}_r1"), SampleParams.from_config(config, dataset, model),
                    EvaluateParams.from_config(config, dataset, model)]
    return out


# --------------------------------------------------------------------------- built from the config
@pytest.mark.parametrize("name", CONFIGS)
def test_every_record_of_the_shipped_configs_round_trips_through_json(name):
    built = params_of(CONFIGS[name])
    assert len(built) > 10
    for rec in built:
        text = rec.to_json()
        assert type(rec).from_json(text) == rec, type(rec).__name__
        assert json.loads(text) == json.loads(type(rec).from_json(text).to_json())


def test_train_record_merges_global_dataset_and_model_training_and_seeds_per_replica():
    config = {"seed": 3, "datasets": {"d": {"source": "calo", "n_events": 10, "training": {"batch_size": 64, "patience": 5}}},
              "models": {"flow": {"family": "nsf", "hidden": [8], "training": {"patience": 7}}},
              "training": {"max_epochs": 9, "batch_size": 32}}
    r0, r1 = TrainParams.from_config(config, "d", "flow"), TrainParams.from_config(config, "d", "flow_r1")
    # the dataset's block beats the global one, the model's beats both; the rest are the record's defaults
    assert (r0.training.max_epochs, r0.training.batch_size, r0.training.patience) == (9, 64, 7)
    assert r0.training.learning_rate == TrainSettings().learning_rate
    assert (r0.family, r0.hparams, r0.replica, r1.replica) == ("nsf", {"hidden": [8]}, 0, 1)
    assert r0.seed != r1.seed


def test_source_record_shares_the_events_over_the_chunks():
    config = {"seed": 1, "datasets": {"z": {"source": "pythia", "n_events": 103, "chunks": 4}}}
    chunks = [SourceParams.from_config(config, "z", k) for k in range(4)]
    assert [c.n_events for c in chunks] == [28, 25, 25, 25]  # 103 = 4 x 25 + 3, the first takes the rest
    assert len({c.seed for c in chunks}) == 4


def test_params_json_changes_exactly_when_a_stage_parameter_does():
    """The JSON is the rule's rerun trigger: a key another stage reads must not rerun training."""
    config = CONFIGS["quick"]
    before = TrainParams.from_config(config, "phasespace", "vae").to_json()
    assert TrainParams.from_config({**config, "report": {"title": "x"}, "sampling": {"batch_size": 7}},
                                   "phasespace", "vae").to_json() == before
    changed = {**config, "training": {**config["training"], "learning_rate": 0.01}}
    assert TrainParams.from_config(changed, "phasespace", "vae").to_json() != before


# --------------------------------------------------------------------------- validation
BAD = [
    # (what, build, words the InputError must contain)
    ("misspelt training key", lambda: TrainParams.from_config(
        {"seed": 1, "datasets": {"d": {}}, "models": {"m": {"training": {"max_epoch": 3}}}}, "d", "m"),
     ["training.max_epoch", "unknown key", "max_epochs"]),
    ("string epochs", lambda: TrainParams.from_config(
        {"seed": 1, "datasets": {"d": {}}, "models": {"m": {}}, "training": {"max_epochs": "30"}}, "d", "m"),
     ["training.max_epochs", "valid integer", "'30'"]),
    ("boolean batch size", lambda: SampleParams.from_dict({"model": "m", "seed": 1, "batch_size": True}),
     ["batch_size", "valid integer"]),
    ("unknown sampling key", lambda: SampleParams.from_config({"seed": 1, "sampling": {"batchsize": 5}}, "d", "m"),
     ["config key sampling.batchsize", "unknown key", "batch_size"]),
    ("bad pythia level", lambda: SourceParams.from_config(
        {"seed": 1, "datasets": {"z": {"source": "pythia", "n_events": 5, "level": "detector"}}}, "z"),
     ["config key datasets.z.level", "'detector'"]),
    ("unknown dataset key", lambda: IngestParams.from_config(
        {"datasets": {"d": {"source": "root", "files": "a.root", "tre": "E"}}}, "d"),
     ["config key datasets.d.tre", "not an option of source 'root'", "tree"]),
    ("split fractions that do not sum to 1", lambda: SplitParams.from_config(
        {"seed": 1, "datasets": {"d": {"source": "calo", "split": {"train": 0.8}}}}, "d"),
     ["datasets.d.split", "sum to 1"]),
    ("unknown evaluation option", lambda: EvalOptions.from_config({"emd_subsampel": 9}),
     ["evaluation.emd_subsampel", "unknown key", "emd_subsample"]),
    ("metric entry without an error", lambda: MetricsRecord.from_dict(
        {"dataset": "d", "model": "m", "name": "m", "family": "vae", "n_truth": 5, "n_generated": 5,
         "metrics": {"w1_mean": {"value": 0.1}}}), ["metrics.w1_mean", "'error'"]),
    ("plot without a caption", lambda: PlotManifest.from_dict(
        {"dataset": "d", "plots": [{"path_png": "a.png", "path_pdf": "a.pdf", "kind": "k", "title": "t"}]}),
     ["plots.0.caption", "missing"]),
    ("settings built by hand", lambda: TrainSettings(device="tpu"), ["device", "'tpu'"]),
]


@pytest.mark.parametrize("what, build, words", BAD, ids=[b[0] for b in BAD])
def test_bad_values_are_one_input_error_naming_the_key(what, build, words):
    with pytest.raises(InputError) as err:
        build()
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, f"{what}: {message!r} lacks {word!r}"


# --------------------------------------------------------------------------- defaults live once
def _schema_defaults(node, path=()):
    """(path, default) of every ``default:`` in the schema."""
    if isinstance(node, dict):
        if "default" in node:
            yield path, node["default"]
        for key, child in node.items():
            yield from _schema_defaults(child, (*path, key))
    elif isinstance(node, list):
        for k, child in enumerate(node):
            yield from _schema_defaults(child, (*path, k))


def _record_of_schema_block(path: tuple) -> tuple[tuple[type, ...], str] | None:
    """The records that own the key at a schema path, and the key; None for a workflow-level key."""
    owners = {("properties", "sampling"): (SampleParams,), ("properties", "report"): (ReportParams,),
              ("properties", "evaluation"): (EvalOptions,), ("$defs", "training"): (TrainSettings,),
              ("$defs", "dataset"): (IngestParams,)}
    for prefix, classes in owners.items():
        if path[: len(prefix)] == prefix and path[len(prefix)] == "properties":
            return classes, path[len(prefix) + 1]
    return None


def _field_default(cls: type, key: str):
    for f in dataclasses.fields(cls):
        if f.name == key:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    raise KeyError(key)


#: Schema defaults of keys that no stage reads: they steer the DAG itself.
WORKFLOW_DEFAULTS = {("properties", "replicas"): 1}


def conflicting_defaults(schema: dict) -> list[str]:
    """Every schema default that is not its record's default (or, for a workflow key, the known one)."""
    problems = []
    for path, default in _schema_defaults(schema):
        where = ".".join(map(str, path))
        owner = _record_of_schema_block(path)
        if owner is None:
            if WORKFLOW_DEFAULTS.get(path, object()) != default:
                problems.append(f"{where}: {default!r}, owned by no record")
            continue
        classes, key = owner
        defaults = [_field_default(c, key) for c in classes if key in {f.name for f in dataclasses.fields(c)}]
        if defaults != [default] * len(defaults) or not defaults:
            problems.append(f"{where}: {default!r}, the records say {defaults}")
    return problems


def test_no_schema_default_disagrees_with_a_record():
    assert conflicting_defaults(SCHEMA) == []


@pytest.mark.parametrize("path, default", [
    (("$defs", "training", "properties", "max_epochs"), 100),  # the value TrainSettings held before
    (("properties", "sampling", "properties", "nll_max_events"), 20000),
    (("properties", "seed"), 0),  # a default for a key no record owns
])
def test_the_default_check_catches_a_conflicting_default(path, default):
    schema = json.loads(json.dumps(SCHEMA))
    node = schema
    for key in path:
        node = node[key]
    node["default"] = default
    assert [p for p in conflicting_defaults(schema) if p.startswith(".".join(path) + ":")]


@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_configs_set_only_what_they_change(name):
    """A config key that restates a record's default is a second copy of it, waiting to drift."""
    config = CONFIGS[name]
    blocks = [("training", TrainSettings, config.get("training")), ("sampling", SampleParams, config.get("sampling")),
              ("evaluation", EvalOptions, config.get("evaluation")), ("report", ReportParams, config.get("report"))]
    for dataset, spec in config["datasets"].items():
        # a dataset's own keys default in its source's schema fragment (hepgenbench.kinds)
        fragment = kinds.source_schema(spec["source"])["properties"]
        for key, value in spec.items():
            assert value != fragment.get(key, {}).get("default", object()), \
                f"{name}.yaml datasets.{dataset}.{key}: {value!r} is the default already"
        blocks.append((f"datasets.{dataset}.training", TrainSettings, spec.get("training")))
    for model, spec in config["models"].items():
        blocks.append((f"models.{model}.training", TrainSettings, (spec or {}).get("training")))
    for where, cls, block in blocks:
        for key, value in (block or {}).items():
            if key in ("source",):
                continue
            assert value != _field_default(cls, key), f"{name}.yaml {where}.{key}: {value!r} is the default already"
    assert "replicas" not in config or config["replicas"] != WORKFLOW_DEFAULTS[("properties", "replicas")]


def test_schema_and_records_know_the_same_training_and_sampling_keys():
    training = set(SCHEMA["$defs"]["training"]["properties"])
    assert training == {f.name for f in dataclasses.fields(TrainSettings)} - {"seed"}
    sampling = set(SCHEMA["properties"]["sampling"]["properties"])
    assert sampling == {f.name for f in dataclasses.fields(SampleParams)} - {"model", "seed"}
    # a dataset's other keys belong to its source's fragment in the kind registry
    assert set(SCHEMA["$defs"]["dataset"]["properties"]) == {"source", "split", "training"}
    for name in kinds.SOURCES:
        options = set(kinds.source_schema(name)["properties"]) - {"source", "split", "training", "files", "kind"}
        assert options, f"source {name} has no options"


def test_the_c2st_classifiers_are_the_metric_modules():
    from hepgenbench.metrics.classifier import CLASSIFIERS

    assert set(typing.get_args(records.C2stClassifier)) == set(CLASSIFIERS)


# --------------------------------------------------------------------------- stages and CLI
def test_every_stage_has_the_one_signature_and_a_record():
    for name, cls in STAGE_PARAMS.items():
        sig = inspect.signature(getattr(stages, name))
        assert list(sig.parameters) == ["inputs", "outputs", "params", "threads"], name
        assert sig.parameters["params"].annotation == cls.__name__, name


def test_records_import_neither_torch_nor_the_stages():
    code = "import sys, hepgenbench.records; print(sorted(m for m in ('torch', 'hepgenbench.stages', 'h5py') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- records out, through the real stages
@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """A tiny phasespace dataset through every stage, each reading the previous one's files."""
    work = tmp_path_factory.mktemp("chain")
    config = {"seed": 5, "datasets": {"ps": {"source": "phasespace", "n_events": 1500}},
              "models": {"realnvp": {"training": {"max_epochs": 2, "batch_size": 256}}},
              "sampling": {"rate_batch_sizes": [1, 100]},
              "evaluation": {"n_bootstrap": 2, "emd_subsample": 100, "fpd_points": 3, "fpd_resamples": 2,
                             "kpd_batches": 2, "c2st_folds": 2, "memorisation_max_events": 200}}
    f = {k: str(work / v) for k, v in dict(source="source.h5", events="events.h5", split="split.h5",
                                            transform="transform.json", model="model.pt", log_csv="training.csv",
                                            sample="sample.h5", metrics="metrics.json", truth="truth.json").items()}
    data = {k: f[k] for k in ("events", "split")}
    stages.source({}, {"data": f["source"]}, SourceParams.from_config(config, "ps"), 1)
    stages.ingest({"files": f["source"]}, {"events": f["events"]}, IngestParams.from_config(config, "ps"), 1)
    stages.split({"events": f["events"]}, {"split": f["split"]}, SplitParams.from_config(config, "ps"), 1)
    stages.preprocess(data, {"transform": f["transform"]}, NoParams(), 1)
    with_transform = {**data, "transform": f["transform"]}
    stages.train(with_transform, {"model": f["model"], "log_csv": f["log_csv"]},
                 TrainParams.from_config(config, "ps", "realnvp"), 1)
    stages.sample({**with_transform, "model": f["model"]}, {"sample": f["sample"]},
                  SampleParams.from_config(config, "ps", "realnvp"), 1)
    stages.evaluate({**data, "sample": f["sample"]}, {"metrics": f["metrics"]},
                    EvaluateParams.from_config(config, "ps", "realnvp"), 1)
    stages.evaluate(data, {"metrics": f["truth"]}, EvaluateParams.from_config(config, "ps"), 1)
    return config, f


def test_trained_model_record_is_what_the_train_stage_was_given(chain):
    from hepgenbench.train import read_model_record

    config, f = chain
    rec = read_model_record(f["model"])
    assert isinstance(rec, TrainedModelRecord)
    params = TrainParams.from_config(config, "ps", "realnvp")
    assert rec.settings == params.training  # threads equal too: the stage ran with 1
    assert rec.provenance.seed == params.seed and rec.provenance.replica == 0
    assert len(rec.training_log.epochs) == 2 and rec.training_log.stopped_because == "max_epochs"


def test_sample_carries_the_summary_of_its_model(chain):
    from hepgenbench.io import read_events
    from hepgenbench.train import read_model_record

    _, f = chain
    carried = TrainingSummary.from_dict(read_events(f["sample"]).meta["trained"])
    assert carried == read_model_record(f["model"]).summary(likelihood_is_bound=False)
    assert carried.training.epochs == 2 and carried.cost.n_parameters > 0


def test_metrics_records_of_the_evaluate_stage_are_read_by_the_report(chain, tmp_path):
    from hepgenbench.report import load_metrics

    _, f = chain
    model, truth = MetricsRecord.read(f["metrics"]), MetricsRecord.read(f["truth"])
    assert (model.model, model.family, model.status, truth.family, truth.cost, truth.training) == (
        "realnvp", "realnvp", "ok", "truth", None, None)
    assert model.cost.sample_rate.keys() == {"1", "100"} and model.training.epochs == 2
    # phasespace: the model is scored as an importance sampler, truth holds flat phase space
    assert model.metrics["unweighting_efficiency"]["proposal"] == "model"
    assert truth.metrics["unweighting_efficiency"]["proposal"].startswith("flat")
    assert [e["model"] for e in load_metrics([f["metrics"], f["truth"]])] == ["realnvp", "truth"]
    # a reader of a file written in another format refuses it with the key
    broken = json.loads(open(f["metrics"]).read())
    del broken["metrics"]["c2st_auc"]["error"]
    (tmp_path / "old.json").write_text(json.dumps(broken))
    with pytest.raises(InputError, match=r"old\.json.*metrics\.c2st_auc"):
        load_metrics([str(tmp_path / "old.json")])


def test_plot_manifest_round_trips_through_its_writer_and_reader(tmp_path):
    from hepgenbench.plots import PlotRecord, read_plot_manifest, write_plot_manifest

    plots = [PlotRecord("a.png", "a.pdf", "feature", "A", "caption a"), PlotRecord("b.png", "b.pdf", "cost", "B", "b")]
    write_plot_manifest(str(tmp_path / "manifest.json"), plots, "ps")
    assert read_plot_manifest(str(tmp_path / "manifest.json")) == ("ps", plots)
    (tmp_path / "bad.json").write_text(json.dumps({"dataset": "ps", "plots": [{"path": "a.png"}]}))
    with pytest.raises(InputError, match=r"bad\.json.*plots\.0\.path: unknown key"):
        read_plot_manifest(str(tmp_path / "bad.json"))
