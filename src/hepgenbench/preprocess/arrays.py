"""numpy or torch, whichever the caller passes: every map is written once for both.

A flow trained on an explicit density pulls the target back through the maps in torch (with
gradients); ingest, plots and the metrics call them on numpy arrays. torch is imported only
by the stages that train or sample, so a tensor is recognised without importing it.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

Array = Any  # numpy.ndarray or torch.Tensor


def is_tensor(x: Array) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def namespace(x: Array):
    """The module whose functions apply to ``x``: ``torch`` for a tensor, else ``numpy``.

    The maps use only the functions the two share under one name (log, log1p, exp, clip,
    where, remainder, stack, concatenate, cumsum, flip, ...).
    """
    return sys.modules["torch"] if is_tensor(x) else np


def logit(p: Array) -> Array:
    xp = namespace(p)
    return xp.log(p) - xp.log1p(-p)


def sigmoid(y: Array) -> Array:
    """1 / (1 + e^−y), without overflow for large |y| in numpy either."""
    if is_tensor(y):
        return y.sigmoid()
    out = np.empty_like(y)
    pos = y >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-y[pos]))
    e = np.exp(y[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def like(ref: Array, values: list[float]) -> Array:
    """``values`` as an array of ``ref``'s kind, dtype and device."""
    if is_tensor(ref):
        return sys.modules["torch"].tensor(values, dtype=ref.dtype, device=ref.device)
    return np.asarray(values, dtype=ref.dtype)
