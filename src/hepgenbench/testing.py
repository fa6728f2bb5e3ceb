"""Synthetic event sets with known shapes, shared by the tests and the benchmarks."""

from __future__ import annotations

import numpy as np

from hepgenbench.io import EventSet


def zmumu_like(n: int, seed: int, pt_shift: float = 0.0) -> EventSet:
    """``n`` events with the Z→μμ dataset's ten feature names (so its derived observables
    apply) and simple independent shapes; ``pt_shift`` moves every pT by that many GeV."""
    rng = np.random.default_rng(seed)
    columns = {}
    for obj in ("Muon1", "Muon2", "Jet1"):
        columns[f"{obj}_pt"] = rng.exponential(20.0, n) + 20.0 + pt_shift
        columns[f"{obj}_eta"] = rng.uniform(-2.3, 2.3, n)
        columns[f"{obj}_phi"] = rng.uniform(-np.pi, np.pi, n)
    columns["Jet1_mass"] = rng.exponential(5.0, n)
    return EventSet(np.column_stack(list(columns.values())), list(columns), kind="zmumu")
