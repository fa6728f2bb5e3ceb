"""The readers shared by kinds: the user's ROOT trees and flat HDF5 datasets.

A dataset from one of these names its kind in ``kind:`` (default ``generic``); the kind
then supplies observables, checks and metrics. The kinds' own sources (generators, the
CaloChallenge reader) live in the kinds' modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hepgenbench.kinds.base import Source
from hepgenbench.kinds.registry import register_source
from hepgenbench.preprocess.base import map_types

if TYPE_CHECKING:
    from hepgenbench.io import EventSet

#: momentum fields a Cartesian collection yields (computed from px, py, pz, E)
CARTESIAN_FIELDS = ["pt", "eta", "phi", "mass"]

_TRANSFORMS = {
    "type": "object",
    "description": "preprocessing maps by feature name, overriding the defaults",
    # the map registry (torch-free) names the types; each map checks its own keys (check_specs)
    "additionalProperties": {"type": "object", "required": ["type"],
                             "properties": {"type": {"enum": list(map_types())}}},
}
_CONDITION = {"type": "array", "items": {"type": "string"}, "description": "what the models are conditioned on"}
_EVENT_KEY = {
    "type": "array", "items": {"type": "string"}, "minItems": 1,
    "description": "integer branches naming each entry's collision, e.g. [run, event]: entries that share them are "
                   "one event, which the split keeps on one side",
}

_COLLECTION = {
    "type": "object",
    "additionalProperties": False,
    "required": ["n"],
    "properties": {
        "n": {"type": "integer", "minimum": 1, "description": "the n leading objects become features"},
        "sort_by": {"type": "string", "description": "field the objects are ordered by, descending (default pt)"},
        "fields": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                   "description": "branch fields {collection}_{field} read per object"},
        "cartesian": {
            "type": "array", "items": {"type": "string"}, "minItems": 4, "maxItems": 4,
            "description": "fields of px, py, pz, E (branches {collection}_{field}, e.g. [Px, Py, Pz, E]): "
                           "pt, eta, phi and mass are computed from them; 'fields' then picks among those",
        },
    },
    "if": {"required": ["cartesian"]},
    "then": {"properties": {"fields": {"items": {"enum": CARTESIAN_FIELDS}},
                            "sort_by": {"enum": CARTESIAN_FIELDS}}},
    "else": {"required": ["fields"]},
}


@register_source
class RootSource(Source):
    """A TTree of the user's ROOT files, read chunk by chunk (:func:`hepgenbench.data.readers.read_root`)."""

    name: ClassVar[str] = "root"
    streams: ClassVar[bool] = True
    required: ClassVar[tuple[str, ...]] = ("tree",)
    properties: ClassVar[dict[str, Any]] = {
        "tree": {"type": "string"},
        "branches": {"type": "array", "items": {"type": "string"}, "description": "flat branches used as features"},
        "collections": {"type": "object", "additionalProperties": _COLLECTION,
                        "description": "jagged collections by branch prefix (Muon for Muon_pt, ...)"},
        "selection": {"type": "string", "description": "event-level cut on branches, uproot's cut="},
        "condition": _CONDITION,
        "transforms": _TRANSFORMS,
        "step_size": {"type": ["string", "integer"], "description": "entries or memory ('100 MB') per chunk"},
        "event_key": _EVENT_KEY,
    }

    def read(self, files: list[str], params: dict[str, Any],
             sink: Callable[[np.ndarray, np.ndarray | None], None] | None = None) -> EventSet:
        from hepgenbench.data import readers

        return readers.read_root(readers.RootSpec.from_config({**self.options(params), "files": files}), sink=sink)


@register_source
class Hdf5Source(Source):
    """Flat HDF5 datasets, one per feature (:func:`hepgenbench.data.readers.read_hdf5`)."""

    name: ClassVar[str] = "hdf5"
    required: ClassVar[tuple[str, ...]] = ("features",)
    properties: ClassVar[dict[str, Any]] = {
        "features": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                     "description": "dataset keys of the features"},
        "condition": _CONDITION,
        "transforms": _TRANSFORMS,
        "event_key": {**_EVENT_KEY, "description": "integer datasets naming each entry's collision (see root)"},
    }

    def read(self, files: list[str], params: dict[str, Any], sink=None) -> EventSet:
        from hepgenbench.data import readers

        return readers.read_hdf5(readers.Hdf5Spec.from_config({**self.options(params), "files": files}))
