"""The Z line shape in m_μμ: a Voigtian fit, and a model's pulls against truth.

An analysis that measures the Z mass fits the dimuon mass spectrum near the peak with a
Breit–Wigner of the Z (mass M, width Γ) convolved with a Gaussian resolution σ, the Voigt
profile

    V(m; M, Γ, σ) = ∫ BW(m'; M, Γ) G(m − m'; σ) dm',   BW = (Γ/2π) / ((m' − M)² + Γ²/4)

(``scipy.special.voigt_profile``, whose Lorentzian parameter is the half width Γ/2), plus a
flat background for the Drell–Yan γ* continuum and the radiative tail in the window. The
fit is a binned extended maximum likelihood (iminuit's ``ExtendedBinnedNLL``) in the
stated range :data:`FIT_RANGE_GEV`, in bins of :data:`BIN_WIDTH_GEV`; errors are Hesse's.

Truth and every generated sample get the same fit, so the shapes the Voigtian does not
describe (the radiative tail, γ*/Z interference, the parton luminosity) cancel in the
comparison. A model's pull against truth on a parameter p is

    pull_p = (p_model − p_truth) / √(σ_model² + σ_truth²),

the two samples being independent. |pull| > :data:`PULL_FLAG` flags the model: at 4,000
events in the peak a 200 MeV shift of the Z mass is about a 3σ pull, whatever the C2ST AUC.

A sample with no peak at all fits with huge errors and small pulls, so the shapes are also
compared directly: a two-sample χ² of the two m_μμ histograms in the window (bins of
:data:`SHAPE_BIN_WIDTH_GEV`), whose p-value below :data:`SHAPE_P_FLAG` (the two-sided 3σ
tail) flags the shape; and a fit that Migrad did not converge flags the sample.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from hepgenbench.errors import InputError
from hepgenbench.physics import json_safe

#: the fit window in m_μμ (GeV): ±11 GeV around the Z pole, about ±4.5 Γ_Z
FIT_RANGE_GEV = (80.0, 102.0)
#: histogram bin width (GeV): a tenth of Γ_Z, so the binning loses no information on M or Γ
BIN_WIDTH_GEV = 0.25
#: starting values of the fit: the PDG Z mass and width (GeV)
Z_MASS_GEV = 91.1876
Z_WIDTH_GEV = 2.4955
#: fewest events in the window for a fit of four shape parameters
MIN_EVENTS = 100
#: |pull| above which a model's parameter is flagged as incompatible with truth
PULL_FLAG = 3.0
#: bin width (GeV) of the two-sample χ² of the shapes: two fit bins, about 40 events per bin at the peak
SHAPE_BIN_WIDTH_GEV = 0.5
#: p-value of the shape χ² below which the shape is flagged: the two-sided 3σ tail
SHAPE_P_FLAG = 2.7e-3
#: trapezoid points per bin in the numerical CDF of the Voigtian (Γ/2 spans 5 bins: ample)
_SUBDIVISIONS = 8


@dataclass(frozen=True)
class LineShapeFit:
    """A Voigtian + flat fit of m_μμ; masses and widths in GeV.

    Attributes:
        mass, width: the Breit–Wigner pole mass M and full width Γ, with Hesse errors.
        resolution: the Gaussian σ of the convolution.
        background_fraction: flat events over all events in the window.
        n_in_range: events in :attr:`fit_range`.
        valid: Migrad converged to a valid minimum with an accurate covariance.
    """

    mass: float
    mass_error: float
    width: float
    width_error: float
    resolution: float
    resolution_error: float
    background_fraction: float
    background_fraction_error: float
    n_in_range: int
    fit_range: tuple[float, float]
    valid: bool

    def to_dict(self) -> dict:
        return {**asdict(self), "fit_range": list(self.fit_range)}


def voigtian_cdf(edges: np.ndarray, mass: float, width: float, resolution: float) -> np.ndarray:
    """The Voigtian's cumulative probability at equally spaced ``edges``, normalised to 1
    over ``[edges[0], edges[-1]]`` (trapezoid rule on :data:`_SUBDIVISIONS` points per bin)."""
    from scipy.special import voigt_profile

    n_bins = len(edges) - 1
    grid = np.linspace(edges[0], edges[-1], _SUBDIVISIONS * n_bins + 1)
    pdf = voigt_profile(grid - mass, resolution, 0.5 * width)
    cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
    return cumulative[::_SUBDIVISIONS] / cumulative[-1]


def fit_lineshape(m: np.ndarray, fit_range: tuple[float, float] = FIT_RANGE_GEV,
                  bin_width: float = BIN_WIDTH_GEV) -> LineShapeFit:
    """Fit M, Γ, σ and the flat background to the dimuon masses ``m`` (GeV) in ``fit_range``.

    Raises:
        InputError: fewer than :data:`MIN_EVENTS` finite masses in the window.
    """
    from iminuit import Minuit
    from iminuit.cost import ExtendedBinnedNLL

    lo, hi = float(fit_range[0]), float(fit_range[1])
    m = np.asarray(m, dtype=np.float64).reshape(-1)
    inside = m[np.isfinite(m) & (m >= lo) & (m <= hi)]
    if len(inside) < MIN_EVENTS:
        raise InputError(f"Z line shape: {len(inside)} events with m_mumu in [{lo:g}, {hi:g}] GeV; "
                         f"a fit needs at least {MIN_EVENTS}")
    n_bins = max(1, round((hi - lo) / bin_width))
    edges = np.linspace(lo, hi, n_bins + 1)
    counts, _ = np.histogram(inside, edges)

    def scaled_cdf(xe, n_signal, n_background, mass, width, resolution):
        flat = (xe - lo) / (hi - lo)
        return n_signal * voigtian_cdf(xe, mass, width, resolution) + n_background * flat

    n = len(inside)
    minuit = Minuit(ExtendedBinnedNLL(counts, edges, scaled_cdf), n_signal=0.9 * n, n_background=0.1 * n,
                    mass=Z_MASS_GEV, width=Z_WIDTH_GEV, resolution=0.5)
    minuit.limits["n_signal"] = (0.0, 2.0 * n)
    minuit.limits["n_background"] = (0.0, 2.0 * n)
    minuit.limits["mass"] = (lo, hi)
    minuit.limits["width"] = (0.01, hi - lo)
    # σ = 0 is a pure Breit–Wigner; a floor keeps the Hesse matrix finite at that limit
    minuit.limits["resolution"] = (1e-3, hi - lo)
    minuit.migrad()
    minuit.hesse()
    v, e = minuit.values, minuit.errors
    total = v["n_signal"] + v["n_background"]
    cov = np.asarray(minuit.covariance)[:2, :2]
    # f = b/(s+b): ∂f/∂s = −b/(s+b)², ∂f/∂b = s/(s+b)²
    grad = np.array([-v["n_background"], v["n_signal"]]) / total**2
    return LineShapeFit(
        mass=float(v["mass"]), mass_error=float(e["mass"]), width=float(v["width"]), width_error=float(e["width"]),
        resolution=float(v["resolution"]), resolution_error=float(e["resolution"]),
        background_fraction=float(v["n_background"] / total),
        background_fraction_error=float(math.sqrt(max(grad @ cov @ grad, 0.0))),
        n_in_range=n, fit_range=(lo, hi), valid=bool(minuit.valid and minuit.accurate),
    )


def pull(model: float, model_error: float, truth: float, truth_error: float) -> float:
    """(model − truth) / √(σ_model² + σ_truth²) of two independent measurements; NaN without errors."""
    sigma = math.hypot(model_error, truth_error)
    return (model - truth) / sigma if sigma > 0 and math.isfinite(sigma) else math.nan


def shape_chi2(m_truth: np.ndarray, m_generated: np.ndarray, fit_range: tuple[float, float] = FIT_RANGE_GEV,
               bin_width: float = SHAPE_BIN_WIDTH_GEV) -> dict:
    """Two-sample χ² of the normalised m_μμ histograms in ``fit_range``:
    χ² = Σ (n_i/N − m_i/M)² / (n_i/N² + m_i/M²) over bins not empty in both, ndf = bins − 1.
    Returns ``{"shape_chi2", "shape_ndf", "shape_p_value"}``."""
    from scipy.stats import chi2

    lo, hi = fit_range
    edges = np.linspace(lo, hi, max(2, round((hi - lo) / bin_width)) + 1)
    n, _ = np.histogram(np.asarray(m_truth, dtype=np.float64), edges)
    m, _ = np.histogram(np.asarray(m_generated, dtype=np.float64), edges)
    big_n, big_m = n.sum(), m.sum()
    used = (n + m) > 0
    value = float(np.sum((n[used] / big_n - m[used] / big_m) ** 2 / (n[used] / big_n**2 + m[used] / big_m**2)))
    ndf = int(used.sum() - 1)
    return {"shape_chi2": value, "shape_ndf": ndf, "shape_p_value": float(chi2.sf(value, ndf))}


def lineshape_comparison(m_truth: np.ndarray, m_generated: np.ndarray,
                         fit_range: tuple[float, float] = FIT_RANGE_GEV) -> dict:
    """Both fits and the generated sample's pulls on M and Γ against truth.

    Returns ``{"truth": fit, "generated": fit, "pull_mass", "pull_width", "shape_chi2",
    "shape_ndf", "shape_p_value", "flagged"}`` (fits as :meth:`LineShapeFit.to_dict`;
    ``flagged`` lists ``pull_mass``, ``pull_width``, ``shape``, ``fit`` as each fails), or
    ``{"skipped": reason}`` when a sample has too few events in the window for a fit (a
    generator that misses the peak).
    """
    try:
        truth = fit_lineshape(m_truth, fit_range)
    except InputError as err:
        return {"skipped": f"truth: {err}"}
    try:
        generated = fit_lineshape(m_generated, fit_range)
    except InputError as err:
        return {"skipped": f"generated: {err}", "truth": truth.to_dict()}
    pulls = {f"pull_{p}": pull(getattr(generated, p), getattr(generated, f"{p}_error"),
                               getattr(truth, p), getattr(truth, f"{p}_error")) for p in ("mass", "width")}
    shape = shape_chi2(m_truth, m_generated, fit_range)
    flagged = [p for p, value in pulls.items() if abs(value) > PULL_FLAG]
    flagged += ["shape"] * (shape["shape_p_value"] < SHAPE_P_FLAG) + ["fit"] * (not generated.valid)
    return {"truth": truth.to_dict(), "generated": generated.to_dict(), **pulls, **shape, "flagged": flagged}


def z_lineshape_metric(m_truth: np.ndarray, m_generated: np.ndarray, fit_range: tuple[float, float] = FIT_RANGE_GEV):
    """:func:`lineshape_comparison` as the ``z_lineshape`` metric: its value is the generated
    sample's fitted Z mass (GeV) ± its error; NaN when a fit was skipped."""
    from hepgenbench.metrics.base import MetricResult

    details = lineshape_comparison(m_truth, m_generated, fit_range)
    fit = details.get("generated") or {}
    details["value_is"] = "fitted Z mass (GeV) of the generated sample"
    details["model"] = "Voigtian (Breit-Wigner x Gaussian) + flat, binned extended likelihood"
    return MetricResult(fit.get("mass", math.nan), fit.get("mass_error", math.nan), json_safe(details))
