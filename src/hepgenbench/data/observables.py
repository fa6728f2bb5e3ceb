"""Derived observables that no model sees directly, computed the same way for truth and samples.

A generator is trained on single-object features (muon pT, η, φ…); whether it has learnt
their correlations shows in composite quantities such as the dimuon mass. Because the same
function serves truth and generated events, any difference is the model's. Each dataset
kind defines its own (:meth:`hepgenbench.kinds.DatasetKind.observables`).
"""

from __future__ import annotations

import numpy as np

from hepgenbench.io import EventSet
from hepgenbench.kinds.zmumu import MUON_MASS_GEV  # noqa: F401  (the muon mass the observables use)


def derived_observables(events: EventSet) -> tuple[np.ndarray, list[str]]:
    """Derived observables ``(N, K)`` and their names, from ``events.kind``'s kind."""
    from hepgenbench import kinds

    return kinds.get(events.kind).observables(events)
