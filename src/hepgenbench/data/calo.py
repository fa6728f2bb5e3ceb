"""Electromagnetic showers in the CaloChallenge 2022 format, from GFlash, in any voxel geometry.

Format (Krause et al., CaloChallenge, arXiv:2410.21611): an HDF5 file with
``incident_energies`` (N, 1) and ``showers`` (N, voxels), both in MeV, in the voxel layout of
a :class:`~hepgenbench.data.calo_geometry.CaloGeometry`; by default dataset 1 photons
(:data:`~hepgenbench.data.calo_geometry.DS1_PHOTONS`, 368 voxels). A
:class:`GFlashDetector` says where each layer sits along the shower, in what medium, and
which incident energies are drawn (:func:`detector_for` has one for each challenge layout
and a rule for any other).

Showers follow the GFlash parametrisation (Grindhammer & Peters, arXiv:hep-ex/0001020; see
also Grindhammer, Rudowicz & Peters, NIM A290 (1990) 469), with y = E/E_c:

* longitudinal: a gamma distribution in depth t (radiation lengths) with shape α and rate β,
  T = (α − 1)/β. Per shower (ln T, ln α) are correlated normals (their eqs. 3–8):
  ⟨ln T⟩ = ln(ln y − 0.812), σ(ln T) = (−1.4 + 1.26 ln y)⁻¹,
  ⟨ln α⟩ = ln(0.81 + (0.458 + 2.26/Z) ln y), σ(ln α) = (−0.58 + 0.86 ln y)⁻¹,
  ρ(ln T, ln α) = 0.705 − 0.023 ln y; ln T = ⟨ln T⟩ + σ(ln T) z_T and
  ln α = ⟨ln α⟩ + σ(ln α)(ρ z_T + √(1 − ρ²) z_α), z_T, z_α independent standard normals.
* radial: core + tail, f(r) = p f_C(r; R_C) + (1 − p) f_T(r; R_T) with
  f(r; R) = 2rR²/(r² + R²)² in Molière radii. The mean parameters are GFlash's functions of
  the age τ and E (eqs. 10–13): R_C = z₁ + z₂τ, R_T = k₁(e^{k₃(τ−k₂)} + e^{k₄(τ−k₂)}),
  p = p₁ exp((p₂ − τ)/p₃ − e^{(p₂−τ)/p₃}), taken at the shower's mean depth t within each
  layer. GFlash uses τ = t/T of the individual shower, which is how its lateral profile
  follows the longitudinal fluctuation. Here a share κ of the deviation of T from e^{⟨ln T⟩}
  is read as a shift Δ = κ(T − e^{⟨ln T⟩}) of the shower's start (a photon converts at a
  random depth), and a shifted shower at depth t is as old as the unshifted one at t − Δ:
  τ = (t − Δ)/(T − Δ). Around these means each shower has its own lateral offsets,
  ln R_C → ln R_C + σ(ln T) λ u_C(τ), ln R_T → ln R_T + σ(ln T) λ u_T(τ),
  logit p → logit p − σ(ln T) λ u_p(τ), each u(τ) = √(1 − w) s + √w o(τ) with s a per-shower
  standard normal and o(τ) a unit Ornstein–Uhlenbeck walk over the layers in τ,
  corr(o(τ₁), o(τ₂)) = exp(−|τ₁ − τ₂|/ℓ). Their size follows σ(ln T), so they shrink with
  energy as the longitudinal ones do.
* sampling: the energy deposited in each layer fluctuates once per shower,
  E_ℓ → Gamma(shape E_ℓ/(f a²), scale f a²) (E in GeV; mean E_ℓ, variance f a² E_ℓ), as
  GFlash fluctuates the energy of each longitudinal step in a sampling calorimeter;
* spots: that energy is deposited in discrete spots as in GFlash; a spot's energy is
  Gamma(k, E_spot/k) and E_spot = (1 − f)a²/(1 + 1/k) GeV, so that the spots add the rest of
  the sampling variance, (1 − f)a²E, and σ_E/E = a/√E in all (plus leakage).

Voxel energies are therefore Gamma(k·n, E_spot/k) with n ~ Poisson(expected spots in the voxel)
(a compound Poisson sum, exact and vectorised). The shower is axially symmetric, so a layer
binned in α shares each ring's energy evenly between its α bins before the spots are drawn.
The depth model of dataset 1 (dead material, layer thicknesses in X0) is a simplified ATLAS
barrel at η ≈ 0.2 and is documented in :data:`LAYER_DEPTHS_X0`; that of datasets 2 and 3 in
:data:`SIW_LAYER_X0`.

Correlations the showers have (defaults in :class:`ShowerFluctuations`, κ = 0.5, λ = 0.5,
w = 0.5, ℓ = 0.5, f = 0.25, k = 2; GFlash fits only the longitudinal ones and the mean radial
functions, the rest are this project's choices):

* ln T with ln α, coefficient ρ above (GFlash);
* the lateral parameters with the longitudinal profile, through the age τ: at fixed depth a
  deeper shower is younger. In dataset 1 this makes the centre of gravity in depth and the
  width in the strip layer (τ < 0.65, where GFlash's tail narrows with age) positively
  correlated, and the centre of gravity and the width in the middle layer (past the
  maximum) negatively correlated;
* each lateral offset with itself across the layers of one shower:
  corr = 1 − w + w e^{−|Δτ|/ℓ} between two layers;
* all the voxels of one layer, through that layer's sampling fluctuation.

Correlations they do not have: the lateral offsets are independent of z_T and z_α (only
the age carries the longitudinal fluctuation to the lateral profile) and of each other (R_C,
R_T and p of one shower share only its age), the per-layer sampling
fluctuations of different layers are independent given the profile, the shower stays
axially symmetric (no azimuthal fluctuation, no shift of its axis), and given all the above
the voxels are conditionally independent (compound Poisson). :data:`TWO_PARAMETER` switches
off the start shift, the lateral offsets and the per-layer sampling, which leaves the earlier
structure: (ln T, ln α), then conditionally independent voxels.
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

__all__ = ["TWO_PARAMETER", "GFlashDetector", "GFlashMedium", "ShowerFluctuations", "ShowerParameters",
           "detector_for", "high_level_feature_names", "high_level_features", "shower_parameters", "simulate",
           "simulate_showers"]

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
class ShowerFluctuations:
    """The per-shower fluctuations beyond GFlash's correlated (ln T, ln α) (formulas in the module docstring).

    The defaults are this project's choices, not fitted values: GFlash publishes none for them.

    Attributes:
        start_shift_share: κ ∈ [0, 1], the share of a shower's deviation of T from its mean
            that is a shift Δ of its start; the radial parameters are taken at the age
            (t − Δ)/(T − Δ) rather than t/T.
        lateral_own: λ, the width of the lateral parameters' own normal offsets, in units of σ(ln T).
        lateral_depth_share: w, the share of that own variance that changes with depth.
        lateral_depth_length: ℓ, the correlation length in τ of the depth-dependent part.
        layer_sampling_share: f ∈ [0, 1), the share of the sampling variance a²E carried by one
            gamma fluctuation per layer and shower; the spots carry the rest, (1 − f)a²E.
    """

    start_shift_share: float = 0.5
    lateral_own: float = 0.5
    lateral_depth_share: float = 0.5
    lateral_depth_length: float = 0.5
    layer_sampling_share: float = 0.25

    def __post_init__(self) -> None:
        if not 0.0 <= self.start_shift_share <= 1.0:
            raise InputError(f"GFlash fluctuations: start_shift_share must lie in [0, 1], got {self.start_shift_share}")
        if self.lateral_own < 0:
            raise InputError(f"GFlash fluctuations: lateral_own must be ≥ 0, got {self.lateral_own}")
        if not 0.0 <= self.lateral_depth_share <= 1.0:
            raise InputError(f"GFlash fluctuations: lateral_depth_share must lie in [0, 1], got {self.lateral_depth_share}")
        if self.lateral_depth_length <= 0:
            raise InputError(f"GFlash fluctuations: lateral_depth_length must be > 0, got {self.lateral_depth_length}")
        if not 0.0 <= self.layer_sampling_share < 1.0:
            raise InputError(f"GFlash fluctuations: layer_sampling_share must lie in [0, 1), got {self.layer_sampling_share}")


#: The earlier showers' structure: two latent numbers (ln T, ln α), then conditionally independent voxels.
TWO_PARAMETER = ShowerFluctuations(start_shift_share=0.0, lateral_own=0.0, layer_sampling_share=0.0)


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
        fluctuations: the per-shower fluctuations beyond (ln T, ln α);
            :data:`TWO_PARAMETER` switches them off.
    """

    z_eff: float = 60.0
    critical_energy_mev: float = 10.0
    moliere_radius_mm: float = 35.0
    sampling_term: float = 0.10
    spot_shape: float = 2.0
    threshold_mev: float = READOUT_THRESHOLD_MEV
    fluctuations: ShowerFluctuations = ShowerFluctuations()


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


def _log_t_width(log_y: np.ndarray) -> np.ndarray:
    """σ(ln T) of GFlash's individual profiles in a homogeneous medium: 1/(−1.4 + 1.26 ln y)."""
    return 1.0 / (-1.4 + 1.26 * log_y)


def _longitudinal(log_y: np.ndarray, rng: np.random.Generator,
                  medium: GFlashMedium) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shape α, rate β and the standard normal z_T behind ln T of each shower's gamma profile."""
    mean_log_t = np.log(log_y - 0.812)
    mean_log_a = np.log(0.81 + (0.458 + 2.26 / medium.z_eff) * log_y)
    sigma_log_a = 1.0 / (-0.58 + 0.86 * log_y)
    rho = 0.705 - 0.023 * log_y
    z1, z2 = rng.standard_normal((2, log_y.size))
    log_t = mean_log_t + _log_t_width(log_y) * z1
    log_a = mean_log_a + sigma_log_a * (rho * z1 + np.sqrt(1 - rho**2) * z2)
    # T = (α − 1)/β needs α > 1; the rare lower tail is clipped.
    alpha = np.maximum(np.exp(log_a), 1.05)
    beta = (alpha - 1.0) / np.exp(log_t)
    return alpha, beta, z1


@dataclass(frozen=True)
class ShowerParameters:
    """The latent numbers of N showers in L layers, everything :func:`simulate` draws before the spots.

    Attributes:
        alpha, beta: (N,) shape and rate of each shower's gamma profile in depth.
        log_t_normal: (N,) the standard normal z_T behind ln T.
        layer_share: (N, L) the gamma profile's share of the shower in each layer.
        tau: (N, L) the age at which each layer's radial parameters are taken: the mean depth
            of its deposition t over T, corrected for the start shift (t − Δ)/(T − Δ).
        layer_energy_mev: (N, L) energy the layer receives, after the per-layer sampling
            fluctuation (before the radial containment and the spots).
        log_core_shift, log_tail_shift, core_logit_shift: (N, L) the shower's own offsets of
            ln R_C, ln R_T and logit p from GFlash's mean parameters at that τ.
    """

    alpha: np.ndarray
    beta: np.ndarray
    log_t_normal: np.ndarray
    layer_share: np.ndarray
    tau: np.ndarray
    layer_energy_mev: np.ndarray
    log_core_shift: np.ndarray
    log_tail_shift: np.ndarray
    core_logit_shift: np.ndarray


def _draw_parameters(e_inc: np.ndarray, rng: np.random.Generator, medium: GFlashMedium,
                     detector: GFlashDetector) -> ShowerParameters:
    """Longitudinal profile, lateral offsets (an Ornstein–Uhlenbeck walk in τ) and per-layer
    sampling, in this order from ``rng``; with :data:`TWO_PARAMETER` nothing beyond the
    longitudinal normals is drawn."""
    log_y = np.log(e_inc / medium.critical_energy_mev)
    mean_log_t = np.log(log_y - 0.812)
    alpha, beta, z_t = _longitudinal(log_y, rng, medium)
    fl = medium.fluctuations
    n, n_layers = e_inc.size, len(detector.depths_x0)
    t_max = (alpha - 1.0) / beta
    in_layer = np.empty((n, n_layers))
    tau = np.empty((n, n_layers))
    for i, (t0, t1) in enumerate(detector.depths_x0):
        in_layer[:, i] = special.gammainc(alpha, beta * t1) - special.gammainc(alpha, beta * t0)
        # Mean depth of the energy deposited in the layer, E[t | t0 < t < t1] of the gamma law.
        upper = special.gammainc(alpha + 1, beta * t1) - special.gammainc(alpha + 1, beta * t0)
        t_mean = np.where(in_layer[:, i] > 1e-12, alpha / beta * upper / np.maximum(in_layer[:, i], 1e-300),
                          0.5 * (t0 + t1))
        tau[:, i] = t_mean / t_max
    # The radial parameters' age: a share κ of T's deviation from its mean is a shift Δ of the
    # shower's start, and a shifted shower at depth t is as old as the mean one at t − Δ.
    start_shift = fl.start_shift_share * (t_max - np.exp(mean_log_t))
    lateral_tau = np.maximum(tau * t_max[:, None] - start_shift[:, None], 0.0) / (t_max - start_shift)[:, None]
    shifts = np.zeros((3, n, n_layers))
    if fl.lateral_own:
        # u = √(1−w) s + √w o(τ): s per shower, o a unit Ornstein–Uhlenbeck walk over the
        # layers in τ; one each for ln R_C, ln R_T and logit p.
        steady = rng.standard_normal((3, n))
        walk = np.empty((3, n, n_layers))
        walk[:, :, 0] = rng.standard_normal((3, n))
        for i in range(1, n_layers):
            c = np.exp(-np.abs(lateral_tau[:, i] - lateral_tau[:, i - 1]) / fl.lateral_depth_length)
            walk[:, :, i] = c * walk[:, :, i - 1] + np.sqrt(1 - c**2) * rng.standard_normal((3, n))
        w = fl.lateral_depth_share
        own = np.sqrt(1 - w) * steady[:, :, None] + np.sqrt(w) * walk
        sign = np.array([1.0, 1.0, -1.0])[:, None, None]  # a broader shower has less core
        shifts = _log_t_width(log_y)[None, :, None] * sign * fl.lateral_own * own
    layer_energy = in_layer * e_inc[:, None]
    if fl.layer_sampling_share > 0:
        # Gamma(E_ℓ/(f a²), f a²) in GeV: mean E_ℓ, variance f a² E_ℓ (GFlash's sampling per step).
        quantum_mev = fl.layer_sampling_share * medium.sampling_term**2 * 1000.0
        layer_energy = rng.gamma(layer_energy / quantum_mev) * quantum_mev
    return ShowerParameters(alpha, beta, z_t, in_layer, lateral_tau, layer_energy, *shifts)


def shower_parameters(e_inc_mev: np.ndarray, seed: int, medium: GFlashMedium | None = None,
                      detector: GFlashDetector = DS1_DETECTOR) -> ShowerParameters:
    """The latent parameters behind ``simulate(e_inc_mev, seed, medium, detector)``."""
    medium = medium or detector.medium
    e_inc = np.asarray(e_inc_mev, dtype=np.float64).reshape(-1)
    return _draw_parameters(e_inc, np.random.default_rng(seed), medium, detector)


def _radial_cdf(r: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """CDF of f(r; R) = 2rR²/(r² + R²)²: r²/(r² + R²)."""
    return r**2 / (r**2 + radius**2)


def _expected_energies(e_gev: np.ndarray, params: ShowerParameters, medium: GFlashMedium,
                       detector: GFlashDetector = DS1_DETECTOR) -> np.ndarray:
    """Expected energy (MeV) of each shower in each voxel given its parameters, (N, voxels)."""
    energies = np.empty((e_gev.size, detector.geometry.n_voxels))
    log_e = np.log(e_gev)
    z = medium.z_eff
    for i, layer in enumerate(detector.geometry.layers):
        tau = params.tau[:, i]
        r_core = ((0.0251 + 0.00319 * log_e) + (0.1162 - 0.000381 * z) * tau) * np.exp(params.log_core_shift[:, i])
        k4 = 0.3585 + 0.0421 * log_e
        r_tail = ((0.659 - 0.00309 * z) * (np.exp(-2.59 * (tau - 0.645)) + np.exp(k4 * (tau - 0.645)))
                  * np.exp(params.log_tail_shift[:, i]))
        p1, p2, p3 = 0.2632 - 0.00094 * z, 0.401 + 0.00187 * z, 1.313 - 0.0686 * log_e
        core = np.clip(p1 * np.exp((p2 - tau) / p3 - np.exp((p2 - tau) / p3)), 0.0, 1.0)
        shift = params.core_logit_shift[:, i]
        if np.any(shift):
            core = special.expit(special.logit(np.clip(core, 1e-9, 1 - 1e-9)) + shift)
        edges = np.asarray(layer.r_edges) / medium.moliere_radius_mm
        cdf = (core[:, None] * _radial_cdf(edges[None, :], r_core[:, None])
               + (1 - core[:, None]) * _radial_cdf(edges[None, :], r_tail[:, None]))
        per_r = np.diff(cdf, axis=1) * params.layer_energy_mev[:, i, None]
        na = layer.n_alpha
        energies[:, layer.voxels] = np.tile(per_r / na, (1, na))  # α outer, r inner
    return energies


def simulate(e_inc_mev: np.ndarray, seed: int, medium: GFlashMedium | None = None,
             detector: GFlashDetector = DS1_DETECTOR) -> np.ndarray:
    """GFlash showers (N, voxels) in MeV for the given incident energies (N,) in MeV, in
    ``detector`` (dataset 1 photons by default); ``medium`` overrides the detector's. One
    seed fixes every draw: the latent parameters (:func:`shower_parameters`), then the spots."""
    medium = medium or detector.medium
    e_inc = np.asarray(e_inc_mev, dtype=np.float64).reshape(-1)
    rng = np.random.default_rng(seed)
    params = _draw_parameters(e_inc, rng, medium, detector)
    means = _expected_energies(e_inc / 1000.0, params, medium, detector)
    k = medium.spot_shape
    # The spots carry the share of the sampling term that the per-layer fluctuation does not.
    spot_term2 = (1.0 - medium.fluctuations.layer_sampling_share) * medium.sampling_term**2
    spot_energy = 1000.0 * spot_term2 / (1 + 1 / k)
    hits = rng.poisson(means / spot_energy)
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
