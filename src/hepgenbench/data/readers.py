"""Ingestion: user ROOT and HDF5 files, and the embedded sources, into an :class:`EventSet`.

ROOT trees are read chunk by chunk with :func:`uproot.iterate`, so files larger than memory
work; only the flat feature matrix of the selected events is kept. Jagged collections
(NanoAOD-style ``Muon_pt``…) become fixed-width features of the ``n`` leading objects,
named ``{Collection}{i}_{field}`` with i starting at 1 (``Muon1_pt``, ``Jet1_mass``).

Every problem with the input raises :class:`~hepgenbench.errors.InputError` naming the file,
tree, branch, key or option at fault.
"""

from __future__ import annotations

import ast
import glob
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import h5py
import numpy as np
import uproot

from hepgenbench.data.calo_geometry import DS1_PHOTONS, READOUT_THRESHOLD_MEV, CaloGeometry
from hepgenbench.data.calo_geometry import META_KEY as CALO_META_KEY
from hepgenbench.errors import InputError
from hepgenbench.io import EventSet
from hepgenbench.ordering import META_KEY, ObjectOrder

NAN_POLICIES = ("refuse", "drop")
# A jet can be a single massless parton: log(m + 1 GeV) stays finite and invertible at m = 0,
# and is close to log m for the tens-of-GeV masses of real jets.
MASS_LOG_OFFSET = 1.0
_PI_BOUND = 3.141593  # just above π, so that φ = ±π stays inside the logit's open interval


def default_transform(name: str) -> dict:
    """Preprocessing spec chosen from a feature's field name (the part after the last ``_``)."""
    field_name = name.rsplit("_", 1)[-1].lower()
    if field_name in ("pt", "energy", "e"):
        return {"type": "log", "offset": 0.0}
    if field_name in ("mass", "m"):
        return {"type": "log", "offset": MASS_LOG_OFFSET}
    if field_name == "phi":
        return {"type": "bounded", "low": -_PI_BOUND, "high": _PI_BOUND}
    return {"type": "standard"}


def _unit(name: str) -> str:
    field_name = name.rsplit("_", 1)[-1].lower()
    return {"pt": "GeV", "mass": "GeV", "m": "GeV", "e": "GeV", "energy": "GeV", "phi": "rad"}.get(field_name, "")


#: what a Cartesian collection yields per object, computed from (px, py, pz, E)
CARTESIAN_FIELDS = ("pt", "eta", "phi", "mass")


@dataclass
class CollectionSpec:
    """The ``n`` leading objects of a jagged collection, ordered by ``sort_by`` (descending).

    The branches are ``{collection}_{field}`` for each of ``fields``. With ``cartesian``
    (the fields of px, py, pz and E, e.g. ``("Px", "Py", "Pz", "E")``), those four branches
    are read instead, and pT, η, φ and m are computed from them with ``vector``;
    ``fields`` then picks among :data:`CARTESIAN_FIELDS` (default pT, η, φ: a muon's mass is
    a constant that no generator should have to learn), and ``sort_by`` too.
    """

    n: int
    sort_by: str = "pt"
    fields: list[str] = field(default_factory=lambda: ["pt", "eta", "phi"])
    cartesian: tuple[str, str, str, str] | None = None

    @classmethod
    def from_config(cls, name: str, d: dict) -> CollectionSpec:
        where = f"collections.{name}"
        _check_keys(d, {"n", "sort_by", "fields", "cartesian"}, where)
        if not isinstance(d.get("n"), int) or d["n"] < 1:
            raise InputError(f"{where}.n: expected a positive integer, got {d.get('n')!r}")
        cartesian = d.get("cartesian")
        if cartesian is not None:
            if not (isinstance(cartesian, (list, tuple)) and len(cartesian) == 4
                    and all(isinstance(c, str) for c in cartesian)):
                raise InputError(f"{where}.cartesian: expected the four fields of px, py, pz, E "
                                 f"(e.g. [Px, Py, Pz, E]), got {cartesian!r}")
            cartesian = tuple(cartesian)
            fields = list(d.get("fields", ["pt", "eta", "phi"]))
            for key, values in (("fields", fields), ("sort_by", [d.get("sort_by", "pt")])):
                bad = [v for v in values if v not in CARTESIAN_FIELDS]
                if bad:
                    raise InputError(f"{where}.{key}: {bad} are not computed from px, py, pz, E; "
                                     f"expected some of {list(CARTESIAN_FIELDS)}")
        else:
            fields = list(d.get("fields", ["pt", "eta", "phi"]))
        return cls(n=d["n"], sort_by=d.get("sort_by", "pt"), fields=fields, cartesian=cartesian)

    def branches(self, collection: str) -> list[str]:
        """The branches read for this collection (with the sort key's)."""
        read = self.cartesian if self.cartesian else [*self.fields, self.sort_by]
        return sorted({f"{collection}_{f}" for f in read})


#: Per-chunk read size. A chunk's working set (awkward arrays, sorting, masks, float64
#: columns) is several times this, so it is what bounds the ingest stage's memory.
DEFAULT_STEP_SIZE = "25 MB"


@dataclass
class RootSpec:
    """What to read from ROOT files.

    Attributes:
        files: paths or glob patterns.
        tree: the TTree name.
        branches: flat (one value per event) branches used as features.
        collections: jagged collections, by branch prefix (``Muon`` for ``Muon_pt``…).
        selection: an event-level cut expression on branches (uproot's ``cut=``), applied
            before features are built, e.g. ``"(nMuon >= 2) & (MET_pt < 100)"``.
        condition: flat branches the models are conditioned on.
        transforms: preprocessing specs by feature name, overriding the defaults.
        kind: which derived observables apply (``"zmumu"``, ``"generic"``…).
        nan_policy: ``"refuse"`` (raise) or ``"drop"`` events with NaN/inf features.
        step_size: entries (int) or memory (``"100 MB"``) per chunk.
        event_key: flat integer branches that name the collision of each entry
            (``[run, event]``): entries sharing them are one event (``EventSet.event_key``).
    """

    files: list[str]
    tree: str = "Events"
    branches: list[str] = field(default_factory=list)
    collections: dict[str, CollectionSpec] = field(default_factory=dict)
    selection: str | None = None
    condition: list[str] = field(default_factory=list)
    transforms: dict[str, dict] = field(default_factory=dict)
    kind: str = "generic"
    nan_policy: str = "refuse"
    step_size: str | int = DEFAULT_STEP_SIZE
    event_key: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, d: dict) -> RootSpec:
        """Build from a config mapping (``files`` may be a path, a glob or a list)."""
        keys = {"files", "tree", "branches", "collections", "selection", "condition", "transforms", "kind",
                "nan_policy", "step_size", "event_key"}
        _check_keys(d, keys, "root input")
        if "files" not in d or "tree" not in d:
            raise InputError("root input: 'files' and 'tree' are required")
        collections = d.get("collections") or {}
        if not isinstance(collections, dict):
            raise InputError("root input: 'collections' must map a name to {n, sort_by, fields}")
        return cls(
            files=_as_list(d["files"]),
            tree=str(d["tree"]),
            branches=list(d.get("branches") or []),
            collections={name: CollectionSpec.from_config(name, c) for name, c in collections.items()},
            selection=d.get("selection"),
            condition=list(d.get("condition") or []),
            transforms=dict(d.get("transforms") or {}),
            kind=d.get("kind", "generic"),
            nan_policy=d.get("nan_policy", "refuse"),
            step_size=d.get("step_size", DEFAULT_STEP_SIZE),
            event_key=list(d.get("event_key") or []),
        )


@dataclass
class Hdf5Spec:
    """Flat HDF5 datasets: each feature/condition key a (N,) or (N, 1) dataset."""

    files: list[str]
    features: list[str]
    condition: list[str] = field(default_factory=list)
    transforms: dict[str, dict] = field(default_factory=dict)
    kind: str = "generic"
    nan_policy: str = "refuse"
    event_key: list[str] = field(default_factory=list)  #: as :attr:`RootSpec.event_key`

    @classmethod
    def from_config(cls, d: dict) -> Hdf5Spec:
        _check_keys(d, {"files", "features", "condition", "transforms", "kind", "nan_policy", "event_key"}, "hdf5 input")
        if "files" not in d or not d.get("features"):
            raise InputError("hdf5 input: 'files' and 'features' (a list of dataset keys) are required")
        return cls(
            files=_as_list(d["files"]),
            features=list(d["features"]),
            condition=list(d.get("condition") or []),
            transforms=dict(d.get("transforms") or {}),
            kind=d.get("kind", "generic"),
            nan_policy=d.get("nan_policy", "refuse"),
            event_key=list(d.get("event_key") or []),
        )


def zmumu_spec(path: str | os.PathLike, jet_mass: bool = True) -> RootSpec:
    """The embedded Z→μμ dataset: two leading muons (pt, eta, phi) and the leading jet.

    ``jet_mass=False`` leaves out the jet's mass, as the workflow does below hadron level:
    there a jet is often one parton, whose mass is a spike at that parton's mass (0 for a
    gluon, 0.33, 0.5, 1.5, 4.8 GeV for the quarks), which no continuous generator draws and
    any classifier spots, so it would swamp every other comparison.
    """
    jet_fields = ["pt", "eta", "phi", "mass"] if jet_mass else ["pt", "eta", "phi"]
    return RootSpec(
        files=[str(path)],
        tree="Events",
        collections={
            "Muon": CollectionSpec(n=2, sort_by="pt", fields=["pt", "eta", "phi"]),
            "Jet": CollectionSpec(n=1, sort_by="pt", fields=jet_fields),
        },
        # The Z peak as a network coordinate: log m_μμ in place of log pT of the second muon;
        # and azimuths measured from the leading muon's, which alone is uniform.
        transforms={
            "Muon2_pt": {"type": "pair_mass", "given": ["Muon1_pt", "Muon1_eta", "Muon1_phi", "Muon2_eta", "Muon2_phi"]},
            "Muon2_phi": {"type": "delta_phi", "given": "Muon1_phi"},
            "Jet1_phi": {"type": "delta_phi", "given": "Muon1_phi"},
        },
        kind="zmumu",
    )


# --------------------------------------------------------------------------- helpers


def _check_keys(d: Any, allowed: set[str], where: str) -> None:
    if not isinstance(d, dict):
        raise InputError(f"{where}: expected a mapping, got {type(d).__name__}")
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise InputError(f"{where}: unknown option(s) {unknown}; allowed: {sorted(allowed)}")


def _as_list(files: str | list[str]) -> list[str]:
    return [str(files)] if isinstance(files, (str, os.PathLike)) else [str(f) for f in files]


def _abbreviated(names, limit: int = 12) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return f"{shown}, … ({len(names)} in total)" if len(names) > limit else shown


def resolve_files(patterns: list[str]) -> list[str]:
    """Expand globs; every pattern must match at least one existing file."""
    if not patterns:
        raise InputError("files: no input file given")
    out = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise InputError(f"{pattern}: the glob pattern matches no file")
            out += matches
        elif not Path(pattern).is_file():
            raise InputError(f"{pattern}: file does not exist")
        else:
            out.append(pattern)
    return out


def _open_tree(path: str, tree: str, needed: list[str]):
    try:
        f = uproot.open(path)
    except Exception as err:  # uproot raises several types for non-ROOT content
        raise InputError(f"{path}: not a readable ROOT file ({type(err).__name__}: {err})") from None
    trees = [k.split(";")[0] for k, cls in f.classnames().items() if cls in ("TTree", "TNtuple")]
    if tree not in f:
        f.close()
        raise InputError(f"{path}: no tree {tree!r}; trees in the file: {_abbreviated(set(trees)) or 'none'}")
    t = f[tree]
    missing = [b for b in needed if b not in t]
    if missing:
        f.close()
        raise InputError(f"{path}: tree {tree!r} has no branch(es) {missing}; it has: {_abbreviated(t.keys())}")
    return f, t


def _selection_names(selection: str) -> set[str]:
    try:
        parsed = ast.parse(selection, mode="eval")
    except SyntaxError as err:
        raise InputError(f"selection {selection!r} is not a valid expression: {err.msg}") from None
    called = {n.func.id for n in ast.walk(parsed) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return {n.id for n in ast.walk(parsed) if isinstance(n, ast.Name)} - called


def _nonfinite_counts(columns: np.ndarray) -> np.ndarray:
    return (~np.isfinite(columns)).sum(axis=0)


@dataclass
class _Layout:
    """Feature names and the branch each comes from."""

    names: list[str]
    branches: list[str]


def _layout(spec: RootSpec) -> _Layout:
    names, branches = [], []
    for coll, cs in spec.collections.items():
        for i in range(1, cs.n + 1):
            for f in cs.fields:
                names.append(f"{coll}{i}_{f}")
                branches.append(f"{coll}_({','.join(cs.cartesian)})" if cs.cartesian else f"{coll}_{f}")
    names += spec.branches
    branches += spec.branches
    return _Layout(names, branches)


def _collection_columns(arrays: ak.Array, coll: str, cs: CollectionSpec) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Objects per event, and each field of the collection flattened over all objects.

    A Cartesian collection's pT, η, φ and m are computed from (px, py, pz, E) with
    ``vector``; a spacelike four-vector (E < |p|, rounding) gets m = 0 rather than NaN.
    """
    if not cs.cartesian:
        counts = ak.to_numpy(ak.num(arrays[f"{coll}_{cs.sort_by}"], axis=1))
        read = dict.fromkeys([*cs.fields, cs.sort_by])
        return counts, {f: ak.to_numpy(ak.flatten(arrays[f"{coll}_{f}"], axis=1)).astype(np.float64) for f in read}
    import vector

    px, py, pz, e = (arrays[f"{coll}_{c}"] for c in cs.cartesian)
    counts = ak.to_numpy(ak.num(px, axis=1))
    flat = [ak.to_numpy(ak.flatten(a, axis=1)).astype(np.float64) for a in (px, py, pz, e)]
    p4 = vector.array({"px": flat[0], "py": flat[1], "pz": flat[2], "E": flat[3]})
    mass2 = p4.tau2
    values = {"pt": p4.pt, "eta": p4.eta, "phi": p4.phi, "mass": np.sqrt(np.clip(mass2, 0.0, None))}
    return counts, {f: np.asarray(values[f], dtype=np.float64) for f in dict.fromkeys([*cs.fields, cs.sort_by])}


def _leading_indices(counts: np.ndarray, flat: np.ndarray, n: int, keep: np.ndarray) -> np.ndarray:
    """Flat indices ``(n_kept, n)`` of the ``n`` objects with the largest sort key per kept
    event, from the objects per event (``counts``) and their flattened sort key (``flat``).

    One stable ``np.lexsort`` over the flattened collection (event number as primary key,
    −key as secondary) replaces per-event jagged sorting and indexing in awkward, which
    dominated the reading time.
    """
    starts = np.cumsum(counts) - counts
    leading = starts[keep][:, None] + np.arange(n)
    # NanoAOD (and our Pythia source) store collections already ordered by pT; an O(M) check
    # skips the sort then. Pairs across an event boundary are exempt from the check.
    descending = flat[1:] <= flat[:-1]
    boundaries = starts[(counts > 0) & (starts > 0)] - 1
    descending[boundaries] = True
    if descending.all():
        return leading
    order = np.lexsort((-flat, np.repeat(np.arange(counts.size), counts)))
    return order[leading]


def _chunk_features(arrays: ak.Array, spec: RootSpec) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Features and condition (then the event key's columns) of one chunk; events lacking
    objects are dropped (counted)."""
    keep = np.ones(len(arrays), dtype=bool)
    dropped = {}
    collections = {coll: _collection_columns(arrays, coll, cs) for coll, cs in spec.collections.items()}
    for coll, cs in spec.collections.items():
        enough = collections[coll][0] >= cs.n
        dropped[coll] = int((~enough).sum())
        keep &= enough
    columns = []
    for coll, cs in spec.collections.items():
        counts, flat = collections[coll]
        index = _leading_indices(counts, flat[cs.sort_by], cs.n, keep)
        for i in range(cs.n):
            columns += [flat[f][index[:, i]] for f in cs.fields]
    columns += [ak.to_numpy(arrays[b]).astype(np.float64)[keep] for b in spec.branches]
    n = int(keep.sum())
    features = np.column_stack(columns) if columns else np.empty((n, 0))
    flat_columns = spec.condition + spec.event_key
    cond = (np.column_stack([ak.to_numpy(arrays[c]).astype(np.float64)[keep] for c in flat_columns])
            if flat_columns else np.empty((n, 0)))
    return features, cond, dropped


def _apply_nan_policy(features: np.ndarray, cond: np.ndarray, policy: str, where: str, names: list[str],
                      branches: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """Refuse or drop events with NaN/inf; returns the kept arrays and the dropped count."""
    everything = np.column_stack([features, cond])
    counts = _nonfinite_counts(everything)
    if not counts.any():
        return features, cond, 0
    if policy == "refuse":
        bad = [f"{branches[i]} ({names[i]}): {int(c)}" for i, c in enumerate(counts) if c]
        raise InputError(f"{where}: non-finite (NaN/inf) values in {', '.join(bad)}; "
                         f"set nan_policy: drop to drop those events")
    ok = np.isfinite(everything).all(axis=1)
    return features[ok], cond[ok], int((~ok).sum())


# --------------------------------------------------------------------------- readers


def _checked_selection(iterator, spec: RootSpec):
    """Yield from uproot's iterator, turning a failing ``cut`` into an InputError."""
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as err:  # uproot evaluates the cut lazily, per chunk
            if not spec.selection:
                raise
            raise InputError(f"selection {spec.selection!r} on tree {spec.tree!r} failed: expected one boolean "
                             f"per event ({type(err).__name__}: {err})") from None
        yield item


def read_root(spec: RootSpec, sink: Callable[..., None] | None = None) -> EventSet:
    """Read a ROOT TTree into an :class:`EventSet`, chunk by chunk (see :class:`RootSpec`).

    With ``sink``, each chunk's (features, condition) goes to ``sink`` instead of being
    kept (and ``event_key=`` its key, when the spec names one), and the returned EventSet carries the metadata with zero rows: that is how the
    ingest stage streams files larger than memory into HDF5 (:func:`hepgenbench.io.event_writer`).
    """
    if spec.nan_policy not in NAN_POLICIES:
        raise InputError(f"nan_policy {spec.nan_policy!r}: expected one of {list(NAN_POLICIES)}")
    if not spec.collections and not spec.branches:
        raise InputError(f"tree {spec.tree!r}: no features requested (give 'branches' and/or 'collections')")
    files = resolve_files(spec.files)
    needed = set(spec.branches) | set(spec.condition) | set(spec.event_key)
    for coll, cs in spec.collections.items():
        needed |= set(cs.branches(coll))
    needed_for_cut = _selection_names(spec.selection) if spec.selection else set()
    layout = _layout(spec)
    feature_parts, cond_parts, key_parts, n_kept = [], [], [], 0
    n_cond = len(spec.condition)
    meta_counts = {"n_read": 0, "n_after_selection": 0, "n_dropped_nonfinite": 0,
                   "n_dropped_too_few": {c: 0 for c in spec.collections}}
    # Files are checked one at a time as they are read, each opened once: every file's
    # metadata must be parsed anyway, and a second open costs as much as a small file's read.
    for path in files:
        f, tree = _open_tree(path, spec.tree, sorted(needed))
        with f:
            missing = sorted(n for n in needed_for_cut if n not in tree)
            if missing:
                raise InputError(f"selection {spec.selection!r}: {path}:{spec.tree} has no branch(es) {missing}; "
                                 f"it has: {_abbreviated(tree.keys())}")
            iterator = tree.iterate(sorted(needed), cut=spec.selection, step_size=spec.step_size, report=True,
                                    library="ak")
            for arrays, report in _checked_selection(iterator, spec):
                meta_counts["n_read"] += report.tree_entry_stop - report.tree_entry_start
                meta_counts["n_after_selection"] += len(arrays)
                features, cond, dropped = _chunk_features(arrays, spec)
                for c, k in dropped.items():
                    meta_counts["n_dropped_too_few"][c] += k
                flat = spec.condition + spec.event_key
                features, cond, n_bad = _apply_nan_policy(
                    features, cond, spec.nan_policy, f"{path}:{spec.tree}", layout.names + flat, layout.branches + flat)
                cond, key = cond[:, :n_cond], cond[:, n_cond:].astype(np.int64)
                meta_counts["n_dropped_nonfinite"] += n_bad
                n_kept += len(features)
                if sink is not None:
                    if spec.event_key:
                        sink(features, cond if spec.condition else None, event_key=key)
                    else:
                        sink(features, cond if spec.condition else None)
                else:
                    feature_parts.append(features)
                    cond_parts.append(cond)
                    key_parts.append(key)
    empty = np.empty((0, len(layout.names)))
    features = np.concatenate(feature_parts) if feature_parts else empty
    if spec.selection and meta_counts["n_after_selection"] == 0:
        raise InputError(f"selection {spec.selection!r} keeps 0 of {meta_counts['n_read']} events in {files}")
    if n_kept == 0:
        raise InputError(f"{files}:{spec.tree}: no event has the required objects "
                         f"({ {c: cs.n for c, cs in spec.collections.items()} }); counts: {meta_counts}")
    condition = None
    if spec.condition:
        condition = np.concatenate(cond_parts) if cond_parts else np.empty((0, len(spec.condition)))
    return EventSet(
        features=features,
        feature_names=layout.names,
        kind=spec.kind,
        transforms=[dict(spec.transforms.get(n, default_transform(n))) for n in layout.names],
        condition=condition,
        condition_names=list(spec.condition),
        units=[_unit(n) for n in layout.names],
        meta={"source": "root", "files": files, "tree": spec.tree, "selection": spec.selection, "n_events": n_kept,
              **meta_counts, META_KEY: [o.to_dict() for o in _object_orders(spec)], "event_key": spec.event_key},
        event_key=np.concatenate(key_parts) if spec.event_key and key_parts else None,
    )


def _object_orders(spec: RootSpec) -> list[ObjectOrder]:
    """The collections stored leading first by a field that is itself a feature (so that
    generated objects can be put in the same order; see :mod:`hepgenbench.ordering`)."""
    return [ObjectOrder.of_collection(name, cs.n, cs.sort_by, cs.fields)
            for name, cs in spec.collections.items() if cs.n >= 2 and cs.sort_by in cs.fields]


def _open_hdf5(path: str) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"{path}: not a readable HDF5 file ({err})") from None


def _read_column(f: h5py.File, path: str, key: str) -> np.ndarray:
    if key not in f:
        raise InputError(f"{path}: no dataset {key!r}; it has: {_abbreviated(f.keys())}")
    data = f[key]
    if not isinstance(data, h5py.Dataset) or data.ndim not in (1, 2) or (data.ndim == 2 and data.shape[1] != 1):
        raise InputError(f"{path}: {key!r} must be a (N,) or (N, 1) dataset, got "
                         f"{getattr(data, 'shape', type(data).__name__)}")
    return np.asarray(data[()], dtype=np.float64).reshape(-1)


def read_hdf5(spec: Hdf5Spec) -> EventSet:
    """Read flat HDF5 datasets (one per feature/condition) from one or more files."""
    if spec.nan_policy not in NAN_POLICIES:
        raise InputError(f"nan_policy {spec.nan_policy!r}: expected one of {list(NAN_POLICIES)}")
    feature_parts, cond_parts, key_parts, n_bad = [], [], [], 0
    files = resolve_files(spec.files)
    flat = spec.condition + spec.event_key
    for path in files:
        with _open_hdf5(path) as f:
            columns = [_read_column(f, path, k) for k in spec.features]
            conds = [_read_column(f, path, k) for k in flat]
        lengths = {len(c) for c in columns + conds}
        if len(lengths) != 1:
            raise InputError(f"{path}: datasets {spec.features + flat} differ in length {sorted(lengths)}")
        n = lengths.pop()
        features = np.column_stack(columns)
        cond = np.column_stack(conds) if conds else np.empty((n, 0))
        features, cond, bad = _apply_nan_policy(features, cond, spec.nan_policy, path, spec.features + flat,
                                                spec.features + flat)
        n_bad += bad
        feature_parts.append(features)
        cond_parts.append(cond[:, : len(spec.condition)])
        key_parts.append(cond[:, len(spec.condition) :].astype(np.int64))
    return EventSet(
        features=np.concatenate(feature_parts),
        feature_names=list(spec.features),
        kind=spec.kind,
        transforms=[dict(spec.transforms.get(n, default_transform(n))) for n in spec.features],
        condition=np.concatenate(cond_parts) if spec.condition else None,
        condition_names=list(spec.condition),
        units=[_unit(n) for n in spec.features],
        meta={"source": "hdf5", "files": files, "n_dropped_nonfinite": n_bad, "event_key": spec.event_key},
        event_key=np.concatenate(key_parts) if spec.event_key else None,
    )


N_VOXELS = DS1_PHOTONS.n_voxels


def voxel_names(geometry: CaloGeometry = DS1_PHOTONS) -> list[str]:
    return geometry.voxel_names()


#: How a shower reaches the generators (the ``representation`` key of a calo dataset).
CALO_REPRESENTATIONS = ("shares", "voxels")


def calo_transforms(representation: str, readout_threshold_mev: float,
                    geometry: CaloGeometry = DS1_PHOTONS) -> list[dict]:
    """The voxels' preprocessing specs for a ``representation`` of the shower.

    ``shares``: the ``shower_share`` block (E_tot / E_inc, the layers' shares of it and the
    voxels' shares of their layer; :class:`hepgenbench.preprocess.ShowerShares`), grouped
    by the geometry's layers. ``voxels``: each voxel's energy over E_inc through a logit, on
    its own (``fraction_logit``). Both regularise by α = 1e-6, as CaloFlow does
    (arXiv:2106.05285), and zero-suppress generated voxels below the readout threshold, as
    the detector did to the truth.
    """
    if representation not in CALO_REPRESENTATIONS:
        raise InputError(f"representation '{representation}' is not one of {CALO_REPRESENTATIONS}")
    if representation == "voxels":
        return [{"type": "fraction_logit", "alpha": 1e-6, "threshold": readout_threshold_mev}
                for _ in range(geometry.n_voxels)]
    layer, *_ = geometry.voxel_centres()
    return [{"type": "shower_share", "group": f"layer{l}", "alpha": 1e-6, "threshold": readout_threshold_mev}
            for l in layer]


def read_calochallenge(
    path: str | os.PathLike, nan_policy: str = "refuse", readout_threshold_mev: float = READOUT_THRESHOLD_MEV,
    representation: str = "shares", geometry: CaloGeometry = DS1_PHOTONS, binning: str | None = None,
    rows: np.ndarray | None = None,
) -> EventSet:
    """Read a CaloChallenge file (``incident_energies``, ``showers``, MeV) in ``geometry``.

    Features are the voxels ``v000``…; the condition is ``E_inc``. Their transforms are
    :func:`calo_transforms` of ``representation``. A voxel count other than the geometry's
    is an :class:`InputError` naming both and the file (``binning`` names the geometry).
    The whole file is loaded, or only the showers at the increasing indices ``rows``;
    :func:`hepgenbench.data.calo_features.stream_high_level_features` reads one in chunks.
    """
    from hepgenbench.data.calo_features import open_showers

    path = str(path)
    resolve_files([path])
    f, showers, e_inc = open_showers(path, geometry, binning)
    with f:
        showers = np.asarray(showers[()] if rows is None else showers[np.asarray(rows)], dtype=np.float64)
    e_inc = (e_inc if rows is None else e_inc[np.asarray(rows)]).reshape(-1, 1)
    names = voxel_names(geometry)
    n_voxels = geometry.n_voxels
    showers, e_inc, n_bad = _apply_nan_policy(showers, e_inc, nan_policy, path, names + ["E_inc"],
                                              [f"showers[:, {i}]" for i in range(n_voxels)] + ["incident_energies"])
    return EventSet(
        features=showers,
        feature_names=names,
        kind="calo",
        transforms=calo_transforms(representation, readout_threshold_mev, geometry),
        condition=e_inc,
        condition_names=["E_inc"],
        units=["MeV"] * n_voxels,
        meta={"source": "calochallenge", "files": [path], "n_dropped_nonfinite": n_bad,
              CALO_META_KEY: geometry.to_meta()},
    )
