"""The metric suite of the ``evaluate`` stage: one call scores one sample against truth.

:func:`evaluate_sample` runs every metric of :mod:`hepgenbench.metrics` on one generated
sample and returns ``{metric_key: MetricResult.to_dict()}``. The truth-vs-truth noise
floor is the *same* call with a second truth holdout as ``generated``, so both rows of the
report come from one code path at the same sample sizes.

Every metric draws from its own random stream, derived from ``seed`` and the metric's
name, so the same seed gives an identical dict and adding a metric does not shift the
others' streams.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection

import numpy as np

from hepgenbench.errors import InputError
from hepgenbench.io import EventSet
from hepgenbench.metrics import HEADLINE
from hepgenbench.metrics.base import MetricResult
from hepgenbench.metrics.classifier import classifier_two_sample_test
from hepgenbench.metrics.histogram import histogram_divergences
from hepgenbench.metrics.likelihood import kl_exact, nll_per_dim
from hepgenbench.metrics.memorisation import memorisation
from hepgenbench.metrics.physics_distance import fpd, kpd
from hepgenbench.metrics.sanity import unphysical_fraction
from hepgenbench.metrics.wasserstein import exact_emd, sliced_wasserstein, w1_per_feature
from hepgenbench.records import EvalOptions

#: headline keys that exist only for some samples: a density (NLL, KL), derived observables,
#: a training set (memorisation; a sample scored by ``hepgenbench score`` may have none).
# unweighting_efficiency is added by the evaluate stage, which holds the model and the density.
OPTIONAL_KEYS = frozenset({"nll_per_dim", "kl_exact", "w1_observables_mean", "unweighting_efficiency",
                           "memorisation_ratio"})


def metric_seed(seed: int, name: str) -> np.random.Generator:
    """An independent random stream per (seed, metric name)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def physics_distances(physics_truth: np.ndarray, physics_gen: np.ndarray, physics_names: list[str],
                      options: EvalOptions, seed: int, keys: Collection[str] = ("fpd", "kpd")) -> dict[str, MetricResult]:
    """FPD and KPD on the kind's physics features, each from its own random stream, with the
    features named in its details (the in-memory suite and the streamed score both call this)."""
    results = {}
    if "fpd" in keys:
        results["fpd"] = fpd(physics_truth, physics_gen, options.fpd_min_samples, options.fpd_max_samples,
                             options.fpd_points, options.fpd_resamples, metric_seed(seed, "fpd"))
    if "kpd" in keys:
        results["kpd"] = kpd(physics_truth, physics_gen, options.kpd_batch_size, options.kpd_batches, metric_seed(seed, "kpd"))
    for result in results.values():
        result.details["features"] = physics_names
    return results


def evaluate_sample(
    truth: EventSet,
    generated: EventSet,
    train: EventSet | None,
    options: EvalOptions,
    seed: int,
    log_q_truth: np.ndarray | None = None,
    likelihood_is_bound: bool = False,
    only: Collection[str] | None = None,
) -> dict[str, dict]:
    """Score ``generated`` against ``truth`` with the whole suite.

    Args:
        truth: held-out truth (truth A).
        generated: the model's sample in physical units, or truth B for the noise floor.
        train: the training set, for the memorisation test (skipped when ``None``).
        options: :class:`EvalOptions`.
        seed: seeds every metric (see :func:`metric_seed`).
        log_q_truth: the model's log-density of the first ``len(log_q_truth)`` truth events
            in physical units, if it has one.
        likelihood_is_bound: ``log_q_truth`` is a lower bound (VAE).
        only: compute only these headline keys (the truth null, :mod:`hepgenbench.null`,
            repeats a chosen few); the kind's extra metrics are then skipped. Each metric
            is computed exactly as in the full suite, from the same random stream.

    What depends on the kind (``truth.kind``, :mod:`hepgenbench.kinds`): the derived
    observables, the C2ST inputs, the features of FPD/KPD, the physics checks and the
    kind's extra metrics.

    Returns:
        ``{key: {"value", "error", ...details}}`` with every key of
        :data:`hepgenbench.metrics.HEADLINE` except those in :data:`OPTIONAL_KEYS` whose
        inputs are absent (no log-density, no known truth density, no derived
        observables), plus the kind's extra metrics (``c2st_auc_high_level`` and
        ``per_energy_bin`` for showers).
    """
    if truth.feature_names != generated.feature_names or (train is not None and truth.feature_names != train.feature_names):
        raise InputError(
            f"truth, generated and train events must have the same features; got {truth.feature_names}, "
            f"{generated.feature_names} and {None if train is None else train.feature_names}"
        )
    from hepgenbench import kinds

    kind = kinds.get(truth.kind)
    names = truth.feature_names
    results: dict[str, MetricResult] = {}

    def wanted(*keys: str) -> bool:
        return only is None or any(k in only for k in keys)

    truth_obs, obs_names = kind.observables(truth)
    gen_obs, _ = kind.observables(generated)

    if wanted("w1_mean"):
        results["w1_mean"] = w1_per_feature(truth.features, generated.features, options.n_bootstrap, metric_seed(seed, "w1"), names,
                                            options.w1_bootstrap_events)
    if obs_names and wanted("w1_observables_mean"):
        results["w1_observables_mean"] = w1_per_feature(truth_obs, gen_obs, options.n_bootstrap, metric_seed(seed, "w1_obs"),
                                                        obs_names, options.w1_bootstrap_events)
    if wanted("jsd_mean", "kl_mean", "separation_power_mean"):
        results.update(histogram_divergences(truth.features, generated.features, options.n_bins, options.n_bootstrap,
                                             metric_seed(seed, "histogram"), names))
    if wanted("emd"):
        results["emd"] = exact_emd(truth.features, generated.features, options.emd_subsample, options.emd_repeats,
                                   metric_seed(seed, "emd"), options.emd_num_itermax)
    if wanted("swd"):
        results["swd"] = sliced_wasserstein(truth.features, generated.features, options.swd_projections,
                                            metric_seed(seed, "swd"), options.swd_seeds, options.swd_max_events)

    if wanted("c2st_auc"):
        t_in, labels, inputs_note = kind.classifier_inputs(truth)
        g_in, _, _ = kind.classifier_inputs(generated)
        results["c2st_auc"] = classifier_two_sample_test(t_in, g_in, options.c2st_classifier, options.c2st_folds,
                                                         metric_seed(seed, "c2st"), options.c2st_max_events, labels,
                                                         options.cc22)
        if inputs_note:
            results["c2st_auc"].details["inputs"] = inputs_note
    if only is None:
        results.update(kind.extra_metrics(truth, generated, truth_obs, gen_obs, obs_names, options, seed))

    if wanted("fpd", "kpd"):
        physics_truth, physics_names = kind.physics_features(truth, truth_obs, obs_names)
        physics_gen, _ = kind.physics_features(generated, gen_obs, obs_names)
        results.update(physics_distances(physics_truth, physics_gen, physics_names, options, seed,
                                         [key for key in ("fpd", "kpd") if wanted(key)]))

    if log_q_truth is not None:
        log_q = np.asarray(log_q_truth, dtype=np.float64).reshape(-1)
        if len(log_q) > len(truth):
            raise InputError(f"log_q_truth has {len(log_q)} entries for {len(truth)} truth events")
        results["nll_per_dim"] = nll_per_dim(log_q, truth.n_features, likelihood_is_bound)
        if truth.log_density is not None:
            results["kl_exact"] = kl_exact(truth.log_density[: len(log_q)], log_q)

    if wanted("unphysical_fraction"):
        results["unphysical_fraction"] = unphysical_fraction(
            generated.features, kind, names, truth=truth.features, condition=generated.condition,
            truth_condition=truth.condition,
        )
    if train is not None and wanted("memorisation_ratio"):
        results["memorisation_ratio"] = memorisation(
            generated.features, train.features, truth.features, metric_seed(seed, "memorisation"),
            options.memorisation_max_events, options.memorisation_max_train,
        )

    missing = [key for key, _, _ in HEADLINE if key not in results and key not in OPTIONAL_KEYS and wanted(key)]
    if missing:  # a programming error, not user input: the report depends on these keys
        raise RuntimeError(f"the metric suite did not produce the headline keys {missing}")
    return {key: result.to_dict() for key, result in results.items()}
