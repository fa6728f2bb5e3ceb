"""Invertible per-feature preprocessing, fitted on the training split only.

Each feature carries a spec (set by the data source or the user's config):

``{"type": "standard"}``
    standardisation only.
``{"type": "log", "offset": c}``
    ``log(x + c)`` then standardisation: for pT, masses and energies, whose spectra fall
    steeply and which must stay positive.
``{"type": "bounded", "low": a, "high": b}``
    ``logit((x − a)/(b − a))`` then standardisation: for variables with hard limits
    (φ, cos θ, Dalitz invariants), so that every generated value lands inside them.
``{"type": "dalitz", "given": "m2_23", "m_parent": M, "m1": m₁, "m2": m₂, "m3": m₃}``
    for m²₁₂ of a three-body decay M → 1 2 3: the logit of its position inside the
    interval that m²₂₃ (the feature named by ``given``) allows (PDG "Kinematics",
    eq. 49.23). With ``given`` itself ``bounded`` by its own limits, the pair maps the
    curved Dalitz plot onto the whole plane, the "square Dalitz plot" of amplitude
    analyses: every point a model generates is physical, and a density with a sharp
    kinematic edge becomes one without. The Jacobian stays triangular, so it is still the
    product of the per-feature derivatives.
``{"type": "pair_mass", "given": [pt₁, η₁, φ₁, η₂, φ₂]}``
    for the pT of the second of two massless particles (a muon pair, say), given the
    other five features by name: the log of the pair's invariant mass,
    m² = 2 pT₁ pT₂ (cosh Δη − cos Δφ), replaces log pT₂. A resonance (the Z) is then
    one coordinate of the network space instead of a thin curved sheet, which is how
    precision event generators represent it (arXiv:2110.13632). The Jacobian is again
    triangular: ∂ log m / ∂pT₂ = 1 / (2 pT₂).
``{"type": "delta_phi", "given": φ_ref}``
    for an azimuth measured from another object's (the leading muon's, say): the logit
    of (φ − φ_ref) mod 2π as a fraction of 2π. Physics is symmetric under a rotation
    about the beam, so only the reference azimuth is uniform and every other one is an
    opening angle. In absolute azimuths a back-to-back pair is a band that wraps around
    the (φ₁, φ₂) square; measured from φ₁ it is one peak at π in the middle of the
    interval. Its own given may not depend on it, but may itself be dependent: a
    ``pair_mass`` can take a ``delta_phi`` azimuth among its given features.
``{"type": "fraction_logit", "alpha": α}``
    for calorimeter cells: the energy fraction ``x / E_inc`` (the first condition
    column), regularised as ``α + (1 − 2α)·f`` and passed through a logit, as in
    CaloFlow (arXiv:2106.05285). Zero cells map to a finite value, and the inverse
    never produces a negative energy. An optional ``threshold`` (same unit as ``x``)
    zero-suppresses the inverse: cells below it come back as exactly 0.
``{"type": "shower_share", "group": "<layer>", "alpha": α}``
    for calorimeter cells, as one block: every cell of this type, grouped into layers by
    ``group``, is re-expressed by the shower's total energy over E_inc, each layer's share
    of it and each cell's share of its layer, by stick breaking (see :class:`ShowerShares`).
    It is CaloFlow's split of the energy from the shape (arXiv:2106.05285), kept
    invertible: E_tot / E_inc, which a per-cell map spreads over hundreds of coordinates,
    is one coordinate, and no generated cell can be negative or overdraw its layer. An
    optional ``threshold`` zero-suppresses the inverse as for ``fraction_logit``.

Calorimeter cells (``fraction_logit`` and ``shower_share``) also have a *cell space*
(:meth:`Preprocessor.forward_cells`): each cell's fraction of E_inc in units of its
``hit_scale``, the mean fraction it holds in the training showers where it reads out. An
empty cell stays exactly 0 there, which is what a model of which cells are hit needs
(the ``hurdlevae`` family); every other family sees the maps above.

After the elementwise map every feature is standardised with the training mean and
standard deviation. Conditions are standardised, after a log when they are positive (the
incident energy spans four decades).

The maps work on numpy arrays and on torch tensors alike, so that a flow trained on an
explicit density can pull the target back through them, and :meth:`Preprocessor.log_abs_det_jacobian`
turns a density in network space into one in physical units.
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from hepgenbench.errors import InputError
from hepgenbench.io import EventSet

Array = Any  # numpy.ndarray or torch.Tensor
_EPS = 1e-6  # keeps bounded values strictly inside (low, high) before the logit
KNOWN_TYPES = ("standard", "log", "bounded", "dalitz", "pair_mass", "delta_phi", "fraction_logit", "shower_share")
SHARE_TYPE = "shower_share"  # a block over every feature of the type, not a per-feature map
CELL_TYPES = ("fraction_logit", SHARE_TYPE)  # calorimeter cells: an energy, scaled by E_inc
DEPENDENT_TYPES = {"dalitz": 1, "pair_mass": 5, "delta_phi": 1}  # how many other features each depends on
UNIT_BOX_TYPES = ("bounded", "dalitz", "delta_phi")  # logit of a fraction u ∈ (0, 1) that fills its interval
_TWO_PI = 2 * math.pi
_DALITZ_MASSES = ("m_parent", "m1", "m2", "m3")


def _is_tensor(x: Array) -> bool:
    # torch is imported only by the stages that train or sample; ingest and plots stay light.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _ns(x: Array):
    return sys.modules["torch"] if _is_tensor(x) else np


def _logit(p: Array) -> Array:
    xp = _ns(p)
    return xp.log(p) - xp.log1p(-p)


def _sigmoid(y: Array) -> Array:
    if _is_tensor(y):
        return y.sigmoid()
    out = np.empty_like(y)
    pos = y >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-y[pos]))
    e = np.exp(y[~pos])
    out[~pos] = e / (1.0 + e)
    return out


@dataclass
class FeatureTransform:
    """The fitted transform of one feature."""

    name: str
    type: str = "standard"
    params: dict[str, Any] = field(default_factory=dict)
    mean: float = 0.0
    std: float = 1.0

    def _dalitz_interval(self, given: list[Array]) -> tuple[Array, Array]:
        (m2_23,) = given
        low, high = dalitz_m2_12_range(m2_23, *(self.params[k] for k in _DALITZ_MASSES))
        return low, _ns(m2_23).clip(high - low, 1e-12, None)

    @staticmethod
    def _half_log_pair_factor(given: list[Array]) -> Array:
        """½ log(2 pT₁ (cosh Δη − cos Δφ)): log m = this + ½ log pT₂."""
        pt1, eta1, phi1, eta2, phi2 = given
        xp = _ns(pt1)
        factor = 2 * pt1 * (xp.cosh(eta1 - eta2) - xp.cos(phi1 - phi2))
        return 0.5 * xp.log(xp.clip(factor, 1e-12, None))

    def elementwise(self, x: Array, scale: Array | None, given: list[Array] | None = None) -> Array:
        """Physical value → pre-standardisation value (``given``: the physical columns it depends on)."""
        _refuse_block(self)
        xp = _ns(x)
        if self.type == "standard":
            return x
        if self.type == "log":
            return xp.log(xp.clip(x + self.params.get("offset", 0.0), 1e-30, None))
        if self.type == "bounded":
            lo, hi = self.params["low"], self.params["high"]
            return _logit(xp.clip((x - lo) / (hi - lo), _EPS, 1 - _EPS))
        if self.type == "dalitz":
            low, width = self._dalitz_interval(given)
            return _logit(xp.clip((x - low) / width, _EPS, 1 - _EPS))
        if self.type == "pair_mass":
            return self._half_log_pair_factor(given) + 0.5 * xp.log(xp.clip(x, 1e-30, None))
        if self.type == "delta_phi":
            return _logit(xp.clip(_opening_fraction(x, given), _EPS, 1 - _EPS))
        if self.type == "fraction_logit":
            alpha = self.params.get("alpha", 1e-6)
            frac = xp.clip(x / scale, 0.0, 1.0)
            return _logit(alpha + (1 - 2 * alpha) * frac)
        raise InputError(f"feature '{self.name}': unknown transform type '{self.type}'; known: {KNOWN_TYPES}")

    def inverse_elementwise(self, y: Array, scale: Array | None, given: list[Array] | None = None) -> Array:
        _refuse_block(self)
        xp = _ns(y)
        if self.type == "standard":
            return y
        if self.type == "log":
            return xp.exp(y) - self.params.get("offset", 0.0)
        if self.type == "bounded":
            lo, hi = self.params["low"], self.params["high"]
            return lo + (hi - lo) * _sigmoid(y)
        if self.type == "dalitz":
            low, width = self._dalitz_interval(given)
            return low + width * _sigmoid(y)
        if self.type == "pair_mass":
            return xp.exp(2 * (y - self._half_log_pair_factor(given)))
        if self.type == "delta_phi":
            # back into (−π, π], the range of the reference azimuth itself
            return math.pi - xp.remainder(math.pi - given[0] - _TWO_PI * _sigmoid(y), _TWO_PI)
        if self.type == "fraction_logit":
            alpha = self.params.get("alpha", 1e-6)
            frac = xp.clip((_sigmoid(y) - alpha) / (1 - 2 * alpha), 0.0, 1.0)
            energy = frac * scale
            # Zero suppression: a generated cell below the readout threshold reads 0, as the
            # detector made every truth cell. Without it a model's cells are almost never
            # exactly 0, and the sparsity alone tells it from the truth.
            threshold = self.params.get("threshold", 0.0)
            return xp.where(energy < threshold, xp.zeros_like(energy), energy) if threshold > 0 else energy
        raise InputError(f"feature '{self.name}': unknown transform type '{self.type}'")

    def log_derivative(self, x: Array, scale: Array | None, given: list[Array] | None = None) -> Array:
        """log |du/dx| of the full map (elementwise then standardisation)."""
        _refuse_block(self)
        xp = _ns(x)
        if self.type == "standard":
            d = xp.zeros_like(x)
        elif self.type == "log":
            d = -xp.log(xp.clip(x + self.params.get("offset", 0.0), 1e-30, None))
        elif self.type == "bounded":
            lo, hi = self.params["low"], self.params["high"]
            s = xp.clip((x - lo) / (hi - lo), _EPS, 1 - _EPS)
            d = -(xp.log(s) + xp.log1p(-s) + math.log(hi - lo))
        elif self.type == "dalitz":
            low, width = self._dalitz_interval(given)
            s = xp.clip((x - low) / width, _EPS, 1 - _EPS)
            d = -(xp.log(s) + xp.log1p(-s) + xp.log(width))
        elif self.type == "pair_mass":
            d = -xp.log(2 * xp.clip(x, 1e-30, None))
        elif self.type == "delta_phi":
            s = xp.clip(_opening_fraction(x, given), _EPS, 1 - _EPS)
            d = -(xp.log(s) + xp.log1p(-s) + math.log(_TWO_PI))
        elif self.type == "fraction_logit":
            alpha = self.params.get("alpha", 1e-6)
            s = alpha + (1 - 2 * alpha) * xp.clip(x / scale, 0.0, 1.0)
            d = math.log(1 - 2 * alpha) - xp.log(scale) - xp.log(s) - xp.log1p(-s)
        else:
            raise InputError(f"feature '{self.name}': unknown transform type '{self.type}'")
        return d - math.log(self.std)


def _refuse_block(f: FeatureTransform) -> None:
    if f.type == SHARE_TYPE:  # a programming error: the Preprocessor maps these as one block
        raise RuntimeError(f"feature '{f.name}': '{SHARE_TYPE}' is a block transform, applied by Preprocessor")


def _reverse_cumsum(y: Array) -> Array:
    """R_k = Σ_{j≥k} y_j along axis 1: what is left of the stick at value k."""
    xp = _ns(y)
    return xp.flip(xp.cumsum(xp.flip(y, (1,)), 1), (1,))


def _exclusive_cumprod(a: Array) -> Array:
    """Π_{j<k} a_j along axis 1 (1 at k = 0)."""
    xp = _ns(a)
    return xp.cumprod(xp.concatenate([xp.ones_like(a[:, :1]), a[:, :-1]], 1), 1)


@dataclass(frozen=True)
class ShowerShares:
    """A shower's cells as its energy and its shape, by stick breaking; bijective.

    For n values y ≥ 0 with R_k = Σ_{j≥k} y_j (what is left before the k-th), the n − 1
    shares s_k = y_k / R_k ∈ [0, 1] and the sum R_0 give back y_k = s_k R_0 Π_{j<k}(1 − s_j),
    the last value taking what is left. This is done twice: the cells of each layer into
    the layer's energy and their shares of it, and the layers' energies into E_tot and
    their shares of it. Layers and cells are in ascending order of their mean energy in the
    training split, so that the remainder of each stick is its largest value and the other
    shares are close to plain fractions of the layer (CaloFlow's normalised cells,
    arXiv:2106.05285). One coordinate per cell column:

    * a cell other than its layer's last: logit(α + (1 − 2α) s) of its share;
    * the last cell of a layer other than the last layer: that of its layer's share;
    * the last cell of the last layer: log(E_tot / E_inc + δ).

    The Jacobian of (R_0, s) → y is Π_{k<n−1} R_k, so log |∂coordinates/∂x| is a sum of
    −log R_k and the logits' log-derivatives. The share of an empty remainder (R_k = 0) is
    set to 0 and, being constant, adds nothing: like a zero cell, it is a point mass, which
    no density describes.

    Attributes:
        layers: per layer in stick order, the column indices of its cells in stick order.
        alpha: the logit's regulariser.
        threshold: generated cells below it come back as 0 (the cells' unit).
    """

    layers: tuple[tuple[int, ...], ...]
    alpha: float = 1e-6
    threshold: float = 0.0

    TOTAL_OFFSET: ClassVar[float] = 1e-6  # δ: keeps a shower with no energy finite

    @classmethod
    def from_features(cls, features: list[FeatureTransform]) -> "ShowerShares | None":
        """The block of a fitted preprocessor's ``shower_share`` features (None if it has none)."""
        cells = [(j, f.params) for j, f in enumerate(features) if f.type == SHARE_TYPE]
        if not cells:
            return None
        groups: dict[str, list[tuple[int, dict]]] = {}
        for j, params in cells:
            groups.setdefault(str(params["group"]), []).append((j, params))
        ordered = sorted(groups.values(), key=lambda g: g[0][1]["layer_rank"])
        layers = tuple(tuple(j for j, p in sorted(g, key=lambda c: c[1]["cell_rank"])) for g in ordered)
        first = cells[0][1]
        return cls(layers, float(first.get("alpha", 1e-6)), float(first.get("threshold", 0.0)))

    @property
    def columns(self) -> list[int]:
        return [j for layer in self.layers for j in layer]

    def coordinates(self, x: Array, e_inc: Array) -> dict[int, Array]:
        """Cells (physical units) → the block's coordinates, by column."""
        xp = _ns(x)
        *cell_sticks, (energy, remaining) = self._sticks(x)
        out: dict[int, Array] = {}
        for cells, (y, left) in zip(self.layers, cell_sticks):
            logits = self._share_logit(y[:, :-1], left[:, :-1])
            out.update({col: logits[:, i] for i, col in enumerate(cells[:-1])})
        logits = self._share_logit(energy[:, :-1], remaining[:, :-1])
        out.update({cells[-1]: logits[:, i] for i, cells in enumerate(self.layers[:-1])})
        out[self.layers[-1][-1]] = xp.log(remaining[:, 0] / e_inc + self.TOTAL_OFFSET)
        return out

    def cells(self, coordinates: dict[int, Array], e_inc: Array) -> dict[int, Array]:
        """The block's coordinates, by column → cells (physical units), by column."""
        xp = _ns(e_inc)
        total = e_inc * xp.clip(xp.exp(coordinates[self.layers[-1][-1]]) - self.TOTAL_OFFSET, 0.0, None)
        energy = self._unbreak(total, self._shares(coordinates, [cells[-1] for cells in self.layers[:-1]], total))
        out: dict[int, Array] = {}
        for l, cells in enumerate(self.layers):
            y = self._unbreak(energy[:, l], self._shares(coordinates, cells[:-1], total))
            if self.threshold > 0:  # zero suppression, as for fraction_logit
                y = xp.where(y < self.threshold, xp.zeros_like(y), y)
            out.update({col: y[:, i] for i, col in enumerate(cells)})
        return out

    def log_abs_det_jacobian(self, x: Array, e_inc: Array) -> Array:
        """log |∂coordinates/∂cells| per event."""
        sticks = self._sticks(x)
        total = sum(self._share_log_derivative(y[:, :-1], left[:, :-1]) for y, left in sticks)
        return total - _ns(x).log(sticks[-1][1][:, 0] + self.TOTAL_OFFSET * e_inc)

    def _sticks(self, x: Array) -> list[tuple[Array, Array]]:
        """(values, what is left before each) of every layer's cells, then of the layers' energies."""
        xp = _ns(x)
        sticks = []
        for cells in self.layers:
            y = xp.clip(x[:, list(cells)], 0.0, None)
            sticks.append((y, _reverse_cumsum(y)))
        energy = xp.stack([left[:, 0] for _, left in sticks], 1)
        return sticks + [(energy, _reverse_cumsum(energy))]

    def _regularised_share(self, y: Array, remaining: Array) -> tuple[Array, Array, Array]:
        """α + (1 − 2α)·y/R, with whether R > 0 and R itself (1 where it is 0)."""
        xp = _ns(y)
        nonempty = remaining > 0
        safe = xp.where(nonempty, remaining, xp.ones_like(remaining))
        share = xp.where(nonempty, y / safe, xp.zeros_like(y))
        return self.alpha + (1 - 2 * self.alpha) * xp.clip(share, 0.0, 1.0), nonempty, safe

    def _share_logit(self, y: Array, remaining: Array) -> Array:
        return _logit(self._regularised_share(y, remaining)[0])

    def _share_log_derivative(self, y: Array, remaining: Array) -> Array:
        xp = _ns(y)
        p, nonempty, safe = self._regularised_share(y, remaining)
        d = math.log(1 - 2 * self.alpha) - xp.log(p) - xp.log1p(-p) - xp.log(safe)
        return xp.where(nonempty, d, xp.zeros_like(d)).sum(1)

    def _shares(self, coordinates: dict[int, Array], columns: tuple[int, ...] | list[int], like: Array) -> Array:
        """The shares of ``columns`` back from their logits, (N, len(columns))."""
        xp = _ns(like)
        if not columns:
            return xp.zeros_like(like[:, None])[:, :0]
        p = xp.stack([_sigmoid(coordinates[c]) for c in columns], 1)
        return xp.clip((p - self.alpha) / (1 - 2 * self.alpha), 0.0, 1.0)

    @staticmethod
    def _unbreak(total: Array, shares: Array) -> Array:
        """(R_0, s) → y: y_k = s_k R_0 Π_{j<k}(1 − s_j), the last value taking what is left."""
        xp = _ns(total)
        full = xp.concatenate([shares, xp.ones_like(total[:, None])], 1)
        return total[:, None] * full * _exclusive_cumprod(1 - full)


@dataclass
class Preprocessor:
    """Fitted feature and condition transforms of one dataset; JSON-serialisable."""

    features: list[FeatureTransform]
    conditions: list[FeatureTransform] = field(default_factory=list)
    shares: ShowerShares | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.shares = ShowerShares.from_features(self.features)

    @classmethod
    def fit(cls, train: EventSet) -> "Preprocessor":
        if len(train) < 2:
            raise InputError(f"cannot fit preprocessing on {len(train)} training event(s); need at least 2")
        scale = None if train.condition is None else train.condition[:, 0]
        feats = []
        for j, (name, spec) in enumerate(zip(train.feature_names, train.transforms)):
            spec = dict(spec)
            kind = spec.pop("type", "standard")
            if kind not in KNOWN_TYPES:
                raise InputError(f"feature '{name}': unknown transform type '{kind}'; known: {KNOWN_TYPES}")
            if kind in CELL_TYPES and scale is None:
                raise InputError(f"feature '{name}': '{kind}' needs a condition column (the incident energy)")
            if kind == "bounded" and not spec.get("high", 0) > spec.get("low", 0):
                raise InputError(f"feature '{name}': 'bounded' needs numeric low < high, got {spec}")
            if kind == SHARE_TYPE and "group" not in spec:
                raise InputError(f"feature '{name}': '{SHARE_TYPE}' needs 'group', the name of the cell's layer")
            if kind in DEPENDENT_TYPES:
                _check_dependent(name, kind, spec, train.feature_names)
            ft = FeatureTransform(name, kind, {k: v if k in ("given", "group") else float(v) for k, v in spec.items()})
            feats.append(ft)
        # Standardise what the models will see: the cells dequantized (see ``dequantize``);
        # the draw fixes only each column's mean and standard deviation.
        x = _dequantize(feats, train.features, np.random.default_rng(0))
        for j, ft in enumerate(feats):
            if ft.type != SHARE_TYPE:
                given = [x[:, train.feature_names.index(g)] for g in _given_names(ft.params)] \
                    if ft.type in DEPENDENT_TYPES else None
                ft.mean, ft.std = _mean_std(ft.name, ft.elementwise(x[:, j], scale, given))
        _fit_shares(feats, train.features, x, scale)
        _fit_hit_scales(feats, train.features, scale)
        dependency_order(feats)  # refuses a cycle before anything is written
        conds = []
        if train.condition is not None:
            for j, name in enumerate(train.condition_names):
                c = train.condition[:, j]
                ft = FeatureTransform(name, "log" if np.all(c > 0) else "standard")
                ft.mean, ft.std = _mean_std(name, ft.elementwise(c, None))
                conds.append(ft)
        return cls(feats, conds)

    @property
    def dequantizes(self) -> bool:
        """Whether :meth:`dequantize` changes anything: some feature has a readout threshold."""
        return any(_threshold(f) > 0 for f in self.features)

    def dequantize(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A copy of ``x`` whose zero-suppressed cells are spread uniformly over [0, threshold).

        Suppression leaves every empty cell at exactly 0: a point mass, which no density
        describes, and in network space far below the smallest cell that reads out. Spread
        below the threshold, where the inverse suppresses it back to 0, it joins them, as
        CaloFlow's uniform noise does (arXiv:2106.05285). Training and the likelihood see
        dequantized cells; the sample, and so every metric, is zero-suppressed as the truth.
        Features without a readout ``threshold`` are returned as they are.
        """
        return _dequantize(self.features, x, rng)

    def forward_cells(self, x: Array, cond: Array) -> Array:
        """Physical cells → the cell space: u = x / (E_inc · hit_scale), empty cells exactly 0.

        A cell below its readout threshold is empty, as the inverse makes every generated one.
        Raises :class:`InputError` naming the first feature that is not a calorimeter cell.
        """
        hit_scales = self._hit_scales(x)
        xp = _ns(x)
        x = xp.where(x < self._thresholds(x), xp.zeros_like(x), x)
        return x / (self._scale(cond)[:, None] * hit_scales)

    def inverse_cells(self, u: Array, cond: Array) -> Array:
        """The cell space → physical cells, zero-suppressed below each cell's readout threshold.

        Negative values, which no cell holds, come back as 0.
        """
        xp = _ns(u)
        hit_scales = self._hit_scales(u)
        x = xp.clip(u, 0.0, None) * (self._scale(cond)[:, None] * hit_scales)
        return xp.where(x < self._thresholds(u), xp.zeros_like(x), x)

    def _hit_scales(self, like: Array) -> Array:
        for f in self.features:
            if f.type not in CELL_TYPES:
                raise InputError(
                    f"feature '{f.name}' is '{f.type}', not a calorimeter cell: the cell space needs every feature "
                    f"to be one of {CELL_TYPES} (a calo or calochallenge dataset)"
                )
            if "hit_scale" not in f.params:
                raise InputError(f"feature '{f.name}' has no fitted 'hit_scale': the preprocessing was fitted by an "
                                 "older hepgenbench; re-run the preprocess stage")
        return self._like(like, [f.params["hit_scale"] for f in self.features])

    def _thresholds(self, like: Array) -> Array:
        return self._like(like, [_threshold(f) for f in self.features])

    @staticmethod
    def _like(like: Array, values: list[float]) -> Array:
        """``values`` as an array of ``like``'s kind, dtype and device."""
        if _is_tensor(like):
            return sys.modules["torch"].tensor(values, dtype=like.dtype, device=like.device)
        return np.asarray(values, dtype=like.dtype)

    def _scale(self, cond: Array | None) -> Array | None:
        return None if cond is None else cond[:, 0]

    def _given(self, f: FeatureTransform, x: Array) -> list[Array] | None:
        """The physical columns that feature ``f``'s map depends on (its ``given``)."""
        if f.type not in DEPENDENT_TYPES:
            return None
        names = [g.name for g in self.features]
        return [x[:, names.index(g)] for g in _given_names(f.params)]

    def forward(self, x: Array, cond: Array | None = None) -> Array:
        """Physical units → network space."""
        s = self._scale(cond)
        block = self.shares.coordinates(x, s) if self.shares else {}
        cols = [((block[j] if j in block else f.elementwise(x[:, j], s, self._given(f, x))) - f.mean) / f.std
                for j, f in enumerate(self.features)]
        return _ns(x).stack(cols, 1)

    def inverse(self, u: Array, cond: Array | None = None) -> Array:
        """Network space → physical units; ``cond`` is in physical units."""
        s = self._scale(cond)
        index = {f.name: j for j, f in enumerate(self.features)}
        cols: list[Array | None] = [None] * len(self.features)
        if self.shares:
            standard = {j: u[:, j] * self.features[j].std + self.features[j].mean for j in self.shares.columns}
            for j, cells in self.shares.cells(standard, s).items():
                cols[j] = cells
        # A dependent feature is inverted after the physical columns it depends on.
        for j in dependency_order(self.features):
            f = self.features[j]
            if f.type == SHARE_TYPE:
                continue
            given = [cols[index[g]] for g in _given_names(f.params)] if f.type in DEPENDENT_TYPES else None
            cols[j] = f.inverse_elementwise(u[:, j] * f.std + f.mean, s, given)
        return _ns(u).stack(cols, 1)

    def log_abs_det_jacobian(self, x: Array, cond: Array | None = None) -> Array:
        """Σ_j log |du_j/dx_j| per event: log q_physical(x) = log q_network(u) + this.

        Exact for the dependent types too: u(m²₁₂) depends on m²₂₃ but not the reverse
        (likewise log m_μμ on the first muon and the angles, an opening angle on its
        reference azimuth), and the dependencies have no cycle, so in their order the
        Jacobian is triangular and its determinant the product of the diagonal. The
        ``shower_share`` block is a map of its own cells only, with its own determinant.
        """
        s = self._scale(cond)
        total = sum(f.log_derivative(x[:, j], s, self._given(f, x)) for j, f in enumerate(self.features)
                    if f.type != SHARE_TYPE)
        if self.shares:
            total = total + self.shares.log_abs_det_jacobian(x, s) - sum(
                math.log(self.features[j].std) for j in self.shares.columns)
        return total

    def unit_box(self) -> dict[str, list[float]] | None:
        """Where the network coordinates' unit box is, when every feature is the logit of a
        fraction of its interval: logit u_j = scale_j · x_j + loc_j, u ∈ (0, 1) (None otherwise).

        A flow that knows it can put its splines on the box (see the ``iaf`` family).
        """
        if not self.features or any(f.type not in UNIT_BOX_TYPES for f in self.features):
            return None
        return {"loc": [f.mean for f in self.features], "scale": [f.std for f in self.features]}

    def forward_condition(self, cond: Array | None) -> Array | None:
        if cond is None or not self.conditions:
            return None
        cols = [(f.elementwise(cond[:, j], None) - f.mean) / f.std for j, f in enumerate(self.conditions)]
        return _ns(cond).stack(cols, 1)

    def to_dict(self) -> dict[str, Any]:
        return {"features": [asdict(f) for f in self.features], "conditions": [asdict(f) for f in self.conditions]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocessor":
        return cls([FeatureTransform(**f) for f in d["features"]], [FeatureTransform(**f) for f in d.get("conditions", [])])


def dalitz_m2_12_range(m2_23: Array, m_parent: float, m1: float, m2: float, m3: float) -> tuple[Array, Array]:
    """The allowed ``(low, high)`` of m²₁₂ at fixed m²₂₃ in M → 1 2 3 (numpy or torch).

    Energies of particles 2 and 1 in the (2, 3) rest frame fix the extremes, where the two
    momenta are parallel or antiparallel (PDG "Kinematics", eq. 49.23). Outside the m²₂₃
    band the interval is empty (low = high), never NaN.
    """
    xp = _ns(m2_23)
    m23 = xp.sqrt(xp.clip(m2_23, 1e-12, None))
    e2 = (m2_23 - m3**2 + m2**2) / (2 * m23)
    e1 = (m_parent**2 - m2_23 - m1**2) / (2 * m23)
    p2 = xp.sqrt(xp.clip(e2**2 - m2**2, 0.0, None))
    p1 = xp.sqrt(xp.clip(e1**2 - m1**2, 0.0, None))
    return (e1 + e2) ** 2 - (p1 + p2) ** 2, (e1 + e2) ** 2 - (p1 - p2) ** 2


def _given_names(spec: dict[str, Any]) -> list[str]:
    given = spec.get("given")
    return [given] if isinstance(given, str) else list(given or [])


def _check_dependent(name: str, kind: str, spec: dict[str, Any], feature_names: list[str]) -> None:
    """A dependent transform names other features, as many as it needs (a cycle among them is
    refused by :func:`dependency_order`)."""
    needed = ("given", *_DALITZ_MASSES) if kind == "dalitz" else ("given",)
    missing = [k for k in needed if k not in spec]
    if missing:
        what = {"dalitz": "the m²₂₃ feature's name and the four masses", "pair_mass": "the names of pT₁, η₁, φ₁, η₂, φ₂",
                "delta_phi": "the name of the reference azimuth"}[kind]
        raise InputError(f"feature '{name}': '{kind}' needs {missing} ({what})")
    given = _given_names(spec)
    if len(given) != DEPENDENT_TYPES[kind]:
        raise InputError(f"feature '{name}': '{kind}' needs given = {DEPENDENT_TYPES[kind]} feature name(s), got {given}")
    for g in given:
        if g not in feature_names or g == name:
            raise InputError(f"feature '{name}': '{kind}' given '{g}' must name another feature; have {feature_names}")


def dependency_order(features: list[FeatureTransform]) -> list[int]:
    """Feature indices, each after the features it is given (the order of the inverse).

    Raises :class:`InputError` naming the features of a cycle, which no inverse resolves.
    """
    index = {f.name: j for j, f in enumerate(features)}
    needs = {j: {index[g] for g in _given_names(f.params)} if f.type in DEPENDENT_TYPES else set()
             for j, f in enumerate(features)}
    order: list[int] = []
    while needs:
        ready = [j for j, deps in needs.items() if not deps - set(order)]
        if not ready:
            cycle = sorted(features[j].name for j in needs)
            raise InputError(f"features {cycle}: their 'given' transforms depend on each other in a cycle")
        order += ready
        for j in ready:
            del needs[j]
    return order


def _threshold(f: FeatureTransform) -> float:
    """The readout threshold of a calorimeter cell, 0 for every other feature."""
    return f.params.get("threshold", 0.0) if f.type in CELL_TYPES else 0.0


def _dequantize(features: list[FeatureTransform], x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.array(x, dtype=np.float64, copy=True)
    for j, f in enumerate(features):
        threshold = _threshold(f)
        if threshold > 0:
            empty = out[:, j] < threshold
            out[empty, j] = rng.uniform(0.0, threshold, int(empty.sum()))
    return out


def _fit_hit_scales(features: list[FeatureTransform], x: np.ndarray, e_inc: np.ndarray | None) -> None:
    """Each cell's ``hit_scale``: its mean fraction of E_inc in the training showers where it
    reads out, so that the cell space holds values of order 1 across cells whose typical
    energies span decades. A cell that never reads out takes the smallest scale of the others."""
    columns = [j for j, f in enumerate(features) if f.type in CELL_TYPES]
    if not columns or e_inc is None:
        return
    thresholds = np.array([_threshold(features[j]) for j in columns])
    fractions = x[:, columns] / e_inc[:, None]
    hits = (x[:, columns] >= thresholds) & (fractions > 0)
    n_hits = hits.sum(axis=0)
    means = np.where(n_hits > 0, np.where(hits, fractions, 0.0).sum(axis=0) / np.maximum(n_hits, 1), np.nan)
    if not np.isfinite(means).any():
        raise InputError(f"no calorimeter cell reads out in the {len(x)} training showers: every cell is 0")
    means = np.where(np.isfinite(means), means, np.nanmin(means))
    for j, scale in zip(columns, means):
        features[j].params["hit_scale"] = float(scale)


def _fit_shares(features: list[FeatureTransform], x: np.ndarray, x_dequantized: np.ndarray,
                scale: np.ndarray | None) -> None:
    """Put the ``shower_share`` cells in stick order (ascending mean energy of ``x``, within
    each layer and across layers) and standardise the block's coordinates of
    ``x_dequantized``, in place."""
    columns = [j for j, f in enumerate(features) if f.type == SHARE_TYPE]
    if not columns:
        return
    groups: dict[str, list[int]] = {}
    for j in columns:
        groups.setdefault(str(features[j].params["group"]), []).append(j)
    mean = np.clip(x, 0.0, None).mean(axis=0)
    layer_mean = {g: mean[cols].sum() for g, cols in groups.items()}
    for layer_rank, g in enumerate(sorted(groups, key=lambda g: (layer_mean[g], groups[g][0]))):
        for cell_rank, j in enumerate(sorted(groups[g], key=lambda j: (mean[j], j))):
            features[j].params.update(layer_rank=layer_rank, cell_rank=cell_rank)
    alphas = {features[j].params.get("alpha", 1e-6) for j in columns}
    thresholds = {features[j].params.get("threshold", 0.0) for j in columns}
    if len(alphas) > 1 or len(thresholds) > 1:
        raise InputError(f"'{SHARE_TYPE}' features must share one alpha and one threshold; got alpha {sorted(alphas)}, "
                         f"threshold {sorted(thresholds)}")
    block = ShowerShares.from_features(features)
    for j, y in block.coordinates(x_dequantized, scale).items():
        features[j].mean, features[j].std = _mean_std(features[j].name, y)


def _opening_fraction(phi: Array, given: list[Array]) -> Array:
    """(φ − φ_ref) mod 2π as a fraction of 2π, in [0, 1)."""
    return _ns(phi).remainder(phi - given[0], _TWO_PI) / _TWO_PI


def _mean_std(name: str, y: np.ndarray) -> tuple[float, float]:
    mean, std = float(np.mean(y)), float(np.std(y))
    if not (math.isfinite(mean) and math.isfinite(std)):
        raise InputError(f"feature '{name}': non-finite values after its transform; check its transform spec")
    if std < 1e-12:
        # A constant feature carries no information to learn; keep it (the inverse restores
        # the constant) rather than divide by zero, and say so.
        warnings.warn(f"feature '{name}' is constant in the training split; it is passed through unscaled", stacklevel=2)
        std = 1.0
    return mean, std
