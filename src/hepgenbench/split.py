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


def split_indices(n_events: int, fractions: SplitFractions, seed: int) -> dict[str, np.ndarray]:
    """Shuffle ``range(n_events)`` with ``seed`` and cut it into the five disjoint sets."""
    perm = np.random.default_rng(seed).permutation(n_events)
    n_train = int(round(fractions.train * n_events))
    n_val = int(round(fractions.val * n_events))
    n_test = int(round(fractions.test * n_events))
    n_half = (n_events - n_train - n_val - n_test) // 2
    bounds = np.cumsum([0, n_train, n_val, n_test, n_half, n_half])
    out = {name: np.sort(perm[bounds[i] : bounds[i + 1]]) for i, name in enumerate(SPLITS)}
    short = {k: len(v) for k, v in out.items() if len(v) < MIN_EVENTS[k]}
    if short:
        raise InputError(
            f"{n_events} event(s) are too few for the split {fractions}: {short} fall below the minimum "
            f"{ {k: MIN_EVENTS[k] for k in short} }; generate or select more events"
        )
    return out


def write_split(path: str, indices: dict[str, np.ndarray], seed: int) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name, idx in indices.items():
            f.create_dataset(name, data=idx)
        f.attrs["seed"] = seed


def read_split(path: str) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {name: f[name][()] for name in SPLITS}
