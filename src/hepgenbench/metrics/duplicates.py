"""Exact copies: events that appear twice, within one sample or across two.

A copy is not a perfect generator. A generated file that holds truth's own events, or a
truth file whose entries repeat one collision (a NanoAOD-like tree with one entry per muon
reconstruction type, say), puts the same event on both sides of a two-sample test: the
classifier then scores *below* 0.5, which reads as a better-than-truth row. These counts
say when that happened.

Rows are compared "within float precision": each value is rounded to float32 first, so an
event written as float64 by one tool and as float32 by another is still the same event.
Rows are hashed column by column (FNV-1a over the float32 bit patterns), so memory is 8
bytes per event whatever the number of features, and chunks can be hashed as they stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def row_hashes(*columns: np.ndarray | None) -> np.ndarray:
    """A 64-bit hash per row of the horizontally stacked ``columns`` (``None`` skipped), after
    rounding to float32; ``-0.0`` and ``0.0`` hash alike, as do all NaNs."""
    arrays = [np.asarray(c, dtype=np.float32) for c in columns if c is not None]
    parts = [a[:, None] if a.ndim == 1 else a.reshape(a.shape[0], int(np.prod(a.shape[1:]))) for a in arrays]
    n = len(parts[0]) if parts else 0
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for part in parts:
            values = part + np.float32(0.0)  # -0.0 + 0.0 == +0.0
            values[np.isnan(values)] = np.nan
            bits = values.view(np.uint32).astype(np.uint64)
            for j in range(bits.shape[1]):
                h ^= bits[:, j]
                h *= _FNV_PRIME
    return h


@dataclass(frozen=True)
class DuplicateCounts:
    """How many rows of a sample repeat, within it and against a reference sample."""

    n_events: int
    #: rows equal to an earlier row of the same sample
    n_internal: int
    #: rows equal to some row of the reference (truth)
    n_copies_of_reference: int

    @property
    def fraction_internal(self) -> float:
        return self.n_internal / self.n_events if self.n_events else 0.0

    @property
    def fraction_copies(self) -> float:
        return self.n_copies_of_reference / self.n_events if self.n_events else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {"n_events": self.n_events, "n_internal_duplicates": self.n_internal,
                "n_copies_of_truth": self.n_copies_of_reference}  # fmt: skip


def n_internal_duplicates(hashes: np.ndarray) -> int:
    """Rows whose hash an earlier row already had."""
    return int(len(hashes) - len(np.unique(hashes)))


def duplicate_counts(sample_hashes: np.ndarray, reference_hashes: np.ndarray | None = None) -> DuplicateCounts:
    """Count the repeated rows of a sample, and its rows found in a reference, from
    :func:`row_hashes` of each."""
    copies = 0 if reference_hashes is None else int(np.isin(sample_hashes, reference_hashes).sum())
    return DuplicateCounts(len(sample_hashes), n_internal_duplicates(sample_hashes), copies)


def entries_per_key(event_key: np.ndarray) -> tuple[int, int]:
    """``(n_entries, n_distinct_events)`` of an ``(N, K)`` integer event key."""
    return len(event_key), len(np.unique(event_key, axis=0))
