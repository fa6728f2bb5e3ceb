"""Calorimeter geometry and incident-energy binning: the one place the calo kind keeps them.

A CaloChallenge 2022 dataset (Krause et al., arXiv:2410.21611) stores each shower as a flat
vector of voxels: layer by layer, and within a layer the α (angular) bin is the outer index
and the r (radial) bin the inner one, as in the challenge's ``XMLHandler``. α-bin centres
split (−π, π) evenly, and a voxel sits at (x, y) = (r cos α, r sin α) with r the mid-point
of its r bin. :class:`CaloGeometry` holds that layout; dataset 1 (photons,
``binning_dataset_1_photons.xml``) is built in as :data:`DS1_PHOTONS`, and a geometry
round-trips through an :class:`~hepgenbench.io.EventSet`'s ``meta["calo_layers"]`` so that
another binning (ds2, ds3, read from the challenge's XML by a later reader) travels with
its showers.

Only numpy is imported here: the kind registry, which the Snakefile loads, imports this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from hepgenbench.errors import InputError

#: the key of :attr:`EventSet.meta` that carries a geometry (a list of ``{"id", "r_edges", "n_alpha"}``)
META_KEY = "calo_layers"
#: the condition column that holds the incident energy (MeV)
INCIDENT_ENERGY = "E_inc"
#: The smallest energy a voxel reads out (MeV); lower deposits read 0. 15 keV is the
#: CaloChallenge's 0.5 keV / 0.033 sampling fraction, the min_energy of its evaluate.py for
#: datasets 2 and 3.
READOUT_THRESHOLD_MEV = 0.015


@dataclass(frozen=True)
class CaloLayer:
    """One layer that has voxels: its id, radial bin edges (mm), angular bins and first voxel."""

    layer_id: int
    r_edges: tuple[float, ...]
    n_alpha: int
    start: int

    @property
    def n_r(self) -> int:
        return len(self.r_edges) - 1

    @property
    def n_voxels(self) -> int:
        return self.n_r * self.n_alpha

    @property
    def voxels(self) -> slice:
        """This layer's slice of the flat voxel vector."""
        return slice(self.start, self.start + self.n_voxels)

    def energies(self, showers: np.ndarray) -> np.ndarray:
        """``(N, n_alpha, n_r)`` voxel energies of this layer (α outer, r inner)."""
        return np.asarray(showers)[:, self.voxels].reshape(-1, self.n_alpha, self.n_r)


@dataclass(frozen=True)
class CaloGeometry:
    """The voxel layout of a calorimeter dataset: its layers in storage order."""

    layers: tuple[CaloLayer, ...]

    @classmethod
    def from_layers(cls, spec: list[tuple[int, tuple[float, ...], int]]) -> "CaloGeometry":
        """From ``[(layer id, r-edges in mm, α bins), ...]`` in storage order."""
        layers, start = [], 0
        for layer_id, r_edges, n_alpha in spec:
            edges = tuple(float(r) for r in r_edges)
            if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])) or int(n_alpha) < 1:
                raise InputError(f"calo layer {layer_id}: r-edges must rise and α bins be ≥ 1, got {edges}, {n_alpha}")
            layer = CaloLayer(int(layer_id), edges, int(n_alpha), start)
            layers.append(layer)
            start += layer.n_voxels
        return cls(tuple(layers))

    @classmethod
    def from_meta(cls, meta: dict, n_voxels: int | None = None) -> "CaloGeometry":
        """The geometry a source wrote into ``meta["calo_layers"]``, else :data:`DS1_PHOTONS`.

        With ``n_voxels``, a geometry of another size raises :class:`InputError`.
        """
        spec = meta.get(META_KEY)
        geometry = DS1_PHOTONS if spec is None else cls.from_layers(
            [(e["id"], e["r_edges"], e["n_alpha"]) for e in spec])
        if n_voxels is not None and geometry.n_voxels != n_voxels:
            raise InputError(
                f"calo events have {n_voxels} voxel features but the layer geometry has {geometry.n_voxels}; "
                f"expected CaloChallenge dataset-1-photon voxels ({DS1_PHOTONS.n_voxels}) or meta['{META_KEY}'] "
                "describing the layers")
        return geometry

    def to_meta(self) -> list[dict]:
        return [{"id": l.layer_id, "r_edges": list(l.r_edges), "n_alpha": l.n_alpha} for l in self.layers]

    @property
    def n_voxels(self) -> int:
        return sum(l.n_voxels for l in self.layers)

    @property
    def layer_ids(self) -> tuple[int, ...]:
        return tuple(l.layer_id for l in self.layers)

    def layer(self, layer_id: int) -> CaloLayer:
        return next(l for l in self.layers if l.layer_id == layer_id)

    def layer_slices(self) -> dict[int, slice]:
        """The slice of the flat voxels that belongs to each layer id."""
        return {l.layer_id: l.voxels for l in self.layers}

    def voxel_names(self) -> list[str]:
        width = max(3, len(str(self.n_voxels - 1)))
        return [f"v{i:0{width}d}" for i in range(self.n_voxels)]

    @cached_property
    def _centres(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        layer, radius, alpha, r_index = [], [], [], []
        for l in self.layers:
            edges = np.asarray(l.r_edges)
            mid = 0.5 * (edges[1:] + edges[:-1])
            alpha_edges = np.linspace(-math.pi, math.pi, l.n_alpha + 1)
            alpha_mid = 0.5 * (alpha_edges[1:] + alpha_edges[:-1]) if l.n_alpha > 1 else np.zeros(1)
            for a in alpha_mid:  # α is the outer index, r the inner one (challenge order)
                layer += [l.layer_id] * l.n_r
                radius += list(mid)
                alpha += [a] * l.n_r
                r_index += list(range(l.n_r))
        return np.array(layer), np.array(radius), np.array(alpha), np.array(r_index)

    def voxel_centres(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per voxel: layer id, bin-centre radius (mm), α-bin centre (rad), r-bin index."""
        return tuple(a.copy() for a in self._centres)


#: CaloChallenge 2022 dataset 1, photons: layers 0, 1, 2, 3, 12 binned 8×1, 16×10, 19×10,
#: 5×1, 5×1 in (r × α), 368 voxels (``binning_dataset_1_photons.xml``).
DS1_PHOTONS = CaloGeometry.from_layers([
    (0, (0, 5, 10, 30, 50, 100, 200, 400, 600), 1),
    (1, (0, 2, 4, 6, 8, 10, 12, 15, 20, 30, 40, 50, 70, 90, 120, 150, 200), 10),
    (2, (0, 2, 5, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100, 130, 160, 200, 250, 300, 350, 400), 10),
    (3, (0, 50, 100, 200, 400, 600), 1),
    (12, (0, 100, 200, 400, 1000, 2000), 1),
])


def incident_energy(condition: np.ndarray | None, condition_names: list[str]) -> np.ndarray:
    """The incident energy column (MeV) of a shower sample's condition."""
    if condition is None or INCIDENT_ENERGY not in condition_names:
        raise InputError(f"calo events need the condition '{INCIDENT_ENERGY}'; they have {list(condition_names)}")
    return np.asarray(condition)[:, list(condition_names).index(INCIDENT_ENERGY)]


#: incident-energy spectra with at most this many distinct values are binned one bin per value
#: (CaloChallenge dataset 1 has 15 discrete energies)
MAX_DISCRETE_ENERGIES = 20
#: fewest truth events a bin should hold; fewer bins are made rather than emptier ones
MIN_EVENTS_PER_ENERGY_BIN = 50


@dataclass(frozen=True)
class EnergyBins:
    """Bins of incident energy, fixed on truth and applied to any sample.

    The rule (one for scores and figures): a discrete spectrum (at most
    :data:`MAX_DISCRETE_ENERGIES` values, each with at least ``min_events`` truth showers, as
    the 15 powers of two of dataset 1) gets one bin per value; any other spectrum gets
    equal-population bins at truth quantiles, at most ``len(truth) / (2 · min_events)`` of
    them. Quantile bins rather than fixed log-width bins, because each bin then holds the
    same truth statistics, so per-bin scores have comparable errors and none is empty; on the
    log-uniform spectra of datasets 2 and 3 (1 GeV–1 TeV) they are log-equal-width anyway.

    Attributes:
        low, high: bin limits in MeV; ``low == high`` for one discrete value.
    """

    low: tuple[float, ...]
    high: tuple[float, ...]

    @classmethod
    def from_truth(cls, e_truth: np.ndarray, max_bins: int = 5,
                   min_events: int = MIN_EVENTS_PER_ENERGY_BIN) -> "EnergyBins":
        e_truth = np.asarray(e_truth, dtype=np.float64).reshape(-1)
        if e_truth.size == 0 or not np.isfinite(e_truth).all():
            raise InputError(f"incident energies: expected finite values, got {e_truth.size} with "
                             f"{int((~np.isfinite(e_truth)).sum())} non-finite")
        values, counts = np.unique(e_truth, return_counts=True)
        if len(values) <= MAX_DISCRETE_ENERGIES and counts.min() >= min_events:
            return cls(tuple(values.tolist()), tuple(values.tolist()))
        n_bins = max(1, min(max_bins, len(e_truth) // (2 * min_events)))
        edges = np.unique(np.quantile(e_truth, np.linspace(0, 1, n_bins + 1)))
        if len(edges) < 2:
            return cls((float(edges[0]),), (float(edges[0]),))
        return cls(tuple(edges[:-1].tolist()), tuple(edges[1:].tolist()))

    def __len__(self) -> int:
        return len(self.low)

    @property
    def discrete(self) -> bool:
        return all(lo == hi for lo, hi in zip(self.low, self.high))

    @property
    def centres(self) -> np.ndarray:
        """The value of a discrete bin, the geometric centre √(low · high) of a range."""
        return np.sqrt(np.asarray(self.low) * np.asarray(self.high))

    def mask(self, e: np.ndarray, i: int) -> np.ndarray:
        """Events of ``e`` in bin ``i``; the last range bin includes its upper edge."""
        lo, hi = self.low[i], self.high[i]
        if lo == hi:
            return e == lo
        return (e >= lo) & ((e <= hi) if i == len(self) - 1 else (e < hi))

    def index(self, e: np.ndarray) -> np.ndarray:
        """Each event's bin, −1 for an energy in no bin."""
        e = np.asarray(e, dtype=np.float64).reshape(-1)
        out = np.full(e.shape, -1)
        for i in range(len(self)):
            out[self.mask(e, i)] = i
        return out
