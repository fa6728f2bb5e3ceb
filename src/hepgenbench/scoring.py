"""Score samples made anywhere: ``hepgenbench score`` and :func:`score` in a notebook.

A physicist's own generator (a CaloDiffusion trained on a cluster, a GAN in an
experiment's software, a MadGraph+Delphes sample) gets the workflow's metric suite, its
truth-vs-truth floor at the same sample size and its report, without Snakemake:

1. read truth and every generated file with the same reading spec (a CaloChallenge file
   with its geometry, or the dataset block of a workflow config for ROOT/HDF5 events);
2. check each generated file against truth (:func:`check_generated`): features, non-finite
   values, and what the kind checks (negative energies, units, the incident-energy
   distribution for showers);
3. cut truth into halves A and B (or take ``truth_b``), bring every sample to one size N,
   count the exact copies, and score every generated sample and truth B against truth A
   with :func:`hepgenbench.evaluate.evaluate_sample`: the same call the workflow makes;
4. write ``metrics.json``, ``metrics.csv``, ``report.md``, ``index.html`` and the figures,
   all or nothing.

The CaloChallenge's ``evaluate.py`` (``-i generated.h5 -r reference.h5``), the CMS HGCal
challenge's list of files, sbibm's ``c2st(reference, samples)`` and JetNet's metrics on
arrays each do part of this; none gives the truth floor at the same N.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepgenbench import kinds
from hepgenbench.errors import InputError
from hepgenbench.io import EventSet, read_events, write_json
from hepgenbench.logging_utils import log
from hepgenbench.metrics.duplicates import duplicate_counts, row_hashes
from hepgenbench.records import EvalOptions, MetricsRecord, SampleCost
from hepgenbench.seeding import derive_seed

#: ``--format`` choices: a registered reader source, or hepgenbench's own event files
#: (a workflow's ``samples/{model}.h5``), which carry their own description.
FORMATS = ("calochallenge", "root", "hdf5", "hepgenbench")
#: The truth row's name in the results.
TRUTH = "truth"
#: A C2ST AUC this many standard deviations below 0.5 is flagged (:func:`auc_flag`).
AUC_DEFICIT_SIGMAS = 3.0


@dataclass(frozen=True)
class ReadingSpec:
    """How to read a file: a source of the kind registry and its dataset block, validated
    (:func:`hepgenbench.kinds.validate_dataset`, defaults filled in).

    ``source is None`` reads hepgenbench's own event files (:func:`hepgenbench.io.read_events`).
    """

    source: str | None
    block: dict[str, Any] = field(default_factory=dict)
    #: the dataset's name: labels the report and derives the metric seed, as in the workflow
    dataset: str = "score"

    def read(self, path: str | os.PathLike, role: str) -> EventSet:
        """Read ``path`` (the ``role`` file: truth, generated...), naming it in any error."""
        path = str(path)
        if not Path(path).exists():
            raise InputError(f"{path}: {role} file does not exist")
        if self.source is None or is_hepgenbench_file(path):
            events = read_events(path)
        else:
            try:
                events = kinds.source(self.source).read([path], {**self.block, "source": self.source})
            except InputError as err:
                message = str(err)
                raise InputError(message if path in message else f"{path}: {message}") from None
        if len(events) == 0:
            raise InputError(f"{path}: the {role} file holds no events")
        return events


def is_hepgenbench_file(path: str) -> bool:
    """An HDF5 file written by :func:`hepgenbench.io.write_events` (features + their names)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "features" in f and "feature_names" in f.attrs
    except OSError:
        return False


def reading_spec(
    format: str | None = None,
    config: str | os.PathLike | Mapping | None = None,
    dataset: str | None = None,
    binning: str | None = None,
    particle: str | None = None,
    truth_path: str | None = None,
) -> ReadingSpec:
    """The :class:`ReadingSpec` of a ``score`` call.

    Args:
        format: one of :data:`FORMATS`; by default the config's dataset source, else
            ``calochallenge`` for an HDF5 file with ``showers``, else hepgenbench's own.
        config: a workflow config (``datasets: {name: block}``) or one dataset block, as a
            path or a mapping: the ROOT/HDF5 reading spec, exactly as a workflow uses it.
        dataset: which of the config's datasets (needed when it has several).
        binning: a CaloChallenge binning XML (``calochallenge`` only).
        particle: the particle of a binning XML that holds several.
        truth_path: inspected to guess the format when neither ``format`` nor ``config`` says.
    """
    if format is not None and format not in FORMATS:
        raise InputError(f"--format {format!r}: expected one of {', '.join(FORMATS)}")
    block: dict[str, Any] = {}
    # the report's section and the metric seed's label: the config's dataset, else truth's file
    name = dataset or (Path(truth_path).stem if truth_path else "score")
    if config is not None:
        named, block = _dataset_block(config, dataset)
        name = named or name
        source = block.get("source")
        # the config's reader decides; a CaloChallenge file is what the embedded calo source writes too
        compatible = {source, "hepgenbench"} | ({"calochallenge"} if source == "calo" else set())
        if format is not None and format not in compatible:
            raise InputError(f"--format {format} contradicts the config's dataset {name!r}, whose source is {source!r}")
        if format != "hepgenbench":
            format = source
    if format is None and truth_path is not None:
        format = _guess_format(truth_path)
    if format in ("root", "hdf5") and config is None:
        raise InputError(f"--format {format} needs --config: a workflow config (or one dataset block) that says which "
                         "tree, branches or datasets to read")
    options = {k: v for k, v in block.items() if k not in ("source", "files", "split", "training")}
    for key, value in (("binning", binning), ("particle", particle)):
        if value is not None:
            options[key] = value
    if format in (None, "hepgenbench"):  # None: in-memory samples, or hepgenbench's files
        return ReadingSpec(None, options, name)
    # an embedded source (calo) reads the file format it writes, and has no files: key
    files = {} if kinds.source(format).embedded else {"files": "<the file scored>"}
    validated = kinds.validate_dataset(name, {**options, "source": format, **files})
    return ReadingSpec(format, {k: v for k, v in validated.items() if k not in ("source", "files")}, name)


def _dataset_block(config: str | os.PathLike | Mapping, dataset: str | None) -> tuple[str | None, dict[str, Any]]:
    """``(name, block)`` of the dataset ``config`` describes (a workflow config or one block;
    a block's name is ``dataset``, None when not given)."""
    import yaml

    where = "the config"
    if not isinstance(config, Mapping):
        where = str(config)
        if not Path(config).exists():
            raise InputError(f"{config}: config file does not exist")
        try:
            config = yaml.safe_load(Path(config).read_text()) or {}
        except yaml.YAMLError as err:
            raise InputError(f"{where}: not valid YAML ({err})".replace("\n", " ")) from None
    if not isinstance(config, Mapping):
        raise InputError(f"{where}: expected a mapping (a workflow config or a dataset block)")
    if "source" in config:
        return dataset, dict(config)
    datasets = config.get("datasets")
    if not isinstance(datasets, Mapping) or not datasets:
        raise InputError(f"{where}: no 'datasets' (a workflow config) and no 'source' (a dataset block)")
    if dataset is None:
        if len(datasets) > 1:
            raise InputError(f"{where}: holds datasets {list(datasets)}; say which with --dataset")
        dataset = next(iter(datasets))
    if dataset not in datasets:
        raise InputError(f"{where}: no dataset {dataset!r} under 'datasets'; it has {list(datasets)}")
    return dataset, dict(datasets[dataset])


def _guess_format(path: str) -> str:
    if Path(path).suffix == ".root":
        return "root"
    if is_hepgenbench_file(path):
        return "hepgenbench"
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "showers" in f:
                return "calochallenge"
    except OSError:
        pass
    raise InputError(f"{path}: cannot tell its format; give --format ({', '.join(FORMATS)}) and, for events, "
                     "--config with the dataset block that reads it")


# ---------------------------------------------------------------- checks


def check_generated(generated: EventSet, truth: EventSet, path: str, allow_einc_mismatch: bool = False) -> list[str]:
    """Refuse a generated sample that cannot be scored against ``truth``; return warnings.

    Every kind: the same features in the same order, finite values, the same conditions.
    The kind adds its own (:meth:`hepgenbench.kinds.base.DatasetKind.check_sample`).
    """
    if generated.feature_names != truth.feature_names:
        missing = [f for f in truth.feature_names if f not in generated.feature_names]
        extra = [f for f in generated.feature_names if f not in truth.feature_names]
        what = (f"lacks {_few(missing)} and has {_few(extra)} that truth has not" if missing or extra
                else "has truth's features in another order")
        raise InputError(f"{path}: its features do not match truth's ({generated.n_features} vs "
                         f"{truth.n_features}): it {what}")
    if generated.condition_names != truth.condition_names:
        raise InputError(f"{path}: conditioned on {generated.condition_names}, truth on {truth.condition_names}")
    for label, array in (("features", generated.features), ("condition", generated.condition)):
        if array is not None and not np.isfinite(array).all():
            rows = int((~np.isfinite(array)).any(axis=1).sum())
            raise InputError(f"{path}: {rows} event(s) with NaN/inf {label}")
    return kinds.get(truth.kind).check_sample(generated, truth, path, allow_einc_mismatch)


def _few(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return f"[{shown}{', …' if len(names) > limit else ''}] ({len(names)})"


def auc_null_sigma(n_per_class: int) -> float:
    """The standard deviation of a ROC AUC between two samples of ``n`` events drawn from one
    law: the Mann–Whitney U statistic's null spread, √((2n + 1) / (12 n²)) (Hanley & McNeil,
    Radiology 143 (1982) 29). Out-of-fold AUCs averaged over folds have about the same."""
    n = max(int(n_per_class), 1)
    return float(np.sqrt((2 * n + 1) / (12 * n * n)))


def auc_flag(auc: Mapping[str, Any] | None, copies: str) -> str:
    """A note when a C2ST AUC sits significantly below 0.5, with its likely cause.

    "Significantly": more than :data:`AUC_DEFICIT_SIGMAS` times the larger of the AUC's
    null spread at its sample size (:func:`auc_null_sigma`) and its own error below 0.5. A
    classifier cannot do worse than chance on independent samples; it does when the same
    events sit on both sides, with opposite labels, in its training and test folds.
    """
    if not auc or auc.get("value") is None:
        return ""
    value, error = float(auc["value"]), float(auc.get("error") or 0.0)
    n = auc.get("n_per_class")
    spread = max(auc_null_sigma(n) if n else 0.0, error if np.isfinite(error) else 0.0)
    if value >= 0.5 - AUC_DEFICIT_SIGMAS * spread:
        return ""
    return (f"C2ST AUC {value:.3f} is significantly below 0.5: the two samples share events or repeat events "
            f"({copies}); a copy is not a perfect generator")


# ---------------------------------------------------------------- scoring


@dataclass
class ScoreResult:
    """What :func:`score_samples` computed: one metrics record per row, truth first."""

    dataset: str
    records: dict[str, MetricsRecord]
    truth_a: EventSet
    samples: dict[str, EventSet]  # the generated samples at the scored size (streamed: those of the figures)
    warnings: list[str] = field(default_factory=list)
    #: scored by :mod:`hepgenbench.streamed_scoring`, without loading the voxels
    streamed: bool = False
    #: streamed: seconds per epoch of each row's voxel classifier
    voxel_epoch_seconds: dict[str, list[float]] = field(default_factory=dict)

    def frame(self):
        """The report's summary table (:func:`hepgenbench.report.summary_table`): one row
        per sample, truth first, columns ``(metric, value | error | spread)``."""
        from hepgenbench.report import results_frame, summary_table

        return summary_table(results_frame([r.to_dict() for r in self.records.values()]), self.dataset)


def truth_half_indices(n: int, seed: int, event_key: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row indices of truth's two equal, disjoint halves (whole events with a key)."""
    from hepgenbench.split import grouped_permutation

    perm, bounds = grouped_permutation(n, seed, event_key, np.array([0, n // 2, 2 * (n // 2)]))
    return np.sort(perm[bounds[0]:bounds[1]]), np.sort(perm[bounds[1]:bounds[2]])


def truth_halves(truth: EventSet, seed: int) -> tuple[EventSet, EventSet]:
    """Truth cut into two equal, disjoint halves (whole events when it has an event key)."""
    a, b = truth_half_indices(len(truth), seed, truth.event_key)
    return truth.subset(a), truth.subset(b)


def subsample_indices(n_events: int, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` of ``n_events`` rows drawn without replacement, or all of them."""
    if n_events <= n:
        return np.arange(n_events)
    return np.sort(np.random.default_rng(seed).choice(n_events, n, replace=False))


def subsample(events: EventSet, n: int, seed: int) -> EventSet:
    """``n`` events of ``events`` drawn without replacement (in file order), or all of them."""
    if len(events) <= n:
        return events
    return events.subset(subsample_indices(len(events), n, seed))


def common_size(n_truth_a: int, n_truth_b: int, n_samples: Sequence[int]) -> int:
    """The one N every row is scored at: the smallest of truth's halves and the samples."""
    n = min(n_truth_a, n_truth_b, *n_samples)
    if n < 10:
        raise InputError(f"only {n} events to score at: truth halves hold {n_truth_a} and {n_truth_b}, the "
                         f"samples {list(n_samples)}; at least 10 are needed")
    return n


def score_samples(
    truth: EventSet,
    generated: Mapping[str, EventSet],
    truth_b: EventSet | None = None,
    seed: int = 0,
    dataset: str = "score",
    evaluation: EvalOptions | None = None,
    train: EventSet | None = None,
    costs: Mapping[str, SampleCost | None] | None = None,
    progress: Any = None,
    threads: int | None = None,
) -> ScoreResult:
    """Score each generated sample and the truth floor against truth A.

    Truth A is ``truth`` when ``truth_b`` is given, else one half of it (the other is B).
    Every sample is brought to one size N, the smallest of them: larger ones are
    subsampled with the seed; when every size already agrees nothing is dropped, so a
    workflow's own truth halves and samples give the workflow's numbers. The metric seed
    is the workflow's: ``derive_seed(seed, dataset, "evaluate")``. ``threads`` (default: all
    cores) is shared out: up to that many rows are scored at once, and the numerical
    libraries' pools of each get the rest. The workflow's evaluate jobs run with a pool of
    one; a row whose pool is one here too (``threads`` at most the number of rows) gives
    the workflow's row to the last digit of every BLAS sum.
    """
    options = evaluation or EvalOptions()
    if truth_b is None:
        truth_a, truth_b = truth_halves(truth, derive_seed(seed, dataset, "score", "halves"))
    else:
        truth_a = truth
    n = common_size(len(truth_a), len(truth_b), [len(g) for g in generated.values()])
    truth_a = subsample(truth_a, n, derive_seed(seed, dataset, "score", "truth_a"))
    truth_b = subsample(truth_b, n, derive_seed(seed, dataset, "score", "truth_b"))
    samples = {name: subsample(g, n, derive_seed(seed, dataset, "score", name)) for name, g in generated.items()}
    metric_seed = derive_seed(seed, dataset, "evaluate")
    rows = {TRUTH: truth_b, **samples}
    from threadpoolctl import threadpool_limits

    from hepgenbench.evaluate import evaluate_sample

    def score_row(name: str) -> tuple[dict, str]:
        log(f"scoring {name}: {len(rows[name])} events against {len(truth_a)} truth events")
        metrics = evaluate_sample(truth_a, rows[name], train, options, seed=metric_seed,
                                  log_q_truth=truth_a.log_density if name == TRUTH else None)
        references = {"truth A": truth_a} if name == TRUTH else {"truth": truth_a, "truth B": truth_b}
        metrics["duplicates"], flag = copy_check(rows[name], references, metrics.get("c2st_auc"))
        if progress is not None:
            progress.update(1)
        return metrics, flag

    # Rows are scored side by side, each with an equal share of the cores: most of the
    # suite is single-threaded numpy. Each row draws from its own seeds and its BLAS/OpenMP
    # pools keep their size, so the numbers do not depend on how many run at once.
    cores = threads or os.cpu_count() or 1
    side_by_side = max(1, min(cores, len(rows)))
    with threadpool_limits(max(1, cores // side_by_side)):
        if side_by_side == 1:
            scored = [score_row(name) for name in rows]
        else:
            with ThreadPoolExecutor(side_by_side) as pool:
                scored = list(pool.map(score_row, rows))
    records, warnings = {}, []
    for (name, sample), (metrics, flag) in zip(rows.items(), scored):
        if flag:
            warnings.append(f"{name}: {flag}")
        records[name] = MetricsRecord(
            dataset=dataset, model=name, name=name, family=TRUTH if name == TRUTH else "external",
            n_truth=len(truth_a), n_generated=len(sample), metrics=metrics,
            status="flagged" if flag else "ok", status_detail=flag,
            cost=None if name == TRUTH else (costs or {}).get(name),
        )
    return ScoreResult(dataset, records, truth_a, samples, warnings)


def copy_check(sample: EventSet, references: Mapping[str, EventSet],
               c2st: Mapping[str, Any] | None) -> tuple[dict[str, Any], str]:
    """The copies in ``sample`` as a metrics entry, and a flag if its C2ST AUC sits below chance.

    The entry's value is the fraction of ``sample``'s events that are copies of an event of
    the ``references`` (truth, the training set); it also counts the events repeated within
    the sample. The flag is :func:`auc_flag`, which names those counts as the likely cause,
    or, with a plausible AUC, a note of any copies found.
    """
    return copy_check_hashes(row_hashes(sample.features, sample.condition),
                             {name: row_hashes(r.features, r.condition) for name, r in references.items()}, c2st)


def copy_check_hashes(hashes: np.ndarray, references: Mapping[str, np.ndarray],
                      c2st: Mapping[str, Any] | None) -> tuple[dict[str, Any], str]:
    """:func:`copy_check` from the :func:`~hepgenbench.metrics.duplicates.row_hashes` of the
    sample and of each reference (a streamed pass hashes chunk by chunk)."""
    copies = duplicate_counts(hashes, np.concatenate(list(references.values())))
    against = " and ".join(references)
    entry = {"value": copies.fraction_copies, "error": None, **copies.to_dict(), "compared_with": against}
    text = (f"{copies.n_copies_of_reference} of its {copies.n_events} events are copies of {against}, "
            f"{copies.n_internal} repeat an event of its own")
    flag = auc_flag(c2st, text)
    if not flag and copies.n_copies_of_reference:
        flag = f"{text}: exact copies score as perfect events"
    return entry, flag


# ---------------------------------------------------------------- outputs


def write_outputs(result: ScoreResult, out: str | os.PathLike, title: str | None = None,
                  config: Mapping | None = None) -> Path:
    """Write ``metrics.json``, the figures and the report into ``out``, all or nothing.

    Everything is written in a temporary directory beside ``out`` and moved in only when
    complete, so a failure leaves ``out`` as it was (absent, or as the user made it).
    """
    from hepgenbench.plots import make_dataset_plots, write_plot_manifest
    from hepgenbench.report import build_report

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_json(staging / "metrics.json", {name: r.to_dict() for name, r in result.records.items()})
        metrics = {name: r.to_dict() for name, r in result.records.items()}
        plots_dir = staging / "plots"
        figures = make_dataset_plots(result.dataset, result.truth_a, result.samples, metrics, {}, str(plots_dir))
        write_plot_manifest(str(plots_dir / "manifest.json"), figures, result.dataset)
        build_report(list(result.records.values()), [str(plots_dir / "manifest.json")], dict(config or {}),
                     str(staging), title=title or f"hepgenbench score: {result.dataset}")
        out.mkdir(exist_ok=True)
        for item in staging.iterdir():
            target = out / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


# ---------------------------------------------------------------- one call


def score(
    truth: str | os.PathLike | EventSet,
    generated: str | os.PathLike | EventSet | Sequence[str | os.PathLike | EventSet] | Mapping[str, Any],
    kind: str | None = None,
    *,
    names: Sequence[str] | None = None,
    format: str | None = None,
    config: str | os.PathLike | Mapping | None = None,
    dataset: str | None = None,
    binning: str | None = None,
    particle: str | None = None,
    truth_b: str | os.PathLike | EventSet | None = None,
    seed: int | None = None,
    evaluation: Mapping[str, Any] | EvalOptions | None = None,
    allow_einc_mismatch: bool = False,
    out: str | os.PathLike | None = None,
    show_progress: bool | None = None,
):
    """Score generated samples against truth; return the results table.

    Example::

        import hepgenbench
        table = hepgenbench.score("truth.h5", {"mygan": "gan.h5"}, kind="calo")
        table.xs("value", axis=1, level=1)[["c2st_auc", "fpd"]]

    Args:
        truth: a file, or an :class:`~hepgenbench.io.EventSet`.
        generated: one sample, a list of them (named by file stem), or ``{name: sample}``.
        kind: ``"calo"`` reads CaloChallenge files; ``"events"`` (or any other) needs
            ``config`` for ROOT/HDF5 and reads hepgenbench's own files without it.
        names: one name per generated sample (default: each file's stem).
        format, config, dataset, binning, particle: how to read the files (:func:`reading_spec`).
        truth_b: a second, independent truth sample for the floor; default: halves of truth.
        seed: fixes the halves, the subsampling and every metric's resampling; default the
            config's ``seed``, else 0.
        evaluation: options of the metric suite (the config's ``evaluation:`` block).
        allow_einc_mismatch: warn, rather than refuse, when a sample's incident energies
            are not drawn like truth's.
        out: also write the report there (:func:`write_outputs`).

    Returns:
        A :class:`pandas.DataFrame`, one row per sample with ``truth`` first, columns
        ``(metric, "value" | "error" | "spread")`` and ``("row", ...)``: the report's table.
    """
    result = score_files(truth, generated, kind=kind, names=names, format=format, config=config, dataset=dataset,
                         binning=binning, particle=particle, truth_b=truth_b, seed=seed, evaluation=evaluation,
                         allow_einc_mismatch=allow_einc_mismatch, show_progress=show_progress)
    if out is not None:
        write_outputs(result, out, config=config_mapping(config))
    return result.frame()


def score_files(truth, generated, kind=None, *, names=None, format=None, config=None, dataset=None, binning=None,
                particle=None, truth_b=None, seed=None, evaluation=None, allow_einc_mismatch=False,
                show_progress=None, threads=None, stream=None, memory_budget_gb=None, voxel_epochs=None) -> ScoreResult:
    """:func:`score`'s work, returning the :class:`ScoreResult` (records, samples, warnings).

    CaloChallenge files are scored without loading their voxels
    (:mod:`hepgenbench.streamed_scoring`) when ``stream`` is True, or when it is None and
    :func:`~hepgenbench.streamed_scoring.should_stream` says they would not fit in
    ``memory_budget_gb``; ``voxel_epochs`` caps that path's voxel classifier.
    """
    if format is None and kind == "calo" and config is None:
        format = "calochallenge"
    spec = reading_spec(format, config, dataset, binning, particle,
                        truth_path=None if isinstance(truth, EventSet) else str(truth))
    named = _named_samples(generated, names)
    config_map = config_mapping(config)
    if seed is None:
        seed = int((config_map or {}).get("seed", 0))
    if evaluation is None:
        evaluation = (config_map or {}).get("evaluation")
    options = evaluation if isinstance(evaluation, EvalOptions) else EvalOptions.from_config(evaluation or {})
    if stream is not False and spec.source in ("calochallenge", "calo"):
        from hepgenbench import streamed_scoring

        files = [truth, *named.values(), *([truth_b] if truth_b is not None else [])]
        if all(isinstance(f, (str, os.PathLike)) for f in files) and (
                stream or streamed_scoring.should_stream(files, memory_budget_gb)):
            return streamed_scoring.score_streamed(
                str(truth), {k: str(v) for k, v in named.items()}, None if truth_b is None else str(truth_b), spec,
                seed, options, allow_einc_mismatch=allow_einc_mismatch, show_progress=show_progress, threads=threads,
                voxel_epochs=voxel_epochs)
        if stream:
            raise InputError("--stream scores CaloChallenge files given as paths, not in-memory samples")
    elif stream:
        raise InputError(f"--stream scores CaloChallenge files (calo showers); these are read as {spec.source!r}")

    from tqdm.auto import tqdm

    steps = 2 + len(named) + 1 + len(named)
    disable = (not sys.stderr.isatty()) if show_progress is None else not show_progress
    with tqdm(total=steps, desc="hepgenbench score", unit="step", disable=disable, leave=False) as bar:
        truth_events = _load(truth, spec, "truth")
        truth_b_events = None if truth_b is None else _load(truth_b, spec, "truth-b")
        bar.update(2)
        if truth_b_events is not None:
            check_generated(truth_b_events, truth_events, _label(truth_b), allow_einc_mismatch)
        samples, warnings = {}, []
        for name, item in named.items():
            sample = _load(item, spec, "generated")
            warnings += [f"{_label(item)}: {w}" for w in check_generated(sample, truth_events, _label(item),
                                                                         allow_einc_mismatch)]
            samples[name] = sample
            log(f"read {_label(item)} as {name!r}: {len(sample)} events")
            bar.update(1)
        result = score_samples(truth_events, samples, truth_b_events, seed, spec.dataset, options, progress=bar,
                               threads=threads)
    result.warnings[:0] = warnings
    for warning in result.warnings:
        log(f"warning: {warning}")
    return result


def _load(item, spec: ReadingSpec, role: str) -> EventSet:
    if isinstance(item, EventSet):
        if len(item) == 0:
            raise InputError(f"the {role} sample holds no events")
        return item
    events = spec.read(item, role)
    log(f"read {role} {item}: {len(events)} events x {events.n_features} features")
    return events


def _label(item) -> str:
    return "<EventSet>" if isinstance(item, EventSet) else str(item)


def _named_samples(generated, names: Sequence[str] | None) -> dict[str, Any]:
    if isinstance(generated, Mapping):
        items = dict(generated)
    else:
        seq = [generated] if isinstance(generated, (str, os.PathLike, EventSet)) else list(generated)
        if names is not None and len(names) != len(seq):
            raise InputError(f"--name given {len(names)} time(s) for {len(seq)} --generated file(s): give one per file")
        stems = list(names) if names is not None else [
            f"sample{i}" if isinstance(g, EventSet) else Path(g).stem for i, g in enumerate(seq)]
        if len(set(stems)) != len(stems):
            raise InputError(f"two generated samples share a name in {stems}: name them with --name")
        items = dict(zip(stems, seq))
    if not items:
        raise InputError("no generated sample to score")
    bad = [n for n in items if n == TRUTH or not str(n).strip()]
    if bad:
        raise InputError(f"sample name(s) {bad}: 'truth' names the floor's row and a name cannot be empty")
    return items


def config_mapping(config) -> dict | None:
    if config is None:
        return None
    if isinstance(config, Mapping):
        return dict(config)
    import yaml

    try:
        loaded = yaml.safe_load(Path(config).read_text())
    except (OSError, yaml.YAMLError):
        return None
    return loaded if isinstance(loaded, dict) else None
