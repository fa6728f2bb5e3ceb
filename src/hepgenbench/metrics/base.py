"""What every metric shares: the result type it returns and the checks on its inputs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hepgenbench.errors import InputError


@dataclass
class MetricResult:
    """A metric value with its uncertainty and whatever detail explains it.

    ``value`` and ``error`` are what the report tables show as ``value ± error``.
    ``details`` carries per-feature breakdowns, fit parameters or sample sizes; it must be
    JSON-serialisable.
    """

    value: float
    error: float = float("nan")
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"value": finite_or_none(self.value), "error": finite_or_none(self.error), **self.details}


def finite_or_none(x: Any) -> float | None:
    """``x`` as a finite float, or None (NaN, inf, None, or not a number): how an absent
    value is stored in JSON and shown in a table."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


# ---------------------------------------------------------------- input checks
#: A seed, a numpy generator, or None (fresh entropy), as ``np.random.default_rng`` takes.
RandomLike = int | np.random.Generator | None


def as_sample_pair(truth: np.ndarray, gen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check that ``truth`` and ``gen`` are ``(N, D)`` arrays with the same ``D``; return float copies.

    A 1-D input is read as one feature.
    """
    arrays = []
    for name, x in (("truth", truth), ("generated", gen)):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2:
            raise InputError(f"{name} sample must be an (events, features) array, got shape {x.shape}")
        if len(x) < 2:
            raise InputError(f"{name} sample has {len(x)} events; a distance needs at least 2")
        arrays.append(x)
    if arrays[0].shape[1] != arrays[1].shape[1]:
        raise InputError(
            f"truth has {arrays[0].shape[1]} features but generated has {arrays[1].shape[1]}: "
            "both samples must have the same columns"
        )
    return arrays[0], arrays[1]


def feature_labels(feature_names: list[str] | None, n_features: int) -> list[str]:
    """The names to report per feature: the given ones (checked against the count) or f0, f1, …"""
    names = list(feature_names) if feature_names is not None else [f"f{j}" for j in range(n_features)]
    if len(names) != n_features:
        raise InputError(f"{len(names)} feature names for {n_features} features")
    return names


def finite_rows(x: np.ndarray) -> np.ndarray:
    """The rows of ``x`` without NaN or inf; the sanity metric counts the others.

    Raises:
        InputError: fewer than 2 finite rows are left (e.g. a diverged generator).
    """
    keep = np.isfinite(x).all(axis=1)
    finite = x if keep.all() else x[keep]  # no copy of a clean sample: every metric calls this
    if len(finite) < 2:
        raise InputError(f"only {len(finite)} of {len(x)} events have finite features; a distance needs at least 2")
    return finite


def truth_scale(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Truth's per-feature mean and standard deviation; a constant feature gets σ = 1."""
    mean = truth.mean(axis=0)
    std = truth.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)
