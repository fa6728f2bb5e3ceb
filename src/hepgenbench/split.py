"""Disjoint, seeded train / validation / test / truth-holdout splits.

The truth-holdout is never trained on. It is cut into two equal halves, A and B: models
are scored against A, and the same metrics on A against B give the noise floor at the
same sample size.
"""

from __future__ import annotations

import h5py
import numpy as np

from hepgenbench.errors import InputError
from hepgenbench.io import atomic_path
from hepgenbench.records import SplitFractions

SPLITS = ("train", "val", "test", "truth_a", "truth_b")
#: Fewest events a split may hold: below this the metrics and early stopping mean nothing.
MIN_EVENTS = {"train": 10, "val": 5, "test": 5, "truth_a": 10, "truth_b": 10}


def split_indices(n_events: int, fractions: SplitFractions, seed: int,
                  event_key: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Shuffle ``range(n_events)`` with ``seed`` and cut it into the five disjoint sets.

    With an ``(n_events, K)`` ``event_key``, the shuffle moves whole events: every entry of
    one collision lands in the same set, and each cut falls at the first event boundary at
    or after its nominal position.
    """
    n_train = int(round(fractions.train * n_events))
    n_val = int(round(fractions.val * n_events))
    n_test = int(round(fractions.test * n_events))
    n_half = (n_events - n_train - n_val - n_test) // 2
    bounds = np.cumsum([0, n_train, n_val, n_test, n_half, n_half])
    perm, bounds = grouped_permutation(n_events, seed, event_key, bounds)
    out = {name: np.sort(perm[bounds[i] : bounds[i + 1]]) for i, name in enumerate(SPLITS)}
    short = {k: len(v) for k, v in out.items() if len(v) < MIN_EVENTS[k]}
    if short:
        raise InputError(
            f"{n_events} event(s) are too few for the split {fractions}: {short} fall below the minimum "
            f"{ {k: MIN_EVENTS[k] for k in short} }; generate or select more events"
        )
    return out


def grouped_permutation(n_events: int, seed: int, event_key: np.ndarray | None,
                        bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A seeded permutation of the entries and cut positions ``bounds`` into it.

    Without a key, entries are shuffled one by one and ``bounds`` is returned unchanged.
    With one, the distinct events are shuffled, each event's entries stay together, and
    every bound moves to the next event boundary (the last bound never exceeds its own
    value, so a final set can lose a partial event but never spill past its end)."""
    rng = np.random.default_rng(seed)
    if event_key is None:
        return rng.permutation(n_events), np.asarray(bounds)
    _, group = np.unique(np.asarray(event_key).reshape(n_events, -1), axis=0, return_inverse=True)
    group = group.reshape(-1)
    position = rng.permutation(group.max() + 1)[group]  # each event's place in the shuffle
    perm = np.argsort(position, kind="stable")
    # the positions in perm where one event's entries end and the next one's begin
    edges = np.concatenate([[0], np.flatnonzero(np.diff(position[perm])) + 1, [n_events]])
    up = edges[np.searchsorted(edges, bounds[:-1], side="left")]
    down = edges[np.searchsorted(edges, bounds[-1], side="right") - 1]
    return perm, np.append(up, down)


def write_split(path: str, indices: dict[str, np.ndarray], seed: int) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name, idx in indices.items():
            f.create_dataset(name, data=idx)
        f.attrs["seed"] = seed


def read_split(path: str) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {name: f[name][()] for name in SPLITS}
