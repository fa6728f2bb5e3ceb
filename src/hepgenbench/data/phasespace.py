"""A three-body decay with a resonance: a dataset whose true density is known.

The decay is D⁰ → K⁻ π⁺ π⁰ (particles 1, 2, 3) through a ρ⁺(770) → π⁺π⁰ resonance in the
(2, 3) pair, a toy of the dominant D⁰ → K⁻ρ⁺ amplitude (CLEO, hep-ex/0011065). The amplitude
is a relativistic Breit–Wigner with constant width and no spin factor, so the density on the
Dalitz plot (Dalitz 1953; PDG review "Kinematics", eq. 49.22) is

    p(m²₁₂, m²₂₃) ∝ |BW(m²₂₃)|² = 1 / ((m_ρ² − m²₂₃)² + m_ρ² Γ_ρ²)

inside the kinematic boundary, and zero outside. The three Euler angles that orient the
decay plane of a spin-0 parent (``phi``, ``cos_theta``, ``psi``) are uniform. The features
are ``(m2_12, m2_23, phi, cos_theta, psi)``.

The normalisation is a 1-D integral: at fixed m²₂₃ the Dalitz plot is an m²₁₂ interval of
known length L(m²₂₃), so Z = ∫ |BW|² L dm²₂₃, done with adaptive quadrature (relative error
below 1e-10, stored in :attr:`ThreeBodyDecay.normalisation_error`). Flat phase space, the
baseline proposal of neural importance sampling (MadNIS, arXiv:2212.06172), is uniform on the
same region.

Masses and width are the PDG 2024 values (GeV).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
from scipy import integrate

from hepgenbench.errors import InputError
from hepgenbench.io import EventSet, write_events
from hepgenbench.preprocess import dalitz_m2_12_range

if TYPE_CHECKING:
    import torch

FEATURE_NAMES = ["m2_12", "m2_23", "phi", "cos_theta", "psi"]
UNITS = ["GeV^2", "GeV^2", "rad", "", "rad"]
# Volume of the orientation space: phi, psi in (-π, π), cos θ in (-1, 1).
_LOG_ANGLE_VOLUME = math.log(2 * math.pi * 2.0 * 2 * math.pi)


@dataclass(frozen=True)
class ThreeBodyDecay:
    """Masses (GeV) of a decay M → 1 2 3 with a Breit–Wigner resonance in the (2, 3) pair."""

    m_parent: float = 1.86484  # D⁰
    m1: float = 0.493677  # K⁻
    m2: float = 0.13957039  # π⁺
    m3: float = 0.1349768  # π⁰
    m_res: float = 0.77526  # ρ(770)
    width_res: float = 0.1491

    @property
    def m2_12_limits(self) -> tuple[float, float]:
        return (self.m1 + self.m2) ** 2, (self.m_parent - self.m3) ** 2

    @property
    def m2_23_limits(self) -> tuple[float, float]:
        return (self.m2 + self.m3) ** 2, (self.m_parent - self.m1) ** 2

    def m2_12_range(self, m2_23):
        """The allowed ``(low, high)`` of m²₁₂ at fixed m²₂₃ (numpy or torch, elementwise)."""
        return dalitz_m2_12_range(m2_23, self.m_parent, self.m1, self.m2, self.m3)

    def m2_13(self, m2_12, m2_23):
        """The third invariant from m²₁₂ + m²₂₃ + m²₁₃ = M² + m₁² + m₂² + m₃²."""
        return self.m_parent**2 + self.m1**2 + self.m2**2 + self.m3**2 - m2_12 - m2_23

    def breit_wigner2(self, m2_23):
        """|BW(s)|² = 1 / ((m_R² − s)² + m_R² Γ_R²), unnormalised."""
        mr2 = self.m_res**2
        return 1.0 / ((mr2 - m2_23) ** 2 + mr2 * self.width_res**2)

    def inside(self, m2_12, m2_23):
        """Boolean mask of points strictly inside the Dalitz boundary."""
        lo23, hi23 = self.m2_23_limits
        in_band = (m2_23 > lo23) & (m2_23 < hi23)
        lo, hi = self.m2_12_range(m2_23)
        return in_band & (m2_12 > lo) & (m2_12 < hi)

    def _interval_length(self, m2_23: float) -> float:
        lo, hi = self.m2_12_range(np.float64(m2_23))
        return float(hi - lo)

    @cached_property
    def _normalisations(self) -> tuple[float, float, float]:
        lo, hi = self.m2_23_limits
        area, _ = integrate.quad(self._interval_length, lo, hi, epsabs=0, epsrel=1e-12, limit=200)
        z, z_err = integrate.quad(
            lambda s: self.breit_wigner2(s) * self._interval_length(s),
            lo, hi, points=[self.m_res**2], epsabs=0, epsrel=1e-12, limit=200,
        )
        return area, z, z_err

    @property
    def dalitz_area(self) -> float:
        """Area of the Dalitz plot in GeV⁴."""
        return self._normalisations[0]

    @property
    def normalisation(self) -> float:
        """Z = ∫ |BW(m²₂₃)|² dm²₁₂ dm²₂₃ over the Dalitz plot."""
        return self._normalisations[1]

    @property
    def normalisation_error(self) -> float:
        """Relative error estimate of :attr:`normalisation` from the quadrature."""
        return self._normalisations[2] / self._normalisations[1]

    def marginal_m2_23(self, m2_23: np.ndarray) -> np.ndarray:
        """Normalised marginal density of m²₂₃: |BW|² L(m²₂₃) / Z."""
        lo, hi = self.m2_12_range(m2_23)
        lo23, hi23 = self.m2_23_limits
        band = (m2_23 > lo23) & (m2_23 < hi23)
        return np.where(band, self.breit_wigner2(m2_23) * (hi - lo) / self.normalisation, 0.0)


DALITZ = ThreeBodyDecay()


def _check_shape(x, lib_name: str) -> None:
    if x.ndim != 2 or x.shape[1] != len(FEATURE_NAMES):
        raise InputError(f"{lib_name} phasespace input must have shape (N, 5) {FEATURE_NAMES}, got {tuple(x.shape)}")


def _angles_inside(phi, cos_theta, psi):
    return (abs(phi) < math.pi) & (abs(cos_theta) < 1) & (abs(psi) < math.pi)


def log_density(x: np.ndarray, decay: ThreeBodyDecay = DALITZ) -> np.ndarray:
    """Normalised true log-density of ``x`` (N, 5); −inf outside the physical region."""
    x = np.asarray(x, dtype=np.float64)
    _check_shape(x, "numpy")
    m2_12, m2_23, phi, cos_theta, psi = x.T
    inside = decay.inside(m2_12, m2_23) & _angles_inside(phi, cos_theta, psi)
    with np.errstate(divide="ignore"):
        value = np.log(decay.breit_wigner2(m2_23) / decay.normalisation) - _LOG_ANGLE_VOLUME
    return np.where(inside, value, -np.inf)


def log_density_torch(x: torch.Tensor, decay: ThreeBodyDecay = DALITZ) -> torch.Tensor:
    """:func:`log_density` in torch: same values, differentiable inside the region.

    Outside, the value is −inf with zero gradient (``torch.where`` on a finite branch), so
    reverse-KL training of a flow on this density never sees NaN gradients.
    """
    import torch  # here, not at the top: generation, evaluation and plots need no torch

    _check_shape(x, "torch")
    m2_12, m2_23, phi, cos_theta, psi = x.unbind(-1)
    inside = decay.inside(m2_12, m2_23) & _angles_inside(phi, cos_theta, psi)
    value = torch.log(decay.breit_wigner2(m2_23)) - (math.log(decay.normalisation) + _LOG_ANGLE_VOLUME)
    return torch.where(inside, value, torch.full_like(value, -math.inf))


def flat_log_density(x: np.ndarray, decay: ThreeBodyDecay = DALITZ) -> np.ndarray:
    """Log-density of flat phase space (uniform Dalitz plot and angles); −inf outside."""
    x = np.asarray(x, dtype=np.float64)
    _check_shape(x, "numpy")
    m2_12, m2_23, phi, cos_theta, psi = x.T
    inside = decay.inside(m2_12, m2_23) & _angles_inside(phi, cos_theta, psi)
    return np.where(inside, -math.log(decay.dalitz_area) - _LOG_ANGLE_VOLUME, -np.inf)


def sample_flat(n: int, rng: np.random.Generator, decay: ThreeBodyDecay = DALITZ) -> tuple[np.ndarray, int]:
    """``n`` points of flat phase space, and how many box points were drawn to get them.

    Uniform in the bounding box of the Dalitz plot, rejected outside the boundary.
    """
    (lo12, hi12), (lo23, hi23) = decay.m2_12_limits, decay.m2_23_limits
    out, tried, have = [], 0, 0
    while have < n:
        batch = max(1024, int(1.3 * (n - have) * (hi12 - lo12) * (hi23 - lo23) / decay.dalitz_area))
        m2_12 = rng.uniform(lo12, hi12, batch)
        m2_23 = rng.uniform(lo23, hi23, batch)
        keep = decay.inside(m2_12, m2_23)
        tried += batch
        out.append(np.column_stack([m2_12[keep], m2_23[keep]]))
        have += int(keep.sum())
    dalitz = np.concatenate(out)[:n]
    angles = np.column_stack([
        rng.uniform(-math.pi, math.pi, n), rng.uniform(-1.0, 1.0, n), rng.uniform(-math.pi, math.pi, n),
    ])
    return np.column_stack([dalitz, angles]), tried


def sample(n: int, seed: int, decay: ThreeBodyDecay = DALITZ) -> tuple[np.ndarray, dict]:
    """``n`` unweighted events by accept–reject of flat phase space against |BW|².

    Returns the ``(n, 5)`` events and ``{"unweighting_efficiency", "boundary_efficiency"}``.
    """
    rng = np.random.default_rng(seed)
    w_max = decay.breit_wigner2(decay.m_res**2)  # the resonance peak lies inside the band
    out, proposed, box_tried, have = [], 0, 0, 0
    while have < n:
        batch = max(4096, 2 * (n - have) * int(w_max / (decay.normalisation / decay.dalitz_area)))
        x, tried = sample_flat(batch, rng, decay)
        keep = rng.uniform(0.0, w_max, batch) < decay.breit_wigner2(x[:, 1])
        out.append(x[keep])
        proposed += batch
        box_tried += tried
        have += int(keep.sum())
    stats = {
        "unweighting_efficiency": have / proposed,
        "boundary_efficiency": proposed / box_tried,
    }
    return np.concatenate(out)[:n], stats


def transforms(decay: ThreeBodyDecay = DALITZ) -> list[dict]:
    """Preprocessing specs: a logit of each feature rescaled to its kinematic range.

    m²₁₂ is placed within the interval that its event's m²₂₃ allows, not within the global
    limits, so the curved Dalitz plot becomes the whole plane in network space (see the
    ``dalitz`` transform in :mod:`hepgenbench.preprocess`).
    """
    lo23, hi23 = decay.m2_23_limits
    masses = {"m_parent": decay.m_parent, "m1": decay.m1, "m2": decay.m2, "m3": decay.m3}
    return [
        {"type": "dalitz", "given": "m2_23", **masses},
        {"type": "bounded", "low": lo23, "high": hi23},
        {"type": "bounded", "low": -math.pi, "high": math.pi},
        {"type": "bounded", "low": -1.0, "high": 1.0},
        {"type": "bounded", "low": -math.pi, "high": math.pi},
    ]


def generate(path: str | os.PathLike, n_events: int, seed: int, log: Callable[[str], None] = print) -> dict:
    """Sample ``n_events`` decays and write them with their true log-density to HDF5."""
    if n_events <= 0:
        raise InputError(f"n_events must be positive, got {n_events}")
    start = time.perf_counter()
    x, stats = sample(n_events, seed)
    seconds = time.perf_counter() - start
    meta = {
        "source": "phasespace",
        "decay": "D0 -> K- pi+ pi0 via rho+(770) Breit-Wigner in (pi+ pi0)",
        "masses_gev": asdict(DALITZ),
        "normalisation": DALITZ.normalisation,
        "normalisation_relative_error": DALITZ.normalisation_error,
        "dalitz_area_gev4": DALITZ.dalitz_area,
        "seed": seed,
        **stats,
    }
    events = EventSet(
        features=x, feature_names=list(FEATURE_NAMES), kind="phasespace", transforms=transforms(),
        log_density=log_density(x), units=list(UNITS), meta=meta,
    )
    write_events(path, events)
    log(f"phasespace: {n_events} events in {seconds:.2f} s, unweighting efficiency "
        f"{stats['unweighting_efficiency']:.3f}")
    return {"n_events": n_events, "seconds": seconds, "seed": seed, **stats}
