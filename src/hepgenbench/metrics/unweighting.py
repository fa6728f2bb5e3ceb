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

The raw maximum is set by a single event, so ε fluctuates from sample to sample by as much
as the heaviest weight does. Event generators therefore unweight against a *reduced*
maximum (arXiv:2001.10028): here the median, over bootstrap replicas of the weights, of
each replica's maximum. A replica as large as the sample would hold the heaviest event
with probability 1 − (1 − 1/n)ⁿ ≈ 63 %, so its median maximum would be the raw maximum
again; the replicas are therefore a stated fraction of the sample
(:data:`REPLICA_FRACTION`), and the reduced maximum is the typical maximum of a batch of
that size. Events above it are *overweights*: unweighting keeps them with weight
w / w_max_reduced, and the fraction of the integral they carry above the reduced maximum
is the bias a capped unweighting would accept.
"""

from __future__ import annotations

import math

import numpy as np

from hepgenbench.errors import InputError
from hepgenbench.metrics.base import RandomLike

#: bootstrap replicas of the weights whose maxima set the reduced maximum
REPLICAS = 100
#: each replica's size as a fraction of the sample (see the module docstring)
REPLICA_FRACTION = 0.1
#: the smallest replica: below it the median maximum is too noisy to mean anything
MIN_REPLICA_SIZE = 10


def unweighting_efficiency(log_p: np.ndarray, log_q: np.ndarray, rng: RandomLike = 0) -> dict[str, float]:
    """Quality of q as an importance sampler of p, from events sampled from q.

    With weights w = p/q (p may be unnormalised and −inf outside its support):
    ``efficiency`` = ⟨w⟩ / max w and ``relative_error`` = std(w) / (⟨w⟩ √n), as in the
    module docstring; ``fraction_zero_weight`` is the fraction of events outside p's support;
    and the reduced-maximum figures of :func:`reduced_maximum` (``efficiency_reduced_max``,
    ``reduced_max_over_max``, ``overweight_fraction``, ``overweight_integral_fraction``,
    ``replicas``, ``replica_size``), whose bootstrap draws from ``rng``.
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
        **reduced_maximum(w, rng),
    }


def reduced_maximum(w: np.ndarray, rng: RandomLike = 0, replicas: int = REPLICAS,
                    replica_fraction: float = REPLICA_FRACTION) -> dict[str, float]:
    """Unweighting against the median of bootstrap maxima (arXiv:2001.10028).

    ``w``: non-negative weights, not all 0. Each of ``replicas`` bootstrap replicas draws
    ``max(MIN_REPLICA_SIZE, round(replica_fraction · n))`` weights with replacement;
    w̃ = the median of their maxima. Returns ``efficiency_reduced_max`` = ⟨w⟩ / w̃,
    ``reduced_max_over_max`` = w̃ / max w, ``overweight_fraction`` = the fraction of events
    with w > w̃, ``overweight_integral_fraction`` = Σ (w − w̃)₊ / Σ w, and the replica
    settings.
    """
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 1 or len(w) < 2 or (w < 0).any() or not np.isfinite(w).all() or w.max() <= 0:
        raise InputError(f"weights must be a 1-D array of >= 2 finite non-negative values, not all 0; got shape {w.shape}")
    size = min(len(w), max(MIN_REPLICA_SIZE, round(replica_fraction * len(w))))
    draws = np.random.default_rng(rng).integers(0, len(w), size=(replicas, size))
    w_reduced = float(np.median(w[draws].max(axis=1)))
    return {
        "efficiency_reduced_max": float(w.mean() / w_reduced),
        "reduced_max_over_max": w_reduced / float(w.max()),
        "overweight_fraction": float((w > w_reduced).mean()),
        "overweight_integral_fraction": float(np.clip(w - w_reduced, 0.0, None).sum() / w.sum()),
        "replicas": replicas,
        "replica_size": size,
    }
