"""Calorimeter response and energy resolution against incident energy.

Per incident-energy bin (the kind's one rule, :class:`~hepgenbench.data.calo_geometry.EnergyBins`)
with showers of deposited energy E_tot = Σ voxels and incident energy E_inc:

* the response R = ⟨E_tot / E_inc⟩, the calibration a generator must not shift;
* the relative resolution σ/E = std(E_tot/E_inc) / ⟨E_tot/E_inc⟩.

Their errors come from :data:`BOOTSTRAP` bootstrap replicas of the showers of the bin. The
resolution is fitted as the quadrature sum of the stochastic, constant and noise terms
(e.g. the PDG review "Particle detectors at accelerators", calorimetry)

    σ/E = a/√E ⊕ b ⊕ c/E = √(a²/E + b² + c²/E²),   E = ⟨E_inc⟩ of the bin in GeV,

by least squares with iminuit, a, b, c ≥ 0, errors from Hesse. A generator is then judged by
what a physicist would calibrate against: its response bias R_gen/R_truth − 1 and its
resolution bias (σ/E)_gen/(σ/E)_truth − 1 per energy, and its fitted terms beside truth's.
"""

from __future__ import annotations

import math

import numpy as np

from hepgenbench.data.calo_geometry import MIN_EVENTS_PER_ENERGY_BIN, EnergyBins
from hepgenbench.errors import InputError
from hepgenbench.physics import json_safe

#: bootstrap replicas per energy bin for the errors of the response and the resolution
BOOTSTRAP = 200
#: the terms of the resolution fit, in the order of :func:`resolution_model`
TERMS = ("a", "b", "c")
MEV_PER_GEV = 1000.0


def resolution_model(e_gev: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """σ/E = √((a/√E)² + b² + (c/E)²), E in GeV."""
    e_gev = np.asarray(e_gev, dtype=np.float64)
    return np.sqrt(a**2 / e_gev + b**2 + (c / e_gev) ** 2)


def response_per_energy(e_tot: np.ndarray, e_inc: np.ndarray, bins: EnergyBins,
                        rng: np.random.Generator | int = 0, n_bootstrap: int = BOOTSTRAP) -> list[dict]:
    """Response and resolution in each bin of ``bins`` (energies in MeV).

    Returns one dict per bin: ``e_gev`` (mean E_inc), ``n``, ``response``,
    ``response_error``, ``resolution``, ``resolution_error``; a bin with fewer than
    :data:`MIN_EVENTS_PER_ENERGY_BIN` showers has ``skipped`` instead of the numbers.
    """
    e_tot = np.asarray(e_tot, dtype=np.float64).reshape(-1)
    e_inc = np.asarray(e_inc, dtype=np.float64).reshape(-1)
    if e_tot.shape != e_inc.shape:
        raise InputError(f"E_tot and E_inc must have one value per shower, got {e_tot.shape} and {e_inc.shape}")
    rng = np.random.default_rng(rng)
    rows = []
    for i in range(len(bins)):
        mask = bins.mask(e_inc, i) & np.isfinite(e_tot)
        row: dict = {"e_inc_low": bins.low[i], "e_inc_high": bins.high[i], "n": int(mask.sum())}
        if row["n"] < MIN_EVENTS_PER_ENERGY_BIN:
            rows.append({**row, "skipped": f"fewer than {MIN_EVENTS_PER_ENERGY_BIN} showers"})
            continue
        ratio = e_tot[mask] / e_inc[mask]
        replicas = ratio[rng.integers(0, len(ratio), size=(n_bootstrap, len(ratio)))]
        mean, boot_mean = ratio.mean(), replicas.mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            boot_resolution = replicas.std(axis=1, ddof=1) / boot_mean
        rows.append({**row, "e_gev": float(e_inc[mask].mean() / MEV_PER_GEV), "response": float(mean),
                     "response_error": float(boot_mean.std(ddof=1)),
                     "resolution": float(ratio.std(ddof=1) / mean) if mean != 0 else math.nan,
                     "resolution_error": float(np.nanstd(boot_resolution, ddof=1))})
    return rows


def fit_resolution(e_gev: np.ndarray, resolution: np.ndarray, error: np.ndarray) -> dict:
    """Fit a, b, c of :func:`resolution_model` to σ/E at energies ``e_gev`` (GeV).

    Returns ``{"a", "a_error", "b", ..., "chi2", "ndf", "valid"}``, or ``{"skipped": reason}``
    with fewer usable energies than terms.
    """
    from iminuit import Minuit
    from iminuit.cost import LeastSquares

    e_gev, resolution, error = (np.asarray(v, dtype=np.float64) for v in (e_gev, resolution, error))
    usable = np.isfinite(e_gev) & np.isfinite(resolution) & np.isfinite(error) & (error > 0) & (e_gev > 0)
    if usable.sum() < len(TERMS):
        return {"skipped": f"{int(usable.sum())} energies with a resolution; the fit of {', '.join(TERMS)} needs "
                           f"at least {len(TERMS)}"}
    e, r = e_gev[usable], resolution[usable]
    # start from each term alone matching the data where it dominates
    start = {"a": float(r[0] * math.sqrt(e[0])), "b": float(r[-1]) / 2, "c": float(r[0] * e[0]) / 2}
    minuit = Minuit(LeastSquares(e, r, error[usable], resolution_model), **start)
    for term in TERMS:
        minuit.limits[term] = (0.0, None)  # the terms enter squared: their sign is not defined
    minuit.migrad()
    minuit.hesse()
    out = {t: float(minuit.values[t]) for t in TERMS}
    out.update({f"{t}_error": float(minuit.errors[t]) for t in TERMS})
    out.update(chi2=float(minuit.fval), ndf=int(usable.sum() - len(TERMS)), valid=bool(minuit.valid))
    return out


def _ratio(num: float, num_err: float, den: float, den_err: float) -> tuple[float, float]:
    """num/den − 1 and its error, the two independent."""
    if den == 0:
        return math.nan, math.nan
    value = num / den
    return value - 1.0, abs(value) * math.hypot(num_err / num if num else 0.0, den_err / den)


def response_comparison(truth_e_tot: np.ndarray, truth_e_inc: np.ndarray, gen_e_tot: np.ndarray,
                        gen_e_inc: np.ndarray, bins: EnergyBins, seed: int = 0) -> dict:
    """Truth's and a generated sample's response and resolution per energy, their biases,
    and the resolution fit of each.

    Returns ``{"bins": [{e_gev, n_truth, n_generated, response_truth, response_generated,
    response_bias, response_bias_error, resolution_truth, ..., resolution_bias, ...}],
    "fit_truth", "fit_generated", "worst_response_bias", "worst_resolution_bias"}``; the
    worst bias is the one farthest from 0 (signed, with its error), None when no bin holds
    enough showers in both samples.
    """
    truth = response_per_energy(truth_e_tot, truth_e_inc, bins, np.random.default_rng([seed, 0]))
    generated = response_per_energy(gen_e_tot, gen_e_inc, bins, np.random.default_rng([seed, 1]))
    rows = []
    for t, g in zip(truth, generated):
        row = {"e_inc_low": t["e_inc_low"], "e_inc_high": t["e_inc_high"], "n_truth": t["n"], "n_generated": g["n"]}
        if "skipped" in t or "skipped" in g:
            rows.append({**row, "skipped": t.get("skipped") or g.get("skipped")})
            continue
        row["e_gev"] = t["e_gev"]
        for what in ("response", "resolution"):
            row[f"{what}_truth"], row[f"{what}_truth_error"] = t[what], t[f"{what}_error"]
            row[f"{what}_generated"], row[f"{what}_generated_error"] = g[what], g[f"{what}_error"]
            row[f"{what}_bias"], row[f"{what}_bias_error"] = _ratio(g[what], g[f"{what}_error"], t[what], t[f"{what}_error"])
        rows.append(row)
    scored = [r for r in rows if "skipped" not in r]

    def fit(which: str, points: list[dict]) -> dict:
        ok = [p for p in points if "skipped" not in p]
        return fit_resolution([p["e_gev"] for p in ok], [p["resolution"] for p in ok], [p["resolution_error"] for p in ok])

    def worst(what: str) -> dict | None:
        if not scored:
            return None
        row = max(scored, key=lambda r: abs(r[f"{what}_bias"]) if math.isfinite(r[f"{what}_bias"]) else -1.0)
        return {"value": row[f"{what}_bias"], "error": row[f"{what}_bias_error"], "e_gev": row["e_gev"]}

    return {"bins": rows, "fit_truth": fit("truth", truth), "fit_generated": fit("generated", generated),
            "worst_response_bias": worst("response"), "worst_resolution_bias": worst("resolution")}


def calo_response_metric(truth_e_tot: np.ndarray, truth_e_inc: np.ndarray, gen_e_tot: np.ndarray,
                         gen_e_inc: np.ndarray, bins: EnergyBins, seed: int = 0):
    """:func:`response_comparison` as the ``calo_response`` metric: its value is the response
    bias R_gen/R_truth − 1 of the energy farthest from 0, ± its error (NaN with no bin)."""
    from hepgenbench.metrics.base import MetricResult

    details = response_comparison(truth_e_tot, truth_e_inc, gen_e_tot, gen_e_inc, bins, seed)
    worst = details["worst_response_bias"] or {"value": math.nan, "error": math.nan}
    details["value_is"] = "response bias R_gen/R_truth - 1 of the incident energy farthest from 0"
    details["resolution_model"] = "sigma/E = a/sqrt(E) + b + c/E in quadrature, E in GeV"
    return MetricResult(worst["value"], worst["error"], json_safe(details))
