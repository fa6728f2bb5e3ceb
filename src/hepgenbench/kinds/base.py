"""The base classes of the kind registry: :class:`Source`, :class:`DatasetKind`, :class:`TrueDensity`,
and :class:`KindPlotInputs`, what a kind's own figures are drawn from.

Nothing here imports torch, matplotlib, h5py, uproot or vector at module level: the Snakefile imports
the registry to expand the DAG, and that must stay fast. Kinds import what they need
inside their methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hepgenbench.errors import InputError

if TYPE_CHECKING:
    from hepgenbench.evaluate import EvalOptions
    from hepgenbench.io import EventSet
    from hepgenbench.metrics.base import MetricResult
    from hepgenbench.records import PlotRecord

#: Dataset config keys that steer the workflow rather than a reader.
WORKFLOW_KEYS = ("source", "name", "split", "training")

#: Schema of the keys every dataset block may carry, whatever its source. ``split`` and
#: ``training`` are checked in full by ``workflow/schemas/config.schema.yaml``.
COMMON_PROPERTIES: dict[str, Any] = {
    "split": {"type": "object"},
    "training": {"type": "object"},
}
#: Keys every embedded (generated) source takes.
EMBEDDED_PROPERTIES: dict[str, Any] = {
    "n_events": {"type": "integer", "minimum": 1, "description": "events to generate"},
}
#: Keys every reader of the user's files takes.
FILES_PROPERTIES: dict[str, Any] = {
    "files": {
        "description": "the user's files, a path or glob or a list of them",
        "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
    },
    "nan_policy": {"enum": ["refuse", "drop"], "default": "refuse",
                   "description": "refuse files with NaN/inf features, or drop those events"},
}


class Source(ABC):
    """Where a dataset's events come from: a generator the workflow runs, or a reader.

    Class attributes:
        name: the value of a dataset's ``source:`` key.
        kind: the kind of every dataset from this source; ``None`` for a reader shared by
            kinds (``root``, ``hdf5``), whose dataset names its kind in ``kind:``.
        embedded: the workflow generates the events (``generate``); otherwise they are
            the user's ``files``.
        file_suffix: the file an embedded source writes, ``results/{dataset}/source/events.<suffix>``.
        chunked: generated as ``chunks`` seeded jobs merged into one file (ROOT only).
        streams: ingest passes a ``sink`` to ``read`` and writes chunk by chunk.
        properties: JSON-schema ``properties`` of this source's own keys; with
            :data:`COMMON_PROPERTIES` and the embedded or files keys they make its fragment.
        required: keys the fragment requires besides ``source``.
    """

    name: ClassVar[str]
    kind: ClassVar[str | None] = None
    embedded: ClassVar[bool] = False
    file_suffix: ClassVar[str] = "h5"
    chunked: ClassVar[bool] = False
    streams: ClassVar[bool] = False
    properties: ClassVar[dict[str, Any]] = {}
    required: ClassVar[tuple[str, ...]] = ()

    def generate(self, output: str, params: dict[str, Any], log: Callable[..., None]) -> dict:
        """Write ``params["n_events"]`` events seeded by ``params["seed"]`` to ``output``."""
        raise InputError(f"source '{self.name}' reads the user's files; the workflow does not generate it")

    @abstractmethod
    def read(self, files: list[str], params: dict[str, Any],
             sink: Callable[[np.ndarray, np.ndarray | None], None] | None = None) -> EventSet:
        """The events of ``files`` (a dataset block as ``params``). With ``sink`` (when
        :attr:`streams`), chunks go to ``sink`` and the result holds only the metadata."""

    def schema(self, kinds: list[str]) -> dict[str, Any]:
        """This source's fragment of the config schema; ``kinds``: those a shared reader may yield."""
        properties = {"source": {"const": self.name}, **COMMON_PROPERTIES,
                      **(EMBEDDED_PROPERTIES if self.embedded else FILES_PROPERTIES), **self.properties}
        required = ["source", *(["n_events"] if self.embedded else ["files"]), *self.required]
        if self.kind is None:
            properties["kind"] = {"enum": kinds, "default": "generic",
                                  "description": "which observables, checks and metrics apply"}
        return {"type": "object", "additionalProperties": False, "required": required, "properties": properties}

    @staticmethod
    def options(params: dict[str, Any], workflow_keys: tuple[str, ...] = ()) -> dict[str, Any]:
        """The dataset block without the keys that steer the workflow: a reader's options."""
        skip = set(WORKFLOW_KEYS) | set(workflow_keys)
        return {k: v for k, v in params.items() if k not in skip}


class TrueDensity(ABC):
    """A kind's known density p(x) of the features in physical units."""

    @abstractmethod
    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """log p(x), −inf outside the physical region."""

    @abstractmethod
    def log_prob_torch(self, x):
        """The same in torch, differentiable: density-trained models train on it."""

    def box(self) -> list[tuple[float, float]] | None:
        """The bounding box of the support, one ``(low, high)`` per feature, for a grid
        sampler (VEGAS, :mod:`hepgenbench.physics.vegas_baseline`); None if unbounded."""
        return None

    def baseline_weights(self, n: int, seed: int) -> dict | None:
        """Importance weights p/q of the baseline proposal q that a trained sampler must beat
        (``efficiency``, ``relative_error``, ``fraction_zero_weight``, ``n``), or None."""
        return None


class DatasetKind:
    """What a kind of dataset means: the base that every kind subclasses.

    Class attributes:
        name: the kind's registry name (``EventSet.kind``).
        sources: the sources that always yield this kind (its generator, its own reader).
        readers: the shared readers (``root``, ``hdf5``) whose ``kind:`` may name it.
        support_reason: what the physics check calls an event where the true density is 0.

    Every method has a default that suits a plain table of features.
    """

    name: ClassVar[str]
    sources: ClassVar[tuple[type[Source], ...]] = ()
    readers: ClassVar[tuple[str, ...]] = ("root", "hdf5")
    support_reason: ClassVar[str] = "outside_support"  #: the physics check's name for log p = −inf

    def observables(self, events: EventSet) -> tuple[np.ndarray, list[str]]:
        """Derived observables ``(N, K)`` and their names, the same code for truth and samples."""
        return np.empty((len(events), 0)), []

    def observable_axes(self, names: list[str]) -> list[tuple[str, str]]:
        """Axis label (matplotlib mathtext allowed) and unit of each derived observable in
        ``names``, for the figures; by default the name itself and no unit."""
        return [(name, "") for name in names]

    def eta_limit(self, feature: str) -> float | None:
        """The |η| acceptance of a pseudorapidity feature, None for no limit."""
        lowered = feature.lower()
        if "jet" in lowered:
            return ETA_LIMIT_JET
        if "mu" in lowered:
            return ETA_LIMIT_MUON
        return None

    def unphysical(self, gen: np.ndarray, feature_names: list[str], truth: np.ndarray | None,
                   condition: np.ndarray | None, truth_condition: np.ndarray | None) -> dict[str, np.ndarray]:
        """The kind's own physics checks: ``{reason: per-event mask of failures}``; the
        checks every kind shares (non-finite, negative pT, η acceptance) are in
        :func:`hepgenbench.metrics.sanity.unphysical_fraction`."""
        return {}

    def density(self, feature_names: list[str]) -> TrueDensity | None:
        """The true density of events with these features, if the kind knows it."""
        return None

    def classifier_inputs(self, events: EventSet) -> tuple[np.ndarray, list[str], str | None]:
        """Inputs of the low-level C2ST, their names and a note on them (None: the features
        and conditions as they are). A conditional model is judged on the joint sample."""
        if events.condition is None:
            return events.features, list(events.feature_names), None
        return (np.column_stack([events.features, events.condition]),
                list(events.feature_names) + list(events.condition_names), None)

    def physics_features(self, events: EventSet, observables: np.ndarray,
                         names: list[str]) -> tuple[np.ndarray, list[str]]:
        """The features FPD and KPD compare: model features and derived observables."""
        return np.column_stack([events.features, observables]), list(events.feature_names) + list(names)

    def extra_metrics(self, truth: EventSet, generated: EventSet, truth_obs: np.ndarray, gen_obs: np.ndarray,
                      obs_names: list[str], options: EvalOptions, seed: int) -> dict[str, MetricResult]:
        """Metrics only this kind has, by key."""
        return {}

    def check_sample(self, generated: EventSet, truth: EventSet, path: str,
                     allow_condition_mismatch: bool = False) -> list[str]:
        """Refuse (:class:`~hepgenbench.errors.InputError`, one line naming ``path``) a sample
        made outside hepgenbench that cannot be scored against ``truth`` as it stands (the
        wrong units, conditions drawn unlike truth's); return warnings. The features and
        finiteness are checked before this (:func:`hepgenbench.scoring.check_generated`)."""
        return []

    def extra_plots(self, inputs: KindPlotInputs) -> list[PlotRecord]:
        """The kind's own figures, drawn by the plots stage after the histograms every kind
        gets. A kind that draws imports matplotlib inside this method: the registry is
        imported by the Snakefile and must not load it."""
        return []

    def example(self, directory: str, n_events: int, seed: int) -> dict[str, Any]:
        """A small dataset block of this kind (writing its files into ``directory`` if it
        reads files): what the common checks in ``tests/test_kinds.py`` run on."""
        raise NotImplementedError(f"kind '{self.name}' has no example dataset")


@dataclass(frozen=True)
class KindPlotInputs:
    """What a kind's extra figures may use: truth and the samples, their derived observables,
    the metrics records, the model colours and the dataset's plot directory.

    Attributes:
        dataset: the dataset name, for titles.
        truth: truth holdout A in physical units.
        samples: generated events per model, in the config's order.
        metrics: each model's metrics record as a dict (and ``"truth"``'s, if scored).
        truth_obs, obs_names: truth's derived observables ``(N, K)`` and their names.
        sample_obs: each model's derived observables.
        colors: one colour per model.
        out: the dataset's plot directory; a kind writes under ``out / <kind name>``.
    """

    dataset: str
    truth: EventSet
    samples: Mapping[str, EventSet]
    metrics: Mapping[str, dict]
    truth_obs: np.ndarray
    obs_names: list[str]
    sample_obs: Mapping[str, np.ndarray]
    colors: Mapping[str, str]
    out: Path


#: tracker acceptance of the muon chambers (CMS/ATLAS |η| < 2.4) and of jets (HF, |η| < 4.7)
ETA_LIMIT_MUON = 2.4
ETA_LIMIT_JET = 4.7


def feature_column(events: EventSet, name: str) -> np.ndarray:
    """The column of feature ``name``; a missing one is an :class:`InputError` naming it."""
    try:
        return events.features[:, events.feature_names.index(name)]
    except ValueError:
        raise InputError(f"{events.kind} events need a feature {name!r}; they have {events.feature_names}") from None
