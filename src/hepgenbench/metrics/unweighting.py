"""Unweighting efficiency: a generator judged as an importance sampler of a known density.

Given events x_i drawn from a model q and a target density p known up to normalisation
(the matrix element times phase space), the weights w_i = p(x_i)/q(x_i) make the sample
an unbiased estimate of ∫p. Two numbers say how good q is as a proposal:

* the unweighting efficiency ε = ⟨w⟩ / max w, the acceptance of hit-or-miss unweighting
  (the fraction of weighted events that survive as unit-weight events);
* the relative Monte-Carlo error of the integral, σ_I / I = std(w) / (⟨w⟩ √n).

These are the figures of merit of neural importance sampling for event generation
(i-flow, arXiv:2001.05486; MadNIS, arXiv:2212.06172). Flat phase space is the baseline a
trained sampler must beat.
"""

from __future__ import annotations

import math

import numpy as np

from hepgenbench.errors import InputError


def unweighting_efficiency(log_p: np.ndarray, log_q: np.ndarray) -> dict[str, float]:
    """Quality of q as an importance sampler of p, from events sampled from q.

    With weights w = p/q (p may be unnormalised and −inf outside its support):
    ``efficiency`` = ⟨w⟩ / max w and ``relative_error`` = std(w) / (⟨w⟩ √n), as in the
    module docstring; ``fraction_zero_weight`` is the fraction of events outside p's support.
    """
    log_w = np.asarray(log_p, dtype=np.float64) - np.asarray(log_q, dtype=np.float64)
    if log_w.ndim != 1 or len(log_w) < 2:
        raise InputError(f"log_p and log_q must be 1-D arrays of the same length >= 2, got log weights of shape {log_w.shape}")
    if np.isnan(log_w).any() or np.isposinf(log_w).any():
        raise InputError("log_p − log_q contains NaN or +inf: log_q must be finite wherever q sampled")
    if not np.isfinite(log_w).any():
        return {"efficiency": 0.0, "relative_error": float("inf"), "n": len(log_w), "fraction_zero_weight": 1.0}
    w = np.exp(log_w - log_w[np.isfinite(log_w)].max())  # scale-free ratios; −inf → 0
    mean = w.mean()
    return {
        "efficiency": float(mean / w.max()),
        "relative_error": float(w.std(ddof=1) / (mean * math.sqrt(len(w)))),
        "n": len(w),
        "fraction_zero_weight": float((w == 0).mean()),
    }
