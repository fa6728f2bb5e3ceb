"""Binned divergences per feature: KL(truth‖gen), Jensen–Shannon and separation power.

Binning: ``n_bins`` bins of equal *truth* probability (edges at truth's quantiles), with
the outermost bins open to ±∞ so that generated events outside truth's range are
counted, not dropped. Discrete features whose quantiles coincide get fewer bins.

Empty-bin policy: the KL divergence of densities is infinite where q = 0 and p > 0, and a
histogram of a finite sample has empty bins by chance. For KL and JSD every bin of both
histograms gets a pseudo-count ε = 0.5 events (Jeffreys/Krichevsky–Trofimov prior) before
normalising, p_i = (n_i + ε)/(N + ε·B). A bin that a generator never fills then
contributes a large but finite log(2N/B)-sized term. The separation power needs no
pseudo-count (0/0 bins contribute 0) and is computed on the raw normalised histograms,
as in the CaloChallenge evaluation (arXiv:2410.21611, its ``evaluate.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse
from scipy.special import rel_entr

from hepgenbench.errors import InputError
from hepgenbench.metrics.base import MetricResult, RandomLike, as_sample_pair, feature_labels, finite_rows

#: pseudo-count added to every bin of both histograms for KL and JSD (see module docstring)
PSEUDO_COUNT = 0.5


def quantile_bin_edges(truth_column: np.ndarray, n_bins: int) -> np.ndarray:
    """Interior bin edges at truth's quantiles (duplicates removed); outer bins are open."""
    edges = np.quantile(truth_column, np.linspace(0.0, 1.0, n_bins + 1)[1:-1])
    return np.unique(edges)


def kl_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Σ p log(p/q) over the last axis (natural log)."""
    return rel_entr(p, q).sum(axis=-1)


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen–Shannon divergence ½KL(p‖m) + ½KL(q‖m), m = (p+q)/2, in nats (≤ ln 2)."""
    m = 0.5 * (p + q)
    return 0.5 * kl_divergence(p, m) + 0.5 * kl_divergence(q, m)


def separation_power(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """½ Σ (p−q)²/(p+q) of two normalised histograms, in [0, 1] (arXiv:2410.21611, Eq. 4.1)."""
    total = p + q
    return 0.5 * np.divide((p - q) ** 2, total, out=np.zeros_like(total), where=total > 0).sum(axis=-1)


#: nonzeros of one block of the one-hot bin matrix (bounds :func:`_histograms`' memory)
ONE_HOT_BLOCK = 4_000_000


def _histograms(bin_index: np.ndarray, n_bins: np.ndarray, weights: np.ndarray) -> list[np.ndarray]:
    """Per feature, ``(B, n_bins_j)`` weighted counts for ``B`` weightings of the events;
    ``bin_index`` is feature-major, ``(features, events)``.

    Every weighting of every feature is one product ``weights @ one_hot``, with ``one_hot``
    the sparse (events × all features' bins) indicator matrix, built for a block of features
    at a time so that its memory stays bounded.
    """
    n_features, n = bin_index.shape
    per_block = max(1, ONE_HOT_BLOCK // max(n, 1))
    out = []
    for first in range(0, n_features, per_block):
        nb = n_bins[first:first + per_block]
        offsets = np.concatenate([[0], np.cumsum(nb)[:-1]])
        columns = (bin_index[first:first + per_block] + offsets[:, None]).T.ravel()  # event-major, as CSR rows
        one_hot = sparse.csr_matrix((np.ones(len(columns)), columns, np.arange(0, len(columns) + 1, len(nb))),
                                    shape=(n, int(nb.sum())))
        counts = np.asarray((one_hot.T @ weights.T).T)
        out.extend(np.split(counts, offsets[1:], axis=1))
    return out


def histogram_divergences(
    truth: np.ndarray,
    gen: np.ndarray,
    n_bins: int = 50,
    n_boot: int = 10,
    rng: RandomLike = 0,
    feature_names: Sequence[str] | None = None,
) -> dict[str, MetricResult]:
    """KL(truth‖gen), JSD and separation power per feature, each with the mean over features.

    See the module docstring for the binning and the empty-bin policy. Errors: both
    samples are bootstrapped ``n_boot`` times (the same event multiplicities for every
    feature, so feature correlations enter the error of the mean) and the error is the
    standard deviation of the replica values. The bootstrap replicas also show the
    finite-sample bias of binned divergences (they are positive for identical densities,
    about (B−1)/(2N) per sample for KL), which is why the truth-vs-truth noise floor
    matters.

    Returns:
        ``{"kl_mean", "jsd_mean", "separation_power_mean"}`` → :class:`MetricResult`, each
        with per-feature values and errors in ``details["per_feature"]``.
    """
    truth, gen = as_sample_pair(truth, gen)
    truth, gen = finite_rows(truth), finite_rows(gen)
    if n_bins < 2:
        raise InputError(f"n_bins must be at least 2, got {n_bins}")
    names = feature_labels(feature_names, truth.shape[1])
    generator = np.random.default_rng(rng)
    truth_t, gen_t = np.ascontiguousarray(truth.T), np.ascontiguousarray(gen.T)  # feature-major: contiguous columns
    edges = [quantile_bin_edges(column, n_bins) for column in truth_t]
    n_bins_used = np.array([len(e) + 1 for e in edges])
    truth_bins = np.stack([np.searchsorted(e, column, side="right") for e, column in zip(edges, truth_t)])
    gen_bins = np.stack([np.searchsorted(e, column, side="right") for e, column in zip(edges, gen_t)])
    # weighting 0 is the nominal sample, the rest are bootstrap multiplicities
    def multiplicities(n: int) -> np.ndarray:
        return np.vstack([np.ones(n)] + [np.bincount(generator.integers(0, n, n), minlength=n) for _ in range(n_boot)])

    truth_w, gen_w = multiplicities(len(truth)), multiplicities(len(gen))
    truth_h = _histograms(truth_bins, n_bins_used, truth_w)
    gen_h = _histograms(gen_bins, n_bins_used, gen_w)

    values = {"kl": [], "jsd": [], "separation_power": []}  # each: per feature, (1 + n_boot,)
    for th, gh in zip(truth_h, gen_h):
        n_t, n_g = th.sum(axis=1, keepdims=True), gh.sum(axis=1, keepdims=True)
        p_smooth = (th + PSEUDO_COUNT) / (n_t + PSEUDO_COUNT * th.shape[1])
        q_smooth = (gh + PSEUDO_COUNT) / (n_g + PSEUDO_COUNT * gh.shape[1])
        values["kl"].append(kl_divergence(p_smooth, q_smooth))
        values["jsd"].append(js_divergence(p_smooth, q_smooth))
        values["separation_power"].append(separation_power(th / n_t, gh / n_g))

    results = {}
    for key, per_feature in values.items():
        arr = np.stack(per_feature, axis=1)  # (1 + n_boot, D)
        nominal, replicas = arr[0], arr[1:]
        error = float(replicas.mean(axis=1).std(ddof=1)) if n_boot > 1 else float("nan")
        feature_errors = replicas.std(axis=0, ddof=1) if n_boot > 1 else np.full(len(names), np.nan)
        results[f"{key}_mean"] = MetricResult(
            float(nominal.mean()),
            error,
            {
                "per_feature": {
                    name: {"value": float(nominal[j]), "error": float(feature_errors[j]), "n_bins": int(n_bins_used[j])}
                    for j, name in enumerate(names)
                },
                "binning": f"{n_bins} equal-probability truth-quantile bins, open outer bins",
                "pseudo_count": PSEUDO_COUNT if key != "separation_power" else 0.0,
                "n_boot": n_boot,
            },
        )
    return results
