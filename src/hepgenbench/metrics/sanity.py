"""Fraction of generated events that no detector or physics process could produce.

A generator with a good W1 can still emit a few events with negative transverse
momentum, muons outside the tracker, negative calorimeter cell energies or phase-space
points outside the Dalitz boundary; downstream analyses choke on exactly those. The
checks are chosen from ``kind`` and the feature names, and an event counts once however
many checks it fails (the per-reason breakdown is in ``details``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from hepgenbench.errors import InputError
from hepgenbench.metrics.base import MetricResult

#: tracker acceptance of the muon chambers (CMS/ATLAS |η| < 2.4) and of jets (HF, |η| < 4.7)
ETA_LIMIT_MUON = 2.4
ETA_LIMIT_JET = 4.7

# "pt"/"eta" as a whole token of a name ("Muon1_pt", "pt1", "jet_eta"), not inside "theta"
_PT = re.compile(r"(^|[^a-z])pt\d*($|[^a-z])")
_ETA = re.compile(r"(^|[^a-z])eta\d*($|[^a-z])")


def _eta_limit(name: str, kind: str) -> float | None:
    lowered = name.lower()
    if "jet" in lowered:
        return ETA_LIMIT_JET
    if "mu" in lowered or kind == "zmumu":
        return ETA_LIMIT_MUON
    return None


def unphysical_fraction(
    gen: np.ndarray,
    kind: str,
    feature_names: Sequence[str],
    truth: np.ndarray | None = None,
    condition: np.ndarray | None = None,
    truth_condition: np.ndarray | None = None,
    log_density_fn: Callable[[np.ndarray], np.ndarray] | None = None,
) -> MetricResult:
    """Fraction of generated events failing a physical sanity check, with a binomial error.

    Checks (by ``kind`` and feature name):

    * ``nonfinite``: any NaN or ±inf feature (always);
    * ``negative_pt``: a feature named like ``*_pt`` is negative;
    * ``eta_outside_acceptance``: ``|η|`` beyond 2.4 (muons) or 4.7 (jets); applied to a
      feature only when ``truth`` respects that limit, since a sample without the cut must
      not be penalised for reproducing it;
    * ``calo``: ``negative_cell_energy`` (any voxel < 0) and ``etot_over_einc_outside_truth``
      (Σ voxels / E_inc outside truth's [min, max]; needs ``condition`` with E_inc for the
      generated events and ``truth`` plus ``truth_condition``);
    * ``phasespace``: ``outside_dalitz`` where ``log_density_fn`` (the true log-density)
      is −inf.

    Error: √(f(1−f)/N); for f = 0 ``details["upper_limit_95"]`` gives 3/N.
    """
    gen = np.asarray(gen, dtype=np.float64)
    if gen.ndim != 2 or gen.shape[1] != len(feature_names):
        raise InputError(f"generated events have shape {gen.shape} but {len(feature_names)} feature names were given")
    n = len(gen)
    if n == 0:
        raise InputError("no generated events to check")
    reasons: dict[str, np.ndarray] = {"nonfinite": ~np.isfinite(gen).all(axis=1)}
    with np.errstate(invalid="ignore"):
        pt_columns = [j for j, name in enumerate(feature_names) if _PT.search(name.lower())]
        if pt_columns:
            reasons["negative_pt"] = (gen[:, pt_columns] < 0).any(axis=1)
        eta_bad = np.zeros(n, dtype=bool)
        eta_applied = {}
        for j, name in enumerate(feature_names):
            limit = _eta_limit(name, kind) if _ETA.search(name.lower()) else None
            if limit is None:
                continue
            if truth is not None and np.nanmax(np.abs(truth[:, j])) > limit:
                eta_applied[name] = None
                continue
            eta_applied[name] = limit
            eta_bad |= np.abs(gen[:, j]) > limit
        if eta_applied:
            reasons["eta_outside_acceptance"] = eta_bad

        if kind == "calo":
            reasons["negative_cell_energy"] = (gen < 0).any(axis=1)
            if condition is not None and truth is not None and truth_condition is not None:
                ratio = gen.sum(axis=1) / np.asarray(condition, dtype=np.float64).reshape(n, -1)[:, 0]
                truth_ratio = truth.sum(axis=1) / np.asarray(truth_condition, dtype=np.float64).reshape(len(truth), -1)[:, 0]
                reasons["etot_over_einc_outside_truth"] = (ratio < truth_ratio.min()) | (ratio > truth_ratio.max())

        if kind == "phasespace" and log_density_fn is not None:
            finite_rows = ~reasons["nonfinite"]
            outside = np.zeros(n, dtype=bool)
            outside[finite_rows] = np.isneginf(np.asarray(log_density_fn(gen[finite_rows])))
            reasons["outside_dalitz"] = outside

    any_bad = np.logical_or.reduce(list(reasons.values()))
    fraction = float(any_bad.mean())
    return MetricResult(
        fraction,
        float(np.sqrt(fraction * (1.0 - fraction) / n)),
        {
            "n_events": n,
            "n_unphysical": int(any_bad.sum()),
            "by_reason": {reason: int(mask.sum()) for reason, mask in reasons.items()},
            "eta_limits_applied": eta_applied,
            "upper_limit_95": 3.0 / n if fraction == 0 else None,
        },
    )
