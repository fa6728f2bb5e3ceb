"""Calorimeter showers in the CaloChallenge layout: voxels as features, the incident energy
as condition.

The kind owns the geometry (:mod:`hepgenbench.data.calo_geometry`: layers, r-edges, α bins,
voxel order; dataset 1 photons built in), the incident-energy binning, the axis labels of the
high-level features and its figures (:mod:`hepgenbench.plotting.calo`), and scores showers
as the challenge does (arXiv:2410.21611): a classifier on the voxels and one on the
high-level features (Sec. 4), and both per incident-energy bin, so that one badly modelled
energy is not averaged away.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hepgenbench.data.calo_geometry import (
    BUILTIN_GEOMETRIES,
    MIN_EVENTS_PER_ENERGY_BIN,
    READOUT_THRESHOLD_MEV,
    CaloGeometry,
    EnergyBins,
    incident_energy,
    resolve_geometry,
)
from hepgenbench.kinds.base import DatasetKind, KindPlotInputs, Source
from hepgenbench.kinds.registry import register

if TYPE_CHECKING:
    from hepgenbench.evaluate import EvalOptions
    from hepgenbench.io import EventSet
    from hepgenbench.metrics.base import MetricResult
    from hepgenbench.records import PlotRecord

#: The plausible range of a sample's median E_tot/E_inc: outside it, the voxels and the
#: incident energies are almost surely in different units (MeV vs GeV, a factor 1e3).
ETOT_OVER_EINC_RANGE = (0.01, 2.0)
#: Two-sample KS p-value below which a sample's incident energies count as drawn unlike
#: truth's. The CaloChallenge scores histograms over all energies, which a different E_inc
#: spectrum distorts; at 1e-3 a sample from truth's own spectrum is refused 1 time in 1000.
EINC_MISMATCH_P = 1e-3

#: Axis label template and unit of the high-level features, by name pattern
#: (:func:`hepgenbench.data.calo_features.high_level_feature_names`).
OBSERVABLE_AXES: tuple[tuple[str, str, str], ...] = (
    (r"^Etot_over_Einc$", r"$E_{tot}/E_{inc}$", ""),
    (r"^E_layer(\d+)$", r"$E$, layer \1", "MeV"),
    (r"^EC([xy])_layer(\d+)$", r"centre in \1, layer \2", "mm"),
    (r"^width_([xy])_layer(\d+)$", r"width in \1, layer \2", "mm"),
    (r"^sparsity_layer(\d+)$", r"fraction of hit cells, layer \1", ""),
)

_SHOWER_PROPERTIES: dict[str, Any] = {
    "readout_threshold_mev": {
        "type": "number", "minimum": 0,
        "description": f"voxels below this read 0, in the truth and (zero suppression) in generated showers "
                       f"(default {READOUT_THRESHOLD_MEV})"},
    "representation": {
        "enum": ["shares", "voxels"], "default": "shares",
        "description": "the shower as E_tot/E_inc, layer shares and voxel shares (stick breaking), "
                       "or each voxel over E_inc on its own"},
    "nan_policy": {"enum": ["refuse", "drop"], "default": "refuse"},
    "binning": {
        "type": "string",
        "description": "the voxel geometry: a CaloChallenge binning XML (binning_dataset_*.xml) or a built-in "
                       f"layout {sorted(BUILTIN_GEOMETRIES)} (default ds1-photons)"},
    "particle": {
        "type": "string",
        "description": "the <Bin> of the binning XML, by name (photon, pion, electron) or pid, where it holds several"},
    # hepgenbench.reference.calochallenge.DATASETS, spelled out: the Snakefile imports this module
    "calochallenge": {
        "enum": ["ds1-photons", "ds1-pions", "ds2", "ds3"],
        "description": "the CaloChallenge dataset these showers are: the report shows the challenge's "
                       "published rows beside this run's (arXiv:2410.21611)"},
}


def dataset_geometry(params: dict[str, Any]) -> CaloGeometry:
    """The geometry a calo dataset block's ``binning:`` and ``particle:`` pick (:func:`resolve_geometry`)."""
    return resolve_geometry(params.get("binning"), params.get("particle"))


def _read_showers(path: str, params: dict[str, Any]) -> EventSet:
    from hepgenbench.data import readers

    return readers.read_calochallenge(
        path, nan_policy=params.get("nan_policy", "refuse"),
        readout_threshold_mev=params.get("readout_threshold_mev", READOUT_THRESHOLD_MEV),
        representation=params.get("representation", "shares"),
        geometry=dataset_geometry(params), binning=params.get("binning"))


class CaloSource(Source):
    """GFlash showers (:mod:`hepgenbench.data.calo`) in the layout ``binning:`` picks
    (dataset 1 photons by default), from :func:`hepgenbench.data.calo.detector_for` it."""

    name: ClassVar[str] = "calo"
    kind: ClassVar[str] = "calo"
    embedded: ClassVar[bool] = True
    properties: ClassVar[dict[str, Any]] = _SHOWER_PROPERTIES

    def generate(self, output: str, params: dict[str, Any], log: Callable[..., None]) -> dict:
        from hepgenbench.data.calo import detector_for, simulate_showers

        return simulate_showers(output, int(params["n_events"]), int(params["seed"]), log=log,
                                detector=detector_for(dataset_geometry(params)))

    def read(self, files: list[str], params: dict[str, Any], sink=None) -> EventSet:
        return _read_showers(files[0], params)


class CaloChallengeSource(Source):
    """The user's CaloChallenge file (``incident_energies``, ``showers``; MeV)."""

    name: ClassVar[str] = "calochallenge"
    kind: ClassVar[str] = "calo"
    properties: ClassVar[dict[str, Any]] = _SHOWER_PROPERTIES

    def read(self, files: list[str], params: dict[str, Any], sink=None) -> EventSet:
        from hepgenbench.errors import InputError

        if len(files) != 1:
            raise InputError(f"source '{self.name}' reads one CaloChallenge file, got {len(files)}: {files}")
        return _read_showers(files[0], params)


@register
class Calo(DatasetKind):
    """Showers: voxel energies (MeV) in the geometry's order, conditioned on ``E_inc`` (MeV)."""

    name: ClassVar[str] = "calo"
    sources: ClassVar[tuple[type[Source], ...]] = (CaloSource, CaloChallengeSource)
    readers: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------------ hooks for metrics and plots
    @staticmethod
    def geometry(events: EventSet) -> CaloGeometry:
        """The voxel layout of ``events`` (``meta["calo_layers"]`` or dataset 1 photons)."""
        return CaloGeometry.from_meta(events.meta, events.n_features)

    @staticmethod
    def incident_energy(events: EventSet) -> np.ndarray:
        """``E_inc`` (MeV) per shower."""
        return incident_energy(events.condition, events.condition_names)

    @staticmethod
    def energy_bins(truth: EventSet, max_bins: int = 5) -> EnergyBins:
        """The incident-energy bins of ``truth`` (:class:`~hepgenbench.data.calo_geometry.EnergyBins`)."""
        return EnergyBins.from_truth(incident_energy(truth.condition, truth.condition_names), max_bins)

    # ------------------------------------------------------------------ kind interface
    def observables(self, events: EventSet) -> tuple[np.ndarray, list[str]]:
        """The CaloChallenge high-level features (:func:`hepgenbench.data.calo_features.high_level_features`)."""
        from hepgenbench.data.calo_features import high_level_features

        return high_level_features(events.features, self.incident_energy(events), self.geometry(events))

    def observable_axes(self, names: list[str]) -> list[tuple[str, str]]:
        axes = []
        for name in names:
            match = next(((p, t, u) for p, t, u in OBSERVABLE_AXES if re.match(p, name)), None)
            axes.append((name, "") if match is None else (re.sub(match[0], match[1], name), match[2]))
        return axes

    def eta_limit(self, feature: str) -> float | None:
        return None

    def unphysical(self, gen: np.ndarray, feature_names: list[str], truth: np.ndarray | None,
                   condition: np.ndarray | None, truth_condition: np.ndarray | None) -> dict[str, np.ndarray]:
        """``negative_cell_energy`` (any voxel < 0) and ``etot_over_einc_outside_truth``
        (Σ voxels / E_inc outside truth's [min, max]; needs both samples' E_inc)."""
        reasons = {"negative_cell_energy": (gen < 0).any(axis=1)}
        if condition is not None and truth is not None and truth_condition is not None:
            ratio = gen.sum(axis=1) / np.asarray(condition, dtype=np.float64).reshape(len(gen), -1)[:, 0]
            truth_ratio = truth.sum(axis=1) / np.asarray(truth_condition, dtype=np.float64).reshape(len(truth), -1)[:, 0]
            reasons["etot_over_einc_outside_truth"] = (ratio < truth_ratio.min()) | (ratio > truth_ratio.max())
        return reasons

    def check_sample(self, generated: EventSet, truth: EventSet, path: str,
                     allow_condition_mismatch: bool = False) -> list[str]:
        """Negative energies, units (the median E_tot/E_inc within :data:`ETOT_OVER_EINC_RANGE`)
        and the incident-energy spectrum (two-sample KS, p ≥ :data:`EINC_MISMATCH_P`; with
        ``allow_condition_mismatch`` a warning instead of an error)."""
        from scipy.stats import ks_2samp

        from hepgenbench.errors import InputError

        negative = (generated.features < 0).any(axis=1)
        if negative.any():
            raise InputError(f"{path}: {int(negative.sum())} shower(s) with negative voxel energies (lowest "
                             f"{generated.features.min():.3g} MeV); energies must be ≥ 0")
        e_gen, e_truth = self.incident_energy(generated), self.incident_energy(truth)
        if (e_gen <= 0).any():
            raise InputError(f"{path}: {int((e_gen <= 0).sum())} incident energies ≤ 0")
        ratio = float(np.median(generated.features.sum(axis=1) / e_gen))
        low, high = ETOT_OVER_EINC_RANGE
        if not low <= ratio <= high:
            truth_ratio = float(np.median(truth.features.sum(axis=1) / e_truth))
            raise InputError(f"{path}: median E_tot/E_inc is {ratio:.3g} (truth's {truth_ratio:.3g}), outside "
                             f"[{low}, {high}]: voxels and incident energies must both be in MeV (is one in GeV?)")
        p_value = float(ks_2samp(e_gen, e_truth).pvalue)
        if p_value < EINC_MISMATCH_P:
            message = (f"{path}: its incident energies are not drawn like truth's (two-sample KS p = {p_value:.2g} < "
                       f"{EINC_MISMATCH_P}); histograms over all energies would be distorted")
            if not allow_condition_mismatch:
                raise InputError(message + "; pass --allow-einc-mismatch to score it anyway")
            return [message]
        return []

    def classifier_inputs(self, events: EventSet) -> tuple[np.ndarray, list[str], str | None]:
        """log1p(E_voxel / E_inc · 1e3) and log10 E_inc.

        Cell energies span many decades; dividing by E_inc removes the trivial energy scaling
        and log1p compresses the range for the MLP (the trees are invariant to monotone maps
        of a feature). log10 E_inc is appended so the classifier sees showers in their
        context, as in the CaloChallenge classifier (arXiv:2410.21611).
        """
        e_inc = self.incident_energy(events)
        x = np.column_stack([np.log1p(np.clip(events.features, 0.0, None) / e_inc[:, None] * 1e3), np.log10(e_inc)])
        return x, list(events.feature_names) + ["log10_E_inc"], "log1p(1e3 E_voxel/E_inc) and log10 E_inc"

    def physics_features(self, events: EventSet, observables: np.ndarray,
                         names: list[str]) -> tuple[np.ndarray, list[str]]:
        # Only the high-level features, as in the CaloChallenge (arXiv:2410.21611, Sec. 4): a
        # voxel covariance from a few thousand mostly-empty showers is not a useful Gaussian.
        return observables, list(names)

    def extra_metrics(self, truth: EventSet, generated: EventSet, truth_obs: np.ndarray, gen_obs: np.ndarray,
                      obs_names: list[str], options: EvalOptions, seed: int) -> dict[str, MetricResult]:
        """The challenge's high-level metrics (arXiv:2410.21611, Sec. 4), each with its
        truth floor from the truth row's identical call:

        * ``c2st_auc_high_level``: C2ST on the high-level features and log10 E_inc;
        * ``separation_power_high_level``: the challenge's histogram separation power,
          averaged over the high-level features (per feature in its details);
        * ``prdc_precision``, ``prdc_recall``, ``prdc_density``, ``prdc_coverage`` on the
          high-level features (:mod:`hepgenbench.metrics.prdc`);
        * ``per_energy_bin``: W1 and C2ST AUC on them per incident-energy bin;
        * ``calo_response``: response and resolution against E_inc (a physics figure, no floor)."""
        from hepgenbench.evaluate import metric_seed
        from hepgenbench.metrics.classifier import classifier_two_sample_test
        from hepgenbench.metrics.histogram import histogram_divergences
        from hepgenbench.metrics.prdc import prdc_metrics

        labels = obs_names + ["log10_E_inc"]
        e_truth, e_gen = self.incident_energy(truth), self.incident_energy(generated)
        bins = EnergyBins.from_truth(e_truth, options.energy_bins)
        hl_truth = np.column_stack([truth_obs, np.log10(e_truth)])
        hl_gen = np.column_stack([gen_obs, np.log10(e_gen)])
        high_level = classifier_two_sample_test(
            hl_truth, hl_gen, options.c2st_classifier, options.c2st_folds, metric_seed(seed, "c2st_high_level"),
            options.c2st_max_events, labels, options.cc22, groups=(bins.index(e_truth), bins.index(e_gen)))
        auc_per_bin = high_level.details.pop("per_group")
        out = {"c2st_auc_high_level": high_level}
        histograms = histogram_divergences(truth_obs, gen_obs, options.n_bins, options.n_bootstrap,
                                           metric_seed(seed, "histogram_high_level"), obs_names)
        out["separation_power_high_level"] = histograms["separation_power_mean"]
        out.update(prdc_metrics(truth_obs, gen_obs, options.prdc_k, options.prdc_max_events, options.prdc_repeats,
                                metric_seed(seed, "prdc")))
        per_bin = self._per_energy_bin(bins, e_truth, e_gen, truth_obs, gen_obs, obs_names, auc_per_bin,
                                       high_level.details["classifier"], options, seed)
        if per_bin is not None:
            out["per_energy_bin"] = per_bin
        from hepgenbench.physics.calo_response import calo_response_metric

        # response and resolution against E_inc, fitted as a/√E ⊕ b ⊕ c/E, in the bins of the scores
        out["calo_response"] = calo_response_metric(truth.features.sum(axis=1), e_truth, generated.features.sum(axis=1),
                                                    e_gen, bins, seed)
        return out

    @staticmethod
    def _per_energy_bin(bins: EnergyBins, e_truth: np.ndarray, e_gen: np.ndarray, truth_obs: np.ndarray,
                        gen_obs: np.ndarray, obs_names: list[str], auc_per_bin: Mapping[int, Mapping[str, float]],
                        classifier: str, options: EvalOptions, seed: int) -> MetricResult | None:
        """W1 of the high-level features and C2ST AUC on them per incident-energy bin (None if
        no bin is populated). Its value is the AUC of the bin farthest from 0.5.

        The AUCs are the high-level classifier's own held-out predictions, scored bin by bin
        (``auc_per_bin``, :func:`~hepgenbench.metrics.classifier.grouped_auc`): that
        classifier sees log10 E_inc, so it can tell the energies apart, and one fit on all
        showers replaces one per bin on a fifteenth of them (dataset 1 has 15 energies).
        These are hepgenbench's scores, not the challenge's, which has none per energy."""
        from hepgenbench.evaluate import metric_seed
        from hepgenbench.metrics.base import MetricResult
        from hepgenbench.metrics.wasserstein import w1_per_feature

        rows, aucs = [], []
        for i, (lo, hi) in enumerate(zip(bins.low, bins.high)):
            t_mask, g_mask = bins.mask(e_truth, i), bins.mask(e_gen, i)
            row: dict[str, Any] = {"e_inc_low": lo, "e_inc_high": hi, "n_truth": int(t_mask.sum()),
                                   "n_generated": int(g_mask.sum())}
            if min(row["n_truth"], row["n_generated"]) < MIN_EVENTS_PER_ENERGY_BIN:
                row["skipped"] = f"fewer than {MIN_EVENTS_PER_ENERGY_BIN} events"
            elif i not in auc_per_bin:
                row["skipped"] = "too few of its showers in the classifier's held-out folds"
            else:
                w1 = w1_per_feature(truth_obs[t_mask], gen_obs[g_mask], n_boot=options.n_bootstrap,
                                    rng=metric_seed(seed, f"w1_ebin{i}"), feature_names=obs_names)
                auc = auc_per_bin[i]
                row.update(w1_mean=w1.value, w1_mean_error=w1.error, c2st_auc=auc["auc"], c2st_auc_error=auc["error"])
                aucs.append(auc["auc"])
            rows.append(row)
        if not aucs:
            return None
        worst = max(aucs, key=lambda a: abs(a - 0.5))
        return MetricResult(worst, float("nan"), {"bins": rows, "value_is": "C2ST AUC of the energy bin farthest from 0.5",
                                                  "on": "high-level features",
                                                  "classifier": f"{classifier}, the high-level one, scored per bin"})

    def extra_plots(self, inputs: KindPlotInputs) -> list[PlotRecord]:
        """The CaloChallenge views of showers (:mod:`hepgenbench.plotting.calo`): radial
        profiles, the average shower in (α, r), mean layer energy against E_inc in the
        :class:`EnergyBins` of the per-energy scores, those scores, and single showers of
        truth and every model at three incident energies."""
        from hepgenbench.plotting.calo import calo_plots
        from hepgenbench.plotting.physics import calo_resolution_plot

        return calo_plots(inputs, self) + calo_resolution_plot(inputs)

    def example(self, directory: str, n_events: int, seed: int) -> dict[str, Any]:
        return {"source": "calo", "n_events": n_events}
