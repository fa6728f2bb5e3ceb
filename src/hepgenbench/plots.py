"""The comparison plots of one dataset: truth against every model, in physical units.

One call, :func:`make_dataset_plots`, draws every figure a dataset has and returns a
:class:`PlotRecord` per figure (PNG for the report, PDF beside it for papers). Every
figure kind reads the same inputs the metrics read, so a number in the report's table can
be looked at as a picture:

- ``observable`` / ``feature``: normalised histograms with a model/truth ratio panel and
  the truth's Poisson band, derived observables first (the Z peak in m_μμ);
- ``correlation``: Pearson matrices of truth, a model, and their difference;
- ``training``: training and validation loss per epoch;
- ``classifier``: the distribution of the C2ST classifier weights w = p/(1−p), the
  reweighting view of arXiv:2305.16774 (Das et al., "How to understand limitations of
  generative networks");
- ``cost``: quality against training time and sampling rate with the Pareto front;
- and the figures of the dataset's kind (:meth:`hepgenbench.kinds.DatasetKind.extra_plots`,
  drawn by :mod:`hepgenbench.plotting`): the CaloChallenge views of showers, the Dalitz plot.

Axis labels and units of the derived observables come from the kind
(:meth:`~hepgenbench.kinds.DatasetKind.observable_axes`); nothing here names a kind.

File names are deterministic (``{outdir}/{kind}/{name}.png``) and every file is written
atomically, so a re-run overwrites and a killed run leaves no half-written PNG.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: plots are written on headless nodes

import hist  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from hepgenbench import kinds  # noqa: E402
from hepgenbench.errors import InputError  # noqa: E402
from hepgenbench.io import EventSet, atomic_path  # noqa: E402
from hepgenbench.kinds import KindPlotInputs  # noqa: E402
from hepgenbench.records import PlotManifest, PlotRecord  # noqa: E402

#: A derived-observable function, as :func:`hepgenbench.data.observables.derived_observables`.
ObservableFn = Callable[[EventSet], tuple[np.ndarray, list[str]]]

#: Above this many features the per-feature histograms and correlation matrices use the
#: derived observables only: 368 voxel histograms say less than a dozen shower shapes.
MAX_FEATURE_PLOTS = 40
#: PNG resolution for the report; the PDF beside it is vector.
DPI = 72
TRUTH_COLOR = "black"


#: The figures of a dataset, by group: one overlay (and per-model panels) per derived
#: observable and per feature (when few), correlation differences per model, the training
#: curves, the kind's own figures (e.g. showers), the classifier's weights and the cost.
FIGURE_GROUPS = ("observables", "features", "correlations", "training", "kind", "classifier", "cost")


def make_dataset_plots(
    dataset: str,
    truth: EventSet,
    samples: Mapping[str, EventSet],
    metrics: Mapping[str, dict],
    training_csvs: Mapping[str, str],
    outdir: str,
    observables: ObservableFn | None = None,
    groups: Collection[str] = FIGURE_GROUPS,
) -> list[PlotRecord]:
    """Draw the figures of one dataset under ``outdir`` and return their records.

    Args:
        dataset: the dataset name, for titles.
        truth: truth holdout A in physical units.
        samples: generated events per model, same columns as ``truth``.
        metrics: the metrics JSON per model (and optionally ``"truth"``).
        training_csvs: per model, the path of its ``training.csv``.
        outdir: the dataset's plot directory.
        observables: the derived-observable function; by default truth's kind's
            (:meth:`hepgenbench.kinds.DatasetKind.observables`).
        groups: which of :data:`FIGURE_GROUPS` to draw (all by default).

    The kind of ``truth`` labels the observables' axes and draws its own figures
    (:meth:`~hepgenbench.kinds.DatasetKind.observable_axes`, ``extra_plots``).
    """
    unknown = set(groups) - set(FIGURE_GROUPS)
    if unknown:
        raise ValueError(f"unknown figure groups {sorted(unknown)}; expected some of {FIGURE_GROUPS}")
    kind = kinds.get(truth.kind)
    if observables is None:
        observables = kind.observables
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
        axes = kind.observable_axes(list(obs_names))
        if len(axes) != len(obs_names):
            raise InputError(f"kind '{kind.name}' gave {len(axes)} axis labels for the {len(obs_names)} "
                             f"observables {list(obs_names)}; expected one (label, unit) each")
        obs_columns = [Column(n, label, unit) for n, (label, unit) in zip(obs_names, axes)]
        if "observables" in groups:
            records += _column_histograms(dataset, "observable", truth_obs, obs_columns, sample_obs, colors, out)
        if "features" in groups and truth.n_features <= MAX_FEATURE_PLOTS:
            columns = [Column(n, n, u) for n, u in zip(truth.feature_names, truth.units)]
            sample_feats = {m: ev.features for m, ev in samples.items()}
            records += _column_histograms(dataset, "feature", truth.features, columns, sample_feats, colors, out)
        if "correlations" in groups:
            corr_truth, corr_names = _correlation_columns(truth, truth_obs, obs_names)
            for model in models:
                corr_model, _ = _correlation_columns(samples[model], sample_obs[model], obs_names)
                records.append(_correlation_plot(dataset, model, corr_truth, corr_model, corr_names, out))
        if "training" in groups and training_csvs:
            records.append(_training_plot(dataset, training_csvs, colors, out))
        if "kind" in groups:
            records += kind.extra_plots(KindPlotInputs(dataset, truth, samples, metrics, truth_obs, obs_names, sample_obs,
                                                       colors, out))  # fmt: skip
        weights = _classifier_weight_plot(dataset, metrics, models, colors, out) if "classifier" in groups else None
        if weights is not None:
            records.append(weights)
        cost = _cost_plot(dataset, metrics, models, colors, out) if "cost" in groups else None
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
    size, step = correlation_panel_layout(len(names))
    fig, axes = plt.subplots(1, 3, figsize=(3 * size, size), constrained_layout=True)
    panels = [(c_truth, "truth", "RdBu_r", 1.0), (c_model, model, "RdBu_r", 1.0)]
    panels.append((diff, f"{model} − truth", "PuOr_r", max(0.05, float(np.abs(diff).max()))))
    ticks = np.arange(0, len(names), step)
    for ax, (mat, title, cmap, vmax) in zip(axes, panels):
        im = ax.imshow(mat, cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize="medium")
        ax.set_xticks(ticks, [names[i] for i in ticks], rotation=90, fontsize="xx-small")
        ax.set_yticks(ticks, [names[i] for i in ticks], fontsize="xx-small")
        ax.minorticks_off()
        fig.colorbar(im, ax=ax, shrink=0.8)
    png, pdf = save_figure(fig, out / "correlations" / f"{safe_name(model)}.png")
    labelled = "" if step == 1 else f" One column in {step} of the {len(names)} is labelled."
    return PlotRecord(
        png, pdf, "correlation", f"{dataset}: correlations, {model}",
        f"Pearson correlation matrices of truth and {model}, and their difference "
        f"(largest |Δρ| = {np.abs(diff).max():.3f}).{labelled}",
    )  # fmt: skip


#: the side of one correlation panel, at most (inches): its memory and drawing time grow as
#: the side squared, and 271 columns (a dataset-2 or -3 shower's high-level features) at a
#: readable 0.35 inch each made a 98-inch panel that took 6 GB and 6 minutes to draw
MAX_CORRELATION_PANEL_INCHES = 16.0
#: tick labels per correlation panel axis, at most; beyond, every k-th column is labelled
MAX_CORRELATION_LABELS = 40


def correlation_panel_layout(n_columns: int) -> tuple[float, int]:
    """The side of a correlation panel (inches) and the step between labelled columns for
    ``n_columns`` columns: 0.35 inch per column up to :data:`MAX_CORRELATION_PANEL_INCHES`."""
    size = min(MAX_CORRELATION_PANEL_INCHES, max(6.0, 0.35 * n_columns + 3))
    return size, max(1, -(-n_columns // MAX_CORRELATION_LABELS))


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


def write_plot_manifest(path: str, records: list[PlotRecord], dataset: str = "") -> None:
    """Write the list of a dataset's figures (a :class:`PlotManifest`), atomically, for :func:`build_report`."""
    PlotManifest(dataset=dataset, plots=list(records)).write(path)


def read_plot_manifest(path: str) -> tuple[str, list[PlotRecord]]:
    """``(dataset, records)`` of a manifest written by :func:`write_plot_manifest`."""
    manifest = PlotManifest.read(path)
    return manifest.dataset, manifest.plots


__all__ = [
    "PlotRecord",
    "correlation_matrix",
    "histogram_edges",
    "make_dataset_plots",
    "model_colors",
    "pareto_front",
    "read_plot_manifest",
    "read_training_csv",
    "safe_name",
    "write_plot_manifest",
]
