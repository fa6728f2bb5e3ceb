"""What a preprocessing map is, and the one registry of them by the ``type`` of a spec.

A feature's spec (``{"type": "log", "offset": 1.0}``) names a registered map class; the
class declares the spec's other keys, checks them, and maps the feature (numpy or torch)
forwards, back, and with its log-derivative. Two shapes of map share the registry:

* :class:`FeatureMap`: one feature's column, possibly given other features' physical
  columns (:meth:`FeatureMap.depends_on`); the preprocessor inverts the givens first.
* :class:`BlockMap`: every feature of its type at once, as one map of those columns onto
  as many coordinates, with its own Jacobian (a shower's cells into its energy and shape).

Both produce coordinates *before* standardisation; the preprocessor standardises every
column with the training mean and standard deviation afterwards.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from hepgenbench.errors import InputError
from hepgenbench.io import EventSet
from hepgenbench.preprocess.arrays import Array


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


def _feature_names(value: Any) -> str | list[str]:
    """A ``given``: one feature name, or a list of them (kept as written, for transform.json)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError("a feature name or a list of feature names")


def given_names(value: str | Sequence[str] | None) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


@dataclass(frozen=True)
class Key:
    """One key of a map's spec: what it is (for messages), its default, how it is coerced."""

    doc: str
    default: Any = REQUIRED
    coerce: Callable[[Any], Any] = float

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def given(doc: str) -> Key:
    """The ``given`` key of a map that depends on other features: their names."""
    return Key(doc, coerce=_feature_names)


class PreprocessingMap:
    """What every registered map declares: its spec's keys and what kind of coordinate it makes.

    Attributes:
        type_name: the spec's ``type``, set by :func:`register_map`.
        keys: the spec's other keys; a key without a default is required.
        cell: a calorimeter cell, an energy scaled by the first condition column (E_inc);
            it also has the preprocessor's cell space and a readout ``threshold``.
        unit_box: the coordinate is the logit of a fraction that fills the feature's
            interval (what the ``iaf`` family's unit box needs).
    """

    type_name: ClassVar[str] = ""
    keys: ClassVar[dict[str, Key]] = {}
    cell: ClassVar[bool] = False
    unit_box: ClassVar[bool] = False

    @classmethod
    def validate(cls, feature: str, spec: dict[str, Any], feature_names: Sequence[str] | None = None,
                 where: str | None = None) -> dict[str, Any]:
        """The spec's keys (without ``type``) checked and coerced: the params a map is built from.

        ``feature_names``, when known, are the dataset's features, which a ``given`` must name.
        Messages start with ``where`` (default: ``feature '<feature>'``). Raises :class:`InputError`.
        """
        where = where or f"feature '{feature}'"
        unknown = sorted(set(spec) - set(cls.keys) - {"type"})
        if unknown:
            raise InputError(f"{where}: '{cls.type_name}' has no key(s) {unknown}; its keys: {sorted(cls.keys)}")
        missing = [k for k, key in cls.keys.items() if key.required and k not in spec]
        if missing:
            what = "; ".join(f"{k}: {cls.keys[k].doc}" for k in missing)
            raise InputError(f"{where}: '{cls.type_name}' needs {missing} ({what})")
        params = {}
        for k, value in spec.items():
            if k == "type":
                continue
            try:
                params[k] = cls.keys[k].coerce(value)
            except (TypeError, ValueError) as err:
                raise InputError(f"{where}: '{cls.type_name}' key '{k}' ({cls.keys[k].doc}) cannot be "
                                 f"{value!r}") from err
        cls.check(params, feature, feature_names, where)
        return params

    @classmethod
    def check(cls, params: dict[str, Any], feature: str, feature_names: Sequence[str] | None, where: str) -> None:
        """Checks among the coerced keys that the key table cannot express (default: none)."""

    @classmethod
    def readout_threshold(cls, params: dict[str, Any]) -> float:
        """Below this a cell reads 0 (zero suppression); 0 for every feature that is not a cell."""
        return float(params.get("threshold", 0.0)) if cls.cell else 0.0

    @classmethod
    def example_events(cls, n: int, seed: int) -> EventSet:
        """``n`` events in this map's domain, with the features it is given: the events the
        common checks (``tests/test_maps.py``) run it on. Every map provides one."""
        raise NotImplementedError(f"map '{cls.type_name}' has no example_events for the common checks")

    @classmethod
    def resolved(cls, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` with the keys' defaults filled in."""
        return {**{k: key.default for k, key in cls.keys.items() if not key.required}, **params}


class FeatureMap(PreprocessingMap, ABC):
    """The map of one feature: x ↦ y, possibly given other features' physical columns.

    Subclasses implement :meth:`forward`, :meth:`inverse` and :meth:`log_abs_det_jacobian`
    with the functions numpy and torch share (:func:`hepgenbench.preprocess.arrays.namespace`).
    ``given`` is the list of the physical columns named by the spec's ``given`` key, in its
    order (empty for a map that depends on nothing); ``e_inc`` is the first condition column
    (None without conditions). A map that depends on others must stay triangular: y depends
    on x and the givens, and the givens do not depend on x (a cycle is refused), so the
    Jacobian of all features is still the product of each map's derivative. A given may
    itself be dependent (``pair_mass`` takes a ``delta_phi`` azimuth): the preprocessor
    inverts the features in the order of their dependencies.

    Attributes:
        n_given: how many features the ``given`` key must name (0: the map takes none).
    """

    n_given: ClassVar[int] = 0

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        self.params = self.resolved(params or {})

    def depends_on(self) -> list[str]:
        """The names of the features this map is given, in the order ``given`` holds them."""
        return given_names(self.params.get("given"))

    @classmethod
    def check(cls, params: dict[str, Any], feature: str, feature_names: Sequence[str] | None, where: str) -> None:
        if not cls.n_given:
            return
        names = given_names(params["given"])
        if len(names) != cls.n_given:
            raise InputError(f"{where}: '{cls.type_name}' needs given = {cls.n_given} feature name(s) "
                             f"({cls.keys['given'].doc}), got {names}")
        for g in names:
            if g == feature or (feature_names is not None and g not in feature_names):
                raise InputError(f"{where}: '{cls.type_name}' given '{g}' must name another feature; "
                                 f"have {list(feature_names or [])}")

    @abstractmethod
    def forward(self, x: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        """Physical value → coordinate (before standardisation)."""

    @abstractmethod
    def inverse(self, y: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        """Coordinate → physical value; it must land inside the feature's domain for any y."""

    @abstractmethod
    def log_abs_det_jacobian(self, x: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        """log |∂y/∂x| per event."""


class BlockMap(PreprocessingMap, ABC):
    """The map of every feature of its type at once: (N, k) columns ↦ (N, k) coordinates.

    For a map that is not one column at a time, such as a shower's cells re-expressed as
    its energy and its shape. The preprocessor gives it the columns of its type in the
    features' order and puts its coordinates back in the same columns. A block depends on
    no other feature and is inverted first. Each feature's spec is still checked by
    :meth:`validate`; what the block learns from the training split (an order of its
    columns, say) :meth:`fit` writes into the features' params, so that it is saved in
    transform.json and :meth:`from_params` rebuilds the same block.
    """

    @classmethod
    def fit(cls, params: list[dict[str, Any]], x: np.ndarray, e_inc: np.ndarray | None) -> None:
        """Learn what the block needs from its training columns ``x`` (N, k), into ``params``
        (one dict per column, changed in place). Default: nothing to learn."""
        return None

    @classmethod
    @abstractmethod
    def from_params(cls, params: list[dict[str, Any]]) -> BlockMap:
        """The block of the columns whose (fitted) params these are, in column order."""

    @abstractmethod
    def forward(self, x: Array, e_inc: Array | None = None) -> Array:
        """The block's (N, k) columns → its (N, k) coordinates."""

    @abstractmethod
    def inverse(self, y: Array, e_inc: Array | None = None) -> Array:
        """Coordinates → columns, inside the block's domain for any coordinates."""

    @abstractmethod
    def log_abs_det_jacobian(self, x: Array, e_inc: Array | None = None) -> Array:
        """log |det ∂y/∂x| of the whole block, per event."""


MAPS: dict[str, type[FeatureMap | BlockMap]] = {}
M = TypeVar("M", bound=type[PreprocessingMap])


def register_map(name: str) -> Callable[[M], M]:
    """Class decorator: the map of specs whose ``type`` is ``name``."""

    def decorate(cls: M) -> M:
        if not issubclass(cls, (FeatureMap, BlockMap)):
            raise TypeError(f"map '{name}': {cls.__name__} must derive from FeatureMap or BlockMap")
        if name in MAPS and MAPS[name] is not cls:
            raise ValueError(f"map type '{name}' is already registered by {MAPS[name].__name__}")
        if issubclass(cls, FeatureMap) and cls.n_given and "given" not in cls.keys:
            raise TypeError(f"map '{name}': n_given = {cls.n_given} but no 'given' key")
        cls.type_name = name
        MAPS[name] = cls
        return cls

    return decorate


def map_types() -> tuple[str, ...]:
    """The registered map types, in the order they were registered."""
    return tuple(MAPS)


def map_class(type_name: str, where: str) -> type[FeatureMap | BlockMap]:
    """The map registered as ``type_name``; :class:`InputError` starting with ``where`` if none is."""
    try:
        return MAPS[type_name]
    except (KeyError, TypeError):
        raise InputError(f"{where}: unknown transform type '{type_name}'; known: {', '.join(MAPS)}") from None


def check_specs(specs: dict[str, dict[str, Any]], where: str) -> None:
    """Check a config's ``transforms`` (feature name → spec) before any job runs.

    Whether a ``given`` names a feature of the dataset is left to the preprocess stage, which
    knows the features. Messages name ``<where>.<feature>``, e.g. ``datasets.zmumu.transforms.pt``.
    """
    for feature, spec in specs.items():
        key = f"config key {where}.{feature}"
        if not isinstance(spec, dict):
            raise InputError(f"{key}: a transform spec is a mapping with a 'type', got {spec!r}")
        map_class(spec.get("type", "standard"), key).validate(feature, spec, where=key)
