"""Derived observables that no model sees directly, computed the same way for truth and samples.

A generator is trained on single-object features (muon pT, η, φ…); whether it has learnt
their correlations shows in composite quantities such as the dimuon mass. Because the same
function serves truth and generated events, any difference is the model's.
"""

from __future__ import annotations

import numpy as np
import vector

from hepgenbench.data.calo import high_level_features
from hepgenbench.data.phasespace import DALITZ
from hepgenbench.errors import InputError
from hepgenbench.io import EventSet

MUON_MASS_GEV = 0.10566


def _column(events: EventSet, name: str) -> np.ndarray:
    try:
        return events.features[:, events.feature_names.index(name)]
    except ValueError:
        raise InputError(f"{events.kind} events need a feature {name!r}; they have {events.feature_names}") from None


def _momenta(events: EventSet, prefix: str, mass: np.ndarray | float) -> vector.MomentumNumpy4D:
    pt = _column(events, f"{prefix}_pt")
    return vector.array({
        "pt": pt, "eta": _column(events, f"{prefix}_eta"), "phi": _column(events, f"{prefix}_phi"),
        "mass": np.broadcast_to(np.asarray(mass, dtype=np.float64), pt.shape),
    })


def zmumu_observables(events: EventSet) -> tuple[np.ndarray, list[str]]:
    """Dimuon mass and pT, ΔR between the muons, |Δφ| between the dimuon system and the jet."""
    mu1 = _momenta(events, "Muon1", MUON_MASS_GEV)
    mu2 = _momenta(events, "Muon2", MUON_MASS_GEV)
    jet = _momenta(events, "Jet1", 0.0)  # |Δφ| needs the jet's direction only, so no Jet1_mass either
    dimuon = mu1 + mu2
    values = [dimuon.mass, dimuon.pt, mu1.deltaR(mu2), np.abs(dimuon.deltaphi(jet))]
    return np.column_stack(values), ["m_mumu", "pt_mumu", "dR_mumu", "dphi_mumu_jet"]


def phasespace_observables(events: EventSet) -> tuple[np.ndarray, list[str]]:
    """The third Dalitz invariant m²₁₃ and the resonance-pair mass m₂₃ (the ρ⁺ line shape)."""
    m2_12, m2_23 = _column(events, "m2_12"), _column(events, "m2_23")
    m_23 = np.sqrt(np.clip(m2_23, 0.0, None))
    return np.column_stack([DALITZ.m2_13(m2_12, m2_23), m_23]), ["m2_13", "m_23"]


def calo_observables(events: EventSet) -> tuple[np.ndarray, list[str]]:
    """The CaloChallenge high-level features (voxels are the features, E_inc the condition)."""
    if events.condition is None or "E_inc" not in events.condition_names:
        raise InputError(f"calo events need the condition 'E_inc'; they have {events.condition_names}")
    e_inc = events.condition[:, events.condition_names.index("E_inc")]
    return high_level_features(events.features, e_inc)


def derived_observables(events: EventSet) -> tuple[np.ndarray, list[str]]:
    """Derived observables ``(N, K)`` and their names, chosen by ``events.kind``."""
    if events.kind == "zmumu":
        return zmumu_observables(events)
    if events.kind == "phasespace":
        return phasespace_observables(events)
    if events.kind == "calo":
        return calo_observables(events)
    if events.kind == "generic":
        return np.empty((len(events), 0)), []
    raise InputError(f"kind {events.kind!r}: expected one of 'zmumu', 'phasespace', 'calo', 'generic'")
