"""End to end: the whole DAG on config/quick.yaml, in temporary directories.

One run is shared by the tests of this module; a second, fresh run checks that the same
seed gives the same numbers.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, ReportPage, copy_workflow, run_snakemake

from hepgenbench import kinds
from hepgenbench.models import families

pytestmark = pytest.mark.slow

QUICK = yaml.safe_load((ROOT / "config" / "quick.yaml").read_text())
#: A user's own showers beside the trained models: GFlash with another seed, in the
#: CaloChallenge format, as a generator trained elsewhere would write them.
EXTERNAL = {"family": "external", "samples": "external/gflash.h5", "datasets": ["calo"],
            "cost": {"train_time_s": 3600, "params": 1_000_000, "sample_rate": 2000}}
#: The config the runs of this module use: the quick benchmark plus that external model.
CONFIG = "config/quick_external.yaml"


def expected_models(dataset: str) -> list[str]:
    """The quick config's models that run on ``dataset``: those whose family needs no kind,
    or one the dataset has (iaf a known density, hurdlevae calorimeter cells), and the
    external showers on calo."""
    kind = kinds.kind_of(QUICK["datasets"][dataset]).name
    trained = [m for m in QUICK["models"] if not families()[m].kinds or kind in families()[m].kinds]
    return trained + ["gflash"] * (dataset in EXTERNAL["datasets"])


def run_quick(workdir: Path, *targets: str) -> Path:
    """The quick config (with the external model) in ``workdir``: the whole DAG, or ``targets``."""
    from hepgenbench.data.calo import simulate_showers

    copy_workflow(workdir)
    simulate_showers(workdir / EXTERNAL["samples"], 1500, 99, log=lambda *_: None)
    config = {**QUICK, "models": {**QUICK["models"], "gflash": EXTERNAL}}
    (workdir / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    # targets before --configfile, which takes every word after it
    run_snakemake(workdir, *targets, "--cores", "2", "--configfile", CONFIG, timeout=1200, check=True)
    return workdir


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> Path:
    return run_quick(tmp_path_factory.mktemp("run1"))


def test_every_expected_output_exists(first_run):
    for dataset in QUICK["datasets"]:
        base = first_run / "results" / dataset
        for rel in ("data/events.h5", "data/split.h5", "preprocess/transform.json", "metrics/truth.json",
                    "plots/manifest.json"):
            assert (base / rel).is_file(), f"missing {base / rel}"
        for model in expected_models(dataset):
            trained = (f"models/{model}/model.pt", f"models/{model}/training.csv") if model != "gflash" else ()
            for rel in (*trained, f"samples/{model}.h5", f"metrics/{model}.json"):
                assert (base / rel).is_file(), f"missing {base / rel}"
    for name in ("index.html", "report.md", "metrics.csv"):
        assert (first_run / "results" / "report" / name).is_file()
    assert not list((first_run / "results").rglob("*.tmp*")), "a temporary file was left behind"


def test_report_has_a_row_per_model_and_truth(first_run):
    rows = list(csv.DictReader((first_run / "results/report/metrics.csv").open()))
    for dataset in QUICK["datasets"]:
        models = {r["model"] for r in rows if r["dataset"] == dataset}
        assert models == set(expected_models(dataset)) | {"truth"}, f"{dataset}: rows {sorted(models)}"
    # the page's summary table of each dataset: one row per model and truth, not a word
    # anywhere on the page (the page also prints the config, which names every model)
    page = ReportPage()
    page.feed((first_run / "results/report/index.html").read_text())
    for dataset in QUICK["datasets"]:
        shown = {row[0]["row"]["data-model"] for row in page.tables[f"metrics-{dataset}"][1:]}
        assert shown == set(expected_models(dataset)) | {"truth"}, f"{dataset}: table rows {sorted(shown)}"


def _metric_values(path: Path) -> dict[str, float | None]:
    record = json.loads(path.read_text())
    return {k: v.get("value") for k, v in record["metrics"].items() if isinstance(v, dict) and "value" in v}


def test_every_metric_is_finite_or_skipped_with_its_reason(first_run):
    """A metric without a number says why (the quick config's truth holds too few events in
    the Z window for a line-shape fit, say); every other one is finite."""
    for path in sorted((first_run / "results").glob("*/metrics/*.json")):
        values = _metric_values(path)
        assert values, f"{path}: no metrics"
        assert "c2st_auc" in values and "w1_mean" in values, f"{path}: core metrics missing"
        entries = json.loads(path.read_text())["metrics"]
        bad = {k: v for k, v in values.items() if (v is None or not math.isfinite(v)) and not entries[k].get("skipped")}
        assert not bad, f"{path}: non-finite metrics {bad}"


def test_second_call_has_nothing_to_do(first_run):
    proc = run_snakemake(first_run, "-n", "--cores", "2", "--configfile", CONFIG, check=True)
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-2000:]


def test_same_seed_same_metrics(first_run, tmp_path_factory):
    """A second run from nothing up to every row's metrics: data, splits, training, sampling
    and evaluation give the same numbers for every family. The stages after them (the truth
    null, the budget check, the report) are compared run against run in tests/test_cluster.py,
    on Slurm and HTCondor against a local run."""
    metrics = sorted(str(p.relative_to(first_run)) for p in (first_run / "results").glob("*/metrics/*.json"))
    assert len(metrics) == sum(len(expected_models(d)) + 1 for d in QUICK["datasets"])
    second = run_quick(tmp_path_factory.mktemp("run2"), *metrics)
    assert not (second / "results" / "report").exists(), "the second run went beyond the metrics"
    for path in metrics:
        assert _metric_values(first_run / path) == _metric_values(second / path), f"{path} differs between identical runs"


def test_users_root_file_runs_with_only_a_config_change(tmp_path):
    """A NanoAOD-like ROOT file of the user's own: the README's example config, nothing else."""
    from hepgenbench.data.pythia import generate_zmumu

    wf = copy_workflow(tmp_path / "wf")
    (wf / "data").mkdir()
    generate_zmumu(str(wf / "data" / "dimuon_0.root"), 2500, seed=5, level="parton", log=lambda *a: None)
    config = {
        "seed": 3,
        "datasets": {
            "dimuon": {
                "source": "root",
                "files": "data/*.root",
                "tree": "Events",
                "collections": {"Muon": {"n": 2, "sort_by": "pt", "fields": ["pt", "eta", "phi"]}},
                "selection": "nMuon >= 2",
                "kind": "generic",
            }
        },
        "models": {"realnvp": {}},
        "training": {"max_epochs": 5},
        "sampling": {"rate_batch_sizes": [1, 1000]},
    }
    (wf / "config" / "mine.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(wf, "--cores", "2", "--configfile", "config/mine.yaml", check=True, timeout=900)
    rows = list(csv.DictReader((wf / "results/report/metrics.csv").open()))
    assert {r["model"] for r in rows if r["dataset"] == "dimuon"} == {"realnvp", "truth"}
    events = json.loads((wf / "results/dimuon/metrics/realnvp.json").read_text())
    assert events["n_truth"] > 100 and events["metrics"]["c2st_auc"]["value"] is not None


def test_phase_space_samplers_report_unweighting_efficiency(first_run):
    metrics = lambda m: json.loads((first_run / f"results/phasespace/metrics/{m}.json").read_text())["metrics"]  # noqa: E731
    flat = metrics("truth")["unweighting_efficiency"]
    assert flat["proposal"].startswith("flat phase space") and 0.05 < flat["value"] < 0.6
    iaf = metrics("iaf")["unweighting_efficiency"]
    # A trained sampler must beat the flat one it replaces, in efficiency and in the
    # integration error of the same number of events (quick config: 0.33 against 0.25,
    # and 0.011 against 0.048).
    assert flat["value"] < iaf["value"] <= 1
    assert 0 < iaf["relative_integration_error"] < flat["relative_integration_error"]
    # the workflow tells the IAF where the preprocessing's unit box is (for transform: spline)
    from hepgenbench.io import read_json
    from hepgenbench.preprocess import Preprocessor
    from hepgenbench.train import load_model

    model, _ = load_model(first_run / "results/phasespace/models/iaf/model.pt")
    pre = Preprocessor.from_dict(read_json(first_run / "results/phasespace/preprocess/transform.json"))
    assert model.hparams["unit_box"] == pre.unit_box() and len(model.hparams["unit_box"]["loc"]) == 5
    assert "unweighting_efficiency" not in json.loads((first_run / "results/zmumu/metrics/truth.json").read_text())["metrics"]


def test_generated_muons_are_stored_leading_first_and_scored_so(first_run):
    """Muon1 is the harder muon in every sample, and the stored likelihood is that of the
    ordered event: q(x) + q(x with the muons swapped), recomputed here from the model."""
    import numpy as np

    from hepgenbench import stages
    from hepgenbench.io import read_events, read_extra, read_json
    from hepgenbench.preprocess import Preprocessor
    from hepgenbench.train import load_model

    base = first_run / "results/zmumu"
    generated = read_events(base / "samples/realnvp.h5")
    names = generated.feature_names
    pt1, pt2 = (generated.features[:, names.index(f"Muon{i}_pt")] for i in (1, 2))
    assert (pt1 >= pt2).all()

    model, _ = load_model(base / "models/realnvp/model.pt")
    pre = Preprocessor.from_dict(read_json(base / "preprocess/transform.json"))
    truth = stages.load_split_events(base / "data/events.h5", base / "data/split.h5")["truth_a"]
    truth = truth.subset(np.arange(min(200, len(truth))))  # the quick config's truth holds ~120
    assert truth.meta["object_order"]
    truth.meta.pop("object_order")
    as_stored = stages._log_prob_physical(model, pre, truth, batch=1000, seed=0)
    swap = [names.index(f"Muon{i}_{f}") for i in (2, 1) for f in ("pt", "eta", "phi")]
    swapped = truth.subset(np.arange(len(truth)))
    swapped.features[:, sorted(swap)] = truth.features[:, swap]
    expected = np.logaddexp(as_stored, stages._log_prob_physical(model, pre, swapped, batch=1000, seed=0))
    stored = read_extra(base / "samples/realnvp.h5", "truth_log_prob")[: len(truth)]
    np.testing.assert_allclose(stored, expected, rtol=1e-5)
    # the swapped order adds density: negligibly for most events, visibly for some
    assert (expected >= as_stored).all() and (expected - as_stored > 1e-2).any()


def test_scoring_stages_run_without_torch(first_run, tmp_path):
    """Evaluate and plots only read samples: they must not pay torch's import (about 2 s
    of each job's start, in a DAG of dozens of them). The evaluation, re-run that way,
    reproduces the workflow's own metrics file."""
    import subprocess
    import sys

    from hepgenbench.records import EvaluateParams, PlotsParams

    base = first_run / "results/phasespace"
    evaluate = ["evaluate", "--in", f"sample={base}/samples/realnvp.h5", "--in", f"events={base}/data/events.h5",
                "--in", f"split={base}/data/split.h5", "--out", f"metrics={tmp_path}/realnvp.json",
                "--params", EvaluateParams.from_config(QUICK, "phasespace", "realnvp").to_json()]
    plots = ["plots", "--in", f"events={base}/data/events.h5", "--in", f"split={base}/data/split.h5",
             "--in", f"samples={base}/samples/realnvp.h5", "--in", f"metrics={base}/metrics/realnvp.json",
             "--in", f"metrics={base}/metrics/truth.json", "--in", f"training_csvs={base}/models/realnvp/training.csv",
             "--out", f"plots={tmp_path}/plots", "--params", PlotsParams.from_config(QUICK, "phasespace", ["realnvp"]).to_json()]
    for argv in (evaluate, plots):
        script = (f"import sys; from hepgenbench.cli import main; rc = main({argv!r}); "
                  "assert rc == 0, rc; assert 'torch' not in sys.modules, 'torch was imported'")
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{argv[0]}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    assert json.loads((tmp_path / "realnvp.json").read_text()) == json.loads((base / "metrics/realnvp.json").read_text())
    assert (tmp_path / "plots/manifest.json").is_file()


def _run_config(run: Path) -> dict:
    return yaml.safe_load((run / CONFIG).read_text())


def test_external_row_is_in_the_report_marked_external(first_run):
    page = ReportPage()
    page.feed((first_run / "results/report/index.html").read_text())
    table = page.frame("metrics-calo")
    assert table.loc["gflash", "status"].startswith("external")
    assert table.loc["gflash", "params"] == "1M"  # the cost the user gave
    record = json.loads((first_run / "results/calo/metrics/gflash.json").read_text())
    assert record["family"] == "external" and record["training"] is None
    assert record["n_generated"] == record["n_truth"]  # brought to truth A's size


def test_external_row_reruns_when_its_file_changes(first_run):
    import os

    samples = first_run / EXTERNAL["samples"]
    os.utime(samples)  # a newer file, as a regenerated sample would be
    proc = run_snakemake(first_run, "-n", "--cores", "2", "--configfile", CONFIG, check=True)
    out = proc.stdout + proc.stderr
    assert "rule external:" in out and "rule evaluate:" in out and "rule train:" not in out, out[-3000:]


def test_external_copy_of_a_models_samples_scores_as_that_model(first_run, tmp_path):
    """An external row whose file holds a trained model's own samples: the same metrics."""
    from hepgenbench import stages
    from hepgenbench.records import EvaluateParams, ExternalParams

    base = first_run / "results/calo"
    config = {**_run_config(first_run)}
    config["models"] = {**config["models"], "copy": {"family": "external", "samples": str(base / "samples/hurdlevae.h5"),
                                                     "datasets": ["calo"]}}
    data = {"events": str(base / "data/events.h5"), "split": str(base / "data/split.h5")}
    stages.external({"external": str(base / "samples/hurdlevae.h5"), **data}, {"sample": str(tmp_path / "copy.h5")},
                    ExternalParams.from_config(config, "calo", "copy"), threads=1)
    stages.evaluate({"sample": str(tmp_path / "copy.h5"), **data}, {"metrics": str(tmp_path / "copy.json")},
                    EvaluateParams.from_config(config, "calo", "copy"), threads=1)
    copy = json.loads((tmp_path / "copy.json").read_text())["metrics"]
    model = json.loads((base / "metrics/hurdlevae.json").read_text())["metrics"]
    likelihood = {"nll_per_dim", "kl_exact"}  # the model's density, which a file of samples has not
    assert set(copy) == set(model) - likelihood
    for key in set(copy) - {"duplicates"}:
        assert copy[key] == model[key], key


def test_score_on_the_workflows_truth_gives_the_workflows_row(first_run, tmp_path):
    """`hepgenbench score` with the workflow's truth halves and a trained model's samples
    reproduces that model's row of the workflow, number for number."""
    from hepgenbench.io import write_events
    from hepgenbench.scoring import score_files
    from hepgenbench.stages import load_split_events

    base = first_run / "results/calo"
    sets = load_split_events(str(base / "data/events.h5"), str(base / "data/split.h5"))
    write_events(tmp_path / "truth_a.h5", sets["truth_a"])
    write_events(tmp_path / "truth_b.h5", sets["truth_b"])
    result = score_files(str(tmp_path / "truth_a.h5"), {"hurdlevae": str(base / "samples/hurdlevae.h5")},
                         truth_b=str(tmp_path / "truth_b.h5"), config=str(first_run / CONFIG), dataset="calo",
                         threads=1)  # as the evaluate jobs run: BLAS sums in the same order
    result.records["hurdlevae"].write(tmp_path / "scored.json")  # through JSON, as the workflow's file went
    scored = json.loads((tmp_path / "scored.json").read_text())["metrics"]
    workflow = json.loads((base / "metrics/hurdlevae.json").read_text())["metrics"]
    # score has no training set (memorisation) and no model (likelihood)
    compared = set(workflow) - {"memorisation_ratio", "nll_per_dim", "kl_exact", "duplicates"}
    assert compared <= set(scored) and {"c2st_auc", "c2st_auc_high_level", "fpd"} <= compared
    for key in compared:
        assert scored[key] == workflow[key], key
    truth_row = json.loads((base / "metrics/truth.json").read_text())["metrics"]
    assert result.records["truth"].to_dict()["metrics"]["c2st_auc"] == truth_row["c2st_auc"]
