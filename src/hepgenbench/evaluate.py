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
from collections.abc import Callable
from typing import Any

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

#: incident-energy values up to this many distinct ones are binned one bin per value
#: (CaloChallenge dataset 1 has 15 discrete energies); otherwise quantile bins are used
MAX_DISCRETE_ENERGIES = 20
#: events per sample below which an incident-energy bin is skipped
MIN_EVENTS_PER_ENERGY_BIN = 50
#: headline keys that exist only for some samples: a density (NLL, KL), derived observables
# unweighting_efficiency is added by the evaluate stage, which holds the model and the density.
OPTIONAL_KEYS = frozenset({"nll_per_dim", "kl_exact", "w1_observables_mean", "unweighting_efficiency"})


def metric_seed(seed: int, name: str) -> np.random.Generator:
    """An independent random stream per (seed, metric name)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _observables(events: EventSet) -> tuple[np.ndarray, list[str]]:
    # Imported here, not at module level: the data package imports torch-heavy modules the
    # metrics do not need. A missing function is a broken install and must fail loudly.
    from hepgenbench.data.observables import derived_observables

    return derived_observables(events)


def _calo_voxel_inputs(events: EventSet) -> np.ndarray:
    """Low-level C2ST inputs for showers: log1p(E_voxel / E_inc · 1e3) and log10 E_inc.

    Cell energies span many decades; dividing by E_inc removes the trivial energy scaling
    and log1p compresses the range for the MLP (the trees are invariant to monotone maps of
    a feature). log10 E_inc is appended so the classifier sees showers in their context, as
    in the CaloChallenge classifier (arXiv:2410.21611).
    """
    e_inc = _incident_energy(events)
    return np.column_stack([np.log1p(np.clip(events.features, 0.0, None) / e_inc[:, None] * 1e3), np.log10(e_inc)])


def _incident_energy(events: EventSet) -> np.ndarray:
    if events.condition is None or "E_inc" not in events.condition_names:
        raise InputError(f"calo events need the condition 'E_inc'; they have {events.condition_names}")
    return events.condition[:, events.condition_names.index("E_inc")]


def _with_condition(events: EventSet) -> tuple[np.ndarray, list[str]]:
    """Features plus condition columns: a conditional model is judged on the joint sample."""
    if events.condition is None:
        return events.features, list(events.feature_names)
    return np.column_stack([events.features, events.condition]), list(events.feature_names) + list(events.condition_names)


def _energy_bins(truth_e: np.ndarray, n_bins: int) -> list[tuple[float, float]]:
    """One bin per discrete energy if each is populated enough, else truth-quantile bins.

    The quantile fallback uses at most ``len/MIN_EVENTS_PER_ENERGY_BIN`` bins, so that
    small samples (a quick run) still get populated bins instead of only skipped ones.
    """
    values, counts = np.unique(truth_e, return_counts=True)
    if len(values) <= MAX_DISCRETE_ENERGIES and counts.min() >= MIN_EVENTS_PER_ENERGY_BIN:
        return [(float(v), float(v)) for v in values]
    n_bins = max(1, min(n_bins, len(truth_e) // (2 * MIN_EVENTS_PER_ENERGY_BIN)))
    edges = np.unique(np.quantile(truth_e, np.linspace(0, 1, n_bins + 1)))
    if len(edges) < 2:
        return [(float(edges[0]), float(edges[0]))]
    return [(float(lo), float(hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def _in_bin(e: np.ndarray, lo: float, hi: float, last: bool) -> np.ndarray:
    if lo == hi:
        return e == lo
    return (e >= lo) & ((e <= hi) if last else (e < hi))


def _per_energy_bin(
    truth: EventSet, generated: EventSet, truth_obs: np.ndarray, gen_obs: np.ndarray, obs_names: list[str],
    options: EvalOptions, seed: int,
) -> MetricResult | None:
    """W1 of the high-level features and C2ST AUC on them, per incident-energy bin (None if no bin is populated)."""
    e_truth, e_gen = _incident_energy(truth), _incident_energy(generated)
    bins = _energy_bins(e_truth, options.energy_bins)
    rows, aucs = [], []
    for i, (lo, hi) in enumerate(bins):
        last = i == len(bins) - 1
        t_mask, g_mask = _in_bin(e_truth, lo, hi, last), _in_bin(e_gen, lo, hi, last)
        row: dict[str, Any] = {"e_inc_low": lo, "e_inc_high": hi, "n_truth": int(t_mask.sum()), "n_generated": int(g_mask.sum())}
        if min(row["n_truth"], row["n_generated"]) < MIN_EVENTS_PER_ENERGY_BIN:
            row["skipped"] = f"fewer than {MIN_EVENTS_PER_ENERGY_BIN} events"
        else:
            w1 = w1_per_feature(truth_obs[t_mask], gen_obs[g_mask], n_boot=options.n_bootstrap,
                                rng=metric_seed(seed, f"w1_ebin{i}"), feature_names=obs_names)
            auc = classifier_two_sample_test(truth_obs[t_mask], gen_obs[g_mask], options.c2st_classifier,
                                             options.c2st_folds, metric_seed(seed, f"c2st_ebin{i}"), options.c2st_max_events)
            row.update(w1_mean=w1.value, w1_mean_error=w1.error, c2st_auc=auc.value, c2st_auc_error=auc.error)
            aucs.append(auc.value)
        rows.append(row)
    if not aucs:
        return None
    # headline of this entry: the worst bin's |AUC − 0.5|, so one bad energy is not averaged away
    worst = max(aucs, key=lambda a: abs(a - 0.5))
    return MetricResult(worst, float("nan"), {"bins": rows, "value_is": "C2ST AUC of the energy bin farthest from 0.5", "on": "high-level features"})


def evaluate_sample(
    truth: EventSet,
    generated: EventSet,
    train: EventSet,
    options: EvalOptions,
    seed: int,
    log_q_truth: np.ndarray | None = None,
    likelihood_is_bound: bool = False,
    log_density_fn: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, dict]:
    """Score ``generated`` against ``truth`` with the whole suite.

    Args:
        truth: held-out truth (truth A).
        generated: the model's sample in physical units, or truth B for the noise floor.
        train: the training set, for the memorisation test.
        options: :class:`EvalOptions`.
        seed: seeds every metric (see :func:`metric_seed`).
        log_q_truth: the model's log-density of the first ``len(log_q_truth)`` truth events
            in physical units, if it has one.
        likelihood_is_bound: ``log_q_truth`` is a lower bound (VAE).
        log_density_fn: the true log-density, −inf outside the physical region
            (phase space); used by the unphysical-fraction check.

    Returns:
        ``{key: {"value", "error", ...details}}`` with every key of
        :data:`hepgenbench.metrics.HEADLINE` except those in :data:`OPTIONAL_KEYS` whose
        inputs are absent (no log-density, no known truth density, no derived
        observables), plus ``c2st_auc_high_level`` and ``per_energy_bin`` for showers.
    """
    if truth.feature_names != generated.feature_names or truth.feature_names != train.feature_names:
        raise InputError(
            f"truth, generated and train events must have the same features; got {truth.feature_names}, "
            f"{generated.feature_names} and {train.feature_names}"
        )
    kind = truth.kind
    names = truth.feature_names
    results: dict[str, MetricResult] = {}

    truth_obs, obs_names = _observables(truth)
    gen_obs, _ = _observables(generated)

    results["w1_mean"] = w1_per_feature(truth.features, generated.features, options.n_bootstrap, metric_seed(seed, "w1"), names)
    if obs_names:
        results["w1_observables_mean"] = w1_per_feature(truth_obs, gen_obs, options.n_bootstrap, metric_seed(seed, "w1_obs"), obs_names)
    results.update(histogram_divergences(truth.features, generated.features, options.n_bins, options.n_bootstrap,
                                         metric_seed(seed, "histogram"), names))
    results["emd"] = exact_emd(truth.features, generated.features, options.emd_subsample, options.emd_repeats,
                               metric_seed(seed, "emd"), options.emd_num_itermax)
    results["swd"] = sliced_wasserstein(truth.features, generated.features, options.swd_projections,
                                        metric_seed(seed, "swd"), options.swd_seeds)

    def c2st(t: np.ndarray, g: np.ndarray, labels: list[str], name: str) -> MetricResult:
        return classifier_two_sample_test(t, g, options.c2st_classifier, options.c2st_folds, metric_seed(seed, name),
                                          options.c2st_max_events, labels)

    if kind == "calo":
        voxel_names = names + ["log10_E_inc"]
        results["c2st_auc"] = c2st(_calo_voxel_inputs(truth), _calo_voxel_inputs(generated), voxel_names, "c2st")
        results["c2st_auc"].details["inputs"] = "log1p(1e3 E_voxel/E_inc) and log10 E_inc"
        hl_truth = np.column_stack([truth_obs, np.log10(_incident_energy(truth))])
        hl_gen = np.column_stack([gen_obs, np.log10(_incident_energy(generated))])
        results["c2st_auc_high_level"] = c2st(hl_truth, hl_gen, obs_names + ["log10_E_inc"], "c2st_high_level")
        per_bin = _per_energy_bin(truth, generated, truth_obs, gen_obs, obs_names, options, seed)
        if per_bin is not None:
            results["per_energy_bin"] = per_bin
    else:
        t_in, labels = _with_condition(truth)
        g_in, _ = _with_condition(generated)
        results["c2st_auc"] = c2st(t_in, g_in, labels, "c2st")

    # Physics features: model features and derived observables side by side; for showers
    # only the high-level features, as in the CaloChallenge (arXiv:2410.21611, Sec. 4): a
    # 368-voxel covariance from a few thousand mostly-empty showers is not a useful Gaussian.
    if kind == "calo":
        physics_truth, physics_gen, physics_names = truth_obs, gen_obs, list(obs_names)
    else:
        physics_truth = np.column_stack([truth.features, truth_obs])
        physics_gen = np.column_stack([generated.features, gen_obs])
        physics_names = names + obs_names
    results["fpd"] = fpd(physics_truth, physics_gen, options.fpd_min_samples, options.fpd_max_samples,
                         options.fpd_points, options.fpd_resamples, metric_seed(seed, "fpd"))
    results["kpd"] = kpd(physics_truth, physics_gen, options.kpd_batch_size, options.kpd_batches, metric_seed(seed, "kpd"))
    for key in ("fpd", "kpd"):
        results[key].details["features"] = physics_names

    if log_q_truth is not None:
        log_q = np.asarray(log_q_truth, dtype=np.float64).reshape(-1)
        if len(log_q) > len(truth):
            raise InputError(f"log_q_truth has {len(log_q)} entries for {len(truth)} truth events")
        results["nll_per_dim"] = nll_per_dim(log_q, truth.n_features, likelihood_is_bound)
        if truth.log_density is not None:
            results["kl_exact"] = kl_exact(truth.log_density[: len(log_q)], log_q)

    results["unphysical_fraction"] = unphysical_fraction(
        generated.features, kind, names, truth=truth.features, condition=generated.condition,
        truth_condition=truth.condition, log_density_fn=log_density_fn,
    )
    results["memorisation_ratio"] = memorisation(
        generated.features, train.features, truth.features, metric_seed(seed, "memorisation"),
        options.memorisation_max_events, options.memorisation_max_train,
    )

    missing = [key for key, _, _ in HEADLINE if key not in results and key not in OPTIONAL_KEYS]
    if missing:  # a programming error, not user input: the report depends on these keys
        raise RuntimeError(f"the metric suite did not produce the headline keys {missing}")
    return {key: result.to_dict() for key, result in results.items()}
