"""Synthetic event sets with known shapes, shared by the tests and the benchmarks."""

from __future__ import annotations

import numpy as np

from hepgenbench.io import EventSet


def zmumu_like(n: int, seed: int, pt_shift: float = 0.0) -> EventSet:
    """``n`` events with the Z→μμ dataset's ten feature names (so its derived observables
    apply) and simple independent shapes; ``pt_shift`` moves every pT by that many GeV."""
    rng = np.random.default_rng(seed)
    columns = {}
    for obj in ("Muon1", "Muon2", "Jet1"):
        columns[f"{obj}_pt"] = rng.exponential(20.0, n) + 20.0 + pt_shift
        columns[f"{obj}_eta"] = rng.uniform(-2.3, 2.3, n)
        columns[f"{obj}_phi"] = rng.uniform(-np.pi, np.pi, n)
    columns["Jet1_mass"] = rng.exponential(5.0, n)
    return EventSet(np.column_stack(list(columns.values())), list(columns), kind="zmumu")


def voigtian_masses(n: int, seed: int, mass: float = 91.1876, width: float = 2.4955, resolution: float = 1.0,
                    flat_fraction: float = 0.05, window: tuple[float, float] = (80.0, 102.0)) -> np.ndarray:
    """``n`` masses (GeV) in ``window``: a Breit–Wigner (``mass``, full ``width``) smeared by a
    Gaussian ``resolution`` (a Voigtian), and a ``flat_fraction`` of uniform background."""
    rng = np.random.default_rng(seed)
    n_flat = rng.binomial(n, flat_fraction)
    signal = np.empty(0)
    while len(signal) < n - n_flat:
        m = mass + 0.5 * width * rng.standard_cauchy(2 * n) + resolution * rng.normal(size=2 * n)
        signal = np.concatenate([signal, m[(m >= window[0]) & (m <= window[1])]])
    return rng.permutation(np.concatenate([signal[: n - n_flat], rng.uniform(*window, n_flat)]))


def zmumu_peak(n: int, seed: int, mass_shift: float = 0.0) -> EventSet:
    """``n`` dimuon events whose m_μμ is :func:`voigtian_masses` (shifted by ``mass_shift``
    GeV), in the Z→μμ dataset's ten features: two back-to-back muons of equal pT, the η of
    each drawn in the acceptance, and a leading jet as in :func:`zmumu_like`."""
    rng = np.random.default_rng([seed, 1])
    m = voigtian_masses(n, seed) + mass_shift
    eta1, eta2 = rng.uniform(-2.3, 2.3, n), rng.uniform(-2.3, 2.3, n)
    phi1 = rng.uniform(-np.pi, np.pi, n)
    phi2 = np.where(phi1 > 0, phi1 - np.pi, phi1 + np.pi)
    # massless muons back to back in φ: m² = 2 pT² (cosh Δη + 1)
    pt = m / np.sqrt(2.0 * (np.cosh(eta1 - eta2) + 1.0))
    jets = zmumu_like(n, seed)
    columns = {"Muon1_pt": pt, "Muon1_eta": eta1, "Muon1_phi": phi1, "Muon2_pt": pt, "Muon2_eta": eta2, "Muon2_phi": phi2,
               **{name: jets.features[:, jets.feature_names.index(name)] for name in jets.feature_names if name.startswith("Jet1")}}
    return EventSet(np.column_stack(list(columns.values())), list(columns), kind="zmumu")
