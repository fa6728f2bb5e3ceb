"""Memorisation test: are generated events closer to the training set than new data are?

A generator that copies training events places them at (near) zero distance from their
nearest training neighbour; a healthy one is as far from the training set as an
independent truth sample. The test compares the nearest-neighbour distance distribution
of generated events to the training set with that of held-out truth events, in the spirit
of the "data-copying" tests of Meehan et al. (arXiv:2004.05675) and the distance-to-
closest-record checks of Alaa et al. (arXiv:2102.08921).
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

from hepgenbench.metrics.base import MetricResult, RandomLike, as_sample_pair, finite_rows

#: truth's distance quantile below which a generated event counts as "suspiciously close"
CLOSE_QUANTILE = 0.01


def _subsample(x: np.ndarray, max_n: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_n is None or len(x) <= max_n:
        return x
    return x[np.sort(rng.choice(len(x), max_n, replace=False))]


def memorisation(
    gen: np.ndarray,
    train: np.ndarray,
    truth: np.ndarray,
    rng: RandomLike = 0,
    max_n: int | None = 10_000,
    max_train: int | None = 100_000,
    n_boot: int = 50,
) -> MetricResult:
    """median NN-distance(generated → train) / median NN-distance(truth holdout → train).

    Features are standardised with the training set's mean and std, and distances are
    Euclidean (``sklearn.neighbors.NearestNeighbors``). ``max_n`` generated and truth
    events are queried against up to ``max_train`` training events. Value ≈ 1 for a healthy
    generator, ≪ 1 for one that copies training events (> 1 for one that is merely off).
    A ratio below 1 can also come from a generator that concentrates on the densest region
    (mode collapse), where every event has close neighbours; ``fraction_exact_copies`` and
    ``fraction_closer_than_truth_q01`` tell copying (many near-zero distances) from that.
    Error: bootstrap of both distance samples. ``details["fraction_closer_than_truth_q01"]``
    is the fraction of generated events nearer to a training event than truth's 1%
    distance quantile (≈ 0.01 when healthy).
    """
    truth, gen = as_sample_pair(truth, gen)
    _, train = as_sample_pair(truth, train)
    truth, gen, train = finite_rows(truth), finite_rows(gen), finite_rows(train)
    generator = np.random.default_rng(rng)
    train = _subsample(train, max_train, generator)
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    index = NearestNeighbors(n_neighbors=1).fit((train - mean) / std)
    d_gen = index.kneighbors((_subsample(gen, max_n, generator) - mean) / std)[0][:, 0]
    d_truth = index.kneighbors((_subsample(truth, max_n, generator) - mean) / std)[0][:, 0]
    median_truth = np.median(d_truth)
    ratio = np.median(d_gen) / median_truth if median_truth > 0 else float("nan")
    replicas = [
        np.median(generator.choice(d_gen, len(d_gen))) / np.median(generator.choice(d_truth, len(d_truth)))
        for _ in range(n_boot)
    ]
    threshold = np.quantile(d_truth, CLOSE_QUANTILE)
    return MetricResult(
        float(ratio),
        float(np.std(replicas, ddof=1)) if n_boot > 1 else float("nan"),
        {
            "median_distance_generated": float(np.median(d_gen)),
            "median_distance_truth": float(median_truth),
            "fraction_closer_than_truth_q01": float(np.mean(d_gen < threshold)),
            "fraction_exact_copies": float(np.mean(d_gen == 0.0)),
            "n_generated": len(d_gen),
            "n_truth": len(d_truth),
            "n_train": len(train),
            "standardised_with": "train mean/std",
        },
    )
