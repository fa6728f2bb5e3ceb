"""Atomic file output and the HDF5 event container shared by every stage.

Snakemake deletes the outputs of a failed job, but a job killed by SIGKILL or a node
failure never gets that chance. Every writer here therefore writes to a temporary file in
the destination directory and renames it into place, so that a file that exists is a
finished file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hepgenbench.errors import InputError

if TYPE_CHECKING:
    import h5py  # imported where files are opened: the registries import EventSet


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates the file private (0600); outputs are meant to be read by others.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically. NaN/inf are written as null-safe strings."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


@dataclass
class EventSet:
    """A flat table of events in physical units, as every stage after ingestion sees it.

    Attributes:
        features: ``(N, D)`` array that the generators learn, in physical units.
        feature_names: the ``D`` column names (unique).
        kind: the registered dataset kind (:mod:`hepgenbench.kinds`) whose observables,
            physics checks and figures apply.
        transforms: one preprocessing spec per feature (see :mod:`hepgenbench.preprocess`).
        condition: optional ``(N, C)`` array every model is conditioned on (the incident
            energy for showers).
        condition_names: the ``C`` condition names.
        log_density: optional ``(N,)`` true log-density of each event in feature space, for
            datasets whose density is known (``phasespace``).
        units: optional unit string per feature, for axis labels.
        meta: free-form provenance (source, generator settings, counts).
        event_key: optional ``(N, K)`` integer key of the collision each row belongs to
            (``[Run, Event]``, say): rows that share it are one event, which the split
            keeps on one side and duplicate counts recognise.
    """

    features: np.ndarray
    feature_names: list[str]
    kind: str = "generic"
    transforms: list[dict] = field(default_factory=list)
    condition: np.ndarray | None = None
    condition_names: list[str] = field(default_factory=list)
    log_density: np.ndarray | None = None
    units: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    event_key: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.features = np.asarray(self.features, dtype=np.float64)
        if self.features.ndim != 2:
            raise InputError(f"features must be a 2-D (events, features) array, got shape {self.features.shape}")
        n, d = self.features.shape
        if len(self.feature_names) != d:
            raise InputError(f"{d} feature columns but {len(self.feature_names)} feature names")
        dupes = sorted({f for f in self.feature_names if self.feature_names.count(f) > 1})
        if dupes:
            raise InputError(f"duplicated feature names {dupes}: every feature needs a unique name")
        if not self.transforms:
            self.transforms = [{"type": "standard"} for _ in range(d)]
        if len(self.transforms) != d:
            raise InputError(f"{d} features but {len(self.transforms)} transform specs")
        if not self.units:
            self.units = [""] * d
        if self.condition is not None:
            self.condition = _rows(np.asarray(self.condition, dtype=np.float64), n)
            if len(self.condition_names) != self.condition.shape[1]:
                raise InputError("condition columns and condition_names differ in length")
        if self.log_density is not None:
            self.log_density = np.asarray(self.log_density, dtype=np.float64).reshape(n)
        if self.event_key is not None:
            self.event_key = _rows(np.asarray(self.event_key, dtype=np.int64), n)

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def n_features(self) -> int:
        return self.features.shape[1]

    @property
    def n_conditions(self) -> int:
        return 0 if self.condition is None else self.condition.shape[1]

    def subset(self, index: np.ndarray) -> EventSet:
        """The events at ``index`` (an integer array or boolean mask), sharing metadata."""
        return EventSet(
            features=self.features[index],
            feature_names=list(self.feature_names),
            kind=self.kind,
            transforms=[dict(t) for t in self.transforms],
            condition=None if self.condition is None else self.condition[index],
            condition_names=list(self.condition_names),
            log_density=None if self.log_density is None else self.log_density[index],
            units=list(self.units),
            meta=dict(self.meta),
            event_key=None if self.event_key is None else self.event_key[index],
        )


def _rows(array: np.ndarray, n: int) -> np.ndarray:
    """``array`` as ``n`` rows (a 1-D array becomes one column; zero rows keep their width)."""
    width = array.shape[-1] if array.ndim > 1 else 1
    return array.reshape(n, -1) if n else array.reshape(0, width)


class EventAppender:
    """Appends chunks of events to an open HDF5 event file (see :func:`event_writer`)."""

    def __init__(self, f: h5py.File) -> None:
        self._f = f
        self.n_events = 0
        self.finished = False

    def append(self, features: np.ndarray, condition: np.ndarray | None = None,
               log_density: np.ndarray | None = None, event_key: np.ndarray | None = None) -> None:
        """Add a chunk: ``features`` (n, D), optional ``condition`` (n, C), ``log_density`` (n,)
        and ``event_key`` (n, K)."""
        n = len(features)
        for key, chunk, dtype in (("features", features, np.float64), ("condition", condition, np.float64),
                                  ("log_density", log_density, np.float64), ("event_key", event_key, np.int64)):
            if chunk is None:
                continue
            chunk = np.asarray(chunk, dtype=dtype)
            if key not in self._f:
                self._f.create_dataset(key, shape=(0, *chunk.shape[1:]), maxshape=(None, *chunk.shape[1:]),
                                       dtype=dtype, chunks=True, compression="gzip", compression_opts=1)
            data = self._f[key]
            data.resize(self.n_events + n, axis=0)
            data[self.n_events :] = chunk
        self.n_events += n

    def event_keys(self) -> np.ndarray | None:
        """The event keys appended so far, or ``None`` if no chunk had one."""
        return self._f["event_key"][()] if "event_key" in self._f else None

    def finish(self, header: EventSet, extra: dict[str, np.ndarray] | None = None) -> None:
        """Write the metadata of ``header`` (its arrays are ignored) and any extra arrays."""
        for key, value in (extra or {}).items():
            self._f.create_dataset(key, data=value)
        self._f.attrs["feature_names"] = json.dumps(header.feature_names)
        self._f.attrs["condition_names"] = json.dumps(header.condition_names)
        self._f.attrs["kind"] = header.kind
        self._f.attrs["transforms"] = json.dumps(header.transforms)
        self._f.attrs["units"] = json.dumps(header.units)
        self._f.attrs["meta"] = json.dumps(header.meta, default=_json_default)
        self.finished = True


@contextlib.contextmanager
def event_writer(path: str | os.PathLike) -> Iterator[EventAppender]:
    """Stream events into ``path`` chunk by chunk; the file appears, complete, only when the
    block ends without an error and :meth:`EventAppender.finish` was called. Memory stays
    at one chunk, whatever the number of events."""
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        appender = EventAppender(f)
        yield appender
        if not appender.finished:
            raise RuntimeError(f"{path}: event_writer left without finish(): the file would lack its metadata")


def write_events(path: str | os.PathLike, events: EventSet, extra: dict[str, np.ndarray] | None = None) -> None:
    """Write an :class:`EventSet` (plus optional extra arrays) to HDF5, atomically."""
    with event_writer(path) as out:
        out.append(events.features, events.condition, events.log_density, events.event_key)
        out.finish(events, extra)


def read_events(path: str | os.PathLike) -> EventSet:
    """Read an :class:`EventSet` written by :func:`write_events`."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file does not exist")
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"{path}: not a readable HDF5 file ({err})") from None
    with f:
        if "features" not in f:
            raise InputError(f"{path}: no 'features' dataset; expected a file written by hepgenbench")
        return EventSet(
            features=f["features"][()],
            feature_names=json.loads(f.attrs["feature_names"]),
            kind=str(f.attrs.get("kind", "generic")),
            transforms=json.loads(f.attrs.get("transforms", "[]")),
            condition=f["condition"][()] if "condition" in f else None,
            condition_names=json.loads(f.attrs.get("condition_names", "[]")),
            log_density=f["log_density"][()] if "log_density" in f else None,
            units=json.loads(f.attrs.get("units", "[]")),
            meta=json.loads(f.attrs.get("meta", "{}")),
            event_key=f["event_key"][()] if "event_key" in f else None,
        )


def read_extra(path: str | os.PathLike, key: str) -> np.ndarray | None:
    """Read an extra array stored beside the events, or ``None`` when it is absent."""
    import h5py

    with h5py.File(path, "r") as f:
        return f[key][()] if key in f else None
