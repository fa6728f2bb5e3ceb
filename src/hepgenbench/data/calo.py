"""Photon showers in the CaloChallenge 2022 dataset-1 (photons) format, from GFlash.

Format (Krause et al., CaloChallenge, arXiv:2410.21611): an HDF5 file with
``incident_energies`` (N, 1) and ``showers`` (N, 368), both in MeV, in the voxel layout of
:data:`hepgenbench.data.calo_geometry.DS1_PHOTONS`.

Showers follow the GFlash parametrisation (Grindhammer & Peters, arXiv:hep-ex/0001020):

* longitudinal: a gamma distribution in depth t (radiation lengths) with shape α and rate β,
  T = (α − 1)/β; (ln T, ln α) are drawn from a correlated normal whose means, widths and
  correlation depend on ln(E/E_c) (their eqs. 3–8);
* radial: core + tail, f(r) = p f_C(r; R_C) + (1 − p) f_T(r; R_T) with
  f(r; R) = 2rR²/(r² + R²)², R_C, R_T and p functions of τ = t/T and E (eqs. 10–13), in
  Molière radii, evaluated at the shower's mean depth within each layer;
* energy deposited in discrete spots, as in GFlash; each spot carries an exponentially
  distributed energy and their number is E(1 + 1/k)/a² so that the spot noise alone gives
  the sampling term a/√E (k = 1 is the gamma shape of a spot's energy).

Voxel energies are therefore Gamma(k·n, E_spot/k) with n ~ Poisson(expected spots in the voxel)
(a compound Poisson sum, exact and vectorised). The depth model (dead material, layer
thicknesses in X0) is a simplified ATLAS barrel at η ≈ 0.2 and is documented in
:data:`LAYER_DEPTHS_X0`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import h5py
import numpy as np
from scipy import special

from hepgenbench.data.calo_geometry import DS1_PHOTONS, READOUT_THRESHOLD_MEV, CaloGeometry
from hepgenbench.errors import InputError
from hepgenbench.io import atomic_path

# The dataset-1-photon layout, owned by :mod:`hepgenbench.data.calo_geometry`.
GEOMETRY = DS1_PHOTONS
LAYER_IDS = GEOMETRY.layer_ids
R_EDGES_MM: dict[int, tuple[float, ...]] = {l.layer_id: l.r_edges for l in GEOMETRY.layers}
N_ALPHA: dict[int, int] = {l.layer_id: l.n_alpha for l in GEOMETRY.layers}
LAYER_BINS: dict[int, tuple[int, int]] = {l.layer_id: (l.n_r, l.n_alpha) for l in GEOMETRY.layers}
N_VOXELS = GEOMETRY.n_voxels
INCIDENT_ENERGIES_MEV = tuple(float(2**k) for k in range(8, 23))

# Depth (X0) of each layer along the shower axis; what lies between is dead material or
# cryostat, whose energy is lost. Roughly the ATLAS barrel at η ≈ 0.2: ~2 X0 before the
# presampler, 4.3 X0 strips, 16 X0 middle, 2 X0 back, ~1.5 X0 of cryostat, then tile.
LAYER_DEPTHS_X0: dict[int, tuple[float, float]] = {
    0: (2.0, 2.6), 1: (2.6, 6.9), 2: (6.9, 22.9), 3: (22.9, 24.9), 12: (26.4, 60.0),
}



@dataclass(frozen=True)
class GFlashMedium:
    """Effective medium of the sampling calorimeter and the noise model.

    Attributes:
        z_eff: effective atomic number (GFlash eqs. 4, 6: ln α and R_C depend on it).
        critical_energy_mev: E_c, which sets y = E/E_c.
        moliere_radius_mm: converts GFlash's radial units to mm.
        sampling_term: a in σ_E/E = a/√(E/GeV), realised by the spot count.
        spot_shape: gamma shape k of each spot's energy.
        threshold_mev: voxels below this are set to zero (the challenge evaluates at 15 keV).
    """

    z_eff: float = 60.0
    critical_energy_mev: float = 10.0
    moliere_radius_mm: float = 35.0
    sampling_term: float = 0.10
    spot_shape: float = 1.0
    threshold_mev: float = READOUT_THRESHOLD_MEV


def layer_slices() -> dict[int, slice]:
    """The slice of the 368 flattened voxels that belongs to each layer id."""
    return GEOMETRY.layer_slices()


def voxel_geometry() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per voxel: layer id, bin-centre radius (mm), α-bin centre (rad), r-bin index."""
    return GEOMETRY.voxel_centres()


def _longitudinal(log_y: np.ndarray, rng: np.random.Generator, medium: GFlashMedium) -> tuple[np.ndarray, np.ndarray]:
    """Shape α and rate β of each shower's gamma profile, with correlated fluctuations."""
    mean_log_t = np.log(log_y - 0.812)
    sigma_log_t = 1.0 / (-1.4 + 1.26 * log_y)
    mean_log_a = np.log(0.81 + (0.458 + 2.26 / medium.z_eff) * log_y)
    sigma_log_a = 1.0 / (-0.58 + 0.86 * log_y)
    rho = 0.705 - 0.023 * log_y
    z1, z2 = rng.standard_normal((2, log_y.size))
    log_t = mean_log_t + sigma_log_t * z1
    log_a = mean_log_a + sigma_log_a * (rho * z1 + np.sqrt(1 - rho**2) * z2)
    # T = (α − 1)/β needs α > 1; the rare lower tail is clipped.
    alpha = np.maximum(np.exp(log_a), 1.05)
    beta = (alpha - 1.0) / np.exp(log_t)
    return alpha, beta


def _radial_cdf(r: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """CDF of f(r; R) = 2rR²/(r² + R²)²: r²/(r² + R²)."""
    return r**2 / (r**2 + radius**2)


def _expected_fractions(e_gev: np.ndarray, alpha: np.ndarray, beta: np.ndarray, medium: GFlashMedium) -> np.ndarray:
    """Expected fraction of each shower's energy in each voxel, (N, 368)."""
    n = e_gev.size
    frac = np.empty((n, N_VOXELS))
    log_e = np.log(e_gev)
    z = medium.z_eff
    t_max = (alpha - 1.0) / beta
    for lid, sl in layer_slices().items():
        t0, t1 = LAYER_DEPTHS_X0[lid]
        in_layer = special.gammainc(alpha, beta * t1) - special.gammainc(alpha, beta * t0)
        # Mean depth of the energy deposited in the layer, E[t | t0 < t < t1] of the gamma law.
        upper = special.gammainc(alpha + 1, beta * t1) - special.gammainc(alpha + 1, beta * t0)
        t_mean = np.where(in_layer > 1e-12, alpha / beta * upper / np.maximum(in_layer, 1e-300), 0.5 * (t0 + t1))
        tau = t_mean / t_max
        r_core = (0.0251 + 0.00319 * log_e) + (0.1162 - 0.000381 * z) * tau
        k4 = 0.3585 + 0.0421 * log_e
        r_tail = (0.659 - 0.00309 * z) * (np.exp(-2.59 * (tau - 0.645)) + np.exp(k4 * (tau - 0.645)))
        p1, p2, p3 = 0.2632 - 0.00094 * z, 0.401 + 0.00187 * z, 1.313 - 0.0686 * log_e
        core = np.clip(p1 * np.exp((p2 - tau) / p3 - np.exp((p2 - tau) / p3)), 0.0, 1.0)
        edges = np.asarray(R_EDGES_MM[lid]) / medium.moliere_radius_mm
        cdf = (core[:, None] * _radial_cdf(edges[None, :], r_core[:, None])
               + (1 - core[:, None]) * _radial_cdf(edges[None, :], r_tail[:, None]))
        per_r = np.diff(cdf, axis=1) * in_layer[:, None]
        na = N_ALPHA[lid]
        frac[:, sl] = np.tile(per_r / na, (1, na))  # α outer, r inner
    return frac


def simulate(e_inc_mev: np.ndarray, seed: int, medium: GFlashMedium = GFlashMedium()) -> np.ndarray:
    """GFlash showers (N, 368) in MeV for the given incident energies (N,) in MeV."""
    e_inc = np.asarray(e_inc_mev, dtype=np.float64).reshape(-1)
    rng = np.random.default_rng(seed)
    alpha, beta = _longitudinal(np.log(e_inc / medium.critical_energy_mev), rng, medium)
    frac = _expected_fractions(e_inc / 1000.0, alpha, beta, medium)
    k = medium.spot_shape
    n_spots = (e_inc / 1000.0) * (1 + 1 / k) / medium.sampling_term**2
    hits = rng.poisson(frac * n_spots[:, None])
    spot_energy = (e_inc / n_spots)[:, None]
    # A sum of n gamma(k) spot energies is gamma(n k); n = 0 gives exactly zero.
    showers = np.where(hits > 0, rng.gamma(np.maximum(hits, 1) * k) * spot_energy / k, 0.0)
    showers[showers < medium.threshold_mev] = 0.0
    return showers


def simulate_showers(
    path: str | os.PathLike,
    n_events: int,
    seed: int,
    log: Callable[[str], None] = print,
    medium: GFlashMedium = GFlashMedium(),
    batch: int = 10_000,
) -> dict:
    """Simulate ``n_events`` photon showers and write them in the CaloChallenge HDF5 layout.

    Incident energies are drawn uniformly from the 15 powers of two 2⁸…2²² MeV.
    """
    if n_events <= 0:
        raise InputError(f"n_events must be positive, got {n_events}")
    rng = np.random.default_rng(seed)
    e_inc = rng.choice(np.asarray(INCIDENT_ENERGIES_MEV), size=n_events)
    start = time.perf_counter()
    chunk_seeds = rng.integers(0, 2**63, size=(n_events + batch - 1) // batch)
    showers = np.concatenate([
        simulate(e_inc[i * batch:(i + 1) * batch], int(s), medium) for i, s in enumerate(chunk_seeds)
    ])
    seconds = time.perf_counter() - start
    with atomic_path(path, suffix=".hdf5") as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("incident_energies", data=e_inc.reshape(-1, 1), compression="gzip", compression_opts=1)
        f.create_dataset("showers", data=showers, compression="gzip", compression_opts=1)
    rate = n_events / seconds
    log(f"calo: {n_events} GFlash showers in {seconds:.2f} s ({rate:.0f} showers/s)")
    return {"n_events": n_events, "seconds": seconds, "events_per_second": rate, "seed": seed}


def high_level_feature_names(geometry: CaloGeometry = GEOMETRY) -> list[str]:
    """Names of :func:`high_level_features`' columns.

    Layers without α binning (0, 3, 12 of dataset 1) have every voxel at y = 0, so their
    ``ECy`` and ``width_y`` are identically zero and are left out.
    """
    ids = geometry.layer_ids
    names = [f"E_layer{l}" for l in ids] + ["Etot_over_Einc"]
    for layer in geometry.layers:
        names += [f"ECx_layer{layer.layer_id}", f"width_x_layer{layer.layer_id}"]
        if layer.n_alpha > 1:
            names += [f"ECy_layer{layer.layer_id}", f"width_y_layer{layer.layer_id}"]
    names += [f"sparsity_layer{l}" for l in ids]
    return names


def high_level_features(showers: np.ndarray, e_inc: np.ndarray,
                        geometry: CaloGeometry = GEOMETRY) -> tuple[np.ndarray, list[str]]:
    """The CaloChallenge high-level features of showers (N, voxels) in MeV.

    Energy per layer, E_tot/E_inc, energy-weighted centre (EC) and width (std) in x and y per
    layer from the voxel centres, and sparsity (fraction of non-zero voxels) per layer, as in
    the challenge's ``HighLevelFeatures.py``. Empty layers give 0, not NaN.
    """
    showers = np.asarray(showers, dtype=np.float64)
    if showers.ndim != 2 or showers.shape[1] != geometry.n_voxels:
        raise InputError(f"showers must have shape (N, {geometry.n_voxels}), got {showers.shape}")
    e_inc = np.asarray(e_inc, dtype=np.float64).reshape(-1)
    _, radius, alpha, _ = geometry.voxel_centres()
    x, y = radius * np.cos(alpha), radius * np.sin(alpha)
    energy = {l.layer_id: showers[:, l.voxels].sum(axis=1) for l in geometry.layers}
    columns = [energy[l] for l in geometry.layer_ids]
    columns.append(showers.sum(axis=1) / e_inc)
    for layer in geometry.layers:
        sl, e_layer = layer.voxels, energy[layer.layer_id]
        safe = np.where(e_layer > 0, e_layer, 1.0)
        for coord, name in ((x, "x"), (y, "y")):
            if name == "y" and layer.n_alpha == 1:
                continue
            c = coord[sl]
            centre = showers[:, sl] @ c / safe
            second = showers[:, sl] @ c**2 / safe
            width = np.sqrt(np.clip(second - centre**2, 0.0, None))
            columns += [np.where(e_layer > 0, centre, 0.0), np.where(e_layer > 0, width, 0.0)]
    columns += [(showers[:, l.voxels] > 0).mean(axis=1) for l in geometry.layers]
    return np.column_stack(columns), high_level_feature_names(geometry)
