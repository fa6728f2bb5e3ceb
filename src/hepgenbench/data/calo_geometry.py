"""Calorimeter geometry and incident-energy binning: the one place the calo kind keeps them.

A CaloChallenge 2022 dataset (Krause et al., arXiv:2410.21611) stores each shower as a flat
vector of voxels: layer by layer, and within a layer the α (angular) bin is the outer index
and the r (radial) bin the inner one, as in the challenge's ``XMLHandler``. α-bin centres
split (−π, π) evenly, and a voxel sits at (x, y) = (r cos α, r sin α) with r the mid-point
of its r bin. :class:`CaloGeometry` holds that layout. It is read from the challenge's
binning XML (:meth:`CaloGeometry.from_xml`), whose ``<Layer>`` elements list every layer id
and skip, in the flat vector, the layers with a single r-edge (no voxels); the four
challenge layouts are also built in (:data:`BUILTIN_GEOMETRIES`: ``ds1-photons`` 368 voxels,
``ds1-pions`` 533, ``ds2`` 6,480, ``ds3`` 40,500), so that the embedded dataset needs no
file. A geometry round-trips through an :class:`~hepgenbench.io.EventSet`'s
``meta["calo_layers"]`` so that it travels with its showers.

Only numpy and the standard library are imported here: the kind registry, which the
Snakefile loads, imports this.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

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
    def from_layers(cls, spec: list[tuple[int, tuple[float, ...], int]]) -> CaloGeometry:
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
    def from_xml(cls, path: str | os.PathLike, particle: str | None = None) -> CaloGeometry:
        """The geometry of a CaloChallenge binning XML (``binning_dataset_*.xml``).

        The file holds ``<Bins>`` with one ``<Bin name=… pid=…>`` per particle, each a list
        of ``<Layer id r_edges n_bin_alpha>``. ``particle`` picks a ``<Bin>`` by name
        (``photon``, ``pion``, ``electron``) or pid; it may be left out when the file holds
        one. Layers whose ``r_edges`` is a single value have no voxels and are skipped, as
        the challenge's ``XMLHandler`` does; the others keep the file's order.
        """
        path = Path(path)
        try:
            root = ElementTree.parse(path).getroot()
        except FileNotFoundError:
            raise InputError(f"binning: {path} does not exist (expected a CaloChallenge binning XML)") from None
        except (ElementTree.ParseError, OSError) as err:
            raise InputError(f"binning: {path} is not readable XML ({err})") from None
        bins = [b for b in root.iter("Bin")]
        names = [f"{b.get('name')} (pid {b.get('pid')})" for b in bins]
        if particle is None:
            if len(bins) != 1:
                raise InputError(f"binning: {path} holds {len(bins)} particles {names}; set 'particle' to one of them")
            chosen = bins[0]
        else:
            chosen = next((b for b in bins if particle in (b.get("name"), b.get("pid"))), None)
            if chosen is None:
                raise InputError(f"binning: {path} has no particle {particle!r}; it has {names}")
        spec = []
        for layer in chosen.iter("Layer"):
            where = f"binning: {path}, layer {layer.get('id')!r}"
            try:
                layer_id = int(layer.attrib["id"])
                edges = tuple(float(r) for r in layer.attrib["r_edges"].split(","))
                n_alpha = int(layer.attrib["n_bin_alpha"])
            except (KeyError, ValueError) as err:
                raise InputError(f"{where}: expected integer 'id', comma-separated 'r_edges' and integer "
                                 f"'n_bin_alpha' ({err!r})") from None
            if len(edges) > 1:
                spec.append((layer_id, edges, n_alpha))
        if not spec:
            raise InputError(f"binning: {path}: particle {chosen.get('name')!r} has no layer with voxels")
        return cls.from_layers(spec)

    @classmethod
    def from_meta(cls, meta: dict, n_voxels: int | None = None) -> CaloGeometry:
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
                "describing the layers (a dataset's 'binning:')")
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

    def voxel_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """Per voxel, the challenge's η and φ coordinates (mm): x = r cos α, y = r sin α."""
        _, radius, alpha, _ = self._centres
        return radius * np.cos(alpha), radius * np.sin(alpha)

    def check_voxels(self, n_voxels: int, where: str, binning: str | None = None) -> None:
        """:class:`InputError` unless showers of ``n_voxels`` fit this geometry (``where``: the file)."""
        if n_voxels != self.n_voxels:
            known = [name for name, g in BUILTIN_GEOMETRIES.items() if g.n_voxels == n_voxels]
            hint = f"; {n_voxels} voxels is the layout of {known[0]} (binning: {known[0]})" if known else ""
            raise InputError(f"{where}: showers have {n_voxels} voxels but the geometry "
                             f"({binning or 'ds1-photons, the default'}) has {self.n_voxels}{hint}")


#: CaloChallenge 2022 dataset 1, photons: layers 0, 1, 2, 3, 12 binned 8×1, 16×10, 19×10,
#: 5×1, 5×1 in (r × α), 368 voxels (``binning_dataset_1_photons.xml``).
DS1_PHOTONS = CaloGeometry.from_layers([
    (0, (0, 5, 10, 30, 50, 100, 200, 400, 600), 1),
    (1, (0, 2, 4, 6, 8, 10, 12, 15, 20, 30, 40, 50, 70, 90, 120, 150, 200), 10),
    (2, (0, 2, 5, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100, 130, 160, 200, 250, 300, 350, 400), 10),
    (3, (0, 50, 100, 200, 400, 600), 1),
    (12, (0, 100, 200, 400, 1000, 2000), 1),
])


def _uniform_layers(n_layers: int, r_step: float, n_r: int, n_alpha: int) -> CaloGeometry:
    # rounded so that the edges are the same doubles the XML's decimals parse to
    edges = tuple(round(r_step * i, 6) for i in range(n_r + 1))
    return CaloGeometry.from_layers([(i, edges, n_alpha) for i in range(n_layers)])


#: CaloChallenge 2022 dataset 1, pions: layers 0, 1, 2, 3, 12, 13, 14, 533 voxels
#: (``binning_dataset_1_pions.xml``).
DS1_PIONS = CaloGeometry.from_layers([
    (0, (0, 5, 10, 30, 50, 100, 200, 400, 600), 1),
    (1, (0, 1, 4, 7, 10, 15, 30, 50, 90, 150, 200), 10),
    (2, (0, 5, 10, 20, 30, 50, 80, 130, 200, 300, 400), 10),
    (3, (0, 50, 100, 200, 400, 600), 1),
    (12, (0, 10, 20, 30, 50, 80, 100, 130, 160, 200, 250, 300, 350, 400, 1000, 2000), 10),
    (13, (0, 10, 20, 30, 50, 80, 100, 130, 160, 200, 250, 300, 350, 400, 600, 1000, 2000), 10),
    (14, (0, 50, 100, 150, 200, 250, 300, 400, 600, 1000, 2000), 1),
])
#: CaloChallenge 2022 dataset 2 (electrons): 45 layers of 9 r-bins of 4.65 mm × 16 α-bins, 6,480 voxels.
DS2 = _uniform_layers(45, 4.65, 9, 16)
#: CaloChallenge 2022 dataset 3 (electrons): 45 layers of 18 r-bins of 2.325 mm × 50 α-bins, 40,500 voxels.
DS3 = _uniform_layers(45, 2.325, 18, 50)
#: The challenge's layouts by the names a dataset's ``binning:`` (and ``calochallenge:``) uses.
BUILTIN_GEOMETRIES: dict[str, CaloGeometry] = {"ds1-photons": DS1_PHOTONS, "ds1-pions": DS1_PIONS, "ds2": DS2, "ds3": DS3}


def resolve_geometry(binning: str | os.PathLike | None = None, particle: str | None = None) -> CaloGeometry:
    """The geometry a dataset's ``binning:`` names: a built-in name
    (:data:`BUILTIN_GEOMETRIES`), a binning XML path (:meth:`CaloGeometry.from_xml` with
    ``particle``), or, when absent, dataset 1 photons."""
    if binning is None:
        return DS1_PHOTONS
    if str(binning) in BUILTIN_GEOMETRIES:
        return BUILTIN_GEOMETRIES[str(binning)]
    if not str(binning).lower().endswith(".xml") and not Path(binning).exists():
        raise InputError(f"binning: {binning!r} is neither a built-in layout {sorted(BUILTIN_GEOMETRIES)} "
                         "nor a binning XML file")
    return CaloGeometry.from_xml(binning, particle)


def builtin_name(geometry: CaloGeometry) -> str | None:
    """The built-in name of ``geometry`` (``ds2``, …), None for another layout."""
    return next((name for name, g in BUILTIN_GEOMETRIES.items() if g == geometry), None)


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
                   min_events: int = MIN_EVENTS_PER_ENERGY_BIN) -> EnergyBins:
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
