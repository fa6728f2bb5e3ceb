"""The truth null of one dataset: truth-vs-truth evaluations on random splits of the truth pool.

A model row scores its sample G (n_generated events) against truth A (N events). Under
the null hypothesis "G is drawn from truth's law" that score is distributed as the score
of a second truth sample against a first, at the same sizes and with the same metric
seed. :func:`truth_null` draws that distribution: each replica shuffles the truth pool
A ∪ B and cuts it into two *disjoint* samples of N and n_generated events, and runs the
evaluate stage's own suite (:func:`hepgenbench.evaluate.evaluate_sample`, restricted to
the null's metrics) on them.

Why re-splits and not a bootstrap or independent samples:

* independent samples would need 2N truth events per replica; the holdout has 2N in all;
* bootstrap halves (drawn with replacement) put duplicated events in the samples: a
  duplicate across the halves is a pair at distance zero, a duplicate within one is a
  spike a classifier can learn, so every distance of the suite is biased and the p-values
  with it;
* a re-split without replacement is an exact draw of the null statistic at (N,
  n_generated): the replicas share events, which makes them dependent (the null's
  quantiles carry more Monte-Carlo error than K independent draws would) but leaves each
  one unbiased. This is the permutation null of a two-sample test
  (arXiv:2409.16336 reviews it for HEP), here over the truth pool only, so that a bad
  model cannot leak into its own null.

The curve for the equivalent sample size (:func:`hepgenbench.confidence.equivalent_sample_size`)
repeats this at smaller sizes n < N, two disjoint samples of n events each.
"""

from __future__ import annotations

import numpy as np

from hepgenbench.errors import InputError
from hepgenbench.io import EventSet
from hepgenbench.records import ConfidenceOptions, EvalOptions, NullRecord
from hepgenbench.seeding import derive_seed

METHOD = "random disjoint re-splits of the truth holdout A ∪ B (without replacement)"
#: smallest sample of the N_eq curve: below it the suite's metrics are not defined (C2ST folds, FPD)
MIN_CURVE_SIZE = 50


def _concat(a: EventSet, b: EventSet) -> EventSet:
    """A ∪ B as one event set (same features, conditions and kind)."""
    def both(x, y):
        return None if x is None else np.concatenate([x, y])

    return EventSet(np.concatenate([a.features, b.features]), a.feature_names, kind=a.kind, transforms=a.transforms,
                    condition=both(a.condition, b.condition), condition_names=a.condition_names,
                    log_density=both(a.log_density, b.log_density), units=a.units, meta=dict(a.meta))  # fmt: skip


def split_pool(n_pool: int, n_a: int, n_b: int, seed: int, label: object) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random index sets of ``n_a`` and ``n_b`` out of ``range(n_pool)``
    (sorted), seeded by ``(seed, "null", label)``: one replica of the null."""
    if n_a + n_b > n_pool:
        raise InputError(f"the truth null needs {n_a} + {n_b} truth events; the holdout has {n_pool}")
    perm = np.random.default_rng(derive_seed(seed, "null", label)).permutation(n_pool)
    return np.sort(perm[:n_a]), np.sort(perm[n_a : n_a + n_b])


def truth_null(
    truth_a: EventSet,
    truth_b: EventSet,
    train: EventSet,
    evaluation: EvalOptions,
    confidence: ConfidenceOptions,
    seed: int,
    dataset: str = "",
    n_generated: int | None = None,
    log=lambda *args: None,
) -> NullRecord:
    """Draw the truth null and the N_eq curve of one dataset.

    Args:
        truth_a, truth_b: the two truth holdouts; their union is the pool.
        train: the training set (for metrics that need it).
        evaluation: the evaluate stage's options: the null must repeat its computation.
        confidence: how many replicas, which metrics, the curve's sizes.
        seed: the evaluate stage's metric seed of the dataset (every row uses it).
        dataset: the dataset's name, for the record.
        n_generated: events of the model rows (by default N = len(truth_a), what the
            sample stage draws).
        log: progress messages.

    Raises:
        InputError: a null metric that is not a headline metric of the suite, or a pool
            too small for two disjoint samples of N and n_generated events.
    """
    from hepgenbench.evaluate import OPTIONAL_KEYS, evaluate_sample
    from hepgenbench.metrics import HEADLINE

    known = {k for k, _, _ in HEADLINE} - (OPTIONAL_KEYS - {"w1_observables_mean"})
    unknown = [k for k in confidence.null_metrics if k not in known]
    if unknown:
        raise InputError(f"config key confidence.null_metrics: {unknown} have no truth null; "
                         f"choose among {sorted(known)}")  # fmt: skip
    pool = _concat(truth_a, truth_b)
    n_truth = len(truth_a)
    n_gen = n_truth if n_generated is None else int(n_generated)
    if n_truth + n_gen > len(pool):
        raise InputError(f"the truth null needs {n_truth} + {n_gen} truth events; the holdout has {len(pool)}")
    only = frozenset(confidence.null_metrics)
    notes: dict[str, str] = {}

    def evaluate(n_a: int, n_b: int, label: object) -> dict[str, float | None]:
        index_a, index_b = split_pool(len(pool), n_a, n_b, seed, label)
        a, b = pool.subset(index_a), pool.subset(index_b)
        try:
            result = evaluate_sample(a, b, train, evaluation, seed=seed, only=only)
        except InputError:  # a metric undefined at this size (too few events for its folds): find which
            result = {}
            for key in only:
                try:
                    result.update(evaluate_sample(a, b, train, evaluation, seed=seed, only={key}))
                except InputError as err:
                    notes.setdefault(key, f"undefined at {n_a} events: {err}")
        return {k: result[k]["value"] for k in only if k in result}

    replicas: dict[str, list[float | None]] = {k: [] for k in confidence.null_metrics}
    for k in range(confidence.null_replicas):
        values = evaluate(n_truth, n_gen, k)
        for key in replicas:
            replicas[key].append(values.get(key))
        log(f"null replica {k + 1}/{confidence.null_replicas} at N = {n_truth}")

    sizes = sorted({int(round(f * n_truth)) for f in confidence.neq_fractions if f * n_truth >= MIN_CURVE_SIZE})
    curve: dict[str, list[list[float | None]]] = {k: [] for k in confidence.null_metrics}
    for n in sizes:
        draws = [evaluate(n, n, ("curve", n, r)) for r in range(confidence.neq_replicas)]
        for key in curve:
            curve[key].append([d.get(key) for d in draws])
        log(f"N_eq curve: {confidence.neq_replicas} truth-vs-truth evaluation(s) at n = {n}")
    if confidence.null_replicas and n_gen == n_truth:
        sizes.append(n_truth)
        for key in curve:
            curve[key].append(replicas[key])
    for key in confidence.null_metrics:
        if all(v is None for v in replicas[key]) and confidence.null_replicas:
            notes.setdefault(key, "no value for this dataset (e.g. no derived observables)")
    return NullRecord(dataset=dataset, n_truth=n_truth, n_generated=n_gen, n_pool=len(pool),
                      n_replicas=confidence.null_replicas, seed=seed, method=METHOD, replicas=replicas,
                      curve_sizes=sizes, curve=curve, notes=notes)  # fmt: skip
