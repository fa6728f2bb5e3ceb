"""The comparison plots of one dataset: truth against every model, in physical units.

One call, :func:`make_dataset_plots`, draws every figure a dataset has and returns a
:class:`PlotRecord` per figure (PNG for the report, PDF beside it for papers). Every
figure kind reads the same inputs the metrics read, so a number in the report's table can
be looked at as a picture:

- ``observable`` / ``feature``: normalised histograms with a model/truth ratio panel and
  the truth's Poisson band, derived observables first (the Z peak in m_μμ);
- ``correlation``: Pearson matrices of truth, a model, and their difference;
- ``training``: training and validation loss per epoch;
- ``calo``: the average shower per layer, mean layer energy against the incident energy
  and per-incident-energy scores (the CaloChallenge-2022 views, arXiv:2410.21611);
- ``classifier``: the distribution of the C2ST classifier weights w = p/(1−p), the
  reweighting view of arXiv:2305.16774 (Das et al., "How to understand limitations of
  generative networks");
- ``cost``: quality against training time and sampling rate with the Pareto front;
- ``dalitz``: m²₁₂ against m²₂₃ for the three-body decay.

File names are deterministic (``{outdir}/{kind}/{name}.png``) and every file is written
atomically, so a re-run overwrites and a killed run leaves no half-written PNG.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: plots are written on headless nodes

import hist  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from hepgenbench.errors import InputError  # noqa: E402
from hepgenbench.io import EventSet, atomic_path  # noqa: E402
from hepgenbench.records import PlotManifest, PlotRecord  # noqa: E402

#: A derived-observable function, as :func:`hepgenbench.data.observables.derived_observables`.
ObservableFn = Callable[[EventSet], tuple[np.ndarray, list[str]]]

#: Above this many features the per-feature histograms and correlation matrices use the
#: derived observables only: 368 voxel histograms say less than a dozen shower shapes.
MAX_FEATURE_PLOTS = 40
#: PNG resolution for the report; the PDF beside it is vector.
DPI = 72
TRUTH_COLOR = "black"


def make_dataset_plots(
    dataset: str,
    truth: EventSet,
    samples: Mapping[str, EventSet],
    metrics: Mapping[str, dict],
    training_csvs: Mapping[str, str],
    outdir: str,
    observables: ObservableFn | None = None,
) -> list[PlotRecord]:
    """Draw every figure of one dataset under ``outdir`` and return their records.

    Args:
        dataset: the dataset name, for titles.
        truth: truth holdout A in physical units.
        samples: generated events per model, same columns as ``truth``.
        metrics: the metrics JSON per model (and optionally ``"truth"``).
        training_csvs: per model, the path of its ``training.csv``.
        outdir: the dataset's plot directory.
        observables: the derived-observable function; by default
            :func:`hepgenbench.data.observables.derived_observables`.
    """
    if observables is None:
        from hepgenbench.data.observables import derived_observables as observables
    for model, events in samples.items():
        if events.feature_names != truth.feature_names:
            raise InputError(
                f"samples of model '{model}' have columns {events.feature_names[:5]}..., "
                f"expected the truth's {truth.feature_names[:5]}..."
            )
    models = list(samples)
    colors = model_colors(models)
    out = Path(outdir)
    truth_obs, obs_names = observables(truth)
    sample_obs = {m: observables(ev)[0] for m, ev in samples.items()}

    records: list[PlotRecord] = []
    with plt.style.context(mplhep.style.CMS), plt.rc_context({"figure.max_open_warning": 0}):
        obs_columns = observable_columns(truth.kind, obs_names)
        records += _column_histograms(dataset, "observable", truth_obs, obs_columns, sample_obs, colors, out)
        if truth.n_features <= MAX_FEATURE_PLOTS:
            columns = [Column(n, n, u) for n, u in zip(truth.feature_names, truth.units)]
            sample_feats = {m: ev.features for m, ev in samples.items()}
            records += _column_histograms(dataset, "feature", truth.features, columns, sample_feats, colors, out)
        corr_truth, corr_names = _correlation_columns(truth, truth_obs, obs_names)
        for model in models:
            corr_model, _ = _correlation_columns(samples[model], sample_obs[model], obs_names)
            records.append(_correlation_plot(dataset, model, corr_truth, corr_model, corr_names, out))
        if training_csvs:
            records.append(_training_plot(dataset, training_csvs, colors, out))
        kind_plots = KIND_PLOTS.get(truth.kind)
        if kind_plots is not None:
            records += kind_plots(KindPlotInputs(dataset, truth, samples, metrics, truth_obs, obs_names, sample_obs,
                                                 colors, out))  # fmt: skip
        weights = _classifier_weight_plot(dataset, metrics, models, colors, out)
        if weights is not None:
            records.append(weights)
        cost = _cost_plot(dataset, metrics, models, colors, out)
        if cost is not None:
            records.append(cost)
    return records


def model_colors(models: list[str]) -> dict[str, str]:
    """One colour per model, stable for a given model order (colour-blind-safe cycle)."""
    # Petroff 10-colour cycle (arXiv:2107.02270), adopted by CMS for colour-blind readers.
    palette = ["#3f90da", "#ffa90e", "#bd1f01", "#94a4a2", "#832db6", "#a96b59", "#e76300", "#b9ac70",
               "#717581", "#92dadd"]  # fmt: skip
    return {m: palette[i % len(palette)] for i, m in enumerate(models)}


def safe_name(name: str) -> str:
    """A file-name-safe version of a column name (``p_T [GeV]`` → ``p_T_GeV``)."""
    return re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9.-]+", "_", name)).strip("_") or "unnamed"


def save_figure(fig: Figure, png_path: Path) -> tuple[str, str]:
    """Write ``fig`` as PNG and PDF beside it, each atomically, and close it."""
    pdf_path = png_path.with_suffix(".pdf")
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    with atomic_path(pdf_path) as tmp:
        fig.savefig(tmp, format="pdf")
    plt.close(fig)
    return str(png_path), str(pdf_path)


# ---------------------------------------------------------------- density comparisons

#: Quantiles of truth that bound the linear view (the core) and the log view (the tails).
CORE_QUANTILES = (0.02, 0.98)
TAIL_QUANTILES = (0.001, 0.999)
#: The log view is drawn when the tail range is this much wider than the core range: an
#: exponential (a falling spectrum) gives 1.78, a Gaussian 1.51, a uniform 1.04.
HEAVY_TAIL_RATIO = 1.65
#: A positive column spanning more decades than this (0.1–99.9 %) is drawn on a log x axis.
LOG_X_DECADES = 2.0
#: Truth events per histogram bin on average, between 10 and 50 bins.
EVENTS_PER_BIN = 20
#: Models in the overlay of the closest few; every model has its own panel beside it.
OVERLAY_MODELS = 3
RATIO_LIMITS = (0.5, 1.5)


def histogram_edges(truth: np.ndarray, n_bins: int = 50, quantiles: tuple[float, float] = TAIL_QUANTILES) -> np.ndarray:
    """Bin edges covering truth's ``quantiles`` (0.1–99.9 % by default), or its integer values."""
    x = truth[np.isfinite(truth)]
    if x.size == 0:
        raise InputError("a truth column has no finite values to histogram")
    values = np.unique(x)
    if values.size <= n_bins and np.allclose(values, np.round(values)):
        # Multiplicities and charges: one bin per integer.
        return np.arange(values.min() - 0.5, values.max() + 1.5)
    lo, hi = np.quantile(x, quantiles)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.02 * (hi - lo)
    return np.linspace(lo - pad, hi + pad, n_bins + 1)


def spans_decades(truth: np.ndarray) -> bool:
    """Whether a column wants a log x axis: mostly positive (a 10 % spike at zero, such as
    empty layers, may be left out) and spanning more than :data:`LOG_X_DECADES` decades."""
    x = truth[np.isfinite(truth)]
    positive = x[x > 0]
    if positive.size < 0.9 * x.size:
        return False
    lo, hi = np.quantile(positive, TAIL_QUANTILES)
    return bool(hi > lo * 10**LOG_X_DECADES)


def tails_matter(truth: np.ndarray) -> bool:
    """Whether a column needs a log-y view: truth's 0.1–99.9 % range is more than
    :data:`HEAVY_TAIL_RATIO` times its 2–98 % range (tails a linear axis would flatten)."""
    x = truth[np.isfinite(truth)]
    core, tail = np.ptp(np.quantile(x, CORE_QUANTILES)), np.ptp(np.quantile(x, TAIL_QUANTILES))
    return bool(core > 0 and tail > HEAVY_TAIL_RATIO * core)


def count_histogram(values: np.ndarray, edges: np.ndarray, label: str) -> hist.Hist:
    """Counts of the finite ``values`` in ``edges``, with variances (weighted storage) so
    that a rescaled histogram keeps its Poisson uncertainty right."""
    h = hist.Hist(hist.axis.Variable(edges, name="x", label=label), storage=hist.storage.Weight())
    return h.fill(values[np.isfinite(values)])


def scaled_to(h: hist.Hist, total: float) -> hist.Hist:
    """``h`` rescaled to ``total`` entries in range (variances scale with the square)."""
    inside = h.values().sum()
    return h * (total / inside) if inside > 0 else h


def chi2_ndf(h_model: hist.Hist, h_truth: hist.Hist) -> float:
    """χ²/ndf between two shapes: Σ (p_m − p_t)² / (σ²_m + σ²_t) over the bins either fills,
    with p and σ² the bin fractions and their Poisson variances (NaN if no bin is filled)."""
    n_m, n_t = h_model.values().sum(), h_truth.values().sum()
    if n_m <= 0 or n_t <= 0:
        return float("nan")
    p_m, p_t = h_model.values() / n_m, h_truth.values() / n_t
    var = h_model.variances() / n_m**2 + h_truth.variances() / n_t**2
    used = var > 0
    return float(np.sum((p_m[used] - p_t[used]) ** 2 / var[used]) / used.sum()) if used.any() else float("nan")


@dataclass(frozen=True)
class Column:
    """One histogrammed column: its file name, axis label with unit, and the unit alone."""

    name: str
    label: str
    unit: str

    @property
    def axis_label(self) -> str:
        return f"{self.label} [{unit_text(self.unit)}]" if self.unit else self.label

    @property
    def log_density_label(self) -> str:
        # Per decade of x: dimensionless whatever the unit.
        return "1/N dN/dlog$_{10}$x"

    @property
    def plain_label(self) -> str:
        """Name and unit without TeX, for titles that the report shows as text."""
        return f"{self.name} [{self.unit}]" if self.unit else self.name

    @property
    def density_label(self) -> str:
        # 1/N dN/dx carries the inverse unit of x.
        return f"1/N dN/dx [1/{unit_text(self.unit)}]" if self.unit else "1/N dN/dx"


def unit_text(unit: str) -> str:
    """A unit for an axis label, powers as superscripts (``GeV^2`` → GeV$^{2}$)."""
    return re.sub(r"\^(-?\d+)", r"$^{\1}$", unit)


def _density_panel(ax, rax, h_truth: hist.Hist, models: Mapping[str, hist.Hist], colors, chi2, log: bool) -> None:
    """Truth as a line with its Poisson band, models as coloured lines; below, model/truth
    with mplhep's split ratio (the model's error bars, truth's band hatched)."""
    mplhep.histplot(h_truth, ax=ax, density=True, histtype="band", color="grey", alpha=0.4, label="truth stat. unc.",
                    flow="none")
    mplhep.histplot(h_truth, ax=ax, density=True, yerr=False, color=TRUTH_COLOR, lw=2, label="truth", flow="none")
    n_truth = h_truth.values().sum()
    for model, h in models.items():
        mplhep.histplot(h, ax=ax, density=True, yerr=False, color=colors[model], lw=1.5, flow="none",
                        label=f"{model} (χ²/ndf {chi2[model]:.3g})")  # fmt: skip
    if len(models) == 1:
        # One model: mplhep's split ratio, the model's error bars over truth's hatched band.
        (model, h), = models.items()
        mplhep.comp.comparison(
            scaled_to(h, n_truth), h_truth, ax=rax, comparison="split_ratio", color=colors[model], flow="none",
            comparison_ylim=RATIO_LIMITS, comparison_ylabel="model/truth", xlabel="",
        )  # fmt: skip
    else:
        # Several: truth's band once, each model's ratio as a line (its error bars are in its own panel).
        values = h_truth.values()
        rel = np.divide(np.sqrt(h_truth.variances()), values, out=np.zeros_like(values), where=values > 0)
        edges = h_truth.axes[0].edges
        mplhep.histplot(np.ones_like(values), edges, yerr=rel, ax=rax, histtype="band", color="grey", alpha=0.4)
        rax.axhline(1.0, color=TRUTH_COLOR, lw=1)
        for model, h in models.items():
            ratio = mplhep.comp.get_comparison(scaled_to(h, n_truth), h_truth, "split_ratio")[0]
            mplhep.histplot(ratio, edges, ax=rax, color=colors[model], lw=1.5, flow="none")
        rax.set_ylim(*RATIO_LIMITS)
    rax.set_ylabel("model/truth", fontsize="small")
    # No label at the ratio's top edge: it would sit on the main panel's lowest one.
    rax.set_yticks([0.75, 1.0, 1.25])
    if log:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.set_xlabel("")
    ax.tick_params(labelbottom=False)


def ratio_grid(nrows: int, ncols: int, panel: float) -> tuple[Figure, list[tuple]]:
    """A figure of ``nrows × ncols`` (main, ratio) axis pairs, each pair ``panel`` inches square.

    Main and ratio touch; the margins and the gaps between pairs are fixed in units of the
    font size, so that labels fit at any font size without a costly tight-layout pass.
    """
    em = plt.rcParams["font.size"] / 72.0
    left, right, top, bottom, hgap, wgap = 4.6 * em, 0.8 * em, 1.8 * em, 3.2 * em, 5.2 * em, 5.2 * em
    heights = ([0.75 * panel, 0.25 * panel, hgap] * nrows)[:-1]
    width = left + ncols * panel + (ncols - 1) * wgap + right
    height = top + sum(heights) + bottom
    fig = plt.figure(figsize=(width, height))
    grid = fig.add_gridspec(len(heights), ncols, height_ratios=heights, hspace=0.0, wspace=wgap / panel,
                            left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height)  # fmt: skip
    pairs = []
    for r in range(nrows):
        for c in range(ncols):
            ax = fig.add_subplot(grid[3 * r, c])
            pairs.append((ax, fig.add_subplot(grid[3 * r + 1, c], sharex=ax)))
    return fig, pairs


def column_figures(
    dataset: str, group: str, column: Column, truth: np.ndarray, samples: Mapping[str, np.ndarray],
    colors: Mapping[str, str], out: Path, fname: str,
) -> list[PlotRecord]:
    """The overlay of the closest few models (linear core view, plus a log view of the tails
    when they matter) and one small panel per model against the truth band."""
    log_x = spans_decades(truth)
    if log_x:
        # Over decades, histogram log10(x) so that each bin shows dN/dlog10(x); the axis is
        # then labelled in decades of x. Zeros (empty layers) and negatives fall out.
        with np.errstate(divide="ignore", invalid="ignore"):
            truth = np.where(truth > 0, np.log10(truth), np.nan)
            samples = {m: np.where(s > 0, np.log10(s), np.nan) for m, s in samples.items()}
    log = tails_matter(truth)
    # About EVENTS_PER_BIN truth events per bin on average: a small sample gets fewer, wider bins.
    n_bins = int(np.clip(np.isfinite(truth).sum() / EVENTS_PER_BIN, 10, 50))
    views = [("linear", histogram_edges(truth, n_bins, CORE_QUANTILES), False)]
    if log:
        views.append(("log", histogram_edges(truth, n_bins, TAIL_QUANTILES), True))
    h_truth = {v: count_histogram(truth, edges, column.axis_label) for v, edges, _ in views}
    h_models = {v: {m: count_histogram(s, edges, column.axis_label) for m, s in samples.items()} for v, edges, _ in views}
    chi2 = {m: chi2_ndf(h_models[views[-1][0]][m], h_truth[views[-1][0]]) for m in samples}
    closest = sorted(samples, key=lambda m: (not np.isfinite(chi2[m]), chi2[m]))[:OVERLAY_MODELS]
    density_label = column.log_density_label if log_x else column.density_label

    fig, pairs = ratio_grid(1, len(views), 8.0)
    for (ax, rax), (view, _, is_log) in zip(pairs, views):
        _density_panel(ax, rax, h_truth[view], {m: h_models[view][m] for m in closest}, colors, chi2, is_log)
        ax.set_ylabel(density_label, fontsize="small")
        ax.set_title("tails, log scale" if is_log else "core", fontsize="small")
        ax.legend(fontsize="xx-small")
        rax.set_xlabel(column.axis_label)
        if log_x:
            _decade_ticks(rax)
    png, pdf = save_figure(fig, out / f"{group}s" / f"{fname}.png")
    what = "derived observable" if group == "observable" else "feature"
    records = [PlotRecord(
        png, pdf, group, f"{dataset}: {column.plain_label}",
        f"Normalised distribution of the {what} {column.plain_label}: truth (black, its Poisson uncertainty as "
        f"the grey band) against the {len(closest)} model(s) closest to it by χ²/ndf ({', '.join(closest)}); "
        "the lower panel shows "
        "model/truth with truth's band. The linear view spans truth's 2–98 % quantiles"
        + (", the log view its 0.1–99.9 % quantiles" if log else "") + (" (log x: it spans decades)." if log_x else "."),
    )]  # fmt: skip

    n = len(samples)
    ncols = min(3, n)
    nrows = -(-n // ncols)
    view, _, is_log = views[-1]
    with plt.rc_context({"font.size": 11, "legend.fontsize": 9, "xtick.labelsize": 9, "ytick.labelsize": 9,
                         "axes.labelsize": 10}):  # fmt: skip
        fig, pairs = ratio_grid(nrows, ncols, 4.6)
        for (ax, rax), model in zip(pairs, samples):
            _density_panel(ax, rax, h_truth[view], {model: h_models[view][model]}, colors, chi2, is_log)
            # The title names the model and its χ²/ndf; the caption says what black and grey are.
            ax.set_title(f"{model}   χ²/ndf {chi2[model]:.3g}", fontsize="medium", color=colors[model])
            ax.set_ylabel(density_label, fontsize="small")
            rax.set_xlabel(column.axis_label, fontsize="small")
            if log_x:
                _decade_ticks(rax)
        for ax, rax in pairs[n:]:
            ax.set_axis_off()
            rax.set_axis_off()
        png, pdf = save_figure(fig, out / f"{group}s" / "per_model" / f"{fname}.png")
    records.append(PlotRecord(
        png, pdf, f"{group}_per_model", f"{dataset}: {column.plain_label}, every model",
        f"One panel per model (in colour, χ²/ndf of its normalised shape against truth's in the title): "
        f"{column.plain_label} against truth (black) and its Poisson band (grey)"
        + (" (log scale: the tails matter)" if is_log else "")
        + ", with the model/truth ratio below: the model's error bars over truth's hatched band.",
    ))  # fmt: skip
    return records


def _decade_ticks(ax) -> None:
    """Label an axis drawn in log10(x) as a log axis of x: 10^k at the decades, minor ticks
    at 2..9 × 10^k."""
    lo, hi = ax.get_xlim()
    decades = np.arange(np.floor(lo), np.ceil(hi) + 1)
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(decades))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"$10^{{{v:.0f}}}$"))
    ax.xaxis.set_minor_locator(matplotlib.ticker.FixedLocator(
        (decades[:, None] + np.log10(np.arange(2, 10))[None, :]).ravel()))  # fmt: skip
    ax.set_xlim(lo, hi)


def _column_histograms(
    dataset: str, group: str, truth: np.ndarray, columns: list[Column], samples: Mapping[str, np.ndarray],
    colors: Mapping[str, str], out: Path,
) -> list[PlotRecord]:
    records, used = [], set()
    for j, column in enumerate(columns):
        fname = _unique(safe_name(column.name), used)
        records += column_figures(dataset, group, column, truth[:, j], {m: s[:, j] for m, s in samples.items()},
                                  colors, out, fname)  # fmt: skip
    return records


def _unique(name: str, used: set[str]) -> str:
    candidate, k = name, 1
    while candidate in used:
        k += 1
        candidate = f"{name}_{k}"
    used.add(candidate)
    return candidate


def _correlation_columns(events: EventSet, obs: np.ndarray, obs_names: list[str]) -> tuple[np.ndarray, list[str]]:
    """The columns whose correlations are drawn: features (when few) and derived observables."""
    if events.n_features <= MAX_FEATURE_PLOTS:
        return np.hstack([events.features, obs]), list(events.feature_names) + list(obs_names)
    return obs, list(obs_names)


def correlation_matrix(x: np.ndarray) -> np.ndarray:
    """Pearson correlations of the columns of ``x`` over its finite rows; constant columns give 0."""
    x = x[np.all(np.isfinite(x), axis=1)]
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.corrcoef(x, rowvar=False) if len(x) > 1 else np.full((x.shape[1], x.shape[1]), np.nan)
    return np.nan_to_num(np.atleast_2d(c), nan=0.0)


def _correlation_plot(
    dataset: str, model: str, truth: np.ndarray, generated: np.ndarray, names: list[str], out: Path
) -> PlotRecord:
    c_truth, c_model = correlation_matrix(truth), correlation_matrix(generated)
    diff = c_model - c_truth
    size = max(6.0, 0.35 * len(names) + 3)
    fig, axes = plt.subplots(1, 3, figsize=(3 * size, size), constrained_layout=True)
    panels = [(c_truth, "truth", "RdBu_r", 1.0), (c_model, model, "RdBu_r", 1.0)]
    panels.append((diff, f"{model} − truth", "PuOr_r", max(0.05, float(np.abs(diff).max()))))
    for ax, (mat, title, cmap, vmax) in zip(axes, panels):
        im = ax.imshow(mat, cmap=cmap, vmin=-vmax, vmax=vmax)
        ax.set_title(title, fontsize="medium")
        ticks = np.arange(len(names))
        ax.set_xticks(ticks, names, rotation=90, fontsize="xx-small")
        ax.set_yticks(ticks, names, fontsize="xx-small")
        ax.minorticks_off()
        fig.colorbar(im, ax=ax, shrink=0.8)
    png, pdf = save_figure(fig, out / "correlations" / f"{safe_name(model)}.png")
    return PlotRecord(
        png, pdf, "correlation", f"{dataset}: correlations, {model}",
        f"Pearson correlation matrices of truth and {model}, and their difference "
        f"(largest |Δρ| = {np.abs(diff).max():.3f}).",
    )  # fmt: skip


def read_training_csv(path: str) -> dict[str, np.ndarray]:
    """The columns of a ``training.csv`` (epoch, train_loss, val_loss, learning_rate, time_s)."""
    required = ("epoch", "train_loss", "val_loss")
    if not Path(path).exists():
        raise InputError(f"{path}: training log does not exist")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
        fields = [] if not rows else list(rows[0])
    missing = [c for c in required if rows and c not in fields]
    if missing:
        raise InputError(f"{path}: training log lacks columns {missing}; expected {list(required)}")
    return {c: np.array([float(r[c]) if r[c] not in ("", None) else np.nan for r in rows]) for c in required}


def _training_plot(
    dataset: str, training_csvs: Mapping[str, str], colors: Mapping[str, str], out: Path
) -> PlotRecord:
    # One panel per model: the losses of different families (NLL, ELBO, adversarial) share no scale.
    models = list(training_csvs)
    ncols = min(4, len(models))
    nrows = -(-len(models) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 4 * nrows), squeeze=False, constrained_layout=True)
    for ax, model in zip(axes.flat, models):
        log = read_training_csv(training_csvs[model])
        ax.set_title(model, fontsize="small", color=colors.get(model, "black"))
        if log["epoch"].size == 0:
            ax.text(0.5, 0.5, "no completed epoch", ha="center", transform=ax.transAxes)
            continue
        ax.plot(log["epoch"], log["train_loss"], color=colors.get(model, "C0"), label="train")
        ax.plot(log["epoch"], log["val_loss"], color=colors.get(model, "C0"), ls="--", label="validation")
        if np.isfinite(log["val_loss"]).any():
            best = int(np.nanargmin(log["val_loss"]))
            ax.axvline(log["epoch"][best], color="grey", lw=1, ls=":")
        ax.set_xlabel("epoch", fontsize="small")
        ax.set_ylabel("loss", fontsize="small")
        ax.tick_params(labelsize="x-small")
        ax.legend(fontsize="xx-small")
    for ax in list(axes.flat)[len(models) :]:
        ax.set_axis_off()
    png, pdf = save_figure(fig, out / "training" / "losses.png")
    return PlotRecord(
        png, pdf, "training", f"{dataset}: training curves",
        "Training (solid) and validation (dashed) loss per epoch; the dotted line marks the epoch "
        "with the lowest validation loss, whose weights are kept.",
    )  # fmt: skip


def _classifier_weight_plot(dataset, metrics, models, colors, out) -> PlotRecord | None:
    hists = {}
    for model in models:
        details = metrics.get(model, {}).get("metrics", {}).get("c2st_auc") or {}
        if isinstance(details.get("log_w_hist"), dict):
            hists[model] = details["log_w_hist"]
    if not hists:
        return None
    ncols = min(4, len(hists))
    nrows = -(-len(hists) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 4 * nrows), squeeze=False, constrained_layout=True)
    for ax, (model, h) in zip(axes.flat, hists.items()):
        edges = np.asarray(h["edges"], dtype=float)
        ax.stairs(np.asarray(h["truth"], dtype=float), edges, color=TRUTH_COLOR, lw=2, label="truth")
        ax.stairs(np.asarray(h["generated"], dtype=float), edges, color=colors[model], lw=1.5, label="generated")
        ax.axvline(0.0, color="grey", lw=1, ls=":")
        ax.set_yscale("log")
        ax.set_title(model, fontsize="small")
        ax.set_xlabel(r"$\log w = \log\,p/(1-p)$", fontsize="small")
        ax.set_ylabel("events", fontsize="small")
        ax.tick_params(labelsize="x-small")
        ax.legend(fontsize="xx-small")
    for ax in list(axes.flat)[len(hists) :]:
        ax.set_axis_off()
    png, pdf = save_figure(fig, out / "classifier" / "log_weights.png")
    return PlotRecord(
        png, pdf, "classifier", f"{dataset}: classifier weights",
        "Distribution of the C2ST classifier's log-weight log w = log p/(1−p) on truth and generated "
        "events; a perfect generator puts both in a narrow peak at 0 (arXiv:2305.16774).",
    )  # fmt: skip


def _metric_value(entry: dict, key: str) -> float:
    value = (entry.get("metrics", {}).get(key) or {}).get("value")
    return np.nan if value is None else float(value)


def pareto_front(cost: np.ndarray, badness: np.ndarray) -> np.ndarray:
    """Mask of the points no other point beats in both ``cost`` and ``badness`` (both minimised)."""
    cost, badness = np.asarray(cost, float), np.asarray(badness, float)
    ok = np.isfinite(cost) & np.isfinite(badness)
    front = np.zeros(cost.shape, dtype=bool)
    for k in np.flatnonzero(ok):
        dominated = ok & (cost <= cost[k]) & (badness <= badness[k]) & ((cost < cost[k]) | (badness < badness[k]))
        front[k] = not dominated.any()
    return front


def _largest_batch_rate(rates: dict[str, float | None]) -> float:
    """The sampling rate at the largest batch size that was measured (events/s)."""
    measured = [(int(b), r) for b, r in rates.items() if r is not None and np.isfinite(r)]
    return max(measured)[1] if measured else np.nan


def _cost_plot(dataset, metrics, models, colors, out) -> PlotRecord | None:
    rows = [m for m in models if metrics.get(m, {}).get("cost")]
    qualities = [(k, lab) for k, lab in (("c2st_auc", "C2ST AUC"), ("fpd", "FPD")) if any(np.isfinite(_metric_value(metrics[m], k)) for m in rows)]
    if not rows or not qualities:
        return None
    train_time = np.array([metrics[m]["cost"].get("train_time_s", np.nan) or np.nan for m in rows], float)
    rate = np.array([_largest_batch_rate(metrics[m]["cost"].get("sample_rate") or {}) for m in rows], float)
    # Both axes as costs to minimise: seconds of training and seconds per event sampled.
    costs = [("training time [s]", train_time, train_time), ("sampling rate, largest batch [events/s]", rate, 1.0 / rate)]
    fig, axes = plt.subplots(len(qualities), 2, figsize=(12, 5 * len(qualities)), squeeze=False, constrained_layout=True)
    for r, (key, label) in enumerate(qualities):
        quality = np.array([_metric_value(metrics[m], key) for m in rows])
        badness = np.abs(quality - 0.5) if key == "c2st_auc" else quality
        truth_value = _metric_value(metrics.get("truth", {}), key)
        for c, (xlabel, x, x_cost) in enumerate(costs):
            ax = axes[r, c]
            if not np.isfinite(x).any():
                ax.text(0.5, 0.5, f"no {xlabel.split(' [')[0]} recorded", ha="center", transform=ax.transAxes)
                continue
            for k, model in enumerate(rows):
                if np.isfinite(x[k]) and np.isfinite(quality[k]):
                    ax.scatter(x[k], quality[k], color=colors[model], s=60, label=model, zorder=3)
                    ax.annotate(model, (x[k], quality[k]), xytext=(4, 4), textcoords="offset points", fontsize="xx-small")
            front = pareto_front(x_cost, badness)
            order = np.argsort(x[front])
            ax.plot(x[front][order], quality[front][order], color="grey", ls="--", lw=1, zorder=2, label="Pareto front")
            if np.isfinite(truth_value):
                ax.axhline(truth_value, color=TRUTH_COLOR, ls=":", lw=1, label="truth vs truth")
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel(xlabel, fontsize="small")
            ax.set_ylabel(label, fontsize="small")
            ax.tick_params(labelsize="x-small")
        axes[r, 0].legend(fontsize="xx-small")
    png, pdf = save_figure(fig, out / "cost" / "quality_vs_cost.png")
    return PlotRecord(
        png, pdf, "cost", f"{dataset}: quality vs cost",
        "Sample quality (C2ST AUC, ideal 0.5; FPD, ideal 0) against training time and against the "
        "sampling rate for batches of 10^5 events; the dashed line joins the Pareto-optimal models and "
        "the dotted line is truth's own value.",
    )  # fmt: skip


# ---------------------------------------------------------------- kind-specific figures
# One function per dataset kind, all with one signature, looked up in KIND_PLOTS; the
# derived observables' axis labels and units per kind are beside them.


@dataclass(frozen=True)
class KindPlotInputs:
    """What a kind's extra figures may use: the samples, their observables and metrics."""

    dataset: str
    truth: EventSet
    samples: Mapping[str, EventSet]
    metrics: Mapping[str, dict]
    truth_obs: np.ndarray
    obs_names: list[str]
    sample_obs: Mapping[str, np.ndarray]
    colors: Mapping[str, str]
    out: Path


#: LaTeX label and unit of the derived observables that the kinds compute.
OBSERVABLE_AXES: dict[str, tuple[str, str]] = {
    "m_mumu": (r"$m_{\mu\mu}$", "GeV"),
    "pt_mumu": (r"$p_{T}^{\mu\mu}$", "GeV"),
    "dR_mumu": (r"$\Delta R_{\mu\mu}$", ""),
    "dphi_mumu_jet": (r"$|\Delta\phi(\mu\mu, j_1)|$", "rad"),
    "m2_13": (r"$m^2_{13}$", "GeV^2"),
    "m_23": (r"$m_{23}$", "GeV"),
    "Etot_over_Einc": (r"$E_{tot}/E_{inc}$", ""),
}
#: Calorimeter high-level features, by name pattern: (label template, unit).
CALO_OBSERVABLE_PATTERNS: tuple[tuple[str, str, str], ...] = (
    (r"^E_layer(\d+)$", r"$E$, layer \1", "MeV"),
    (r"^EC([xy])_layer(\d+)$", r"centre in \1, layer \2", "mm"),
    (r"^width_([xy])_layer(\d+)$", r"width in \1, layer \2", "mm"),
    (r"^sparsity_layer(\d+)$", r"fraction of hit cells, layer \1", ""),
)


def observable_columns(kind: str, names: list[str]) -> list[Column]:
    """Axis label and unit of each derived observable (the name itself when unknown)."""
    columns = []
    for name in names:
        label, unit = OBSERVABLE_AXES.get(name, (name, ""))
        if kind == "calo" and name not in OBSERVABLE_AXES:
            for pattern, template, calo_unit in CALO_OBSERVABLE_PATTERNS:
                if re.match(pattern, name):
                    label, unit = re.sub(pattern, template, name), calo_unit
                    break
        columns.append(Column(name, label, unit))
    return columns


# CaloChallenge-2022 dataset 1, photons (binning_dataset_1_photons.xml): the layers that
# have voxels, their radial bin edges in mm and number of angular bins. Voxels are stored
# layer by layer, angular bin major and radial bin minor: 8 + 160 + 190 + 5 + 5 = 368.
CALO_DS1_PHOTON_LAYERS: tuple[tuple[int, tuple[float, ...], int], ...] = (
    (0, (0, 5, 10, 30, 50, 100, 200, 400, 600), 1),
    (1, (0, 2, 4, 6, 8, 10, 12, 15, 20, 30, 40, 50, 70, 90, 120, 150, 200), 10),
    (2, (0, 2, 5, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100, 130, 160, 200, 250, 300, 350, 400), 10),
    (3, (0, 50, 100, 200, 400, 600), 1),
    (12, (0, 100, 200, 400, 1000, 2000), 1),
)


@dataclass(frozen=True)
class CaloLayer:
    """One calorimeter layer: its id, radial edges (mm), angular bins and voxel slice."""

    layer_id: int
    r_edges: np.ndarray
    n_alpha: int
    start: int

    @property
    def n_r(self) -> int:
        return len(self.r_edges) - 1

    @property
    def n_voxels(self) -> int:
        return self.n_r * self.n_alpha

    def energies(self, voxels: np.ndarray) -> np.ndarray:
        """``(N, n_alpha, n_r)`` voxel energies of this layer."""
        return voxels[:, self.start : self.start + self.n_voxels].reshape(-1, self.n_alpha, self.n_r)


def calo_layers(events: EventSet) -> list[CaloLayer]:
    """The layer geometry of a calorimeter :class:`EventSet`.

    Taken from ``events.meta["calo_layers"]`` (a list of ``{"id", "r_edges", "n_alpha"}``)
    when the source wrote it, else the CaloChallenge dataset-1-photon geometry when the
    event has its 368 voxels.
    """
    spec = events.meta.get("calo_layers")
    if spec is None:
        spec = [{"id": i, "r_edges": r, "n_alpha": a} for i, r, a in CALO_DS1_PHOTON_LAYERS]
    layers, start = [], 0
    for entry in spec:
        layer = CaloLayer(int(entry["id"]), np.asarray(entry["r_edges"], float), int(entry["n_alpha"]), start)
        layers.append(layer)
        start += layer.n_voxels
    if start != events.n_features:
        raise InputError(
            f"calo events have {events.n_features} voxel features but the layer geometry has {start} voxels; "
            "expected CaloChallenge dataset-1-photon voxels (368) or meta['calo_layers'] describing the layers"
        )
    return layers


def calo_plots(inp: KindPlotInputs) -> list[PlotRecord]:
    """The CaloChallenge-2022 views of showers (arXiv:2410.21611): radial profiles, the
    average shower in (α, r), mean layer energy against E_inc, and scores per E_inc bin."""
    truth, samples, colors, out = inp.truth, inp.samples, inp.colors, inp.out
    layers = calo_layers(truth)
    records = [_calo_radial_profiles(inp.dataset, layers, truth, samples, colors, out)]
    records.append(_calo_polar_average(inp.dataset, layers, truth, samples, out))
    if truth.condition is None:
        raise InputError("calo truth has no condition: expected the incident energy E_inc (MeV) as condition")
    records.append(_calo_layer_energy_vs_einc(inp.dataset, layers, truth, samples, colors, out))
    per_bin = _calo_per_energy_bin(inp.dataset, inp.metrics, list(samples), colors, out)
    if per_bin is not None:
        records.append(per_bin)
    return records


def _style_layer_axes(axes, layers, xlabel: str, ylabel: str, log_x: bool = False) -> None:
    """One panel per calorimeter layer: log energy axis, layer titles, shared labels, one legend."""
    axes = np.atleast_1d(axes)
    for ax, layer in zip(axes, layers):
        if log_x:
            ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"layer {layer.layer_id}", fontsize="small")
        ax.set_xlabel(xlabel, fontsize="small")
        ax.tick_params(labelsize="x-small")
    axes[0].set_ylabel(ylabel, fontsize="small")
    axes[-1].legend(fontsize="xx-small")


def _calo_radial_profiles(dataset, layers, truth, samples, colors, out) -> PlotRecord:
    fig, axes = plt.subplots(1, len(layers), figsize=(4.5 * len(layers), 4.5), constrained_layout=True)
    sets = {"truth": truth.features, **{m: s.features for m, s in samples.items()}}
    for ax, layer in zip(np.atleast_1d(axes), layers):
        centres = 0.5 * (layer.r_edges[1:] + layer.r_edges[:-1])
        for name, voxels in sets.items():
            profile = np.nanmean(layer.energies(voxels).sum(axis=1), axis=0)
            style = {"color": TRUTH_COLOR, "lw": 2} if name == "truth" else {"color": colors[name], "lw": 1.2}
            ax.step(centres, profile, where="mid", label=name, **style)
    _style_layer_axes(axes, layers, "r [mm]", "mean energy [MeV]")
    png, pdf = save_figure(fig, out / "calo" / "radial_profiles.png")
    return PlotRecord(
        png, pdf, "calo", f"{dataset}: average radial shower profile",
        "Mean energy per radial bin (summed over angle) in each layer, truth against every model.",
    )  # fmt: skip


def _calo_polar_average(dataset, layers, truth, samples, out) -> PlotRecord:
    # Only layers binned in angle have an (α, r) image; the others are in the radial profiles.
    shown = [layer for layer in layers if layer.n_alpha > 1] or layers[:1]
    sets = {"truth": truth.features, **{m: s.features for m, s in samples.items()}}
    means = {(name, l.layer_id): np.nanmean(l.energies(v), axis=0) for name, v in sets.items() for l in shown}
    fig, axes = plt.subplots(
        len(shown), len(sets), figsize=(3.2 * len(sets), 3.4 * len(shown)),
        subplot_kw={"projection": "polar"}, squeeze=False, constrained_layout=True,
    )  # fmt: skip
    for row, layer in enumerate(shown):
        positive = np.concatenate([means[(n, layer.layer_id)].ravel() for n in sets])
        positive = positive[positive > 0]
        vmin, vmax = (positive.min(), positive.max()) if positive.size else (1e-3, 1.0)
        norm = matplotlib.colors.LogNorm(vmin=max(vmin, vmax * 1e-6), vmax=vmax)
        alpha_edges = np.linspace(0, 2 * np.pi, layer.n_alpha + 1)
        # Radii on a log(1+r) scale so the dense core is visible next to the wide tail.
        r_plot = np.log1p(layer.r_edges)
        for col, name in enumerate(sets):
            ax = axes[row, col]
            image = np.ma.masked_less_equal(means[(name, layer.layer_id)], 0)
            mesh = ax.pcolormesh(alpha_edges, r_plot, image.T, norm=norm, cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}, layer {layer.layer_id}", fontsize="x-small")
        fig.colorbar(mesh, ax=axes[row, :].tolist(), shrink=0.8, label="mean energy [MeV]")
    png, pdf = save_figure(fig, out / "calo" / "average_shower.png")
    return PlotRecord(
        png, pdf, "calo", f"{dataset}: average shower in (α, r)",
        "Mean voxel energy of the angularly binned layers, drawn in the (α, r) plane with radius on a "
        "log(1 + r/mm) scale; one column per sample, same colour scale per row.",
    )  # fmt: skip


def energy_bins(e_inc: np.ndarray, max_bins: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Group events by incident energy: ``(bin index per event, bin centres)``.

    The CaloChallenge energies are discrete powers of two, so a few distinct values are used
    as they are; a continuous spectrum is cut into logarithmic bins.
    """
    values = np.unique(e_inc)
    if values.size <= max_bins:
        return np.searchsorted(values, e_inc), values
    edges = np.geomspace(e_inc.min(), e_inc.max() * (1 + 1e-9), max_bins + 1)
    idx = np.clip(np.searchsorted(edges, e_inc, side="right") - 1, 0, max_bins - 1)
    return idx, np.sqrt(edges[1:] * edges[:-1])


def _calo_layer_energy_vs_einc(dataset, layers, truth, samples, colors, out) -> PlotRecord:
    fig, axes = plt.subplots(1, len(layers), figsize=(4.5 * len(layers), 4.5), constrained_layout=True)
    sets = {"truth": truth, **samples}
    for name, events in sets.items():
        if events.condition is None:
            raise InputError(f"calo samples of '{name}' have no condition: expected E_inc per event")
        idx, centres = energy_bins(events.condition[:, 0])
        counts = np.bincount(idx, minlength=len(centres))
        for ax, layer in zip(np.atleast_1d(axes), layers):
            e_layer = np.nan_to_num(layer.energies(events.features).sum(axis=(1, 2)))
            mean = np.bincount(idx, weights=e_layer, minlength=len(centres)) / np.maximum(counts, 1)
            style = {"color": TRUTH_COLOR, "lw": 2, "marker": "o"} if name == "truth" else {"color": colors[name], "marker": "."}
            ax.plot(centres[counts > 0], mean[counts > 0], label=name, **style)
    _style_layer_axes(axes, layers, "$E_{inc}$ [MeV]", "mean layer energy [MeV]", log_x=True)
    png, pdf = save_figure(fig, out / "calo" / "layer_energy_vs_einc.png")
    return PlotRecord(
        png, pdf, "calo", f"{dataset}: mean layer energy vs incident energy",
        "Mean energy deposited in each layer as a function of the incident energy.",
    )  # fmt: skip


@dataclass(frozen=True)
class EnergyBinScores:
    """One sample's scores per incident-energy bin, as ``evaluate_sample`` writes them in
    ``metrics["per_energy_bin"]["bins"]``; bins skipped for too few events are left out."""

    e_inc: np.ndarray  #: the bin's energy: the discrete value, or the geometric centre of [low, high]
    w1: np.ndarray
    w1_error: np.ndarray
    auc: np.ndarray
    auc_error: np.ndarray

    @classmethod
    def from_metrics(cls, entry: Mapping) -> EnergyBinScores | None:
        block = (entry.get("metrics") or {}).get("per_energy_bin")
        if not isinstance(block, dict) or not isinstance(block.get("bins"), list):
            return None
        scored = [b for b in block["bins"] if "c2st_auc" in b and not b.get("skipped")]
        if not scored:
            return None

        def column(key: str) -> np.ndarray:
            return np.array([np.nan if b.get(key) is None else float(b[key]) for b in scored])

        e_inc = np.sqrt(column("e_inc_low") * column("e_inc_high"))
        return cls(e_inc, column("w1_mean"), column("w1_mean_error"), column("c2st_auc"), column("c2st_auc_error"))


def _calo_per_energy_bin(dataset, metrics, models, colors, out) -> PlotRecord | None:
    found = {m: EnergyBinScores.from_metrics(metrics[m]) for m in ["truth", *models] if m in metrics}
    found = {m: v for m, v in found.items() if v is not None}
    if not found:
        return None
    panels = (("w1", "W1/σ of the high-level features (mean)", None),
              ("auc", "C2ST AUC on the high-level features", 0.5))  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=(14, 6), constrained_layout=True)
    for ax, (key, ylabel, ideal) in zip(axes, panels):
        for model, scores in found.items():
            style = {"color": TRUTH_COLOR, "ls": "--", "lw": 2} if model == "truth" else {"color": colors[model]}
            ax.errorbar(scores.e_inc, getattr(scores, key), yerr=getattr(scores, f"{key}_error"), marker="o",
                        ms=5, capsize=2, label="truth vs truth" if model == "truth" else model, **style)  # fmt: skip
        if ideal is not None:
            ax.axhline(ideal, color="grey", lw=1, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("$E_{inc}$ [MeV]", fontsize="small")
        ax.set_ylabel(ylabel, fontsize="small")
        ax.tick_params(labelsize="x-small")
    # Below the panels: inside, it covers the points whatever corner it takes.
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), fontsize="x-small")
    png, pdf = save_figure(fig, out / "calo" / "per_energy_bin.png")
    return PlotRecord(
        png, pdf, "calo", f"{dataset}: scores per incident energy",
        "W1/σ and C2ST AUC of the high-level shower features computed separately in each incident-energy "
        "bin, with their errors; truth against truth (dashed) is the noise floor at that bin's sample size, "
        "and 0.5 (dotted) the ideal AUC.",
    )  # fmt: skip


def _dalitz_columns(names: list[str]) -> tuple[int, int] | None:
    """Indices of m²₁₂ and m²₂₃ among ``names`` (``m2_12``, ``m12_sq``, ``s12``, ...), if present."""

    def find(pair: str) -> int | None:
        pattern = re.compile(rf"^(m2_?{pair}|m_?{pair}_?sq|m_?{pair}\^?2|s_?{pair})(\b|_|\s|\[|$)", re.I)
        return next((i for i, n in enumerate(names) if pattern.match(n)), None)

    i, j = find("12"), find("23")
    return None if i is None or j is None else (i, j)


def phasespace_plots(inp: KindPlotInputs) -> list[PlotRecord]:
    """The Dalitz plot of the three-body decay: m²₁₂ against m²₂₃ for truth and every model."""
    return _dalitz_plot(inp.dataset, inp.truth, inp.truth_obs, inp.obs_names, inp.samples, inp.sample_obs, inp.out)


def _dalitz_plot(dataset, truth, truth_obs, obs_names, samples, sample_obs, out) -> list[PlotRecord]:
    names = list(truth.feature_names) + list(obs_names)
    cols = _dalitz_columns(names)
    if cols is None:
        warnings.warn(f"{dataset}: no m2_12/m2_23 among columns {names}; the Dalitz plot is not drawn", stacklevel=2)
        return []
    i, j = cols
    units = list(truth.units) + [c.unit for c in observable_columns(truth.kind, obs_names)]
    labels = [f"{n} [{unit_text(u)}]" if u else n for n, u in zip(names, units)]
    sets = {"truth": np.hstack([truth.features, truth_obs])}
    sets.update({m: np.hstack([s.features, sample_obs[m]]) for m, s in samples.items()})
    x_edges, y_edges = histogram_edges(sets["truth"][:, i], 60), histogram_edges(sets["truth"][:, j], 60)
    ncols = min(4, len(sets))
    nrows = -(-len(sets) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 4.2 * nrows), squeeze=False, constrained_layout=True)
    h_truth = np.histogram2d(sets["truth"][:, i], sets["truth"][:, j], [x_edges, y_edges], density=True)[0]
    vmax = h_truth.max()
    for ax, (name, values) in zip(axes.flat, sets.items()):
        finite = np.all(np.isfinite(values[:, [i, j]]), axis=1)
        h = np.histogram2d(values[finite, i], values[finite, j], [x_edges, y_edges], density=True)[0]
        mesh = ax.pcolormesh(x_edges, y_edges, np.ma.masked_equal(h, 0).T, vmin=0, vmax=vmax, cmap="viridis")
        ax.set_title(name, fontsize="small")
        ax.set_xlabel(labels[i], fontsize="small")
        ax.set_ylabel(labels[j], fontsize="small")
        ax.tick_params(labelsize="x-small")
    for ax in list(axes.flat)[len(sets) :]:
        ax.set_axis_off()
    density_unit = f" [1/({unit_text(units[i])} {unit_text(units[j])})]" if units[i] and units[j] else ""
    fig.colorbar(mesh, ax=axes.ravel().tolist(), shrink=0.8, label=f"density{density_unit}")
    png, pdf = save_figure(fig, out / "phasespace" / "dalitz.png")
    return [
        PlotRecord(
            png, pdf, "dalitz", f"{dataset}: Dalitz plot",
            f"Dalitz plot ({names[i]} vs {names[j]}) of truth and every model, on truth's colour scale: "
            "events outside the kinematic boundary are unphysical.",
        )  # fmt: skip
    ]


#: Extra figures per dataset kind (zmumu and generic have none beyond the histograms).
KIND_PLOTS: dict[str, Callable[[KindPlotInputs], list[PlotRecord]]] = {
    "calo": calo_plots,
    "phasespace": phasespace_plots,
}


def write_plot_manifest(path: str, records: list[PlotRecord], dataset: str = "") -> None:
    """Write the list of a dataset's figures (a :class:`PlotManifest`), atomically, for :func:`build_report`."""
    PlotManifest(dataset=dataset, plots=list(records)).write(path)


def read_plot_manifest(path: str) -> tuple[str, list[PlotRecord]]:
    """``(dataset, records)`` of a manifest written by :func:`write_plot_manifest`."""
    manifest = PlotManifest.read(path)
    return manifest.dataset, manifest.plots


__all__ = [
    "CALO_DS1_PHOTON_LAYERS",
    "CaloLayer",
    "PlotRecord",
    "calo_layers",
    "correlation_matrix",
    "energy_bins",
    "histogram_edges",
    "make_dataset_plots",
    "model_colors",
    "pareto_front",
    "read_plot_manifest",
    "read_training_csv",
    "safe_name",
    "write_plot_manifest",
]
