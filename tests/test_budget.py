"""Quality against training compute: the step budget, the weights kept at fractions of
the budget, their scoring and the report's curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import hepgenbench.models  # noqa: F401  (registers the families)
from hepgenbench.errors import InputError
from hepgenbench.models.base import build
from hepgenbench.records import TrainSettings
from hepgenbench.train import fit

QUIET = lambda message: None  # noqa: E731
RNG = np.random.default_rng(3)
TRAIN = RNG.standard_normal((600, 2)) * [1.0, 0.5]
VAL = RNG.standard_normal((200, 2)) * [1.0, 0.5]


def _fit(**settings):
    torch.manual_seed(0)
    model = build("realnvp", 2, hidden=(8,))
    log = fit(model, TRAIN, VAL, settings=TrainSettings(batch_size=64, patience=1000, **settings), log=QUIET,
              callback=None)
    return model, log


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_weights_at_half_the_epochs_are_what_half_the_epochs_deliver(tmp_path):
    from hepgenbench.train import load_budget_checkpoints, save_model

    torch.manual_seed(0)
    model = build("realnvp", 2, hidden=(8,))
    settings = TrainSettings(max_epochs=6, batch_size=64, patience=1000, checkpoint_fractions=[0.25, 0.5, 1.0])
    log = fit(model, TRAIN, VAL, settings=settings, log=QUIET, budget_path=tmp_path / "budget.pt")
    save_model(tmp_path / "model.pt", model, log, settings)
    # ¼ of 6 epochs is reached at epoch 2 (1.5 rounded up), ½ at epoch 3, the whole at 6
    assert [(p.fraction, p.axis, p.epoch, p.reached) for p in log.checkpoints] == [
        (0.25, "epochs", 2, True), (0.5, "epochs", 3, True), (1.0, "epochs", 6, True)]
    kept = load_budget_checkpoints(tmp_path / "model.pt", tmp_path / "budget.pt")
    half, _ = _fit(max_epochs=3)
    whole = kept[-1][1].state_dict()
    for name, value in half.state_dict().items():
        assert torch.equal(kept[1][1].state_dict()[name], value), name  # = a run with half the budget
        assert torch.equal(whole[name], model.state_dict()[name]), name  # = the final model
    assert not all(torch.equal(kept[0][1].state_dict()[k], v) for k, v in whole.items())


def test_step_budget_stops_at_its_step_and_keeps_the_first_epoch_past_each_fraction():
    _, log = _fit(max_epochs=1000, max_steps=45)  # 10 batches an epoch
    assert (log.stopped_because, log.budget, log.steps) == ("max_steps", "steps", 45)
    assert [e.steps for e in log.epochs] == [10, 20, 30, 40, 45]
    points = [(p.fraction, p.epoch, p.steps) for p in log.checkpoints]
    assert points == [(0.25, 2, 20), (0.5, 3, 30), (1.0, 5, 45)]  # 11.25, 22.5 and 45 steps


def test_a_run_stopped_early_keeps_its_final_weights_at_the_fractions_it_did_not_reach():
    # a wall-clock budget that nothing reaches: max_epochs stops the run first
    _, log = _fit(max_epochs=2, time_budget_s=3600.0)
    assert log.stopped_because == "max_epochs"
    assert [(p.axis, p.epoch, p.reached) for p in log.checkpoints] == [("wall-clock", 2, False)] * 3


@pytest.mark.parametrize("block, message", [
    ({"budget": "steps"}, "budget: 'steps' needs max_steps"),
    ({"budget": "wall-clock"}, "budget: 'wall-clock' needs time_budget_s"),
    ({"checkpoint_fractions": [0.5, 0.5]}, "checkpoint_fractions: expected increasing fractions"),
    ({"checkpoint_fractions": [0.5, 1.5]}, "checkpoint_fractions.1: input should be less than or equal to 1"),
])
def test_bad_budget_settings_name_their_key(block, message):
    with pytest.raises(InputError, match=message):
        TrainSettings.from_dict(block, "config key training")


def test_budget_axis_resolves_auto():
    assert TrainSettings().budget_axis == "epochs"
    assert TrainSettings(time_budget_s=75.0).budget_axis == "wall-clock"
    assert TrainSettings(time_budget_s=75.0, max_steps=10).budget_axis == "steps"
    assert TrainSettings(time_budget_s=75.0, budget="epochs").budget_total == 300.0


# ------------------------------------------------------------------ the stages, on each other's files

#: a tiny phase-space run whose models train for 4 epochs, scored at ½ and the whole budget
CHAIN_CONFIG = {
    "seed": 11, "datasets": {"ps": {"source": "phasespace", "n_events": 1500}},
    "models": {"realnvp": {"training": {"max_epochs": 4, "batch_size": 256, "checkpoint_fractions": [0.5, 1.0]}},
               "vae": {"training": {"max_epochs": 2, "batch_size": 256}}},
    "evaluation": {"c2st_folds": 2, "budget_auc_events": 200},
}


@pytest.fixture(scope="module")
def budget_chain(tmp_path_factory):
    """source → ingest → split → preprocess → train (two models) → budget → budget_plots → report."""
    from hepgenbench import stages
    from hepgenbench.records import BudgetParams, IngestParams, PlotsParams, PreprocessParams, SourceParams, SplitParams, TrainParams

    work = tmp_path_factory.mktemp("budget")
    data = {"events": str(work / "events.h5"), "split": str(work / "split.h5"), "transform": str(work / "t.json")}
    stages.source({}, {"data": str(work / "src.h5")}, SourceParams.from_config(CHAIN_CONFIG, "ps"), 1)
    stages.ingest({"files": str(work / "src.h5")}, {"events": data["events"]}, IngestParams.from_config(CHAIN_CONFIG, "ps"), 1)
    stages.split({"events": data["events"]}, {"split": data["split"]}, SplitParams.from_config(CHAIN_CONFIG, "ps"), 1)
    stages.preprocess(data, {"transform": data["transform"]}, PreprocessParams.from_config(CHAIN_CONFIG, "ps"), 1)
    curves = []
    for model in ("realnvp", "vae"):
        files = {k: str(work / model / v) for k, v in
                 dict(model="model.pt", log_csv="training.csv", budget_checkpoints="budget.pt").items()}
        stages.train(data, files, TrainParams.from_config(CHAIN_CONFIG, "ps", model), 1)
        curves.append(str(work / "budget" / f"{model}.json"))
        stages.budget({**data, "model": files["model"], "checkpoints": files["budget_checkpoints"]},
                      {"curve": curves[-1]}, BudgetParams.from_config(CHAIN_CONFIG, "ps", model), 1)
    plots = str(work / "budget" / "plots")
    stages.budget_plots({"curves": curves}, {"plots": plots}, PlotsParams.from_config(CHAIN_CONFIG, "ps", ["realnvp", "vae"]), 1)
    from hepgenbench.report import build_report

    build_report([], [str(Path(plots) / "manifest.json")], CHAIN_CONFIG, str(work / "report"), budget_files=curves,
                 provenance={"git_commit": "test"})
    return work, curves


def test_train_stage_writes_the_weights_at_the_configured_fractions(budget_chain):
    from hepgenbench.train import load_budget_checkpoints, read_model_record

    work, _ = budget_chain
    expected = {"realnvp": [(0.5, 2), (1.0, 4)], "vae": [(0.25, 1), (0.5, 1), (1.0, 2)]}  # ¼ of 2 epochs: epoch 1
    for model, points in expected.items():
        kept = load_budget_checkpoints(work / model / "model.pt", work / model / "budget.pt")
        assert [(p.fraction, p.epoch) for p, _ in kept] == points
        assert read_model_record(work / model / "model.pt").training_log.checkpoints == [p for p, _ in kept]


def test_budget_curve_is_scored_on_the_configured_subsample(budget_chain):
    from hepgenbench.records import BudgetCurve

    _, paths = budget_chain
    curve = BudgetCurve.read(paths[0])
    assert (curve.model, curve.axis, curve.total, curve.n_per_class) == ("realnvp", "epochs", 4.0, 200)
    assert [p.fraction for p in curve.points] == [0.5, 1.0]
    for p in curve.points:
        assert 0.3 < p.auc < 1.0 and 0 < p.auc_error < 0.2
    # an untrained-for-long flow on 200 events is told from truth at least as well as truth B is
    assert curve.points[0].auc > curve.truth_auc - 0.1


def test_report_table_is_the_curves(budget_chain):
    from conftest import ReportPage

    from hepgenbench.records import BudgetCurve
    from hepgenbench.report import format_value_error

    work, paths = budget_chain
    page = ReportPage()
    page.feed((work / "report" / "index.html").read_text())
    table = page.frame("budget-ps")
    assert list(table.index) == ["realnvp", "vae", "truth"]
    assert list(table.columns) == ["¼ budget", "½ budget", "1 budget"]
    for path in paths:
        curve = BudgetCurve.read(path)
        for p in curve.points:
            label = {0.25: "¼", 0.5: "½", 1.0: "1"}[p.fraction]
            cell = table.at[curve.model, f"{label} budget"]
            assert cell.startswith(format_value_error(p.auc, p.auc_error) + f" (epoch {p.epoch},"), cell
    assert table.at["realnvp", "¼ budget"] == "—"  # it kept ½ and 1 only
    assert "Quality against training compute" in (work / "report" / "report.md").read_text()
    assert any(src.startswith("data:image/png;base64,") for src in page.images)


def test_showers_are_scored_on_their_shower_shapes_and_energy():
    from hepgenbench.budget import MAX_C2ST_INPUTS, c2st_inputs
    from hepgenbench.data.calo import high_level_feature_names, simulate
    from hepgenbench.io import EventSet

    e_inc = np.array([1024.0, 65536.0])
    showers = simulate(e_inc, seed=0)
    events = EventSet(features=showers, feature_names=[f"v{i}" for i in range(showers.shape[1])], kind="calo",
                      condition=e_inc[:, None], condition_names=["E_inc"])
    x, labels = c2st_inputs(events)
    assert showers.shape[1] > MAX_C2ST_INPUTS
    assert labels == high_level_feature_names() + ["log10_E_inc"]
    np.testing.assert_allclose(x[:, -1], [10 * np.log10(2), 16 * np.log10(2)])
