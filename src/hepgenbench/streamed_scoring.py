"""``hepgenbench score`` on CaloChallenge files too large to load: the streamed path.

A dataset-3 pair (5·10⁴ showers × 40,500 float32 voxels, 8 GB per file) does not fit the
in-memory path, which holds every file's voxels as float64 and copies them into halves,
subsamples and classifier inputs. Here each file is read once in chunks
(:func:`~hepgenbench.data.calo_features.stream_high_level_features`), keeping per shower only
its high-level features, E_tot, its lowest voxel and a row hash; then

* every high-level metric is computed, by the very functions and random streams of the
  in-memory suite (:func:`hepgenbench.evaluate.evaluate_sample` and
  :meth:`hepgenbench.kinds.calo.Calo.extra_metrics`), on that small table: the classifier on
  the high-level features, FPD/KPD, the separation power, PRDC, W1 of the features, the
  per-energy scores, the response, the unphysical fraction and the copy count. For the same
  files and seed they equal the in-memory path's;
* the voxel classifier (``c2st_auc``) is the CaloChallenge network trained from disk
  (:mod:`hepgenbench.metrics.streamed_c2st`), whatever ``c2st_classifier`` says, since the
  gradient-boosted trees need every voxel in memory; its record says so;
* the voxel-level metrics that need every voxel of every shower at once (W1, JSD/KL and the
  separation power per voxel, the exact EMD and the sliced Wasserstein distance on voxels)
  are absent, each with the reason in its entry (``{"value": null, "skipped": …}``);
* the figures are drawn from :data:`PLOT_SHOWERS` showers per row, read by index.

When to stream (:func:`should_stream`): when the files' voxels as float64, times
:data:`IN_MEMORY_FACTOR` (the in-memory path's copies), exceed the memory budget, by default
half the machine's physical memory.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hepgenbench.errors import InputError
from hepgenbench.io import EventSet
from hepgenbench.logging_utils import log
from hepgenbench.metrics.duplicates import row_hashes
from hepgenbench.records import EvalOptions, MetricsRecord
from hepgenbench.seeding import derive_seed

#: the in-memory path's peak over the files' float64 voxels: the read, truth's halves and the
#: subsamples, and the classifier's pooled inputs each hold a copy
IN_MEMORY_FACTOR = 4
#: the memory budget when none is given: this fraction of the machine's physical memory
DEFAULT_BUDGET_FRACTION = 0.5
#: showers per row drawn for the figures (the metrics use every shower)
PLOT_SHOWERS = 500
#: rows hashed at once (the hash holds 12 bytes per voxel of them)
_HASH_ROWS = 256

#: the voxel-level metrics the streamed path leaves out, and why
ABSENT = {
    "w1_mean": "needs every voxel's values sorted across all showers (per-voxel W1); not streamed",
    "jsd_mean": "needs truth's quantiles of every voxel for its binning; not streamed",
    "kl_mean": "needs truth's quantiles of every voxel for its binning; not streamed",
    "separation_power_mean": "needs truth's quantiles of every voxel for its binning; not streamed "
                             "(separation_power_high_level is computed)",
    "emd": "exact EMD needs all voxels of both subsamples in memory; not streamed",
    "swd": "sliced Wasserstein on voxels is not streamed (its projections are drawn in memory)",
}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (MB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_budget_bytes(memory_budget_gb: float | None = None) -> float:
    if memory_budget_gb is not None:
        return memory_budget_gb * 1e9
    return DEFAULT_BUDGET_FRACTION * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def in_memory_bytes(paths) -> int:
    """The in-memory path's estimated peak: Σ showers × voxels × 8 bytes × :data:`IN_MEMORY_FACTOR`."""
    import h5py

    total = 0
    for path in paths:
        try:
            with h5py.File(path, "r") as f:
                total += int(np.prod(f["showers"].shape)) * 8
        except (OSError, KeyError):
            continue  # the reader names what is wrong with the file
    return IN_MEMORY_FACTOR * total


def should_stream(paths, memory_budget_gb: float | None = None) -> bool:
    """Stream when :func:`in_memory_bytes` of the files exceeds the budget."""
    need, budget = in_memory_bytes(paths), memory_budget_bytes(memory_budget_gb)
    if need > budget:
        log(f"streaming: the voxels in memory would take ~{need / 1e9:.1f} GB, over the budget of {budget / 1e9:.1f} GB")
        return True
    return False


# ---------------------------------------------------------------- one pass per file
@dataclass
class ShowerSummary:
    """Per shower of a streamed pass: E_tot (float64, as the in-memory sum), the lowest voxel
    and the row hash of (voxels, E_inc) of :func:`~hepgenbench.metrics.duplicates.row_hashes`."""

    e_tot: list[np.ndarray] = field(default_factory=list)
    lowest: list[np.ndarray] = field(default_factory=list)
    hashes: list[np.ndarray] = field(default_factory=list)

    def update(self, showers: np.ndarray, e_inc: np.ndarray) -> None:
        for start in range(0, len(showers), _HASH_ROWS):
            block = showers[start:start + _HASH_ROWS]
            self.e_tot.append(np.asarray(block, dtype=np.float64).sum(axis=1))
            self.lowest.append(block.min(axis=1))
            self.hashes.append(row_hashes(block, e_inc[start:start + _HASH_ROWS, None]))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(np.concatenate(x) if x else np.empty(0) for x in (self.e_tot, self.lowest, self.hashes))


@dataclass
class StreamedFile:
    """What one pass over a file keeps: per shower, its file row, features, E_inc, E_tot, lowest voxel, hash."""

    path: str
    rows: np.ndarray
    features: np.ndarray
    names: list[str]
    e_inc: np.ndarray
    e_tot: np.ndarray
    lowest: np.ndarray
    hashes: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, index: np.ndarray) -> StreamedFile:
        return StreamedFile(self.path, self.rows[index], self.features[index], self.names, self.e_inc[index],
                            self.e_tot[index], self.lowest[index], self.hashes[index])

    def proxy(self) -> EventSet:
        """An :class:`EventSet` of E_tot conditioned on E_inc: all that the calo kind's
        high-level metrics, checks and response read of the voxels (their sum per shower)."""
        return EventSet(features=self.e_tot[:, None], feature_names=["E_tot"], kind="calo",
                        condition=self.e_inc[:, None], condition_names=["E_inc"], units=["MeV"])


def stream_file(path: str, spec, role: str) -> StreamedFile:
    from hepgenbench.data.calo_features import stream_high_level_features
    from hepgenbench.kinds.calo import dataset_geometry

    if not os.path.exists(path):
        raise InputError(f"{path}: {role} file does not exist")
    summary = ShowerSummary()
    out = stream_high_level_features(path, dataset_geometry(spec.block), nan_policy=spec.block.get("nan_policy", "refuse"),
                                     binning=spec.block.get("binning"), accumulators=[summary])
    if len(out.features) == 0:
        raise InputError(f"{path}: the {role} file holds no events")
    e_tot, lowest, hashes = summary.arrays()
    log(f"streamed {role} {path}: {len(out.features)} showers, {len(out.names)} high-level features")
    return StreamedFile(path, out.rows, out.features, out.names, out.e_inc, e_tot, lowest, hashes)


def check_streamed(sample: StreamedFile, truth: StreamedFile, allow_einc_mismatch: bool) -> list[str]:
    """:func:`hepgenbench.scoring.check_generated` without the voxels: negative voxels from the
    pass's lowest voxel, then the calo kind's own checks (units, E_inc spectrum) on E_tot."""
    from hepgenbench import kinds

    negative = sample.lowest < 0
    if negative.any():
        raise InputError(f"{sample.path}: {int(negative.sum())} shower(s) with negative voxel energies (lowest "
                         f"{sample.lowest.min():.3g} MeV); energies must be ≥ 0")
    return kinds.get("calo").check_sample(sample.proxy(), truth.proxy(), sample.path, allow_einc_mismatch)


# ---------------------------------------------------------------- the metrics of one row
def high_level_metrics(truth: StreamedFile, sample: StreamedFile, options: EvalOptions, seed: int) -> dict[str, Any]:
    """Every metric of :func:`hepgenbench.evaluate.evaluate_sample` that reads only the high-level
    features, E_inc and E_tot, called as it calls them (same arguments, same random streams)."""
    from hepgenbench import kinds
    from hepgenbench.evaluate import metric_seed, physics_distances
    from hepgenbench.metrics.sanity import unphysical_fraction
    from hepgenbench.metrics.wasserstein import w1_per_feature

    kind = kinds.get("calo")
    t, g, names = truth.features, sample.features, truth.names
    results = {"w1_observables_mean": w1_per_feature(t, g, options.n_bootstrap, metric_seed(seed, "w1_obs"), names,
                                                     options.w1_bootstrap_events)}
    results.update(kind.extra_metrics(truth.proxy(), sample.proxy(), t, g, names, options, seed))
    physics_t, physics_names = kind.physics_features(truth.proxy(), t, names)
    physics_g, _ = kind.physics_features(sample.proxy(), g, names)
    results.update(physics_distances(physics_t, physics_g, physics_names, options, seed))
    results["unphysical_fraction"] = unphysical_fraction(
        sample.e_tot[:, None], kind, ["E_tot"], truth=truth.e_tot[:, None], condition=sample.e_inc[:, None],
        truth_condition=truth.e_inc[:, None])
    return {key: r.to_dict() for key, r in results.items()}


def voxel_classifier(truth: StreamedFile, sample: StreamedFile, options: EvalOptions, seed: int, label: str,
                     voxel_epochs: int | None, show_progress: bool | None) -> tuple[dict[str, Any], list[float]]:
    """``c2st_auc``: the streamed cc22 on the voxels (seconds per epoch beside it)."""
    from hepgenbench.evaluate import metric_seed
    from hepgenbench.metrics.cc22 import CC22Settings
    from hepgenbench.metrics.streamed_c2st import ShowerRows, StreamedC2STSettings, streamed_c2st

    cc22 = dict(options.cc22)
    if voxel_epochs is not None:
        cc22["epochs"] = min(cc22["epochs"], voxel_epochs)
    settings = StreamedC2STSettings(CC22Settings(**cc22), max_events=options.c2st_max_events, show_progress=show_progress)
    stream_seed = int(metric_seed(seed, "c2st").integers(0, 2**31 - 1))
    result, fit = streamed_c2st(ShowerRows(truth.path, truth.rows), ShowerRows(sample.path, sample.rows), settings,
                                stream_seed, sample.features, sample.names, label)
    result.details["note"] = ("the CaloChallenge network trained from disk (hepgenbench score --stream), whatever "
                              "c2st_classifier says: the in-memory classifiers need every voxel in memory")
    if voxel_epochs is not None and voxel_epochs < options.cc22_epochs:
        result.details["epochs_capped_from"] = options.cc22_epochs
    return result.to_dict(), fit.fit.epoch_seconds


# ---------------------------------------------------------------- the call
def score_streamed(truth_path: str, generated: Mapping[str, str], truth_b_path: str | None, spec, seed: int,
                   options: EvalOptions, *, allow_einc_mismatch: bool = False, show_progress: bool | None = None,
                   threads: int | None = None, voxel_epochs: int | None = None):
    """:func:`hepgenbench.scoring.score_files` for CaloChallenge files, streamed (module docstring)."""
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    from hepgenbench.data.calo_geometry import READOUT_THRESHOLD_MEV
    from hepgenbench.data.readers import read_calochallenge
    from hepgenbench.kinds.calo import dataset_geometry
    from hepgenbench.scoring import (
        TRUTH,
        ScoreResult,
        common_size,
        copy_check_hashes,
        subsample_indices,
        truth_half_indices,
    )

    dataset = spec.dataset
    disable = (not sys.stderr.isatty()) if show_progress is None else not show_progress
    timings: dict[str, list[float]] = {}
    with threadpool_limits(threads or os.cpu_count() or 1), \
            tqdm(total=2 + 2 * len(generated), desc="hepgenbench score --stream", unit="step", disable=disable,
                 leave=False) as bar:
        truth = stream_file(truth_path, spec, "truth")
        truth_b = None if truth_b_path is None else stream_file(truth_b_path, spec, "truth-b")
        bar.update(1)
        warnings: list[str] = []
        if truth_b is not None:
            check_streamed(truth_b, truth, allow_einc_mismatch)
        files = {}
        for name, path in generated.items():
            files[name] = stream_file(path, spec, "generated")
            warnings += [f"{path}: {w}" for w in check_streamed(files[name], truth, allow_einc_mismatch)]
            bar.update(1)
        # the rows of the in-memory path: halves of truth, one N, subsamples by the same seeds
        if truth_b is None:
            a, b = truth_half_indices(len(truth), derive_seed(seed, dataset, "score", "halves"))
            truth_a, truth_b = truth.take(a), truth.take(b)
        else:
            truth_a = truth
        n = common_size(len(truth_a), len(truth_b), [len(f) for f in files.values()])

        def at_n(f: StreamedFile, label: str) -> StreamedFile:
            return f.take(subsample_indices(len(f), n, derive_seed(seed, dataset, "score", label)))

        truth_a, truth_b = at_n(truth_a, "truth_a"), at_n(truth_b, "truth_b")
        samples = {name: at_n(f, name) for name, f in files.items()}
        # only the rows scored are kept: each whole file's table (5·10⁴ × 271 float64 on dataset 3,
        # 108 MB) would otherwise sit beside the voxel classifier
        del truth, files
        metric_seed_ = derive_seed(seed, dataset, "evaluate")
        records = {}
        for name, sample in {TRUTH: truth_b, **samples}.items():
            log(f"scoring {name}: {len(sample)} showers against {len(truth_a)} truth showers (streamed)")
            metrics = high_level_metrics(truth_a, sample, options, metric_seed_)
            metrics["c2st_auc"], timings[name] = voxel_classifier(truth_a, sample, options, metric_seed_, name,
                                                                  voxel_epochs, show_progress)
            for key, reason in ABSENT.items():
                metrics[key] = {"value": None, "error": None, "skipped": reason}
            references = ({"truth A": truth_a.hashes} if name == TRUTH
                          else {"truth": truth_a.hashes, "truth B": truth_b.hashes})
            metrics["duplicates"], flag = copy_check_hashes(sample.hashes, references, metrics["c2st_auc"])
            if flag:
                warnings.append(f"{name}: {flag}")
            records[name] = MetricsRecord(
                dataset=dataset, model=name, name=name, family=TRUTH if name == TRUTH else "external",
                n_truth=len(truth_a), n_generated=len(sample), metrics=metrics,
                status="flagged" if flag else "ok", status_detail=flag)
            bar.update(1)
        # the figures: a few showers per row, read by index
        block = spec.block
        geometry = dataset_geometry(block)

        def plot_set(f: StreamedFile, label: str) -> EventSet:
            pick = subsample_indices(len(f), PLOT_SHOWERS, derive_seed(seed, dataset, "score", "plots", label))
            return read_calochallenge(f.path, readout_threshold_mev=block.get("readout_threshold_mev", READOUT_THRESHOLD_MEV),
                                      representation=block.get("representation", "shares"), geometry=geometry,
                                      binning=block.get("binning"), rows=np.sort(f.rows[pick]))

        plot_truth = plot_set(truth_a, "truth_a")
        plot_samples = {name: plot_set(f, name) for name, f in samples.items()}
    warnings.append(f"streamed: the voxel-level metrics {sorted(ABSENT)} are absent (see each entry's 'skipped'); "
                    f"the figures show {min(PLOT_SHOWERS, n)} showers per row")
    for name, seconds in timings.items():
        log(f"voxel classifier {name}: {len(seconds)} epoch(s), {np.mean(seconds):.1f} s per epoch")
    log(f"streamed scoring done: peak RSS {peak_rss_mb():.0f} MB before the figures")
    result = ScoreResult(dataset, records, plot_truth, plot_samples, warnings, streamed=True,
                         voxel_epoch_seconds=timings)
    for warning in warnings:
        log(f"warning: {warning}")
    return result
