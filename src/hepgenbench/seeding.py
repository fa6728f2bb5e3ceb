"""One config seed, many independent streams.

Every job derives its own seed from the config's ``seed`` and its labels (dataset, model,
replica, chunk), so that jobs are independent of each other and of the order in which
Snakemake runs them, and the same config always gives the same numbers.
"""

from __future__ import annotations

import zlib

import numpy as np


def derive_seed(base: int, *labels: object) -> int:
    """A 31-bit seed from ``base`` and any labels, stable across processes and platforms."""
    words = [int(base) & 0xFFFFFFFF] + [zlib.crc32(str(label).encode()) for label in labels]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint32)[0] >> 1)
