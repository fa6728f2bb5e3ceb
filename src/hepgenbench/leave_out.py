"""Leave-one-energy-out for showers: train without one incident energy, score at it.

The CaloChallenge lists interpolation in the incident energy as a test of a conditional
generator (Krause et al., arXiv:2410.21611): trained on every energy of a discrete spectrum
but one, does it produce the right showers at the energy it never saw? One switch,
``training: {leave_out_energy: E}`` in the config or in a calo dataset's block, drops the
showers of incident energy E from the training and validation sets (and from the
preprocessing fit, so that nothing about them reaches the models), while truth keeps
them: the sample stage conditions on truth's energies as always, so each sample holds
showers generated at E, and :func:`held_out_energy_score` compares them with truth's
showers at E. The truth row gives the same score truth B against truth A: its noise floor.
"""

from __future__ import annotations

import numpy as np

from hepgenbench.data.calo_geometry import MIN_EVENTS_PER_ENERGY_BIN, incident_energy
from hepgenbench.errors import InputError
from hepgenbench.io import EventSet
from hepgenbench.metrics.base import MetricResult
from hepgenbench.records import EvalOptions

#: the metric key of the score at the energy left out
METRIC_KEY = "held_out_energy_auc"
#: energies are compared to this relative precision (float32 files hold 2^k MeV exactly)
_RTOL = 1e-6


def energy_mask(events: EventSet, energy: float, where: str) -> np.ndarray:
    """The showers of ``events`` at incident energy ``energy`` (MeV).

    Raises InputError, naming ``where``, when the events have no incident energy or none at
    ``energy``: leaving out an energy the data do not hold would test nothing.
    """
    if events.condition is None or not events.condition_names:
        raise InputError(f"{where}: leave_out_energy needs showers conditioned on their incident energy; "
                         f"this dataset (kind '{events.kind}') has no condition column")
    e_inc = incident_energy(events.condition, events.condition_names)
    mask = np.isclose(e_inc, energy, rtol=_RTOL, atol=0.0)
    if not mask.any():
        present = np.unique(e_inc)
        shown = ", ".join(f"{e:g}" for e in present[:20]) + (" ..." if len(present) > 20 else "")
        raise InputError(f"{where}: leave_out_energy {energy:g} MeV is not an incident energy of these "
                         f"{len(events)} showers; they have {shown} MeV")
    return mask


def without_energy(events: EventSet, energy: float, where: str) -> EventSet:
    """``events`` without the showers at ``energy``."""
    return events.subset(np.flatnonzero(~energy_mask(events, energy, where)))


def held_out_energy_score(truth: EventSet, generated: EventSet, energy: float, options: EvalOptions,
                          rng: np.random.Generator) -> MetricResult:
    """C2ST AUC of ``generated``'s showers at ``energy`` against ``truth``'s at it.

    The classifier sees the kind's classifier inputs (the voxels, as the headline
    ``c2st_auc``); ``details`` add the AUC on the high-level features and the shower counts.
    With fewer than :data:`MIN_EVENTS_PER_ENERGY_BIN` showers on either side, the value is
    NaN and ``details["skipped"]`` says why.
    """
    from hepgenbench import kinds
    from hepgenbench.metrics.classifier import classifier_two_sample_test

    kind = kinds.get(truth.kind)
    t_mask = energy_mask(truth, energy, "truth")
    g_mask = np.isclose(incident_energy(generated.condition, generated.condition_names), energy, rtol=_RTOL, atol=0)
    details: dict = {"energy_mev": float(energy), "n_truth": int(t_mask.sum()), "n_generated": int(g_mask.sum())}
    if min(details["n_truth"], details["n_generated"]) < MIN_EVENTS_PER_ENERGY_BIN:
        details["skipped"] = f"fewer than {MIN_EVENTS_PER_ENERGY_BIN} showers at {energy:g} MeV"
        return MetricResult(float("nan"), float("nan"), details)
    t_set, g_set = truth.subset(np.flatnonzero(t_mask)), generated.subset(np.flatnonzero(g_mask))
    t_in, labels, _ = kind.classifier_inputs(t_set)
    g_in, _, _ = kind.classifier_inputs(g_set)
    seed = int(rng.integers(0, 2**31 - 1))
    voxels = classifier_two_sample_test(t_in, g_in, options.c2st_classifier, options.c2st_folds, seed,
                                        options.c2st_max_events, labels)
    (t_obs, names), (g_obs, _) = kind.observables(t_set), kind.observables(g_set)
    if names:
        high = classifier_two_sample_test(t_obs, g_obs, options.c2st_classifier, options.c2st_folds, seed,
                                          options.c2st_max_events, names)
        details.update(auc_high_level=high.value, auc_high_level_error=high.error)
    details.update(on="voxels (the kind's classifier inputs)", n_per_class=voxels.details["n_per_class"])
    return MetricResult(voxels.value, voxels.error, details)
