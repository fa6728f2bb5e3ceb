"""The fitted preprocessing of one dataset: every feature's map, then standardisation."""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hepgenbench.errors import InputError
from hepgenbench.io import EventSet
from hepgenbench.preprocess.arrays import Array, like, namespace
from hepgenbench.preprocess.base import MAPS, BlockMap, FeatureMap, map_class


@dataclass
class FeatureTransform:
    """The fitted transform of one feature (or condition), as transform.json stores it:
    its map's ``type`` and params, and the standardisation of the map's coordinate."""

    name: str
    type: str = "standard"
    params: dict[str, Any] = field(default_factory=dict)
    mean: float = 0.0
    std: float = 1.0

    @property
    def map_class(self) -> type[FeatureMap | BlockMap]:
        return map_class(self.type, f"feature '{self.name}'")

    @property
    def readout_threshold(self) -> float:
        """The readout threshold of a calorimeter cell, 0 for every other feature."""
        return self.map_class.readout_threshold(self.params)


@dataclass(frozen=True)
class Block:
    """A block map and the feature columns it maps together (in the features' order)."""

    columns: tuple[int, ...]
    map: BlockMap


def cell_types() -> tuple[str, ...]:
    """The registered map types of calorimeter cells (those with a cell space)."""
    return tuple(name for name, cls in MAPS.items() if cls.cell)


@dataclass
class Preprocessor:
    """Fitted feature and condition transforms of one dataset; JSON-serialisable.

    Attributes:
        features: one fitted transform per feature column.
        conditions: one per condition column (``log`` when it is positive, else ``standard``).
        blocks: the block maps, each over every feature of its type (built from ``features``).
        feature_maps: the one-feature maps, by feature column (built from ``features``).
    """

    features: list[FeatureTransform]
    conditions: list[FeatureTransform] = field(default_factory=list)
    blocks: list[Block] = field(init=False, repr=False, compare=False)
    feature_maps: dict[int, FeatureMap] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.feature_maps = {}
        self._index = {f.name: j for j, f in enumerate(self.features)}
        by_type: dict[str, list[int]] = {}
        for j, f in enumerate(self.features):
            cls = f.map_class
            if issubclass(cls, BlockMap):
                by_type.setdefault(f.type, []).append(j)
            else:
                self.feature_maps[j] = cls(f.params)
        self.blocks = [Block(tuple(cols), MAPS[t].from_params([self.features[j].params for j in cols]))
                       for t, cols in by_type.items()]
        self._order = self._dependency_order()
        self._condition_maps = [f.map_class(f.params) for f in self.conditions]

    @classmethod
    def fit(cls, train: EventSet) -> Preprocessor:
        if len(train) < 2:
            raise InputError(f"cannot fit preprocessing on {len(train)} training event(s); need at least 2")
        e_inc = _e_inc(train.condition)
        features = []
        for name, spec in zip(train.feature_names, train.transforms):
            kind = spec.get("type", "standard")
            map_cls = map_class(kind, f"feature '{name}'")
            if map_cls.cell and e_inc is None:
                raise InputError(f"feature '{name}': '{kind}' needs a condition column (the incident energy)")
            features.append(FeatureTransform(name, kind, map_cls.validate(name, spec, train.feature_names)))
        for kind in dict.fromkeys(f.type for f in features if issubclass(f.map_class, BlockMap)):
            cols = [j for j, f in enumerate(features) if f.type == kind]
            MAPS[kind].fit([features[j].params for j in cols], train.features[:, cols], e_inc)
        conditions = [FeatureTransform(name, "log" if np.all(c > 0) else "standard")
                      for name, c in zip(train.condition_names, np.transpose(train.condition))] \
            if train.condition is not None else []
        pre = cls(features, conditions)  # refuses a dependency cycle before anything is written
        # Standardise what the models will see: the cells dequantized (see ``dequantize``);
        # the draw fixes only each column's mean and standard deviation.
        x = pre.dequantize(train.features, np.random.default_rng(0))
        for f, y in zip(features, pre._coordinates(x, e_inc)):
            f.mean, f.std = _mean_std(f.name, y)
        for j, (f, m) in enumerate(zip(conditions, pre._condition_maps)):
            f.mean, f.std = _mean_std(f.name, m.forward(train.condition[:, j]))
        pre._fit_hit_scales(train.features, e_inc)
        return pre

    def _dependency_order(self) -> list[int]:
        """Feature indices, each after the features it is given (the order of the inverse).

        Raises :class:`InputError` naming the features of a cycle, which no inverse resolves.
        """
        index = self._index
        needs: dict[int, set[int]] = {j: set() for j in range(len(self.features))}
        for j, m in self.feature_maps.items():
            missing = [g for g in m.depends_on() if g not in index]
            if missing:
                raise InputError(f"feature '{self.features[j].name}': given {missing} are not features; "
                                 f"have {list(index)}")
            needs[j] = {index[g] for g in m.depends_on()}
        order: list[int] = []
        while needs:
            ready = [j for j, deps in needs.items() if not deps - set(order)]
            if not ready:
                cycle = sorted(self.features[j].name for j in needs)
                raise InputError(f"features {cycle}: their 'given' transforms depend on each other in a cycle")
            order += ready
            for j in ready:
                del needs[j]
        return order

    def _given(self, j: int, x: Array) -> list[Array]:
        """The physical columns that feature ``j``'s map is given."""
        return [x[:, self._index[g]] for g in self.feature_maps[j].depends_on()]

    def _coordinates(self, x: Array, e_inc: Array | None) -> list[Array]:
        """Physical units → every feature's map coordinate, before standardisation."""
        cols: list[Array] = [None] * len(self.features)
        for block in self.blocks:
            y = block.map.forward(x[:, list(block.columns)], e_inc)
            for i, j in enumerate(block.columns):
                cols[j] = y[:, i]
        for j, m in self.feature_maps.items():
            cols[j] = m.forward(x[:, j], self._given(j, x), e_inc)
        return cols

    def forward(self, x: Array, cond: Array | None = None) -> Array:
        """Physical units → network space."""
        cols = self._coordinates(x, _e_inc(cond))
        return namespace(x).stack([(y - f.mean) / f.std for y, f in zip(cols, self.features)], 1)

    def inverse(self, u: Array, cond: Array | None = None) -> Array:
        """Network space → physical units; ``cond`` is in physical units."""
        e_inc = _e_inc(cond)
        xp = namespace(u)
        y = [u[:, j] * f.std + f.mean for j, f in enumerate(self.features)]
        cols: list[Array] = [None] * len(self.features)
        for block in self.blocks:
            x = block.map.inverse(xp.stack([y[j] for j in block.columns], 1), e_inc)
            for i, j in enumerate(block.columns):
                cols[j] = x[:, i]
        # A dependent feature is inverted after the physical columns it is given.
        for j in self._order:
            if j in self.feature_maps:
                m = self.feature_maps[j]
                cols[j] = m.inverse(y[j], [cols[self._index[g]] for g in m.depends_on()], e_inc)
        return xp.stack(cols, 1)

    def log_abs_det_jacobian(self, x: Array, cond: Array | None = None) -> Array:
        """Σ_j log |du_j/dx_j| per event: log q_physical(x) = log q_network(u) + this.

        Exact for the dependent maps too: u(m²₁₂) depends on m²₂₃ but not the reverse
        (likewise log m_μμ on the first muon and the angles, an opening angle on its
        reference azimuth), and the dependencies have no cycle, so in their order the
        Jacobian is triangular and its determinant the product of the diagonal. A block
        map is a map of its own columns only, with its own determinant.
        """
        e_inc = _e_inc(cond)
        total = sum(m.log_abs_det_jacobian(x[:, j], self._given(j, x), e_inc) - math.log(self.features[j].std)
                    for j, m in self.feature_maps.items())
        for block in self.blocks:
            total = total + block.map.log_abs_det_jacobian(x[:, list(block.columns)], e_inc) - sum(
                math.log(self.features[j].std) for j in block.columns)
        return total

    def unit_box(self) -> dict[str, list[float]] | None:
        """Where the network coordinates' unit box is, when every feature is the logit of a
        fraction of its interval: logit u_j = scale_j · x_j + loc_j, u ∈ (0, 1) (None otherwise).

        A flow that knows it can put its splines on the box (see the ``iaf`` family).
        """
        if not self.features or not all(f.map_class.unit_box for f in self.features):
            return None
        return {"loc": [f.mean for f in self.features], "scale": [f.std for f in self.features]}

    def forward_condition(self, cond: Array | None) -> Array | None:
        if cond is None or not self.conditions:
            return None
        cols = [(m.forward(cond[:, j]) - f.mean) / f.std
                for j, (f, m) in enumerate(zip(self.conditions, self._condition_maps))]
        return namespace(cond).stack(cols, 1)

    @property
    def dequantizes(self) -> bool:
        """Whether :meth:`dequantize` changes anything: some feature has a readout threshold."""
        return any(f.readout_threshold > 0 for f in self.features)

    def dequantize(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A copy of ``x`` whose zero-suppressed cells are spread uniformly over [0, threshold).

        Suppression leaves every empty cell at exactly 0: a point mass, which no density
        describes, and in network space far below the smallest cell that reads out. Spread
        below the threshold, where the inverse suppresses it back to 0, it joins them, as
        CaloFlow's uniform noise does (arXiv:2106.05285). Training and the likelihood see
        dequantized cells; the sample, and so every metric, is zero-suppressed as the truth.
        Features without a readout ``threshold`` are returned as they are.
        """
        out = np.array(x, dtype=np.float64, copy=True)
        for j, f in enumerate(self.features):
            threshold = f.readout_threshold
            if threshold > 0:
                empty = out[:, j] < threshold
                out[empty, j] = rng.uniform(0.0, threshold, int(empty.sum()))
        return out

    def forward_cells(self, x: Array, cond: Array) -> Array:
        """Physical cells → the cell space: u = x / (E_inc · hit_scale), empty cells exactly 0.

        A cell below its readout threshold is empty, as the inverse makes every generated one.
        Raises :class:`InputError` naming the first feature that is not a calorimeter cell.
        """
        hit_scales = self._hit_scales(x)
        xp = namespace(x)
        x = xp.where(x < self._thresholds(x), xp.zeros_like(x), x)
        return x / (_e_inc(cond)[:, None] * hit_scales)

    def inverse_cells(self, u: Array, cond: Array) -> Array:
        """The cell space → physical cells, zero-suppressed below each cell's readout threshold.

        Negative values, which no cell holds, come back as 0.
        """
        xp = namespace(u)
        hit_scales = self._hit_scales(u)
        x = xp.clip(u, 0.0, None) * (_e_inc(cond)[:, None] * hit_scales)
        return xp.where(x < self._thresholds(u), xp.zeros_like(x), x)

    def _hit_scales(self, ref: Array) -> Array:
        for f in self.features:
            if not f.map_class.cell:
                raise InputError(
                    f"feature '{f.name}' is '{f.type}', not a calorimeter cell: the cell space needs every feature "
                    f"to be one of {cell_types()} (a calo or calochallenge dataset)"
                )
            if "hit_scale" not in f.params:
                raise InputError(f"feature '{f.name}' has no fitted 'hit_scale': the preprocessing was fitted by an "
                                 "older hepgenbench; re-run the preprocess stage")
        return like(ref, [f.params["hit_scale"] for f in self.features])

    def _thresholds(self, ref: Array) -> Array:
        return like(ref, [f.readout_threshold for f in self.features])

    def _fit_hit_scales(self, x: np.ndarray, e_inc: np.ndarray | None) -> None:
        """Each cell's ``hit_scale``: its mean fraction of E_inc in the training showers where it
        reads out, so that the cell space holds values of order 1 across cells whose typical
        energies span decades. A cell that never reads out takes the smallest scale of the others."""
        columns = [j for j, f in enumerate(self.features) if f.map_class.cell]
        if not columns or e_inc is None:
            return
        thresholds = np.array([self.features[j].readout_threshold for j in columns])
        fractions = x[:, columns] / e_inc[:, None]
        hits = (x[:, columns] >= thresholds) & (fractions > 0)
        n_hits = hits.sum(axis=0)
        means = np.where(n_hits > 0, np.where(hits, fractions, 0.0).sum(axis=0) / np.maximum(n_hits, 1), np.nan)
        if not np.isfinite(means).any():
            raise InputError(f"no calorimeter cell reads out in the {len(x)} training showers: every cell is 0")
        means = np.where(np.isfinite(means), means, np.nanmin(means))
        for j, scale in zip(columns, means):
            self.features[j].params["hit_scale"] = float(scale)

    def to_dict(self) -> dict[str, Any]:
        return {"features": [asdict(f) for f in self.features], "conditions": [asdict(f) for f in self.conditions]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessor:
        return cls([FeatureTransform(**f) for f in d["features"]], [FeatureTransform(**f) for f in d.get("conditions", [])])


def _e_inc(cond: Array | None) -> Array | None:
    """The incident energy: the first condition column, which every cell map scales by."""
    return None if cond is None else cond[:, 0]


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
