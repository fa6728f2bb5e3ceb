"""The block map ``shower_share``: a shower's cells as its energy and its shape, by stick breaking."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hepgenbench.errors import InputError
from hepgenbench.io import EventSet
from hepgenbench.preprocess.arrays import Array, logit, namespace, sigmoid
from hepgenbench.preprocess.base import BlockMap, Key, register_map


def _reverse_cumsum(y: Array) -> Array:
    """R_k = Σ_{j≥k} y_j along axis 1: what is left of the stick at value k."""
    xp = namespace(y)
    return xp.flip(xp.cumsum(xp.flip(y, (1,)), 1), (1,))


def _exclusive_cumprod(a: Array) -> Array:
    """Π_{j<k} a_j along axis 1 (1 at k = 0)."""
    xp = namespace(a)
    return xp.cumprod(xp.concatenate([xp.ones_like(a[:, :1]), a[:, :-1]], 1), 1)


@register_map("shower_share")
@dataclass(frozen=True)
class ShowerShares(BlockMap):
    """A shower's cells as its energy and its shape, by stick breaking; bijective.

    For n values y ≥ 0 with R_k = Σ_{j≥k} y_j (what is left before the k-th), the n − 1
    shares s_k = y_k / R_k ∈ [0, 1] and the sum R_0 give back y_k = s_k R_0 Π_{j<k}(1 − s_j),
    the last value taking what is left. This is done twice: the cells of each layer (the
    spec's ``group``) into the layer's energy and their shares of it, and the layers'
    energies into E_tot and their shares of it. It is CaloFlow's split of the energy from
    the shape (arXiv:2106.05285), kept invertible: E_tot / E_inc, which a per-cell map
    spreads over hundreds of coordinates, is one coordinate, and no generated cell can be
    negative or overdraw its layer.

    Layers and cells are in ascending order of their mean energy in the training split
    (:meth:`fit`), so that the remainder of each stick is its largest value and the other
    shares are close to plain fractions of the layer. One coordinate per cell column:

    * a cell other than its layer's last: logit(α + (1 − 2α) s) of its share;
    * the last cell of a layer other than the last layer: that of its layer's share;
    * the last cell of the last layer: log(E_tot / E_inc + δ).

    The Jacobian of (R_0, s) → y is Π_{k<n−1} R_k, so log |∂coordinates/∂x| is a sum of
    −log R_k and the logits' log-derivatives. The share of an empty remainder (R_k = 0) is
    set to 0 and, being constant, adds nothing: like a zero cell, it is a point mass, which
    no density describes.

    Attributes:
        layers: per layer in stick order, the block's column indices (0 … k − 1, in the
            features' order) of its cells in stick order.
        alpha: the logit's regulariser.
        threshold: generated cells below it come back as 0 (the cells' unit).
    """

    layers: tuple[tuple[int, ...], ...]
    alpha: float = 1e-6
    threshold: float = 0.0

    keys: ClassVar[dict[str, Key]] = {
        "group": Key("the name of the cell's layer", coerce=str),
        "alpha": Key("the logit's regulariser α", default=1e-6),
        "threshold": Key("the readout threshold, in the cell's unit", default=0.0),
    }
    cell: ClassVar[bool] = True
    TOTAL_OFFSET: ClassVar[float] = 1e-6  # δ: keeps a shower with no energy finite

    @classmethod
    def fit(cls, params: list[dict[str, Any]], x: np.ndarray, e_inc: np.ndarray | None) -> None:
        """Rank the layers and, within each, the cells by ascending mean energy in ``x``
        (``layer_rank``, ``cell_rank``); every cell must share one alpha and one threshold."""
        alphas = {p.get("alpha", 1e-6) for p in params}
        thresholds = {p.get("threshold", 0.0) for p in params}
        if len(alphas) > 1 or len(thresholds) > 1:
            raise InputError(f"'shower_share' features must share one alpha and one threshold; got alpha "
                             f"{sorted(alphas)}, threshold {sorted(thresholds)}")
        groups: dict[str, list[int]] = {}
        for i, p in enumerate(params):
            groups.setdefault(str(p["group"]), []).append(i)
        mean = np.clip(x, 0.0, None).mean(axis=0)
        layer_mean = {g: mean[cols].sum() for g, cols in groups.items()}
        for layer_rank, g in enumerate(sorted(groups, key=lambda g: (layer_mean[g], groups[g][0]))):
            for cell_rank, i in enumerate(sorted(groups[g], key=lambda i: (mean[i], i))):
                params[i].update(layer_rank=layer_rank, cell_rank=cell_rank)

    @classmethod
    def from_params(cls, params: list[dict[str, Any]]) -> ShowerShares:
        groups: dict[str, list[tuple[int, dict]]] = {}
        for i, p in enumerate(params):
            groups.setdefault(str(p["group"]), []).append((i, p))
        ordered = sorted(groups.values(), key=lambda g: g[0][1]["layer_rank"])
        layers = tuple(tuple(i for i, p in sorted(g, key=lambda c: c[1]["cell_rank"])) for g in ordered)
        first = cls.resolved(params[0])
        return cls(layers, float(first["alpha"]), float(first["threshold"]))

    def forward(self, x: Array, e_inc: Array | None = None) -> Array:
        """Cells (physical units) → the block's coordinates."""
        xp = namespace(x)
        *cell_sticks, (energy, remaining) = self._sticks(x)
        out: dict[int, Array] = {}
        for cells, (y, left) in zip(self.layers, cell_sticks):
            logits = self._share_logit(y[:, :-1], left[:, :-1])
            out.update({col: logits[:, i] for i, col in enumerate(cells[:-1])})
        logits = self._share_logit(energy[:, :-1], remaining[:, :-1])
        out.update({cells[-1]: logits[:, i] for i, cells in enumerate(self.layers[:-1])})
        out[self.layers[-1][-1]] = xp.log(remaining[:, 0] / e_inc + self.TOTAL_OFFSET)
        return xp.stack([out[i] for i in range(len(out))], 1)

    def inverse(self, y: Array, e_inc: Array | None = None) -> Array:
        """The block's coordinates → cells (physical units), zero-suppressed below ``threshold``."""
        xp = namespace(y)
        total = e_inc * xp.clip(xp.exp(y[:, self.layers[-1][-1]]) - self.TOTAL_OFFSET, 0.0, None)
        energy = self._unbreak(total, self._shares(y, [cells[-1] for cells in self.layers[:-1]], total))
        out: dict[int, Array] = {}
        for layer, cells in enumerate(self.layers):
            cell_energy = self._unbreak(energy[:, layer], self._shares(y, cells[:-1], total))
            if self.threshold > 0:  # zero suppression, as for fraction_logit
                cell_energy = xp.where(cell_energy < self.threshold, xp.zeros_like(cell_energy), cell_energy)
            out.update({col: cell_energy[:, i] for i, col in enumerate(cells)})
        return xp.stack([out[i] for i in range(len(out))], 1)

    def log_abs_det_jacobian(self, x: Array, e_inc: Array | None = None) -> Array:
        """log |∂coordinates/∂cells| per event."""
        sticks = self._sticks(x)
        total = sum(self._share_log_derivative(y[:, :-1], left[:, :-1]) for y, left in sticks)
        return total - namespace(x).log(sticks[-1][1][:, 0] + self.TOTAL_OFFSET * e_inc)

    def _sticks(self, x: Array) -> list[tuple[Array, Array]]:
        """(values, what is left before each) of every layer's cells, then of the layers' energies."""
        xp = namespace(x)
        sticks = []
        for cells in self.layers:
            y = xp.clip(x[:, list(cells)], 0.0, None)
            sticks.append((y, _reverse_cumsum(y)))
        energy = xp.stack([left[:, 0] for _, left in sticks], 1)
        return sticks + [(energy, _reverse_cumsum(energy))]

    def _regularised_share(self, y: Array, remaining: Array) -> tuple[Array, Array, Array]:
        """α + (1 − 2α)·y/R, with whether R > 0 and R itself (1 where it is 0)."""
        xp = namespace(y)
        nonempty = remaining > 0
        safe = xp.where(nonempty, remaining, xp.ones_like(remaining))
        share = xp.where(nonempty, y / safe, xp.zeros_like(y))
        return self.alpha + (1 - 2 * self.alpha) * xp.clip(share, 0.0, 1.0), nonempty, safe

    def _share_logit(self, y: Array, remaining: Array) -> Array:
        return logit(self._regularised_share(y, remaining)[0])

    def _share_log_derivative(self, y: Array, remaining: Array) -> Array:
        xp = namespace(y)
        p, nonempty, safe = self._regularised_share(y, remaining)
        d = math.log(1 - 2 * self.alpha) - xp.log(p) - xp.log1p(-p) - xp.log(safe)
        return xp.where(nonempty, d, xp.zeros_like(d)).sum(1)

    def _shares(self, y: Array, columns: tuple[int, ...] | list[int], like: Array) -> Array:
        """The shares of the block's ``columns`` back from their logits in ``y``, (N, len(columns))."""
        xp = namespace(like)
        if not columns:
            return xp.zeros_like(like[:, None])[:, :0]
        p = xp.stack([sigmoid(y[:, c]) for c in columns], 1)
        return xp.clip((p - self.alpha) / (1 - 2 * self.alpha), 0.0, 1.0)

    @staticmethod
    def _unbreak(total: Array, shares: Array) -> Array:
        """(R_0, s) → y: y_k = s_k R_0 Π_{j<k}(1 − s_j), the last value taking what is left."""
        xp = namespace(total)
        full = xp.concatenate([shares, xp.ones_like(total[:, None])], 1)
        return total[:, None] * full * _exclusive_cumprod(1 - full)

    @classmethod
    def example_events(cls, n: int, seed: int) -> EventSet:
        """Three layers of 3, 4 and 1 cells, every one hit, and E_inc above their sum."""
        rng = np.random.default_rng(seed)
        x = rng.gamma(1.0, [1, 2, 5, 0.5, 3, 1, 8, 2.0], size=(n, 8)) + 1e-3
        e_inc = x.sum(1, keepdims=True) * rng.uniform(1.0, 1.3, (n, 1)) + 1.0
        groups = ["a"] * 3 + ["b"] * 4 + ["c"]
        return EventSet(x, [f"v{i}" for i in range(8)], transforms=[{"type": "shower_share", "group": g}
                                                                      for g in groups],
                        condition=e_inc, condition_names=["E_inc"])
