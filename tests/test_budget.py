"""Quality against training compute: the step budget, the weights kept at fractions of
the budget, their scoring and the report's curve."""

from __future__ import annotations

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
