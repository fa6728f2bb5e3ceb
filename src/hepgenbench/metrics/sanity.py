"""Fraction of generated events that no detector or physics process could produce.

A generator with a good W1 can still emit a few events with negative transverse
momentum, muons outside the tracker, negative calorimeter cell energies or phase-space
points outside the Dalitz boundary; downstream analyses choke on exactly those. The
checks shared by every kind are here; each kind adds its own
(:meth:`hepgenbench.kinds.DatasetKind.unphysical`) and its true density's support. An event
counts once however many checks it fails (the per-reason breakdown is in ``details``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from hepgenbench.errors import InputError
from hepgenbench.metrics.base import MetricResult

if TYPE_CHECKING:
    from hepgenbench.kinds import DatasetKind

# "pt"/"eta" as a whole token of a name ("Muon1_pt", "pt1", "jet_eta"), not inside "theta"
_PT = re.compile(r"(^|[^a-z])pt\d*($|[^a-z])")
_ETA = re.compile(r"(^|[^a-z])eta\d*($|[^a-z])")


def unphysical_fraction(
    gen: np.ndarray,
    kind: "str | DatasetKind",
    feature_names: Sequence[str],
    truth: np.ndarray | None = None,
    condition: np.ndarray | None = None,
    truth_condition: np.ndarray | None = None,
    log_density_fn: Callable[[np.ndarray], np.ndarray] | None = None,
) -> MetricResult:
    """Fraction of generated events failing a physical sanity check, with a binomial error.

    Checks:

    * ``nonfinite``: any NaN or ±inf feature (always);
    * ``negative_pt``: a feature named like ``*_pt`` is negative;
    * ``eta_outside_acceptance``: ``|η|`` beyond the kind's limit for that feature
      (:meth:`~hepgenbench.kinds.DatasetKind.eta_limit`: 2.4 for muons, 4.7 for jets);
      applied to a feature only when ``truth`` respects that limit, since a sample without
      the cut must not be penalised for reproducing it;
    * the kind's own (:meth:`~hepgenbench.kinds.DatasetKind.unphysical`), e.g. for showers
      ``negative_cell_energy`` and ``etot_over_einc_outside_truth``;
    * the kind's ``support_reason`` (``outside_dalitz`` for phase space) where the true
      log-density is −inf: ``log_density_fn`` if given, else the kind's own density of
      these features, if it has one.

    Error: √(f(1−f)/N); for f = 0 ``details["upper_limit_95"]`` gives 3/N.
    """
    from hepgenbench import kinds

    kind = kinds.get(kind) if isinstance(kind, str) else kind
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
            limit = kind.eta_limit(name) if _ETA.search(name.lower()) else None
            if limit is None:
                continue
            if truth is not None and np.nanmax(np.abs(truth[:, j])) > limit:
                eta_applied[name] = None
                continue
            eta_applied[name] = limit
            eta_bad |= np.abs(gen[:, j]) > limit
        if eta_applied:
            reasons["eta_outside_acceptance"] = eta_bad

        reasons.update(kind.unphysical(gen, list(feature_names), truth, condition, truth_condition))
        if log_density_fn is None:
            density = kind.density(list(feature_names))
            log_density_fn = None if density is None else density.log_prob
        if log_density_fn is not None:
            finite_rows = ~reasons["nonfinite"]
            outside = np.zeros(n, dtype=bool)
            outside[finite_rows] = np.isneginf(np.asarray(log_density_fn(gen[finite_rows])))
            reasons[kind.support_reason] = outside

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
