"""Electromagnetic showers in the CaloChallenge 2022 format, from GFlash, in any voxel geometry.

Format (Krause et al., CaloChallenge, arXiv:2410.21611): an HDF5 file with
``incident_energies`` (N, 1) and ``showers`` (N, voxels), both in MeV, in the voxel layout of
a :class:`~hepgenbench.data.calo_geometry.CaloGeometry`; by default dataset 1 photons
(:data:`~hepgenbench.data.calo_geometry.DS1_PHOTONS`, 368 voxels). A
:class:`GFlashDetector` says where each layer sits along the shower, in what medium, and
which incident energies are drawn (:func:`detector_for` has one for each challenge layout
and a rule for any other).

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
(a compound Poisson sum, exact and vectorised). The shower is axially symmetric, so a layer
binned in α shares each ring's energy evenly between its α bins before the spots are drawn.
The depth model of dataset 1 (dead material, layer thicknesses in X0) is a simplified ATLAS
barrel at η ≈ 0.2 and is documented in :data:`LAYER_DEPTHS_X0`; that of datasets 2 and 3 in
:data:`SIW_LAYER_X0`.

Correlations the showers have: per shower, (ln T, ln α) of the longitudinal profile are
correlated normals, and the lateral core/tail radii and core fraction follow the profile
through τ = t/T; given those two numbers, the voxels are conditionally independent
(compound Poisson). There are no per-shower fluctuations of the lateral parameters nor a
per-layer sampling fluctuation beyond the spot noise.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import h5py
import numpy as np
from scipy import special

from hepgenbench.data.calo_features import high_level_feature_names, high_level_features
from hepgenbench.data.calo_geometry import (
    DS1_PHOTONS,
    READOUT_THRESHOLD_MEV,
    CaloGeometry,
    builtin_name,
)
from hepgenbench.errors import InputError
from hepgenbench.io import atomic_path

__all__ = ["GFlashDetector", "GFlashMedium", "detector_for", "high_level_feature_names", "high_level_features",
           "simulate", "simulate_showers"]

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
# The dataset-1-pion layout adds two tile layers and splits the first: 12 and 13 share
# what 12 is for photons, 14 lies behind them.
PION_LAYER_DEPTHS_X0: dict[int, tuple[float, float]] = {
    **LAYER_DEPTHS_X0, 12: (26.4, 40.0), 13: (40.0, 60.0), 14: (60.0, 75.0),
}
# Datasets 2 and 3 (arXiv:2410.21611, Sec. 2): 45 layers of 1.4 mm tungsten + 0.3 mm silicon;
# tungsten's X0 is 3.5 mm, so each layer is 0.4 X0 and the stack 18 X0.
SIW_LAYER_X0 = 0.4


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


#: Tungsten–silicon of datasets 2 and 3: Z = 74, E_c ≈ 8 MeV, R_M 9.3 mm in tungsten, 11.3 mm
#: spread over the 1.7 mm of a layer; a silicon–tungsten sampling term of about 17 %/√E.
SIW_MEDIUM = GFlashMedium(z_eff=74.0, critical_energy_mev=8.0, moliere_radius_mm=11.3, sampling_term=0.17)


@dataclass(frozen=True)
class GFlashDetector:
    """A calorimeter to shower in: its voxels, each layer's depth, its medium and the beam.

    Attributes:
        geometry: the voxel layout.
        depths_x0: (start, end) of each layer of ``geometry`` along the shower axis, in X0,
            in the geometry's layer order.
        medium: the effective medium and noise model.
        energies_mev: discrete incident energies drawn uniformly, or None for ``energy_range_mev``.
        energy_range_mev: (low, high) of a log-uniform incident energy.
    """

    geometry: CaloGeometry
    depths_x0: tuple[tuple[float, float], ...]
    medium: GFlashMedium = GFlashMedium()
    energies_mev: tuple[float, ...] | None = INCIDENT_ENERGIES_MEV
    energy_range_mev: tuple[float, float] = (1e3, 1e6)

    def __post_init__(self) -> None:
        if len(self.depths_x0) != len(self.geometry.layers):
            raise InputError(f"GFlash detector: {len(self.depths_x0)} layer depths for {len(self.geometry.layers)} layers")

    def incident_energies(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.energies_mev is not None:
            return rng.choice(np.asarray(self.energies_mev), size=n)
        low, high = np.log(self.energy_range_mev)
        return np.exp(rng.uniform(low, high, size=n))


def detector_for(geometry: CaloGeometry, medium: GFlashMedium | None = None) -> GFlashDetector:
    """The detector behind a layout: the ATLAS-like depths and 15 discrete energies
    (256 MeV–4 TeV) of dataset 1, the tungsten–silicon stack and log-uniform 1 GeV–1 TeV of
    datasets 2 and 3; any other layout gets its layers stacked at 0.4 X0 each in its order
    (as datasets 2 and 3), in the tungsten–silicon medium, with their energies."""
    name = builtin_name(geometry)
    if name in ("ds1-photons", "ds1-pions"):
        depths = LAYER_DEPTHS_X0 if name == "ds1-photons" else PION_LAYER_DEPTHS_X0
        return GFlashDetector(geometry, tuple(depths[l] for l in geometry.layer_ids), medium or GFlashMedium())
    depths = tuple((SIW_LAYER_X0 * i, SIW_LAYER_X0 * (i + 1)) for i in range(len(geometry.layers)))
    return GFlashDetector(geometry, depths, medium or SIW_MEDIUM, energies_mev=None)


#: dataset 1 photons, the embedded default
DS1_DETECTOR = detector_for(DS1_PHOTONS)


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


def _expected_fractions(e_gev: np.ndarray, alpha: np.ndarray, beta: np.ndarray, medium: GFlashMedium,
                        detector: GFlashDetector = DS1_DETECTOR) -> np.ndarray:
    """Expected fraction of each shower's energy in each voxel, (N, voxels)."""
    n = e_gev.size
    frac = np.empty((n, detector.geometry.n_voxels))
    log_e = np.log(e_gev)
    z = medium.z_eff
    t_max = (alpha - 1.0) / beta
    for layer, (t0, t1) in zip(detector.geometry.layers, detector.depths_x0):
        sl = layer.voxels
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
        edges = np.asarray(layer.r_edges) / medium.moliere_radius_mm
        cdf = (core[:, None] * _radial_cdf(edges[None, :], r_core[:, None])
               + (1 - core[:, None]) * _radial_cdf(edges[None, :], r_tail[:, None]))
        per_r = np.diff(cdf, axis=1) * in_layer[:, None]
        na = layer.n_alpha
        frac[:, sl] = np.tile(per_r / na, (1, na))  # α outer, r inner
    return frac


def simulate(e_inc_mev: np.ndarray, seed: int, medium: GFlashMedium | None = None,
             detector: GFlashDetector = DS1_DETECTOR) -> np.ndarray:
    """GFlash showers (N, voxels) in MeV for the given incident energies (N,) in MeV, in
    ``detector`` (dataset 1 photons by default); ``medium`` overrides the detector's."""
    medium = medium or detector.medium
    e_inc = np.asarray(e_inc_mev, dtype=np.float64).reshape(-1)
    rng = np.random.default_rng(seed)
    alpha, beta = _longitudinal(np.log(e_inc / medium.critical_energy_mev), rng, medium)
    frac = _expected_fractions(e_inc / 1000.0, alpha, beta, medium, detector)
    k = medium.spot_shape
    n_spots = (e_inc / 1000.0) * (1 + 1 / k) / medium.sampling_term**2
    hits = rng.poisson(frac * n_spots[:, None])
    spot_energy = (e_inc / n_spots)[:, None]
    # A sum of n gamma(k) spot energies is gamma(n k); n = 0 gives exactly zero.
    showers = np.where(hits > 0, rng.gamma(np.maximum(hits, 1) * k) * spot_energy / k, 0.0)
    showers[showers < medium.threshold_mev] = 0.0
    return showers


#: voxels one simulated batch holds (each float64 array of a batch is 8 bytes × this), so that a
#: dataset-3 file is written in bounded memory; dataset 1 keeps its 10,000-shower batches
BATCH_VOXELS = 4_000_000


def simulate_showers(
    path: str | os.PathLike,
    n_events: int,
    seed: int,
    log: Callable[[str], None] = print,
    medium: GFlashMedium | None = None,
    batch: int = 10_000,
    detector: GFlashDetector = DS1_DETECTOR,
    dtype: str = "float64",
    compression: str | None = "gzip",
) -> dict:
    """Simulate ``n_events`` showers in ``detector`` and write them in the CaloChallenge HDF5 layout.

    Incident energies are drawn from the detector's spectrum (dataset 1: uniformly from the
    15 powers of two 2⁸…2²² MeV). Batches of at most ``batch`` showers and
    :data:`BATCH_VOXELS` voxels are simulated and written one after the other, so memory
    stays bounded whatever the layout; a batch's seed is drawn from ``seed``, so a file is
    the same for the same arguments.
    """
    if n_events <= 0:
        raise InputError(f"n_events must be positive, got {n_events}")
    n_voxels = detector.geometry.n_voxels
    batch = max(1, min(batch, BATCH_VOXELS // n_voxels))
    rng = np.random.default_rng(seed)
    e_inc = detector.incident_energies(rng, n_events)
    seconds = 0.0  # simulation only, not the HDF5 writing
    chunk_seeds = rng.integers(0, 2**63, size=(n_events + batch - 1) // batch)
    options = {"compression": compression, "compression_opts": 1} if compression == "gzip" else {"compression": compression}
    with atomic_path(path, suffix=".hdf5") as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("incident_energies", data=e_inc.reshape(-1, 1), **options)
        showers = f.create_dataset("showers", shape=(n_events, n_voxels), dtype=dtype, **options)
        for i, s in enumerate(chunk_seeds):
            rows = slice(i * batch, min(n_events, (i + 1) * batch))
            start = time.perf_counter()
            block = simulate(e_inc[rows], int(s), medium, detector).astype(dtype, copy=False)
            seconds += time.perf_counter() - start
            showers[rows] = block
    rate = n_events / seconds
    log(f"calo: {n_events} GFlash showers ({n_voxels} voxels) in {seconds:.2f} s ({rate:.0f} showers/s)")
    return {"n_events": n_events, "seconds": seconds, "events_per_second": rate, "seed": seed}
