"""The CaloChallenge high-level features of showers, for any geometry, in memory or streamed from HDF5.

Definitions (Krause et al., arXiv:2410.21611, Sec. 4; the challenge's ``HighLevelFeatures.py``),
per layer ℓ with voxel energies E_i at the voxel centres x_i = r_i cos α_i (the challenge's
"η") and y_i = r_i sin α_i ("φ"), r_i the mid-point of the voxel's r bin and α_i the centre
of its α bin in (−π, π):

* ``E_layer{ℓ}`` = E_ℓ = Σ_i E_i, and ``Etot_over_Einc`` = Σ_ℓ E_ℓ / E_inc;
* ``ECx_layer{ℓ}`` = ⟨x⟩ = Σ_i E_i x_i / E_ℓ, ``width_x_layer{ℓ}`` = √(⟨x²⟩ − ⟨x⟩²), the
  same in y (``ECy``, ``width_y``) for layers with more than one α bin; a layer with one α
  bin has every y_i = 0 and x_i = r_i, so its ``ECx``/``width_x`` are the challenge's
  radial centre ``EC_r`` and width ``width_r``;
* ``sparsity_layer{ℓ}``: the fraction of the layer's voxels above the readout threshold
  (the challenge's ``sparsity`` is one minus this; a classifier or a histogram distance
  does not see the difference).

An empty layer (E_ℓ ≤ 0) has centre and width 0, not NaN, as in the challenge (which
divides by E_ℓ + 10⁻¹⁶). Voxels below ``threshold_mev`` count as 0, as the challenge's
``evaluate.py`` zeroes them (``min_energy``) before computing the features.

:func:`stream_high_level_features` computes them from a CaloChallenge HDF5 file in chunks of
rows, so a 5·10⁴ × 40,500 (8 GB) dataset-3 file needs a few hundred MB, and feeds each chunk
to accumulators (:class:`VoxelMoments`, :class:`VoxelEnergyHistogram`) for the voxel-level
views that need more than the features.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import h5py
import numpy as np

from hepgenbench.data.calo_geometry import DS1_PHOTONS, CaloGeometry, EnergyBins
from hepgenbench.errors import InputError

#: memory a streamed chunk of voxels may take (bytes), the dominant term of the pass's RSS
DEFAULT_CHUNK_BYTES = 256 * 2**20


def high_level_feature_names(geometry: CaloGeometry = DS1_PHOTONS) -> list[str]:
    """Names of :func:`high_level_features`' columns, in their order.

    Layers without α binning have every voxel at y = 0, so their ``ECy`` and ``width_y``
    are identically zero and are left out.
    """
    ids = geometry.layer_ids
    names = [f"E_layer{l}" for l in ids] + ["Etot_over_Einc"]
    for layer in geometry.layers:
        names += [f"ECx_layer{layer.layer_id}", f"width_x_layer{layer.layer_id}"]
        if layer.n_alpha > 1:
            names += [f"ECy_layer{layer.layer_id}", f"width_y_layer{layer.layer_id}"]
    names += [f"sparsity_layer{l}" for l in ids]
    return names


@dataclass(frozen=True)
class HighLevelFeatures:
    """The high-level features of one geometry (see the module docstring for the definitions)."""

    geometry: CaloGeometry
    threshold_mev: float = 0.0

    @cached_property
    def names(self) -> list[str]:
        return high_level_feature_names(self.geometry)

    @cached_property
    def _moment_matrices(self) -> list[np.ndarray]:
        """Per layer, the (voxels, 5) matrix whose columns are 1, x, x², y, y² at the voxel centres."""
        x, y = self.geometry.voxel_xy()
        out = []
        for layer in self.geometry.layers:
            xl, yl = x[layer.voxels], y[layer.voxels]
            out.append(np.column_stack([np.ones_like(xl), xl, xl**2, yl, yl**2]))
        return out

    def __call__(self, showers: np.ndarray, e_inc: np.ndarray) -> np.ndarray:
        """(N, features) of showers (N, voxels) in MeV with incident energies (N,) in MeV."""
        showers = np.asarray(showers)
        if showers.ndim != 2 or showers.shape[1] != self.geometry.n_voxels:
            raise InputError(f"showers must have shape (N, {self.geometry.n_voxels}), got {showers.shape}")
        e_inc = np.asarray(e_inc, dtype=np.float64).reshape(-1)
        n = len(showers)
        energy, centre_cols, sparsity = [], [], []
        for layer, moments in zip(self.geometry.layers, self._moment_matrices):
            # one layer at a time in float64: the width is a difference of moments, which float32 would cancel
            block = np.asarray(showers[:, layer.voxels], dtype=np.float64)
            if self.threshold_mev > 0:
                block = np.where(block < self.threshold_mev, 0.0, block)
            m = block @ moments
            e_layer = m[:, 0]
            filled = e_layer > 0
            safe = np.where(filled, e_layer, 1.0)
            axes = ((1, 2), (3, 4)) if layer.n_alpha > 1 else ((1, 2),)
            for first, second in axes:
                centre = m[:, first] / safe
                width = np.sqrt(np.clip(m[:, second] / safe - centre**2, 0.0, None))
                centre_cols += [np.where(filled, centre, 0.0), np.where(filled, width, 0.0)]
            energy.append(e_layer)
            sparsity.append(np.count_nonzero(block > 0, axis=1) / layer.n_voxels)
        e_tot = np.sum(energy, axis=0) if energy else np.zeros(n)
        return np.column_stack([*energy, e_tot / e_inc, *centre_cols, *sparsity])


def high_level_features(showers: np.ndarray, e_inc: np.ndarray, geometry: CaloGeometry = DS1_PHOTONS,
                        threshold_mev: float = 0.0) -> tuple[np.ndarray, list[str]]:
    """The high-level features of showers (N, voxels) in MeV, and their names."""
    hlf = HighLevelFeatures(geometry, threshold_mev)
    return hlf(showers, e_inc), hlf.names


# --------------------------------------------------------------------------- accumulators
class ShowerAccumulator(Protocol):
    """Anything that sees every chunk of a streamed pass (voxels after the threshold, E_inc)."""

    def update(self, showers: np.ndarray, e_inc: np.ndarray) -> None: ...


@dataclass
class VoxelMoments:
    """Running per-voxel Σ E and Σ E² (float64), overall and per incident-energy bin.

    Gives the average shower and the per-voxel spread, the challenge's average-shower
    figure, without holding the showers.
    """

    n_voxels: int
    bins: EnergyBins | None = None
    count: np.ndarray = field(init=False)
    sum: np.ndarray = field(init=False)
    sum_sq: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n_groups = 1 + (len(self.bins) if self.bins is not None else 0)
        self.count = np.zeros(n_groups, dtype=np.int64)
        self.sum = np.zeros((n_groups, self.n_voxels))
        self.sum_sq = np.zeros((n_groups, self.n_voxels))

    def _add(self, group: int, showers: np.ndarray) -> None:
        self.count[group] += len(showers)
        self.sum[group] += showers.sum(axis=0, dtype=np.float64)
        self.sum_sq[group] += np.einsum("ij,ij->j", showers, showers, dtype=np.float64)

    def update(self, showers: np.ndarray, e_inc: np.ndarray) -> None:
        self._add(0, showers)
        if self.bins is not None:
            index = self.bins.index(e_inc)
            for b in range(len(self.bins)):
                if (rows := index == b).any():
                    self._add(b + 1, showers[rows])

    def mean(self, energy_bin: int | None = None) -> np.ndarray:
        """The average shower (voxels,), over all showers or those of one energy bin."""
        g = 0 if energy_bin is None else energy_bin + 1
        return self.sum[g] / max(int(self.count[g]), 1)

    def std(self, energy_bin: int | None = None) -> np.ndarray:
        g = 0 if energy_bin is None else energy_bin + 1
        mean = self.mean(energy_bin)
        return np.sqrt(np.clip(self.sum_sq[g] / max(int(self.count[g]), 1) - mean**2, 0.0, None))


@dataclass
class VoxelEnergyHistogram:
    """Running histogram of log10(voxel energy / MeV) over every non-zero voxel, plus the zeros.

    The challenge's voxel-energy distribution; edges are fixed up front so that two files'
    histograms compare bin by bin.
    """

    edges: np.ndarray = field(default_factory=lambda: np.linspace(-4.0, 6.0, 101))
    counts: np.ndarray = field(init=False)
    n_zero: int = 0
    n_underflow: int = 0
    n_overflow: int = 0

    def __post_init__(self) -> None:
        self.edges = np.asarray(self.edges, dtype=np.float64)
        self.counts = np.zeros(len(self.edges) - 1, dtype=np.int64)

    def update(self, showers: np.ndarray, e_inc: np.ndarray) -> None:
        hit = showers[showers > 0]
        self.n_zero += showers.size - hit.size
        log_e = np.log10(hit)
        self.n_underflow += int((log_e < self.edges[0]).sum())
        self.n_overflow += int((log_e > self.edges[-1]).sum())
        self.counts += np.histogram(log_e, self.edges)[0]


# --------------------------------------------------------------------------- streaming
@dataclass
class StreamedFeatures:
    """The outcome of one pass over a file: features (N, F), their names, E_inc (N,), what was dropped."""

    features: np.ndarray
    names: list[str]
    e_inc: np.ndarray
    n_dropped_nonfinite: int
    chunk_rows: int
    #: the file's row of each feature row (the showers kept)
    rows: np.ndarray | None = None


def open_showers(path: str | os.PathLike, geometry: CaloGeometry,
                 binning: str | None = None) -> tuple[h5py.File, h5py.Dataset, np.ndarray]:
    """Open a CaloChallenge file: the file, its ``showers`` dataset (checked against
    ``geometry``) and its incident energies (N,). The caller closes the file."""
    path = str(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as err:
        raise InputError(f"{path}: not a readable HDF5 file ({err})") from None
    try:
        for key in ("showers", "incident_energies"):
            if key not in f:
                raise InputError(f"{path}: no dataset {key!r}; a CaloChallenge file has 'incident_energies' (N, 1) "
                                 f"and 'showers' (N, voxels); it has {sorted(f.keys())}")
        showers = f["showers"]
        if showers.ndim != 2:
            raise InputError(f"{path}: 'showers' must be (N, voxels), got shape {showers.shape}")
        geometry.check_voxels(showers.shape[1], path, binning)
        e_inc = np.asarray(f["incident_energies"][()], dtype=np.float64).reshape(-1)
        if len(e_inc) != showers.shape[0]:
            raise InputError(f"{path}: {showers.shape[0]} showers but {len(e_inc)} incident energies")
    except BaseException:
        f.close()
        raise
    return f, showers, e_inc


def stream_high_level_features(
    path: str | os.PathLike,
    geometry: CaloGeometry,
    *,
    threshold_mev: float = 0.0,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    accumulators: Sequence[ShowerAccumulator] = (),
    nan_policy: str = "refuse",
    binning: str | None = None,
    max_showers: int | None = None,
) -> StreamedFeatures:
    """The high-level features of every shower of a CaloChallenge HDF5 file, read in chunks.

    Each chunk of ``chunk_bytes`` of voxels is read into one reused buffer, thresholded in
    place (voxels below ``threshold_mev`` read 0), turned into features and handed to the
    ``accumulators``; the peak memory is about that buffer plus the (N, F) features, whatever
    the file's size. ``nan_policy``: ``refuse`` (an :class:`InputError` naming the first bad
    shower) or ``drop`` (skip showers with a non-finite voxel or E_inc). ``binning`` only
    names the geometry in errors; ``max_showers`` reads the first so many.
    """
    if nan_policy not in ("refuse", "drop"):
        raise InputError(f"nan_policy {nan_policy!r}: expected 'refuse' or 'drop'")
    hlf = HighLevelFeatures(geometry)  # the threshold is applied to the chunk in place, once
    f, showers, e_inc = open_showers(path, geometry, binning)
    with f:
        n = showers.shape[0] if max_showers is None else min(max_showers, showers.shape[0])
        e_inc = e_inc[:n]
        rows = int(max(1, min(n, chunk_bytes // (geometry.n_voxels * showers.dtype.itemsize))))
        buffer = np.empty((rows, geometry.n_voxels), dtype=showers.dtype)
        features = np.empty((n, len(hlf.names)))
        keep = np.ones(n, dtype=bool)
        for start in range(0, n, rows):
            stop = min(n, start + rows)
            chunk = buffer[: stop - start]
            showers.read_direct(chunk, np.s_[start:stop], np.s_[0:stop - start])
            good = np.isfinite(chunk).all(axis=1) & np.isfinite(e_inc[start:stop]) & (e_inc[start:stop] > 0)
            if not good.all():
                if nan_policy == "refuse":
                    bad = start + int(np.flatnonzero(~good)[0])
                    raise InputError(f"{path}: shower {bad} has a non-finite voxel or a non-positive incident "
                                     f"energy ({int((~good).sum())} in rows {start}–{stop - 1}); "
                                     "set nan_policy: drop to skip such showers")
                keep[start:stop] = good
                chunk = chunk[good]
            if threshold_mev > 0:
                chunk[chunk < threshold_mev] = 0
            e_chunk = e_inc[start:stop][good]
            features[start:stop][good] = hlf(chunk, e_chunk)
            for acc in accumulators:
                acc.update(chunk, e_chunk)
    return StreamedFeatures(features[keep], hlf.names, e_inc[keep], int((~keep).sum()), rows, np.flatnonzero(keep))
