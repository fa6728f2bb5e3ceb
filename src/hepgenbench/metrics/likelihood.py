"""Likelihood metrics for models with a density: held-out NLL per dimension and exact KL.

For flows log q(x) is exact; for a VAE it is a lower bound (ELBO or importance-weighted),
so its NLL is an upper bound, flagged ``is_bound``. Both functions expect log-densities in
the *physical* feature space of the truth events, i.e. including the log-Jacobian of the
preprocessing, so that models with different preprocessing compare on one scale
(Theis et al., arXiv:1511.01844, on comparing likelihoods across models).
"""

from __future__ import annotations

import numpy as np

from hepgenbench.errors import InputError
from hepgenbench.metrics.base import MetricResult


def _as_log_density(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if len(x) < 2:
        raise InputError(f"{name} needs at least 2 events, got {len(x)}")
    if np.isnan(x).any():
        raise InputError(f"{name} contains {int(np.isnan(x).sum())} NaN log-densities; expected finite values or -inf")
    return x


def nll_per_dim(log_q_truth: np.ndarray, n_dims: int, is_bound: bool = False) -> MetricResult:
    """Mean −log q(x) over held-out truth events, divided by the dimension D.

    Error: the standard error of the mean, /D. A truth event that the model gives zero
    density (log q = −inf) makes the NLL infinite, which is reported as such.
    """
    log_q = _as_log_density(log_q_truth, "log_q_truth")
    if n_dims < 1:
        raise InputError(f"n_dims must be positive, got {n_dims}")
    nll = -log_q / n_dims
    finite = bool(np.isfinite(nll).all())
    return MetricResult(
        float(nll.mean()) if finite else float("inf"),
        float(nll.std(ddof=1) / np.sqrt(len(nll))) if finite else float("nan"),
        {"is_bound": bool(is_bound), "n_events": len(nll), "n_dims": int(n_dims), "n_zero_density": int((~np.isfinite(nll)).sum())},
    )


def kl_exact(log_p_truth: np.ndarray, log_q_truth: np.ndarray) -> MetricResult:
    """KL(p‖q) = E_p[log p − log q], estimated on truth events x ~ p with known log p.

    Monte-Carlo estimate over the truth events; error = standard error of the mean. Only
    meaningful where the true density p is known (the phase-space dataset).
    """
    log_p = _as_log_density(log_p_truth, "log_p_truth (truth log_density)")
    log_q = _as_log_density(log_q_truth, "log_q_truth")
    if len(log_p) != len(log_q):
        raise InputError(f"log_p_truth has {len(log_p)} events but log_q_truth has {len(log_q)}")
    if not np.isfinite(log_p).all():
        raise InputError("log_p_truth has -inf/inf entries: truth events must lie inside the support of p")
    ratio = log_p - log_q
    finite = bool(np.isfinite(ratio).all())
    return MetricResult(
        float(ratio.mean()) if finite else float("inf"),
        float(ratio.std(ddof=1) / np.sqrt(len(ratio))) if finite else float("nan"),
        {"n_events": len(ratio), "n_zero_density": int((~np.isfinite(ratio)).sum())},
    )
