"""How sure the report is: p-values under the truth null, ranking probabilities, N_eq.

Pure functions on arrays; the null's samples come from :mod:`hepgenbench.null` and the
report (:mod:`hepgenbench.report`) reads the results. Every function takes *scores*: a
metric's distance from its ideal as the report ranks it (``report.rank_score``: the
value, |AUC − 0.5|, |r − 1| or −value), so that larger is always worse.

**p-values.** With s the row's score and s_1 … s_K the scores of K truth-vs-truth draws
at the same sample size, the p-value is the rank p-value of a Monte-Carlo (permutation)
test (Davison & Hinkley 1997, eq. 4.11; Phipson & Smyth, arXiv:1603.05766):

    p = (1 + #{k : s_k ≥ s}) / (K + 1).

Under the null (the row's sample drawn from truth's law) s is exchangeable with the s_k,
so P(p ≤ j/(K+1)) = j/(K+1) exactly: p is uniform on its grid and never 0. The smallest
p-value a row can reach is 1/(K+1); :func:`randomized_p_value` spreads p over its grid
cell, which makes it exactly continuous-uniform (used by the calibration test).

**Multiple testing.** A row carries one p-value per metric, all computed on the same two
samples. The report corrects them with Benjamini–Hochberg (:func:`bh_adjust`, BH 1995)
rather than Holm, for two reasons:

* the verdict "compatible with truth" (every adjusted p above the level α) is then
  Simes' global test of "this sample is drawn from truth's law" (Simes 1986), which
  keeps its level α when the metrics are positively dependent (Benjamini & Yekutieli
  2001, PRDS), as distances of one pair of samples are: a mismodelling raises them all;
* with Monte-Carlo p-values no smaller than 1/(K+1), Holm (≡ Bonferroni for the global
  verdict) can only reject when 1/(K+1) ≤ α/m, i.e. K ≳ 20 m replicas of the whole suite;
  BH rejects when j metrics reach 1/(K+1) ≤ j α/m, so a row that fails on several metrics
  is caught with K = 39.

**Ranking probability.** :func:`draw_scores` draws each model's metrics from a normal
with the row's value and statistical error (one training replica picked at random per
draw when there are several, so that the seed spread enters); :func:`ranking_statistics`
applies the report's ranking rule (mean rank over metrics, ties averaged) to each draw.

**Equivalent truth sample size.** :func:`equivalent_sample_size` interpolates the
truth-vs-truth score against log N and reads off where it equals the model's score
(the KS scaling of the CMS HGCal challenge, generalised to any metric).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import false_discovery_control, rankdata

from hepgenbench.errors import InputError


# ---------------------------------------------------------------- p-values
def p_value(score: float, null_scores: Sequence[float]) -> float:
    """Rank p-value (1 + #{s_k ≥ s}) / (K + 1) of ``score`` among the ``null_scores``.

    Ties count against the row (≥), so a discrete metric (a fraction that is 0 for truth)
    stays conservative. NaN null scores are dropped.

    Raises:
        InputError: no finite null score, or a NaN ``score``.
    """
    null = np.asarray(null_scores, dtype=np.float64)
    null = null[np.isfinite(null)]
    if len(null) == 0:
        raise InputError("a p-value needs at least one finite truth-vs-truth draw")
    if not math.isfinite(score):
        raise InputError(f"a p-value needs a finite score, got {score}")
    return float((1 + np.count_nonzero(null >= score)) / (len(null) + 1))


def randomized_p_value(score: float, null_scores: Sequence[float], u: float) -> float:
    """:func:`p_value` spread uniformly over its grid cell: (#{s_k > s} + u (1 + #{s_k = s})) / (K + 1).

    With u ~ U(0, 1) independent of the data it is exactly U(0, 1) under the null
    (Davison & Hinkley 1997, §4.2.5), ties included; ``p_value`` is its value at u = 1.
    """
    null = np.asarray(null_scores, dtype=np.float64)
    null = null[np.isfinite(null)]
    above = np.count_nonzero(null > score)
    ties = np.count_nonzero(null == score)
    return float((above + u * (1 + ties)) / (len(null) + 1))


def bh_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (scipy's ``false_discovery_control``); NaN stays NaN.

    The adjusted value of p_(i) (the i-th smallest of m) is min_{j ≥ i} m p_(j) / j,
    capped at 1 (Benjamini & Hochberg, JRSS B 57 (1995) 289).
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = false_discovery_control(p[finite], method="bh")
    return out


def compatible(adjusted: Sequence[float], level: float) -> bool | None:
    """Whether every adjusted p-value exceeds ``level``; None when there is none."""
    p = np.asarray(adjusted, dtype=np.float64)
    p = p[np.isfinite(p)]
    return None if len(p) == 0 else bool((p > level).all())


# ---------------------------------------------------------------- ranking probability
def draw_scores(values: Sequence[np.ndarray], errors: Sequence[np.ndarray], to_score, n_draws: int,
                rng: np.random.Generator) -> np.ndarray:
    """Scores of every model on every metric, ``n_draws`` times: an array (draws, models, metrics).

    Args:
        values: per model, an array (replicas, metrics) of values; NaN where a metric is absent.
        errors: the same shape, the statistical errors; NaN or absent errors count as 0.
        to_score: ``to_score(values, j)`` maps drawn values of metric j to scores (larger is worse).
        n_draws: how many draws.
        rng: the random stream.

    Each draw picks one replica per model uniformly (training-seed spread) and adds normal
    noise of that replica's error (the evaluation's own spread). Normal draws are used for
    every metric alike: the suite stores one value and error per metric, and its native
    replicas (C2ST folds, FPD fit points, KPD batches) are of different kinds.
    """
    n_metrics = values[0].shape[1] if values else 0
    out = np.empty((n_draws, len(values), n_metrics))
    for m, (v, e) in enumerate(zip(values, errors)):
        v, e = np.atleast_2d(v), np.nan_to_num(np.atleast_2d(e), nan=0.0)
        pick = rng.integers(0, len(v), n_draws)
        out[:, m, :] = v[pick] + e[pick] * rng.standard_normal((n_draws, n_metrics))
    for j in range(n_metrics):
        out[:, :, j] = to_score(out[:, :, j], j)
    return out


@dataclass(frozen=True)
class RankingStatistics:
    """What :func:`ranking_statistics` finds over the draws, per model (and metric)."""

    p_best: np.ndarray  # (models,): probability of the best mean rank (ties shared)
    p_best_metric: np.ndarray  # (models, metrics): probability of the best score per metric
    rank_low: np.ndarray  # (models,): 16 % quantile of the model's place (1 = best)
    rank_high: np.ndarray  # (models,): 84 % quantile
    interval: tuple[float, float] = (0.16, 0.84)


def ranking_statistics(scores: np.ndarray, interval: tuple[float, float] = (0.16, 0.84)) -> RankingStatistics:
    """The report's ranking rule applied to every draw of :func:`draw_scores`.

    Per draw: rank the models on each metric (1 = lowest score, ties averaged, NaN
    unranked), average each model's ranks over its metrics, and place the models by that
    mean (ties averaged). A model without any score gets the last place.
    """
    n_draws, n_models, _ = scores.shape
    ranks = rankdata(scores, axis=1, method="average", nan_policy="omit")
    with warnings.catch_warnings():  # a model with no metric in a draw: "mean of empty slice"
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_rank = np.nanmean(ranks, axis=2)
    mean_rank = np.where(np.isnan(mean_rank), np.inf, mean_rank)
    place = rankdata(mean_rank, axis=1, method="average")
    p_best = _share_of_best(mean_rank)
    best_metric = np.stack([_share_of_best(np.where(np.isnan(scores[:, :, j]), np.inf, scores[:, :, j]))
                            for j in range(scores.shape[2])], axis=1) if scores.shape[2] else np.zeros((n_models, 0))  # fmt: skip
    low, high = np.quantile(place, interval, axis=0, method="inverted_cdf")
    return RankingStatistics(p_best, best_metric, low, high, interval)


def _share_of_best(x: np.ndarray) -> np.ndarray:
    """Per column of a (draws, models) array, the mean share of the minimum (ties split)."""
    lowest = x.min(axis=1, keepdims=True)
    best = (x == lowest) & np.isfinite(lowest)
    counts = best.sum(axis=1, keepdims=True)
    return (best / np.maximum(counts, 1)).mean(axis=0)


# ---------------------------------------------------------------- equivalent sample size
@dataclass(frozen=True)
class EquivalentSize:
    """N_eq, or the bound it lies beyond: ``relation`` is ``"="``, ``"<"`` or ``"≥"``."""

    n: float
    relation: str

    def text(self) -> str:
        """``1200`` (two significant figures), or the bound: ``< 62``, ``≥ 4000``."""
        if self.relation == "=":
            return f"{float(f'{self.n:.2g}'):.0f}"
        return f"{self.relation} {self.n:.0f}"


def equivalent_sample_size(sizes: Sequence[float], truth_scores: Sequence[float], score: float) -> EquivalentSize:
    """The truth sample size N at which truth-vs-truth scores ``score``.

    ``truth_scores[i]`` is the mean truth-vs-truth score at ``sizes[i]`` events per
    sample. The curve is made non-increasing in N (a running minimum: more truth can only
    look more alike; the raw means fluctuate) and interpolated linearly in log N between
    the points. A score worse than the smallest size's gives ``< sizes[0]``; one as good
    as or better than the largest size's gives ``> sizes[-1]``: no extrapolation.

    Raises:
        InputError: fewer than two sizes, sizes not increasing, or a non-finite score.
    """
    n = np.asarray(sizes, dtype=np.float64)
    y = np.asarray(truth_scores, dtype=np.float64)
    keep = np.isfinite(y)
    n, y = n[keep], y[keep]
    if len(n) < 2 or np.any(np.diff(n) <= 0):
        raise InputError(f"N_eq needs truth-vs-truth scores at two or more increasing sizes, got {list(n)}")
    if not math.isfinite(score):
        raise InputError(f"N_eq needs a finite score, got {score}")
    y = np.minimum.accumulate(y)
    if score > y[0]:
        return EquivalentSize(float(n[0]), "<")
    if score <= y[-1]:
        return EquivalentSize(float(n[-1]), "≥")
    j = int(np.flatnonzero(y >= score)[-1])  # y[j] ≥ score > y[j + 1]
    t = (y[j] - score) / (y[j] - y[j + 1])
    return EquivalentSize(float(np.exp(np.log(n[j]) + t * (np.log(n[j + 1]) - np.log(n[j])))), "=")


__all__ = [
    "EquivalentSize",
    "RankingStatistics",
    "bh_adjust",
    "compatible",
    "draw_scores",
    "equivalent_sample_size",
    "p_value",
    "randomized_p_value",
    "ranking_statistics",
]
