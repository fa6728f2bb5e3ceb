"""Dataset kinds: what a dataset *is*, behind one registry.

A kind (``zmumu``, ``phasespace``, ``calo``, ``generic``) decides how a dataset is made and
judged. The stages, the evaluation and the workflow ask it, never a string:

* its **sources**: the generator the workflow runs (``pythia``, ``phasespace``, ``calo``)
  or the reader of the user's files (``calochallenge``); the shared readers ``root`` and
  ``hdf5`` yield whichever kind the dataset's ``kind:`` names (:mod:`.sources`);
* its **derived observables** (m_μμ, shower shapes…), one code path for truth and samples,
  and their axis labels and units (``observable_axes``);
* its **physics checks**, the kind's part of the unphysical fraction;
* its optional **true density** (:class:`TrueDensity`: numpy and torch log-density, the
  baseline proposal's importance weights);
* its **extra metrics** and its **extra plots** (``extra_plots`` draws them from a
  :class:`KindPlotInputs`; the calo and phasespace figures are in :mod:`hepgenbench.plotting`);
* its **config-schema fragment**: each source's keys, checked per source before any job
  runs (:func:`validate_dataset`).

Adding a kind is one module in this package (found by :func:`pkgutil.iter_modules`), or
one module of an installed package declared in the entry-point group ``hepgenbench.kinds``.
The module defines

1. a :class:`DatasetKind` subclass decorated with :func:`register`, with ``name``;
2. if it has its own data: :class:`Source` subclasses listed in ``sources`` (``name``,
   ``kind``, ``embedded``, ``properties`` for its config keys, ``generate`` for a
   generator, ``read`` for both), or ``readers = ("root", "hdf5")`` to be read from the
   user's files by the shared readers;
3. whichever of ``observables``, ``observable_axes``, ``unphysical``, ``eta_limit``,
   ``density``, ``classifier_inputs``, ``physics_features``, ``extra_metrics`` and
   ``extra_plots`` the kind has (the defaults suit a plain table of features);
4. ``example``: a small dataset block, on which ``tests/test_kinds.py`` runs the common
   checks (ingest → split → preprocess → inverse round trip, observables well formed).

Nothing here imports torch, matplotlib or the file libraries at import time: the Snakefile imports
the registry, and parsing it must stay fast.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points

from hepgenbench.kinds.base import WORKFLOW_KEYS, DatasetKind, KindPlotInputs, Source, TrueDensity, feature_column
from hepgenbench.kinds.registry import (
    KINDS,
    SOURCES,
    dataset_schema,
    embedded_sources,
    get,
    kind_of,
    kinds_read_by,
    register,
    register_source,
    source,
    source_schema,
    validate_dataset,
)

ENTRY_POINT_GROUP = "hepgenbench.kinds"
_INFRASTRUCTURE = {"base", "registry"}


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _INFRASTRUCTURE:
            importlib.import_module(f"{__name__}.{info.name}")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


_discover()

__all__ = [
    "KINDS", "SOURCES", "WORKFLOW_KEYS", "DatasetKind", "KindPlotInputs", "Source", "TrueDensity", "dataset_schema",
    "embedded_sources", "feature_column", "get", "kind_of", "kinds_read_by", "register", "register_source", "source",
    "source_schema", "validate_dataset",
]
