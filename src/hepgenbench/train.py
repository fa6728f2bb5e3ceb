"""The one training loop every family shares, plus speed and efficiency measurements.

:func:`fit` trains on data and :func:`fit_density` trains against an explicit target
density (``iaf``); both run :func:`_train`, which owns everything that is not family
specific:

* optimisers from ``model.configure_optimizers`` (GANs return two), each with a
  reduce-on-plateau schedule (halve the learning rate after ``max(2, patience // 3)``
  epochs without a better validation loss). Chosen over a cosine schedule because it needs
  no known epoch count, so it behaves the same under an epoch and a wall-clock budget;
* early stopping on the validation loss (``settings.patience``), with the best weights
  kept and restored at the end. The validation loss is ``model.validation_loss``: the
  training objective evaluated with fixed random numbers (likelihood, ELBO, flow-matching
  loss), and for the GANs, whose losses do not measure sample quality, a sliced
  Wasserstein distance between validation and generated events (:mod:`hepgenbench.models.gan`);
* a wall-clock budget (``settings.time_budget_s``), checked after every batch, and an
  optimizer-step budget (``settings.max_steps``, one step per batch), which unlike the
  wall-clock one does not depend on the machine;
* the weights at fractions of the budget (``settings.checkpoint_fractions`` of
  ``settings.budget_axis``), kept for the quality-against-compute curve
  (:mod:`hepgenbench.budget`) and written to ``budget_path``;
* a per-epoch CSV rewritten atomically, a progress line per epoch to ``log``;
* a checkpoint per epoch (model, optimisers, schedulers, RNG states, log), written
  atomically; an existing checkpoint is resumed, and on the CPU a resumed run ends with the
  same weights as an uninterrupted one;
* divergence (a non-finite loss, or ``model.check_divergence``) ends training with
  ``diverged=True`` and the best weights so far, never with an exception.
"""

from __future__ import annotations

import csv
import math
import os
import statistics
import time
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hepgenbench.errors import InputError
from hepgenbench.io import atomic_path
from hepgenbench.models.base import EpochRecord, Generator, TrainingLog, TrainSettings, from_export, select_device
from hepgenbench.records import BudgetPoint, Provenance, TrainedModelRecord

LogFn = Callable[[str], None]
Callback = Callable[[EpochRecord], None]
ArrayLike = Tensor | np.ndarray

# Settings that change the trajectory: a checkpoint written under others is not resumed.
_TRAJECTORY_SETTINGS = ("seed", "batch_size", "learning_rate", "weight_decay", "density_batch_size", "density_steps_per_epoch")
_CSV_COLUMNS = ("epoch", "train_loss", "val_loss", "learning_rate", "time_s")
#: A run_epoch: (epoch, optimizers, deadline, steps left) -> (mean losses, events, steps run).
EpochFn = Callable[[int, list[torch.optim.Optimizer], float, float], tuple[dict[str, float], int, int]]


#: The training settings of a call that names none (a frozen record: one shared instance).
DEFAULT_SETTINGS = TrainSettings()


def fit(
    model: Generator,
    train: ArrayLike,
    val: ArrayLike,
    cond_train: ArrayLike | None = None,
    cond_val: ArrayLike | None = None,
    settings: TrainSettings = DEFAULT_SETTINGS,
    checkpoint_path: str | os.PathLike | None = None,
    csv_path: str | os.PathLike | None = None,
    log: LogFn = print,
    callback: Callback | None = None,
    redraw: Callable[[int], ArrayLike] | None = None,
    budget_path: str | os.PathLike | None = None,
) -> TrainingLog:
    """Train ``model`` on events in network space; returns the log, best weights loaded.

    ``callback`` is called with each epoch's record after its checkpoint is written (an
    exception raised there interrupts training exactly like a killed job).

    ``redraw(epoch)``, if given, returns the training events for each epoch after the first
    (which uses ``train``): the same events, in the same order, with fresh noise, such as
    dequantization. A fixed draw is a finite set of points that a flexible model learns by
    heart; a new one each epoch is only ever seen once. Its cost counts in the time budget.

    ``budget_path``, if given, receives the weights at the fractions of the budget
    (:func:`save_budget_checkpoints`).
    """
    device = _prepare(model, settings)
    x_train = _as_tensor(train, "train", model.n_features, device)
    x_val = _as_tensor(val, "val", model.n_features, device)
    c_train = _as_condition(cond_train, "cond_train", model, len(x_train), device)
    c_val = _as_condition(cond_val, "cond_val", model, len(x_val), device)
    if len(x_train) == 0 or len(x_val) == 0:
        raise InputError(f"training needs events: got {len(x_train)} train and {len(x_val)} validation events")
    shuffle = torch.Generator().manual_seed(settings.seed)

    def run_epoch(epoch: int, optimizers: list[torch.optim.Optimizer], deadline: float,
                  steps_left: float) -> tuple[dict[str, float], int, int]:
        nonlocal x_train
        if redraw is not None and epoch > 1:
            x_new = _as_tensor(redraw(epoch), f"redraw({epoch})", model.n_features, device)
            if x_new.shape != x_train.shape:
                raise InputError(f"redraw({epoch}) returned {tuple(x_new.shape)} events × features; "
                                 f"expected the training set's {tuple(x_train.shape)}")
            x_train = x_new
        totals: dict[str, float] = {}
        seen = steps = 0
        for index in torch.randperm(len(x_train), generator=shuffle).split(settings.batch_size):
            index = index.to(device)
            out = model.training_step(x_train[index], None if c_train is None else c_train[index], optimizers)
            for key, value in out.items():
                totals[key] = totals.get(key, 0.0) + value * len(index)
            seen += len(index)
            steps += 1
            if not all(math.isfinite(v) for v in out.values()) or time.perf_counter() > deadline or steps >= steps_left:
                break
        return {k: v / seen for k, v in totals.items()}, seen, steps

    def validate() -> float:
        return model.validation_loss(x_val, c_val)

    return _train(model, settings, device, run_epoch, validate, shuffle, checkpoint_path, csv_path, log, callback,
                  budget_path)


def fit_density(
    model: Generator,
    log_density: Callable[[Tensor], Tensor],
    settings: TrainSettings = DEFAULT_SETTINGS,
    checkpoint_path: str | os.PathLike | None = None,
    csv_path: str | os.PathLike | None = None,
    log: LogFn = print,
    callback: Callback | None = None,
    budget_path: str | os.PathLike | None = None,
) -> TrainingLog:
    """Train a flow against ``log_density(u)`` (network space, may be −inf), without data.

    An epoch is ``settings.density_steps_per_epoch`` steps of ``density_batch_size`` fresh
    samples (see :meth:`hepgenbench.models.flows.FlowGenerator.density_step`). The
    validation loss is the self-normalised estimate of KL(p‖q) on one fixed set of base
    draws, so that it moves only when the model does.
    """
    if not hasattr(model, "density_step"):
        raise InputError(f"model family '{model.family}' cannot be trained against a density; use a flow such as 'iaf'")
    if model.n_conditions:
        raise InputError("training against a density supports unconditional models only")
    device = _prepare(model, settings)
    shuffle = torch.Generator().manual_seed(settings.seed)  # unused by the steps; kept for one checkpoint format
    z_val = model.draw_base(settings.density_batch_size, torch.Generator().manual_seed(settings.seed + 1)).cpu()

    def run_epoch(epoch: int, optimizers: list[torch.optim.Optimizer], deadline: float,
                  steps_left: float) -> tuple[dict[str, float], int, int]:
        losses = []
        for _ in range(settings.density_steps_per_epoch):
            losses.append(model.density_step(log_density, settings.density_batch_size, optimizers)["loss"])
            if not math.isfinite(losses[-1]) or time.perf_counter() > deadline or len(losses) >= steps_left:
                break
        return {"loss": float(np.mean(losses))}, len(losses) * settings.density_batch_size, len(losses)

    def validate() -> float:
        return model.density_validation(log_density, z_val)

    return _train(model, settings, device, run_epoch, validate, shuffle, checkpoint_path, csv_path, log, callback,
                  budget_path)


# ------------------------------------------------------------------------------------------
# The loop


def _train(
    model: Generator,
    settings: TrainSettings,
    device: torch.device,
    run_epoch: EpochFn,
    validate: Callable[[], float],
    shuffle: torch.Generator,
    checkpoint_path: str | os.PathLike | None,
    csv_path: str | os.PathLike | None,
    log: LogFn,
    callback: Callback | None,
    budget_path: str | os.PathLike | None = None,
) -> TrainingLog:
    optimizers = model.configure_optimizers(settings)
    schedulers = [
        torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(2, settings.patience // 3))
        for opt in optimizers
    ]
    record = TrainingLog(n_parameters=model.n_parameters(), device=str(device))
    best_state = _copy_state(model)
    history: list[dict[str, float]] = []
    budget_states: list[dict[str, Tensor]] = []  # the weights of record.checkpoints, in order
    elapsed_before = 0.0

    if checkpoint_path is not None and Path(checkpoint_path).exists():
        state = _load_checkpoint(checkpoint_path, model, settings)
        model.load_state_dict(state["model"])
        for opt, s in zip(optimizers, state["optimizers"]):
            opt.load_state_dict(s)
        for sched, s in zip(schedulers, state["schedulers"]):
            sched.load_state_dict(s)
        torch.set_rng_state(state["torch_rng"])
        if torch.cuda.is_available() and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        shuffle.set_state(state["shuffle_rng"])
        record = TrainingLog.from_dict(state["log"])
        best_state, history, elapsed_before = state["best_state"], state["history"], record.wall_time_s
        budget_states = state.get("budget_states", [])
        log(f"resuming from {checkpoint_path} after epoch {len(record.epochs)}")
        if record.stopped_because:
            model.load_state_dict(best_state)
            if budget_path is not None:
                save_budget_checkpoints(budget_path, model, record.checkpoints, budget_states)
            return record

    start = time.perf_counter() - elapsed_before
    budget = settings.time_budget_s
    deadline = math.inf if budget is None else start + budget
    max_steps = math.inf if settings.max_steps is None else settings.max_steps
    for epoch in range(len(record.epochs) + 1, settings.max_epochs + 1):
        model.train()
        epoch_start = time.perf_counter()
        stats, n_events, n_steps = run_epoch(epoch, optimizers, deadline, max_steps - record.steps)
        record.steps += n_steps
        model.eval()
        train_loss = stats.get("loss", float("nan"))
        finite = all(math.isfinite(v) for v in stats.values())
        val_loss = validate() if finite else float("nan")
        learning_rate = optimizers[0].param_groups[0]["lr"]
        now = time.perf_counter()
        rec = EpochRecord(epoch, train_loss, val_loss, learning_rate, now - start, record.steps)
        record.epochs.append(rec)
        history.append(stats)
        record.wall_time_s = now - start

        if not (finite and math.isfinite(val_loss)):
            what = "training" if not finite else "validation"
            record.diverged, record.divergence_reason = True, f"NaN or infinite {what} loss at epoch {epoch}"
        elif reason := model.check_divergence(history):
            record.diverged, record.divergence_reason = True, f"{reason} (epoch {epoch})"
        elif val_loss < record.best_val_loss:
            record.best_epoch, record.best_val_loss, record.time_to_best_s = epoch, val_loss, now - start
            best_state = _copy_state(model)
        if not record.diverged:
            for sched in schedulers:
                sched.step(val_loss)

        log(
            f"epoch {epoch}/{settings.max_epochs}  train {train_loss:.5g}  val {val_loss:.5g}  "
            f"lr {learning_rate:.3g}  {n_events / max(now - epoch_start, 1e-9):.4g} events/s  {now - start:.1f} s"
        )
        if record.diverged:
            record.stopped_because = "diverged"
            log(f"stopping: {record.divergence_reason}")
        elif epoch - max(record.best_epoch, 0) >= settings.patience:
            record.stopped_because = "early_stopping"
        elif now >= deadline:
            record.stopped_because = "time_budget"
        elif record.steps >= max_steps:
            record.stopped_because = "max_steps"
        elif epoch == settings.max_epochs:
            record.stopped_because = "max_epochs"
        record.budget = _BOUND_BY.get(record.stopped_because, "epochs")
        budget_states += _keep_budget_checkpoints(record, settings, best_state, final=bool(record.stopped_because))

        if csv_path is not None:
            _write_csv(csv_path, record)
        if checkpoint_path is not None:
            _save_checkpoint(checkpoint_path, model, optimizers, schedulers, shuffle, record, best_state, history,
                             settings, budget_states)
        if callback is not None:
            callback(rec)
        if record.stopped_because:
            break

    if not record.stopped_because:  # max_epochs already reached by a resumed run
        record.stopped_because, record.budget = "max_epochs", "epochs"
        budget_states += _keep_budget_checkpoints(record, settings, best_state, final=True)
    model.load_state_dict(best_state)
    if budget_path is not None:
        save_budget_checkpoints(budget_path, model, record.checkpoints, budget_states)
    log(
        f"finished ({record.stopped_because}) after {len(record.epochs)} epochs, {record.wall_time_s:.1f} s; "
        f"best epoch {record.best_epoch}, val {record.best_val_loss:.5g}"
    )
    return record


def _prepare(model: Generator, settings: TrainSettings) -> torch.device:
    torch.set_num_threads(max(1, int(settings.threads)))
    torch.manual_seed(settings.seed)
    device = select_device(settings.device)
    model.to(device)
    return device


def _as_tensor(a: ArrayLike, name: str, n_features: int, device: torch.device) -> Tensor:
    t = torch.as_tensor(np.asarray(a) if not isinstance(a, Tensor) else a, dtype=torch.get_default_dtype())
    if t.dim() != 2 or t.shape[1] != n_features:
        raise InputError(f"{name} events have shape {tuple(t.shape)}; expected (n, {n_features}) for this model")
    if not torch.isfinite(t).all():
        raise InputError(f"{name} events contain NaN or infinite values; check the preprocessing")
    return t.to(device)


def _as_condition(a: ArrayLike | None, name: str, model: Generator, n: int, device: torch.device) -> Tensor | None:
    if (a is None) != (model.n_conditions == 0):
        raise InputError(
            f"{name} is {'missing' if a is None else 'given'} but the model was built with "
            f"{model.n_conditions} condition column(s)"
        )
    if a is None:
        return None
    t = _as_tensor(a, name, model.n_conditions, device)
    if len(t) != n:
        raise InputError(f"{name} has {len(t)} rows but there are {n} events")
    return t


def _copy_state(model: Generator) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _write_csv(path: str | os.PathLike, record: TrainingLog) -> None:
    # Rewritten whole and renamed into place: a killed job leaves the previous complete file.
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(_CSV_COLUMNS)
        for e in record.epochs:
            writer.writerow([e.epoch, repr(e.train_loss), repr(e.val_loss), repr(e.learning_rate), f"{e.time_s:.3f}"])


def _save_checkpoint(path, model, optimizers, schedulers, shuffle, record, best_state, history, settings,
                     budget_states) -> None:
    state = {
        "family": model.family,
        "settings": {k: getattr(settings, k) for k in _TRAJECTORY_SETTINGS},
        "model": model.state_dict(),
        "optimizers": [o.state_dict() for o in optimizers],
        "schedulers": [s.state_dict() for s in schedulers],
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "shuffle_rng": shuffle.get_state(),
        "log": record.to_dict(),
        "best_state": best_state,
        "history": history,
        "budget_states": budget_states,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path, model: Generator, settings: TrainSettings) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location=model.device, weights_only=True)
    except Exception as err:  # a truncated or foreign file
        raise InputError(f"checkpoint {path} cannot be read ({err}); delete it to start training over") from None
    mine = {k: getattr(settings, k) for k in _TRAJECTORY_SETTINGS}
    if state.get("family") != model.family or state.get("settings") != mine:
        raise InputError(
            f"checkpoint {path} was written for family '{state.get('family')}' with settings {state.get('settings')}, "
            f"but this run is '{model.family}' with {mine}; delete the checkpoint to start over"
        )
    # RNG states must live on the CPU whatever map_location said.
    state["torch_rng"] = state["torch_rng"].cpu()
    state["shuffle_rng"] = state["shuffle_rng"].cpu()
    return state


# ------------------------------------------------------------------------------------------
# Weights at fractions of the budget

#: The budget a stopping reason names; every other reason counts as an epoch-bounded run.
_BOUND_BY = {"time_budget": "wall-clock", "max_steps": "steps"}


def _keep_budget_checkpoints(record: TrainingLog, settings: TrainSettings, best_state: dict[str, Tensor],
                             final: bool) -> list[dict[str, Tensor]]:
    """Append to ``record.checkpoints`` the fractions of the budget that the epoch just ended
    reached (every remaining one when training has ``final``-ly stopped); returns their weights.

    The weights are the best so far, which is what the run would have delivered had its
    budget ended at this epoch (see :class:`~hepgenbench.records.BudgetPoint`).
    """
    axis, total = settings.budget_axis, settings.budget_total
    last = record.epochs[-1]
    used = {"wall-clock": last.time_s, "steps": float(record.steps), "epochs": float(last.epoch)}[axis]
    kept = []
    for fraction in settings.checkpoint_fractions[len(record.checkpoints):]:
        reached = used >= fraction * total * (1 - 1e-9)  # 1e-9: ½ × 8 epochs is reached at epoch 4
        if not (reached or final):
            break
        record.checkpoints.append(BudgetPoint(fraction=fraction, axis=axis, used=used, epoch=last.epoch,
                                              steps=record.steps, time_s=last.time_s, best_epoch=record.best_epoch,
                                              reached=reached))
        kept.append(best_state)
    return kept


def save_budget_checkpoints(path: str | os.PathLike, model: Generator, points: list[BudgetPoint],
                            states: list[dict[str, Tensor]]) -> None:
    """Write the weights at the fractions of the budget, atomically: ``{family, points, states}``.

    Only the state dicts: the architecture is the one of ``model.pt`` beside them
    (:func:`load_budget_checkpoints`).
    """
    if len(points) != len(states):
        raise RuntimeError(f"{len(points)} budget checkpoints but {len(states)} sets of weights")
    with atomic_path(path) as tmp:
        torch.save({"family": model.family, "points": [p.to_dict() for p in points], "states": states}, tmp)


def load_budget_checkpoints(model_path: str | os.PathLike, budget_path: str | os.PathLike,
                            device: str = "cpu") -> list[tuple[BudgetPoint, Generator]]:
    """The model of ``model_path`` with the weights of each budget checkpoint, in eval mode."""
    model, _ = load_model(model_path, device)
    try:
        payload = torch.load(budget_path, map_location=model.device, weights_only=True)
        points = [BudgetPoint.from_dict(p, where=str(budget_path)) for p in payload["points"]]
        states = payload["states"]
    except InputError:
        raise
    except Exception as err:
        raise InputError(f"{budget_path}: not budget checkpoints written by hepgenbench ({err})") from None
    if payload.get("family") != model.family or len(points) != len(states):
        raise InputError(f"{budget_path}: budget checkpoints of family '{payload.get('family')}' "
                         f"({len(points)} points, {len(states)} weights) do not belong to {model_path} "
                         f"('{model.family}'): re-run the train stage")
    out = []
    for point, state in zip(points, states):
        copy = deepcopy(model)
        copy.load_state_dict(state)
        out.append((point, copy.eval()))
    return out


# ------------------------------------------------------------------------------------------
# Saving finished models


def save_model(
    path: str | os.PathLike,
    model: Generator,
    log: TrainingLog | None = None,
    settings: TrainSettings | None = None,
    provenance: Provenance | None = None,
) -> None:
    """Write ``model.pt``, atomically: the weights (family, hyperparameters, state) and the
    :class:`~hepgenbench.records.TrainedModelRecord` (training log, settings, provenance)."""
    record = TrainedModelRecord(training_log=log, settings=settings, provenance=provenance)
    payload = {"model": model.export(), **record.to_dict()}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _read_payload(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: model file does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(f"{path}: not a model written by hepgenbench ({err})") from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise InputError(f"{path}: not a model written by hepgenbench (no 'model' entry)")
    return payload


def read_model_record(path: str | os.PathLike) -> TrainedModelRecord:
    """The record of a ``model.pt`` written by :func:`save_model`, without building the model."""
    return _record_of(_read_payload(path), path)


def _record_of(payload: dict[str, Any], path: str | os.PathLike) -> TrainedModelRecord:
    return TrainedModelRecord.from_dict({k: v for k, v in payload.items() if k != "model"}, where=str(path))


def load_model(path: str | os.PathLike, device: str = "cpu") -> tuple[Generator, TrainingLog | None]:
    """Rebuild a model written by :func:`save_model`; returns it (in eval mode) and its log."""
    model, record = load_model_and_record(path, device)
    return model, record.training_log


def load_model_and_record(path: str | os.PathLike, device: str = "cpu") -> tuple[Generator, TrainedModelRecord]:
    """The model (in eval mode) and its whole record, from one read of ``model.pt``."""
    payload = _read_payload(path)
    try:
        model = from_export(payload["model"])
    except InputError:
        raise
    except Exception as err:
        raise InputError(f"{path}: not a model written by hepgenbench ({err})") from None
    model.to(select_device(device)).eval()
    return model, _record_of(payload, path)


# ------------------------------------------------------------------------------------------
# Measurements


@torch.no_grad()
def sampling_rates(
    model: Generator,
    batch_sizes: tuple[int, ...] = (1, 1000, 100_000),
    cond_pool: ArrayLike | None = None,
    repeats: int = 3,
    calls_at_batch_one: int = 20,
    seed: int = 0,
    max_seconds: float | None = 30.0,
) -> dict[int, float | None]:
    """Events per second of ``model.sample`` at each batch size: the median of ``repeats``.

    At batch size 1 each repeat times ``calls_at_batch_one`` calls, since one call is too
    short to time (fewer, down to one, when they would take longer than ``max_seconds``).
    Conditions are drawn (with replacement) from ``cond_pool``. A batch size
    whose one call would take longer than ``max_seconds`` at the rate just measured is not
    run and reads ``None``: an autoregressive flow on 368 calorimeter cells would otherwise
    spend a quarter of an hour proving that it is slow.
    """
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    pool = None if cond_pool is None else torch.as_tensor(np.asarray(cond_pool), dtype=torch.get_default_dtype())
    if model.n_conditions and pool is None:
        raise InputError(f"model family '{model.family}' is conditional: pass cond_pool to sampling_rates")

    def draw(n: int) -> None:
        cond = None
        if pool is not None:
            cond = pool[torch.randint(0, len(pool), (n,), generator=generator)].reshape(n, -1).to(model.device)
        model.sample(n, cond, generator=generator)
        if model.device.type == "cuda":
            torch.cuda.synchronize()

    rates: dict[int, float | None] = {}
    last_rate = None
    for batch in batch_sizes:
        calls = calls_at_batch_one if batch == 1 else 1
        n_repeats = repeats
        if last_rate is not None and max_seconds is not None:
            predicted = batch * calls / last_rate
            if predicted > max_seconds:
                rates[batch] = None
                continue
            n_repeats = max(1, min(repeats, int(max_seconds / predicted)))
        t0 = time.perf_counter()
        draw(min(batch, 1000))  # warm-up
        if batch == 1 and max_seconds is not None:
            # A slow sampler at batch 1 (368 autoregressive passes) gets fewer timed calls, so
            # that this measurement too stays within max_seconds.
            calls = max(1, min(calls, int(max_seconds / (n_repeats * (time.perf_counter() - t0)))))
        timings = []
        for _ in range(n_repeats):
            t0 = time.perf_counter()
            for _ in range(calls):
                draw(batch)
            timings.append(time.perf_counter() - t0)
        rates[batch] = last_rate = batch * calls / statistics.median(timings)
    return rates
