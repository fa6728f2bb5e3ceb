"""Quality against training compute: would a longer budget change the winner?

Every training job keeps the weights its run would have delivered at a few fractions of
its budget (``training.checkpoint_fractions``, by default ¼, ½ and 1 of the wall-clock,
step or epoch budget: :class:`~hepgenbench.records.BudgetPoint`). :func:`score_checkpoints`
scores each with the cheapest metric that still separates the families: the classifier
two-sample test's AUC (arXiv:1610.06545) on a subsample of ``evaluation.budget_auc_events``
truth events against as many generated ones, with the same truth events and the same
classifier seed at every checkpoint of every model (common random numbers, so the
differences along a curve and between curves are not classifier noise). Truth B against
the same truth events gives the noise floor of that AUC.

A curve still falling at the whole budget says that more compute would improve the family;
curves that cross say that the winner depends on the budget. :func:`budget_table` is the
report's view of the curves, :mod:`hepgenbench.plotting.budget` their figure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from hepgenbench.io import EventSet
from hepgenbench.records import BudgetCurve, BudgetCurvePoint, BudgetPoint

#: How each budget axis names its unit in the table.
AXIS_UNITS = {"wall-clock": "s", "steps": "steps", "epochs": "epochs"}
#: The metric-seed name of the checkpoints' C2ST (:func:`hepgenbench.evaluate.metric_seed`).
SEED_NAME = "c2st_budget"


#: Above this many classifier inputs the checkpoints are scored on the derived observables.
MAX_C2ST_INPUTS = 40


def c2st_inputs(events: EventSet) -> tuple[np.ndarray, list[str]]:
    """What the checkpoints' classifier sees: the kind's classifier inputs (those of the
    headline ``c2st_auc``), unless they number more than :data:`MAX_C2ST_INPUTS` and the kind
    derives observables: then those and log10 of the conditions, as ``c2st_auc_high_level``.

    On showers the 369 voxel inputs made one fold-averaged C2ST cost ~10 CPU-s on 450 showers
    a class, where the dozen shower shapes cost ~1 s, and the shapes are where the families
    differ (the CaloChallenge's high-level classifier, arXiv:2410.21611).
    """
    from hepgenbench import kinds

    kind = kinds.get(events.kind)
    x, labels, _ = kind.classifier_inputs(events)
    if x.shape[1] <= MAX_C2ST_INPUTS:
        return x, labels
    obs, names = kind.observables(events)
    if not names:
        return x, labels
    columns, labels = [np.asarray(obs)], list(names)
    if events.condition is not None:
        columns.append(np.log10(np.clip(events.condition, 1e-300, None)))
        labels += [f"log10_{c}" for c in events.condition_names]
    return np.column_stack(columns), labels


def score_checkpoints(
    checkpoints: Sequence[tuple[BudgetPoint, Callable[[EventSet], EventSet]]],
    truth_a: EventSet,
    truth_b: EventSet,
    classifier: str,
    folds: int,
    seed: int,
    identity: dict,
) -> BudgetCurve:
    """The C2ST AUC of each checkpoint's sample against ``truth_a``, and truth B's.

    Args:
        checkpoints: per checkpoint, where training stood and a function that draws a sample
            like the truth events given (as many, with their conditions, in physical units).
        truth_a, truth_b: the truth events of the test (equally many), and the floor's.
        classifier, folds: the C2ST's (:func:`~hepgenbench.metrics.classifier.classifier_two_sample_test`).
        seed: the evaluation's seed; every C2ST uses the same stream from it.
        identity: the curve's ``dataset``, ``model``, ``name``, ``family``, ``axis``, ``total``
            and ``stopped_because``.
    """
    from hepgenbench.evaluate import metric_seed
    from hepgenbench.metrics.classifier import classifier_two_sample_test

    t_in, labels = c2st_inputs(truth_a)

    def auc(generated: EventSet):
        g_in, _ = c2st_inputs(generated)
        return classifier_two_sample_test(t_in, g_in, classifier, folds, metric_seed(seed, SEED_NAME), None, labels)

    points = []
    for point, draw in checkpoints:
        result = auc(draw(truth_a))
        points.append(BudgetCurvePoint(fraction=point.fraction, used=point.used, epoch=point.epoch, steps=point.steps,
                                       time_s=point.time_s, best_epoch=point.best_epoch, reached=point.reached,
                                       auc=result.value, auc_error=result.error))
    floor = auc(truth_b)
    return BudgetCurve(**identity, n_per_class=len(truth_a), truth_auc=floor.value, truth_auc_error=floor.error,
                       points=points)


def _fraction_label(fraction: float) -> str:
    named = {0.25: "¼", 0.5: "½", 0.75: "¾", 1.0: "1"}
    return named.get(fraction, f"{fraction:g}")


def budget_table(curves: Sequence[BudgetCurve]) -> pd.DataFrame:
    """The report's table of one dataset's curves: one row per model (and the truth floor),
    one column per budget fraction: ``AUC ± error`` and where training stood (epochs, and
    the time or steps used); ``best`` names the lowest |AUC − 0.5| at each fraction.

    Models that kept different fractions share the union of the columns ("—" where absent).
    """
    from hepgenbench.report import format_value_error

    fractions = sorted({p.fraction for c in curves for p in c.points})
    columns = [f"{_fraction_label(f)} budget" for f in fractions]
    rows = []
    for curve in curves:
        at = {p.fraction: p for p in curve.points}
        unit = AXIS_UNITS[curve.axis]
        row = {"model": curve.model}
        for fraction, column in zip(fractions, columns):
            p = at.get(fraction)
            if p is None:
                row[column] = "—"
                continue
            where = f"epoch {p.epoch}, {p.time_s:.3g} s" + (f", {p.steps} steps" if curve.axis == "steps" else "")
            stopped = "" if p.reached else f"; stopped at {p.used:.3g} {unit} ({curve.stopped_because})"
            row[column] = f"{format_value_error(p.auc, p.auc_error)} ({where}{stopped})"
        rows.append(row)
    if curves:
        floor = curves[0]
        text = f"{format_value_error(floor.truth_auc, floor.truth_auc_error)} (truth B, {floor.n_per_class} events)"
        rows.append({"model": "truth", **{c: text for c in columns}})
    return pd.DataFrame(rows, columns=["model", *columns])


def best_at_each_fraction(curves: Sequence[BudgetCurve]) -> dict[float, str]:
    """The model with the AUC closest to 0.5 at each fraction of the budget."""
    best: dict[float, tuple[float, str]] = {}
    for curve in curves:
        for p in curve.points:
            score = abs(p.auc - 0.5)
            if math.isfinite(score) and (p.fraction not in best or score < best[p.fraction][0]):
                best[p.fraction] = (score, curve.model)
    return {f: model for f, (_, model) in sorted(best.items())}


def winner_note(curves: Sequence[BudgetCurve]) -> str:
    """One sentence: the best model at each fraction, and whether it changes with the budget."""
    best = best_at_each_fraction(curves)
    if not best:
        return ""
    listed = ", ".join(f"{model} at {_fraction_label(f)}" for f, model in best.items())
    verdict = ("the same model leads at every fraction" if len(set(best.values())) == 1
               else "the leader changes with the budget")
    return f"Closest to AUC 0.5: {listed}; {verdict}."


__all__ = ["AXIS_UNITS", "best_at_each_fraction", "budget_table", "c2st_inputs", "score_checkpoints", "winner_note"]
