"""Leave-one-energy-out for showers: the models train without one incident energy and
are scored at it."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from hepgenbench import stages
from hepgenbench.data.calo import simulate
from hepgenbench.errors import InputError
from hepgenbench.io import read_json
from hepgenbench.records import (
    EvaluateParams,
    IngestParams,
    MetricsRecord,
    PreprocessParams,
    SampleParams,
    SplitParams,
    TrainParams,
)

ENERGIES = (4096.0, 16384.0, 65536.0)
LEFT_OUT = 16384.0
CONFIG = {
    "seed": 3,
    "datasets": {"showers": {"source": "calochallenge", "files": "showers.h5",
                             "training": {"leave_out_energy": LEFT_OUT}}},
    "models": {"vae": {"training": {"max_epochs": 1, "batch_size": 256}}},
    "sampling": {"rate_batch_sizes": [1, 100], "nll_max_events": 100},
    "evaluation": {"n_bootstrap": 2, "emd_subsample": 100, "emd_repeats": 1, "fpd_min_samples": 100,
                   "fpd_max_samples": 200, "fpd_points": 3, "fpd_resamples": 2, "kpd_batch_size": 100,
                   "kpd_batches": 2, "c2st_folds": 2, "memorisation_max_events": 100},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A CaloChallenge file of 3 energies × 400 showers through ingest … evaluate."""
    work = tmp_path_factory.mktemp("leave_out")
    e_inc = np.repeat(ENERGIES, 400)
    with h5py.File(work / "showers.h5", "w") as f:
        f["incident_energies"] = e_inc.reshape(-1, 1)
        f["showers"] = simulate(e_inc, seed=1)
    f = {k: str(work / v) for k, v in dict(events="events.h5", split="split.h5", transform="t.json", model="model.pt",
                                            log_csv="training.csv", sample="sample.h5", metrics="m.json",
                                            truth="truth.json").items()}  # fmt: skip
    data = {"events": f["events"], "split": f["split"]}
    stages.ingest({"files": str(work / "showers.h5")}, {"events": f["events"]}, IngestParams.from_config(CONFIG, "showers"), 1)
    stages.split({"events": f["events"]}, {"split": f["split"]}, SplitParams.from_config(CONFIG, "showers"), 1)
    stages.preprocess(data, {"transform": f["transform"]}, PreprocessParams.from_config(CONFIG, "showers"), 1)
    return work, f, data


def test_training_set_excludes_the_energy_left_out(run, monkeypatch):
    from hepgenbench import train as trainer
    from hepgenbench.preprocess import Preprocessor

    work, f, data = run
    seen = {}
    real_fit = trainer.fit

    def spy(model, train, val, cond_train=None, cond_val=None, *args, **kwargs):
        seen.update(train=np.asarray(cond_train), val=np.asarray(cond_val))
        return real_fit(model, train, val, cond_train, cond_val, *args, **kwargs)

    monkeypatch.setattr(trainer, "fit", spy)
    stages.train({**data, "transform": f["transform"]}, {"model": f["model"], "log_csv": f["log_csv"]},
                 TrainParams.from_config(CONFIG, "showers", "vae"), 1)
    sets = stages.load_split_events(f["events"], f["split"])
    pre = Preprocessor.from_dict(read_json(f["transform"]))
    for name in ("train", "val"):
        e = sets[name].condition[:, 0]
        kept = e != LEFT_OUT
        assert (~kept).sum() > 20  # the split holds the energy: leaving it out removes something
        np.testing.assert_array_equal(seen[name], pre.forward_condition(sets[name].condition[kept]))
    # the preprocessing is fitted without it too: log E standardised over the other energies
    logs = np.log(sets["train"].condition[sets["train"].condition[:, 0] != LEFT_OUT, 0])
    assert pre.conditions[0].mean == pytest.approx(logs.mean(), rel=1e-9)


@pytest.fixture(scope="module")
def scored(run):
    """The vae's row and the truth row, written by the train, sample and evaluate stages."""
    work, f, data = run
    if not (work / "model.pt").exists():
        stages.train({**data, "transform": f["transform"]}, {"model": f["model"], "log_csv": f["log_csv"]},
                     TrainParams.from_config(CONFIG, "showers", "vae"), 1)
    stages.sample({**data, "transform": f["transform"], "model": f["model"]}, {"sample": f["sample"]},
                  SampleParams.from_config(CONFIG, "showers", "vae"), 1)
    stages.evaluate({**data, "sample": f["sample"]}, {"metrics": f["metrics"]},
                    EvaluateParams.from_config(CONFIG, "showers", "vae"), 1)
    stages.evaluate(data, {"metrics": f["truth"]}, EvaluateParams.from_config(CONFIG, "showers"), 1)
    return run


def test_models_are_scored_at_the_energy_left_out(scored):
    work, f, data = scored
    sets = stages.load_split_events(f["events"], f["split"])
    at_a, at_b = ((sets[name].condition[:, 0] == LEFT_OUT).sum() for name in ("truth_a", "truth_b"))
    assert min(at_a, at_b) >= 50
    # the model's sample is conditioned on truth A's energies; the truth row compares truth B
    for path, n_generated in ((f["metrics"], at_a), (f["truth"], at_b)):
        score = MetricsRecord.read(path).metrics["held_out_energy_auc"]
        assert (score["energy_mev"], score["n_truth"], score["n_generated"]) == (LEFT_OUT, at_a, n_generated)
        assert 0.0 <= score["value"] <= 1.0 and 0.0 <= score["auc_high_level"] <= 1.0


def test_an_energy_the_showers_do_not_have_is_an_input_error(run):
    work, f, data = run
    config = {**CONFIG, "datasets": {"showers": {**CONFIG["datasets"]["showers"], "training": {"leave_out_energy": 1000.0}}}}
    with pytest.raises(InputError, match=r"leave_out_energy 1000 MeV is not an incident energy .* 4096, 16384, 65536"):
        stages.preprocess(data, {"transform": str(work / "other.json")}, PreprocessParams.from_config(config, "showers"), 1)


def test_a_model_cannot_leave_out_its_own_energy():
    config = {**CONFIG, "models": {"vae": {"training": {"leave_out_energy": 4096.0}}}}
    with pytest.raises(InputError, match="models.vae.training.leave_out_energy: the energy left out is a dataset's"):
        TrainParams.from_config(config, "showers", "vae")


def test_the_report_shows_the_scores_at_the_energy_left_out(scored, tmp_path):
    """The report's table is built from the evaluate stage's files: each cell is the metric's
    value ± error, and the verdict compares the model with truth B's floor."""
    from conftest import ReportPage

    from hepgenbench.report import build_report, within_noise_floor

    work, f, data = scored
    build_report([f["metrics"], f["truth"]], [], {"seed": CONFIG["seed"]}, str(tmp_path),
                 provenance={"git_commit": "x", "packages": {}})
    page = ReportPage()
    page.feed((tmp_path / "index.html").read_text())
    table = page.frame("heldoutenergy-showers")
    assert list(table.index) == ["truth B (noise floor)", "vae"]
    vae, floor = (MetricsRecord.read(f[k]).metrics["held_out_energy_auc"] for k in ("metrics", "truth"))
    for row, score in (("vae", vae), ("truth B (noise floor)", floor)):
        assert table.at[row, "showers (truth A / sample)"] == f"{score['n_truth']} / {score['n_generated']}"
        for column, key, error_key in (("voxel AUC", "value", "error"),
                                       ("high-level AUC", "auc_high_level", "auc_high_level_error")):
            value, *error = (float(x) for x in table.at[row, column].split(" ± "))  # no error shown when it is 0
            assert value == pytest.approx(score[key], abs=5e-4 + score[error_key] / 10)
            assert (error or [0.0])[0] == pytest.approx(score[error_key], rel=0.05, abs=5e-4)
    ok = [within_noise_floor(vae[k], vae[e], floor[k], floor[e], "half")
          for k, e in (("value", "error"), ("auc_high_level", "auc_high_level_error"))]
    off = [what for what, good in zip(("voxels", "high-level"), ok, strict=True) if not good]
    assert table.at["vae", "verdict"] == (("beyond the floor: " + ", ".join(off)) if off else "within the floor")
    # one epoch of a vae at the energy it never saw: its showers are told apart there
    assert vae["value"] > floor["value"] + 2 * max(vae["error"], floor["error"])
    assert "### Interpolation: the incident energy left out of training" in (tmp_path / "report.md").read_text()
