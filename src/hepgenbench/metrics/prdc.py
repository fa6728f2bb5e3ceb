"""Precision, recall, density and coverage (PRDC; Naeem et al., arXiv:2002.09797).

With B(x, r) the ball of radius r around x and NND_k(x) the distance from x to its k-th
nearest neighbour within its own sample, for truth X = {x_i} (N events) and generated
Y = {y_j} (M events):

* precision = (1/M) Σ_j 1[∃ i: y_j ∈ B(x_i, NND_k(x_i))]: generated events inside truth's manifold;
* recall = (1/N) Σ_i 1[∃ j: x_i ∈ B(y_j, NND_k(y_j))]: truth events inside the generated manifold;
* density = 1/(kM) Σ_j Σ_i 1[y_j ∈ B(x_i, NND_k(x_i))]: how many truth balls hold each generated
  event, E = 1 when Y follows X's law;
* coverage = (1/N) Σ_i 1[∃ j: y_j ∈ B(x_i, NND_k(x_i))]: truth balls holding a generated event,
  E = 1 − 2^(−k) when Y follows X's law (for N = M; Naeem et al., Sec. 3.2).

The CaloChallenge added them to its evaluation (arXiv:2410.21611). Features are standardised
with truth's mean and standard deviation, so that no one feature's unit sets the radii.
The nearest neighbours come from scikit-learn's :class:`~sklearn.neighbors.NearestNeighbors`,
the ball counts from :func:`~sklearn.metrics.pairwise_distances_chunked` (memory bounded by
its working memory, cost ∝ N·M).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from sklearn.metrics import pairwise_distances_chunked
from sklearn.neighbors import NearestNeighbors

from hepgenbench.errors import InputError
from hepgenbench.metrics.base import MetricResult, RandomLike, as_sample_pair, finite_rows, truth_scale

PRDC_KEYS = ("precision", "recall", "density", "coverage")


def kth_neighbour_radii(x: np.ndarray, k: int) -> np.ndarray:
    """NND_k of every row of ``x`` within ``x`` (itself excluded)."""
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    return distances[:, k]


def _ball_counts(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> Iterator[np.ndarray]:
    """For chunks of ``points``: how many balls B(centre, radius) hold each point."""
    def reduce(chunk: np.ndarray, start: int) -> np.ndarray:
        return (chunk <= radii[None, :]).sum(axis=1)

    yield from pairwise_distances_chunked(points, centres, reduce_func=reduce)


def prdc(truth: np.ndarray, gen: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of ``gen`` against ``truth`` (see the module)."""
    if k < 1:
        raise InputError(f"PRDC needs k ≥ 1 nearest neighbours, got {k}")
    if min(len(truth), len(gen)) <= k:
        raise InputError(f"PRDC with k={k} needs more than {k} events per sample, got {len(truth)} and {len(gen)}")
    r_truth, r_gen = kth_neighbour_radii(truth, k), kth_neighbour_radii(gen, k)
    in_truth_balls = np.concatenate(list(_ball_counts(gen, truth, r_truth)))
    in_gen_balls = np.concatenate(list(_ball_counts(truth, gen, r_gen)))
    nearest_gen, _ = NearestNeighbors(n_neighbors=1).fit(gen).kneighbors(truth)
    return {
        "precision": float((in_truth_balls > 0).mean()),
        "recall": float((in_gen_balls > 0).mean()),
        "density": float(in_truth_balls.sum() / (k * len(gen))),
        "coverage": float((nearest_gen[:, 0] <= r_truth).mean()),
    }


def prdc_metrics(truth: np.ndarray, gen: np.ndarray, k: int = 5, max_events: int = 5_000, repeats: int = 3,
                 rng: RandomLike = 0) -> dict[str, MetricResult]:
    """``prdc_precision``, ``prdc_recall``, ``prdc_density``, ``prdc_coverage``.

    Each sample is shuffled and cut into ``repeats`` disjoint parts of
    n = min(N // repeats, M // repeats, max_events) events; value: the mean of PRDC over the
    pairs of parts, error: their standard deviation / √repeats. PRDC depends on n, so compare
    rows at the same n (the truth row is at it).
    """
    truth, gen = as_sample_pair(truth, gen)
    truth, gen = finite_rows(truth), finite_rows(gen)
    if repeats < 2:
        raise InputError(f"prdc_repeats must be at least 2 (their spread is the error), got {repeats}")
    mean, std = truth_scale(truth)
    truth, gen = (truth - mean) / std, (gen - mean) / std
    generator = np.random.default_rng(rng)
    n = int(min(len(truth) // repeats, len(gen) // repeats, max_events))
    truth_order, gen_order = generator.permutation(len(truth)), generator.permutation(len(gen))
    values = {key: [] for key in PRDC_KEYS}
    for r in range(repeats):
        part = slice(r * n, (r + 1) * n)
        for key, value in prdc(truth[truth_order[part]], gen[gen_order[part]], k).items():
            values[key].append(value)
    # precision and recall of the same law approach 1 only in few dimensions: the truth row says how close
    ideal = {"precision": "the truth row's", "recall": "the truth row's", "density": "1",
             "coverage": f"1 − 2^−{k} = {1 - 2.0**-k:.4g}"}
    return {
        f"prdc_{key}": MetricResult(float(np.mean(v)), float(np.std(v, ddof=1) / np.sqrt(repeats)),
                                    {"k": k, "n_per_sample": n, "repeats": repeats, "repeat_values": v,
                                     "expected_for_same_law": ideal[key], "reference": "arXiv:2002.09797"})
        for key, v in values.items()
    }
