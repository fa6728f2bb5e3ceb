"""The CaloChallenge voxel classifier (cc22) trained from disk, in minibatches, with bounded memory.

A dataset-3 pair (5·10⁴ + 5·10⁴ showers × 40,500 float32 voxels) is 16 GB; the in-memory C2ST
would hold it twice over as float64. Here the showers stay in their HDF5 files: every
minibatch is read when it is needed, so the memory is one block of rows plus the network,
whatever N.

The protocol is :mod:`hepgenbench.metrics.cc22`'s, with its code: the 60/20/20 split
(:func:`~hepgenbench.metrics.cc22.split_pooled`), the network, the training loop and the
isotonic calibration (:func:`~hepgenbench.metrics.cc22.cc22_train`). Only the data source
differs: :class:`StreamedShowers`, a :class:`~hepgenbench.metrics.cc22.CC22Data` that

* standardises with the training part's per-input mean and standard deviation, accumulated
  block by block (Chan et al.'s pairwise update of mean and M2, in float64);
* hands out the minibatches of an epoch in the permutation's order, reading them a block at a
  time: a block is ``block_rows`` consecutive positions of the permutation (a multiple of the
  batch size), read from each file with one sorted-index h5py read, turned into inputs and put
  back into the permutation's order. The minibatches are therefore exactly the in-memory path's.

The inputs are those of the in-memory voxel C2ST (:meth:`hepgenbench.kinds.calo.Calo.classifier_inputs`):
log1p(10³ E_voxel / E_inc) per voxel (negative voxels read 0) and log10 E_inc, computed in
float64 and standardised before the cast to float32, as in memory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
import torch

from hepgenbench.errors import InputError
from hepgenbench.metrics.base import MetricResult
from hepgenbench.metrics.cc22 import PARTS, CC22Fit, CC22Settings, _device, cc22_train, split_pooled

#: memory of one block of classifier inputs (float64, before the cast), the streamed part of the peak
DEFAULT_BLOCK_BYTES = 64 * 2**20
#: the note stored with the metric, as the in-memory voxel C2ST stores its inputs' description
INPUTS = "log1p(1e3 E_voxel/E_inc) and log10 E_inc"


@dataclass(frozen=True)
class ShowerRows:
    """Some rows (showers) of one CaloChallenge HDF5 file (``showers`` (N, voxels), ``incident_energies``)."""

    path: str
    rows: np.ndarray

    @property
    def n(self) -> int:
        return len(self.rows)


@dataclass
class ReadStats:
    """What the source read: its largest single read (rows), the rows and bytes read in all."""

    max_rows_per_read: int = 0
    rows_read: int = 0
    bytes_read: int = 0
    reads: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"max_rows_per_read": self.max_rows_per_read, "rows_read": self.rows_read,
                "bytes_read": self.bytes_read, "reads": self.reads, "read_seconds": self.seconds}


class StreamedShowers:
    """:class:`~hepgenbench.metrics.cc22.CC22Data` of truth (label 1) and generated (label 0)
    showers left on disk. Pooled position p < n is ``truth.rows[p]``, p ≥ n is
    ``generated.rows[p - n]``; ``parts`` maps train/test/val to pooled positions."""

    def __init__(self, truth: ShowerRows, generated: ShowerRows, parts: dict[str, np.ndarray],
                 block_bytes: int = DEFAULT_BLOCK_BYTES, batch_size: int = 1000):
        self.sources = (truth, generated)
        self.parts = parts
        self.stats = ReadStats()
        self._files = [h5py.File(s.path, "r") for s in self.sources]
        try:
            self._showers = [f["showers"] for f in self._files]
            self._e_inc = [np.asarray(f["incident_energies"][()], dtype=np.float64).reshape(-1) for f in self._files]
        except KeyError as err:
            self.close()
            raise InputError(f"{truth.path} or {generated.path}: no dataset {err}") from None
        self.n_voxels = self._showers[0].shape[1]
        if self._showers[1].shape[1] != self.n_voxels:
            self.close()
            raise InputError(f"{generated.path}: {self._showers[1].shape[1]} voxels, truth {truth.path} has {self.n_voxels}")
        self.n_inputs = self.n_voxels + 1
        #: rows read and turned into float64 inputs at once: what ``block_bytes`` bounds
        self.read_rows = max(1, block_bytes // (self.n_inputs * 8))
        #: rows of one shuffled block, a whole number of minibatches, held as float32
        self.block_rows = max(batch_size, self.read_rows // batch_size * batch_size)
        self._mean = np.zeros(self.n_inputs)
        self._std = np.ones(self.n_inputs)
        self._standardise_from_train()

    def close(self) -> None:
        for f in self._files:
            f.close()

    def __enter__(self) -> StreamedShowers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ reading
    def labels(self, part: str) -> np.ndarray:
        return (self.parts[part] < self.sources[0].n).astype(np.int64)

    def _inputs(self, positions: np.ndarray) -> np.ndarray:
        """Unstandardised float64 inputs of the pooled ``positions``, in their order (one read per file)."""
        out = np.empty((len(positions), self.n_inputs))
        n_truth = self.sources[0].n
        for s, (source, showers, e_inc) in enumerate(zip(self.sources, self._showers, self._e_inc)):
            mine = np.flatnonzero((positions >= n_truth) if s else (positions < n_truth))
            if not len(mine):
                continue
            rows = source.rows[positions[mine] - s * n_truth]
            order = np.argsort(rows, kind="stable")
            start = time.perf_counter()
            raw = showers[rows[order]]  # h5py reads strictly increasing indices in one selection
            self.stats.seconds += time.perf_counter() - start
            self.stats.max_rows_per_read = max(self.stats.max_rows_per_read, len(rows))
            self.stats.rows_read += len(rows)
            self.stats.bytes_read += raw.nbytes
            self.stats.reads += 1
            e = e_inc[rows[order]]
            x = np.empty((len(rows), self.n_inputs))
            x[:, :-1] = raw  # in place from here on: no float64 temporary of the block
            del raw
            np.clip(x[:, :-1], 0.0, None, out=x[:, :-1])
            x[:, :-1] /= e[:, None]
            x[:, :-1] *= 1e3
            np.log1p(x[:, :-1], out=x[:, :-1])
            x[:, -1] = np.log10(e)
            out[mine[order]] = x
        return out

    def _standardise_from_train(self) -> None:
        """The training part's mean and standard deviation per input, merged block by block
        (Chan, Golub & LeVeque's pairwise update, in float64)."""
        positions = np.sort(self.parts["train"])
        count, mean, m2 = 0, np.zeros(self.n_inputs), np.zeros(self.n_inputs)
        for start in range(0, len(positions), self.read_rows):
            x = self._inputs(positions[start:start + self.read_rows])
            k, block_mean = len(x), x.mean(axis=0)
            block_m2 = ((x - block_mean) ** 2).sum(axis=0)
            delta = block_mean - mean
            total = count + k
            mean = mean + delta * (k / total)
            m2 = m2 + block_m2 + delta**2 * (count * k / total)
            count = total
        std = np.sqrt(m2 / max(count, 1))
        self._mean, self._std = mean, np.where(std > 0, std, 1.0)

    def batches(self, part: str, order: np.ndarray, batch_size: int,
                device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        positions = self.parts[part][np.asarray(order)]
        labels = (positions < self.sources[0].n).astype(np.float32)
        step = max(batch_size, self.block_rows // batch_size * batch_size)
        for start in range(0, len(positions), step):
            block = positions[start:start + step]
            # A block of minibatches may hold more rows than block_bytes allows as float64
            # (dataset 3: 1,000 showers are 324 MB): it is read and standardised read_rows at a
            # time into float32, element by element as one read would give.
            x32 = torch.empty((len(block), self.n_inputs), dtype=torch.float32)
            for first in range(0, len(block), self.read_rows):
                x = self._inputs(block[first:first + self.read_rows])
                x -= self._mean
                x /= self._std
                x32[first:first + len(x)] = torch.from_numpy(x.astype(np.float32))
                del x
            y32 = torch.as_tensor(labels[start:start + step])
            for i in range(0, len(block), batch_size):
                yield x32[i:i + batch_size].to(device), y32[i:i + batch_size].to(device)


# ---------------------------------------------------------------------- the metric
@dataclass
class StreamedC2STSettings:
    """The network's settings (the challenge's by default), the block memory and an epoch cap."""

    cc22: CC22Settings = field(default_factory=CC22Settings)
    block_bytes: int = DEFAULT_BLOCK_BYTES
    max_events: int | None = None
    show_progress: bool | None = None


@dataclass(frozen=True)
class StreamedFit:
    """A trained and calibrated streamed classifier: its scores, what it read, its test positions."""

    fit: CC22Fit
    stats: ReadStats
    block_rows: int
    read_rows: int
    #: pooled positions of the test part (truth first, then generated)
    test: np.ndarray
    device: str


def fit_streamed(truth: ShowerRows, generated: ShowerRows, settings: StreamedC2STSettings, seed: int,
                 label: str = "") -> StreamedFit:
    """:func:`~hepgenbench.metrics.cc22.cc22_fit_predict` on the pooled rows (truth then
    generated, labels 1 and 0), read from disk: the same split, minibatches and calibration."""
    from tqdm.auto import tqdm

    from hepgenbench.logging_utils import log

    train, test, val = split_pooled(truth.n + generated.n, seed)
    device = _device(settings.cc22.device)
    epochs = settings.cc22.epochs
    disable = (not os.isatty(2)) if settings.show_progress is None else not settings.show_progress
    with StreamedShowers(truth, generated, dict(zip(PARTS, (train, test, val))), settings.block_bytes,
                         settings.cc22.batch_size) as data, \
            tqdm(total=epochs, desc=f"voxel classifier {label}".strip(), unit="epoch", disable=disable, leave=False) as bar:
        def on_epoch(epoch: int, val_loss: float, seconds: float) -> None:
            log(f"voxel classifier {label}: epoch {epoch + 1}/{epochs}, validation loss {val_loss:.5f}, {seconds:.1f} s")
            bar.update(1)

        fit = cc22_train(data, data.n_inputs, settings.cc22, seed, device, on_epoch)
        return StreamedFit(fit, data.stats, data.block_rows, data.read_rows, test, str(device))


def streamed_c2st(truth: ShowerRows, generated: ShowerRows, settings: StreamedC2STSettings | None = None,
                  seed: int = 0, generated_features: np.ndarray | None = None,
                  feature_names: Sequence[str] | None = None, label: str = "") -> tuple[MetricResult, StreamedFit]:
    """The cc22 C2ST on the voxels of ``truth`` and ``generated`` rows, read from disk.

    Both classes are brought to n = min(sizes, ``max_events``) showers by a seeded draw; then
    the challenge's split, training and calibration (:func:`~hepgenbench.metrics.cc22.cc22_train`).
    Value: the calibrated test AUC; error: its Hanley–McNeil standard error. The
    :class:`StreamedFit` beside it carries the timings (seconds per epoch and of the reads),
    which stay out of the metric so that a seed gives the same record byte for byte.

    ``generated_features`` (one row per ``generated.rows``, e.g. the high-level features)
    locate the classifier's extreme weights (``where_w_largest``…), as the in-memory C2ST
    does on its own inputs; the voxels themselves are not held.
    """
    from hepgenbench.metrics.classifier import weight_details

    settings = settings or StreamedC2STSettings()
    rng = np.random.default_rng(seed)
    n = int(min(truth.n, generated.n, settings.max_events or np.inf))
    if n < 10:
        raise InputError(f"the streamed voxel C2ST needs at least 10 showers per class, got {n}")
    pick_t = np.sort(rng.choice(truth.n, n, replace=False))
    pick_g = np.sort(rng.choice(generated.n, n, replace=False))
    fit_seed = int(rng.integers(0, 2**31 - 1))
    streamed = fit_streamed(ShowerRows(truth.path, truth.rows[pick_t]), ShowerRows(generated.path, generated.rows[pick_g]),
                            settings, fit_seed, label)
    fit, stats = streamed.fit, streamed.stats
    details: dict[str, Any] = {
        "classifier": "cc22",
        "protocol": "CaloChallenge: 60/20/20 split, isotonic calibration on the validation split",
        "streamed": {"block_rows": streamed.block_rows, "read_rows": streamed.read_rows, "block_bytes": settings.block_bytes,
                     "max_rows_per_read": stats.max_rows_per_read, "rows_read": stats.rows_read},
        "inputs": INPUTS,
        "jsd_bits": fit.jsd_bits,
        "auc_uncalibrated": fit.auc_uncalibrated,
        "best_epoch": fit.best_epoch,
        "epochs": settings.cc22.epochs,
        "width": settings.cc22.width,
        "device": streamed.device,
        "n_per_class": n,
        "n_test": len(fit.y_test),
    }
    if generated_features is not None:
        test = streamed.test
        gen_test = np.asarray(generated_features)[pick_g][test[test >= n] - n]
        names = list(feature_names) if feature_names is not None else [f"f{j}" for j in range(gen_test.shape[1])]
        details.update(weight_details(fit.p_test, fit.y_test, gen_test, names))
        details["weights_located_in"] = "high-level features"
    return MetricResult(fit.auc, fit.auc_error, details), streamed
