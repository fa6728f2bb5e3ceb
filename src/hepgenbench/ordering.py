"""Objects stored leading first, and what that means for generated events.

A reader stores the ``n`` leading objects of a collection by descending ``sort_by``
(``Muon1`` has the larger pT), so "Muon1" is a definition, not a particle a generator
could tell apart. A generator draws both orders, and an event whose second muon is the
harder one is unlike any truth event, whatever else it gets right. So the sample stage
puts generated objects in the truth's order, as a reader would have stored them.

That changes the model's density on stored events. With P the permutations of the
objects, an ordered event x is the image of every P x the generator might have drawn:

    q_ordered(x) = Σ_P q(P x),

which :func:`ordered_log_prob` evaluates, so a likelihood stays the likelihood of what
the metrics see. With two muons it costs one more density evaluation.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from hepgenbench.errors import InputError

META_KEY = "object_order"


@dataclass(frozen=True)
class ObjectOrder:
    """Objects of one collection stored in descending order of one of their fields.

    Attributes:
        key: the field the objects are sorted by (``"pt"``).
        objects: the feature names of each object, leading first, in the same field order
            (``(("Muon1_pt", "Muon1_eta", ...), ("Muon2_pt", "Muon2_eta", ...))``).
    """

    key: str
    objects: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        widths = {len(o) for o in self.objects}
        if len(self.objects) < 2 or len(widths) != 1:
            raise InputError(f"object order by '{self.key}': needs two or more objects with the same fields, got {self.objects}")
        self._key_field()  # refuses objects without the key among their fields

    @classmethod
    def of_collection(cls, collection: str, n: int, key: str, fields: list[str]) -> ObjectOrder:
        return cls(key, tuple(tuple(f"{collection}{i}_{f}" for f in fields) for i in range(1, n + 1)))

    def to_dict(self) -> dict:
        return {"key": self.key, "objects": [list(o) for o in self.objects]}

    @classmethod
    def from_dict(cls, d: dict) -> ObjectOrder:
        return cls(d["key"], tuple(tuple(o) for o in d["objects"]))

    def _columns(self, feature_names: list[str]) -> np.ndarray:
        """(objects, fields) column indices into the feature matrix."""
        missing = [n for o in self.objects for n in o if n not in feature_names]
        if missing:
            raise InputError(f"object order by '{self.key}': features {missing} are not among {feature_names}")
        return np.array([[feature_names.index(n) for n in o] for o in self.objects])

    def _key_field(self) -> int:
        """The position of the key among each object's fields."""
        for j, name in enumerate(self.objects[0]):
            if name.endswith(f"_{self.key}"):
                return j
        raise InputError(f"object order by '{self.key}': the objects' fields {self.objects[0]} do not include it")

    def sort(self, x: np.ndarray, feature_names: list[str]) -> np.ndarray:
        """``x`` with each event's objects in descending order of the key (a new array)."""
        cols = self._columns(feature_names)
        blocks = x[:, cols]  # (events, objects, fields)
        # stable, so tied objects keep the generator's order
        order = np.argsort(-blocks[:, :, self._key_field()], axis=1, kind="stable")
        out = np.array(x, dtype=np.float64, copy=True)
        out[:, cols] = np.take_along_axis(blocks, order[:, :, None], axis=1)
        return out

    def permutations(self, x: np.ndarray, feature_names: list[str]) -> Iterator[np.ndarray]:
        """``x`` with its objects permuted, once for every permutation (the identity first)."""
        cols = self._columns(feature_names)
        for perm in itertools.permutations(range(len(self.objects))):
            out = np.array(x, dtype=np.float64, copy=True)
            out[:, cols] = x[:, cols[list(perm)]]
            yield out


def object_orders(meta: dict) -> list[ObjectOrder]:
    """The object orders recorded in an event set's ``meta`` by its reader."""
    return [ObjectOrder.from_dict(d) for d in meta.get(META_KEY, [])]


def put_in_order(x: np.ndarray, feature_names: list[str], orders: list[ObjectOrder]) -> np.ndarray:
    """Generated events with every ordered collection sorted as the reader stored the truth."""
    for order in orders:
        x = order.sort(x, feature_names)
    return x


def ordered_log_prob(log_prob: Callable[[np.ndarray], np.ndarray], x: np.ndarray, feature_names: list[str],
                     orders: list[ObjectOrder]) -> np.ndarray:
    """log q_ordered(x) = log Σ_P q(P x) over the permutations of every ordered collection.

    ``log_prob`` maps physical events to the unordered model's log-density.
    """
    candidates = [x]
    for order in orders:
        candidates = [p for c in candidates for p in order.permutations(c, feature_names)]
    return np.logaddexp.reduce(np.stack([log_prob(c) for c in candidates]), axis=0)
