"""A plain table of features: no derived observables, only the common physics checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hepgenbench.kinds.base import DatasetKind
from hepgenbench.kinds.registry import register


@register
class Generic(DatasetKind):
    """Any features from the user's ROOT or HDF5 files."""

    name: ClassVar[str] = "generic"

    def example(self, directory: str, n_events: int, seed: int) -> dict[str, Any]:
        import h5py

        rng = np.random.default_rng(seed)
        path = Path(directory) / "generic.h5"
        with h5py.File(path, "w") as f:
            f["x"] = rng.normal(size=n_events)
            f["energy"] = rng.lognormal(3.0, 0.5, size=n_events)
        return {"source": "hdf5", "files": str(path), "features": ["x", "energy"], "kind": "generic"}
