"""Classifier two-sample test (C2ST) and the classifier weights it implies.

A classifier trained to tell truth (label 1) from generated (label 0) events reaches an
area under the ROC curve of 0.5 on held-out events exactly when it cannot separate them
(Lopez-Paz & Oquab, arXiv:1610.06545). Its calibrated output p(x) also estimates the
density ratio w(x) = p/(1−p) = p_truth(x)/p_gen(x): where the generator under-populates
phase space w ≫ 1, where it over-populates w ≪ 1 (Das et al., arXiv:2305.16774). Both are
read from the out-of-fold predictions of a stratified k-fold, so every event is scored by
a classifier that never saw it.

``classifier="cc22"`` replaces the k-fold by the CaloChallenge's own protocol and network
(:mod:`hepgenbench.metrics.cc22`): one 60/20/20 split and a calibrated 2,048-unit network,
so that the AUC is on the scale of the challenge's published ones (arXiv:2410.21611).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hepgenbench.errors import InputError
from hepgenbench.metrics.base import MetricResult, RandomLike, as_sample_pair, feature_labels, finite_rows

CLASSIFIERS = ("hgb", "mlp", "cc22")
#: fixed log-weight binning so that histograms of different models share an axis
LOG_W_EDGES = np.linspace(-6.0, 6.0, 61)
#: the extreme fraction of generated events whose feature means locate large/small weights
EXTREME_FRACTION = 0.01


def make_classifier(kind: str, seed: int):
    """An unfitted scikit-learn classifier: gradient-boosted trees ("hgb") or an MLP ("mlp").
    The challenge's network ("cc22") is not a scikit-learn estimator: see :mod:`~hepgenbench.metrics.cc22`."""
    if kind == "hgb":
        # early stopping on an internal 10% split keeps the boosting from memorising
        return HistGradientBoostingClassifier(max_iter=100, early_stopping=True, random_state=seed)
    if kind == "mlp":
        return make_pipeline(
            StandardScaler(),
            MLPClassifier(hidden_layer_sizes=(64, 64), early_stopping=True, max_iter=100, random_state=seed),
        )
    raise InputError(f"c2st_classifier must be one of {CLASSIFIERS}, got {kind!r}")


def classifier_two_sample_test(
    truth: np.ndarray,
    gen: np.ndarray,
    classifier: str = "hgb",
    folds: int = 5,
    rng: RandomLike = 0,
    max_events: int | None = None,
    feature_names: Sequence[str] | None = None,
    cc22: Mapping[str, Any] | None = None,
    groups: tuple[np.ndarray, np.ndarray] | None = None,
) -> MetricResult:
    """ROC AUC of a truth-vs-generated classifier on held-out folds, with classifier weights.

    The classes are balanced by subsampling the larger one (and both to ``max_events`` if
    given), rows with NaN/inf are dropped (``unphysical_fraction`` counts them). Value: the
    mean AUC over ``folds`` stratified folds; error: their standard deviation / √folds.

    ``details`` also holds, from the out-of-fold predictions p:

    * ``log_w_hist``: histograms of log w, w = p/(1−p), for truth and generated events on
      fixed edges (:data:`LOG_W_EDGES`, values outside clipped into the end bins);
    * ``where_w_largest`` / ``where_w_smallest``: per feature, the mean of the 1% of
      generated events with the largest (smallest) weight minus the mean of all generated
      events, in units of the feature's std. Large weights mark regions the generator
      under-populates; small weights the regions it over-populates (arXiv:2305.16774).
    * ``per_group`` when ``groups`` (an integer label per truth and per generated event,
      e.g. its incident-energy bin; −1 for none) is given: the AUC of each group's held-out
      events, :func:`grouped_auc`. One classifier that sees the grouping variable scores every
      group, instead of one classifier per group trained on a fraction of the events.
    """
    truth, gen = as_sample_pair(truth, gen)
    if groups is not None:
        truth_groups, gen_groups = (np.asarray(g).reshape(-1) for g in groups)
        if (len(truth_groups), len(gen_groups)) != (len(truth), len(gen)):
            raise InputError(f"C2ST groups: {len(truth_groups)} and {len(gen_groups)} labels for {len(truth)} truth "
                             f"and {len(gen)} generated events")
        truth_groups = truth_groups[np.isfinite(truth).all(axis=1)]
        gen_groups = gen_groups[np.isfinite(gen).all(axis=1)]
    n_dropped = len(truth) + len(gen)
    truth, gen = finite_rows(truth), finite_rows(gen)
    n_dropped -= len(truth) + len(gen)
    if classifier not in CLASSIFIERS:
        raise InputError(f"c2st_classifier must be one of {CLASSIFIERS}, got {classifier!r}")
    if folds < 2:
        raise InputError(f"c2st_folds must be at least 2, got {folds}")
    names = feature_labels(feature_names, truth.shape[1])
    generator = np.random.default_rng(rng)
    n = min(len(truth), len(gen), max_events or np.inf)
    n = int(n)
    if n < 5 * folds:
        raise InputError(f"C2ST needs at least {5 * folds} finite events per class, got {n}")
    truth_pick = np.sort(generator.choice(len(truth), n, replace=False))
    gen_pick = np.sort(generator.choice(len(gen), n, replace=False))
    truth, gen = truth[truth_pick], gen[gen_pick]
    x = np.vstack([truth, gen])
    y = np.concatenate([np.ones(n, dtype=int), np.zeros(n, dtype=int)])
    group = None if groups is None else np.concatenate([truth_groups[truth_pick], gen_groups[gen_pick]])

    seed = int(generator.integers(0, 2**31 - 1))
    if classifier == "cc22":
        return _cc22_test(x, y, gen, n, names, seed, n_dropped, cc22, group)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    p_out = np.empty(len(y))
    fold_of = np.empty(len(y), dtype=int)
    aucs = []
    for fold, (train_idx, test_idx) in enumerate(splitter.split(x, y)):
        model = make_classifier(classifier, seed + fold).fit(x[train_idx], y[train_idx])
        p_out[test_idx] = model.predict_proba(x[test_idx])[:, 1]
        fold_of[test_idx] = fold
        aucs.append(float(roc_auc_score(y[test_idx], p_out[test_idx])))
    aucs_arr = np.asarray(aucs)
    per_group = {} if group is None else {"per_group": grouped_auc(p_out, y, group, fold_of)}

    return MetricResult(
        float(aucs_arr.mean()),
        float(aucs_arr.std(ddof=1) / np.sqrt(folds)),
        {
            "fold_auc": aucs,
            "fold_spread": float(aucs_arr.max() - aucs_arr.min()),
            "classifier": classifier,
            "folds": folds,
            "n_per_class": n,
            "n_nonfinite_dropped": int(n_dropped),
            **weight_details(p_out, y, gen, names),
            **per_group,
        },
    )


def grouped_auc(p: np.ndarray, y: np.ndarray, group: np.ndarray, fold: np.ndarray | None = None,
                min_per_class: int = 5) -> dict[int, dict[str, float]]:
    """The AUC of held-out predictions ``p`` within each group (labels ``y``, 1 truth).

    With ``fold`` (the k-fold each prediction was held out in) a group's value is the mean
    of its per-fold AUCs and its error their standard deviation / √folds, as the C2ST's own;
    without (one held-out split) the error is NaN. A fold, or a group, with fewer than
    ``min_per_class`` events of either class is left out. Returns ``{group: {"auc", "error",
    "n_truth", "n_generated"}}`` for each group ≥ 0 with a value.
    """
    fold = np.zeros(len(y), dtype=int) if fold is None else fold
    out = {}
    for g in np.unique(group[group >= 0]):
        aucs = []
        for k in np.unique(fold):
            sel = (group == g) & (fold == k)
            n_truth = int(y[sel].sum())
            if min(n_truth, int(sel.sum()) - n_truth) >= min_per_class:
                aucs.append(float(roc_auc_score(y[sel], p[sel])))
        if aucs:
            in_group = group == g
            out[int(g)] = {"auc": float(np.mean(aucs)),
                           "error": float(np.std(aucs, ddof=1) / np.sqrt(len(aucs))) if len(aucs) > 1 else float("nan"),
                           "n_truth": int(y[in_group].sum()), "n_generated": int((y[in_group] == 0).sum())}
    return out


def _cc22_test(x: np.ndarray, y: np.ndarray, gen: np.ndarray, n: int, names: list[str], seed: int,
               n_dropped: int, options: Mapping[str, Any] | None, group: np.ndarray | None = None) -> MetricResult:
    """The C2ST with the CaloChallenge's classifier and protocol (:mod:`hepgenbench.metrics.cc22`)."""
    from hepgenbench.metrics.cc22 import CC22Settings, cc22_fit_predict

    try:
        settings = CC22Settings(**dict(options or {}))
    except TypeError as err:
        raise InputError(f"cc22 classifier options: {err}") from None
    result = cc22_fit_predict(x, y, settings, seed)
    # the generated events of the test split, in the order of their predictions
    gen_test = gen[result.test_index[result.y_test == 0] - n]
    return MetricResult(
        result.auc,
        result.auc_error,
        {
            "classifier": "cc22",
            "protocol": "CaloChallenge: 60/20/20 split, isotonic calibration on the validation split",
            "jsd_bits": result.jsd_bits,
            "auc_uncalibrated": result.auc_uncalibrated,
            "best_epoch": result.best_epoch,
            "epochs": result.epochs,
            "width": settings.width,
            "device": result.device,
            "n_per_class": n,
            "n_test": len(result.y_test),
            "n_nonfinite_dropped": int(n_dropped),
            **weight_details(result.p_test, result.y_test, gen_test, names),
            **({} if group is None else {"per_group": grouped_auc(result.p_test, result.y_test, group[result.test_index])}),
        },
    )


def weight_details(p: np.ndarray, y: np.ndarray, gen: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Histograms of log w = log p/(1−p) per class and where the extreme weights sit.

    ``p``: classifier outputs of held-out events, ``y`` their labels (1 truth); ``gen``: the
    generated events among them, in the order they appear in ``p``.
    """
    p = np.clip(p, 1e-7, 1 - 1e-7)
    log_w = np.log(p) - np.log1p(-p)
    clipped = np.clip(log_w, LOG_W_EDGES[0], LOG_W_EDGES[-1])
    gen_log_w = log_w[y == 0]
    gen_std = np.where(gen.std(axis=0) > 0, gen.std(axis=0), 1.0)
    n_extreme = max(1, int(EXTREME_FRACTION * len(gen)))
    order = np.argsort(gen_log_w, kind="stable")
    largest, smallest = gen[order[-n_extreme:]], gen[order[:n_extreme]]

    def shift(selected: np.ndarray) -> dict[str, dict[str, float]]:
        # a mean shift locates one-sided mismodelling; the width ratio catches tails that
        # are too heavy or too light on both sides, which leave the mean unchanged
        mean_shift = (selected.mean(axis=0) - gen.mean(axis=0)) / gen_std
        width_ratio = selected.std(axis=0) / gen_std
        return {
            name: {"mean_shift_in_std": float(m), "width_ratio": float(w)}
            for name, m, w in zip(names, mean_shift, width_ratio)
        }

    return {
        "log_w_hist": {
            "edges": LOG_W_EDGES.tolist(),
            "truth": np.histogram(clipped[y == 1], LOG_W_EDGES)[0].tolist(),
            "generated": np.histogram(clipped[y == 0], LOG_W_EDGES)[0].tolist(),
        },
        "where_w_largest": shift(largest),
        "where_w_smallest": shift(smallest),
        "extreme_fraction": EXTREME_FRACTION,
    }
