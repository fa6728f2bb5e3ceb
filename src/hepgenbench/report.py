"""The comparison report: one self-contained HTML page, the same tables in Markdown, a CSV.

Every number comes from one :class:`pandas.DataFrame` of the results (:func:`results_frame`,
one row per file, metric and value); the summary table, the ranking, ``metrics.csv`` and
the Markdown are views of it, and the HTML page is the Jinja2 template
``templates/report.html.j2`` (autoescaped) rendered from the same views.

Per dataset the page shows a summary table (one row per model and the truth-vs-truth
noise-floor row, one column per headline metric, ``value ± error``, the best model per
column highlighted), a ranking across metrics, the figures from :mod:`hepgenbench.plots`
and, at the end, the provenance of every number: config, seed, git commit, package
versions and where each model was trained.

The page inlines its PNGs as base64 data URIs and its CSS, so it opens from disk, from an
e-mail attachment or from a CI artefact with no server and no network.

Reading the table against the truth row follows the noise-floor practice of
arXiv:2211.10295 (Kansal et al., "Evaluating generative models in high energy physics"):
a model whose metric is within truth's own value plus twice the combined uncertainty
cannot be told apart from truth with this many events.
"""

from __future__ import annotations

import base64
import importlib.metadata
import math
import platform
import subprocess
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import yaml

from hepgenbench.confidence import (
    bh_adjust,
    compatible,
    draw_scores,
    equivalent_sample_size,
    p_value,
    ranking_statistics,
)
from hepgenbench.errors import InputError
from hepgenbench.io import atomic_path
from hepgenbench.metrics import HEADLINE
from hepgenbench.metrics.base import finite_or_none
from hepgenbench.physics.tables import PhysicsTable, physics_tables
from hepgenbench.plots import PlotRecord, read_plot_manifest
from hepgenbench.records import ConfidenceOptions, MetricsRecord, NullRecord
from hepgenbench.seeding import derive_seed

#: Packages whose versions the provenance lists (distribution names).
PROVENANCE_PACKAGES = ("torch", "zuko", "numpy", "scikit-learn", "POT", "uproot", "snakemake", "hepgenbench")
#: The order in which figure kinds appear on the page; unknown kinds follow.
PLOT_KIND_ORDER = ("physics", "observable", "observable_per_model", "feature", "feature_per_model", "calo", "dalitz",
                   "correlation", "classifier", "cost", "budget", "training")  # fmt: skip
PLOT_KIND_TITLES = {
    "observable": "Derived observables", "observable_per_model": "Derived observables, every model",
    "feature": "Features", "feature_per_model": "Features, every model", "calo": "Calorimeter showers",
    "dalitz": "Dalitz plots", "correlation": "Correlations", "classifier": "Classifier weights",
    "cost": "Quality vs cost", "budget": "Quality against training compute", "training": "Training curves",
    "physics": "Physics figures",
}  # fmt: skip
#: Figure kinds shown folded: one figure per model and column is a lot to scroll past.
FOLDED_PLOT_KINDS = ("observable_per_model", "feature_per_model", "correlation")
TRUTH = "truth"
#: The family of a sample made outside hepgenbench (``hepgenbench score``, ``family: external``).
EXTERNAL = "external"
DEFAULT_TITLE = "hepgenbench report"
#: Cost columns of the summary table: (key in the frame, column label, formatter name).
COST_COLUMNS = (("cost.n_parameters", "params"), ("cost.train_time_s", "train time"),
                ("cost.time_per_event_ms_cpu_1", "ms/event @1"), ("cost.time_per_event_ms_cpu_10000", "ms/event @1e4"),
                ("cost.flops_per_event", "FLOPs/event"))  # fmt: skip
#: How each ranking mode reads as the column's ideal.
IDEAL = {"lower": "↓", "half": "→ 0.5", "one": "→ 1", "higher": "↑"}
#: The columns of ``metrics.csv``, in order.
CSV_COLUMNS = ["dataset", "model", "metric", "value", "error", "status", "replica"]


# ---------------------------------------------------------------- loading and the frame


def load_metrics(metrics: Iterable[str | MetricsRecord]) -> list[dict]:
    """Metrics records as dicts: JSON files (:class:`~hepgenbench.records.MetricsRecord`,
    validated as read) or records already in memory."""
    return [(m if isinstance(m, MetricsRecord) else MetricsRecord.read(m)).to_dict() for m in metrics]


def _float(x) -> float:
    """``x`` as a finite float, or NaN (the frame's missing value)."""
    x = finite_or_none(x)
    return math.nan if x is None else x


def model_name(e: dict) -> str:
    """The model's config name: replicas ``nsf``, ``nsf_r1``, ... share ``nsf``."""
    return e.get("name") or e["model"]


def results_frame(entries: list[dict]) -> pd.DataFrame:
    """Every number of every metrics file, one row per (file, metric), in file order.

    Columns: dataset, model (the config name replicas share), instance, family, status,
    status_detail, replica (``""`` for truth), metric, value, error (NaN when absent).
    Costs are metrics named ``cost.<key>``, the sampling rates ``cost.sample_rate_<batch>``.
    """
    rows = []
    for e in entries:
        training = e.get("training") or {}
        base = {
            "dataset": e["dataset"], "model": model_name(e), "instance": e["model"],
            "family": e.get("family") or e["model"], "status": e.get("status", "ok"),
            "status_detail": e.get("status_detail", ""), "replica": str(training.get("replica", "")),
        }  # fmt: skip
        for key, m in e["metrics"].items():
            if isinstance(m, dict) and "value" in m:
                rows.append({**base, "metric": key, "value": _float(m.get("value")), "error": _float(m.get("error"))})
        cost = e.get("cost") or {}
        flat = {k: v for k, v in cost.items() if not isinstance(v, dict)}
        # nested costs (sample_rate, time_per_event_ms) become cost.<key>_<sub-key>
        flat.update({f"{k}_{n}": x for k, v in cost.items() if isinstance(v, dict) for n, x in v.items()})
        rows += [{**base, "metric": f"cost.{k}", "value": _float(v), "error": math.nan} for k, v in flat.items()]
    columns = ["dataset", "model", "instance", "family", "status", "status_detail", "replica", "metric", "value", "error"]
    return pd.DataFrame(rows, columns=columns)


def summary_table(frame: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """One row per model of ``dataset`` (truth first, then in file order), indexed by model.

    Columns ``(metric, "value" | "error" | "spread")`` for every metric and cost, plus
    ``("row", family | status | status_detail | n_replicas)``. A model's replicas (its
    files with one config name) become one row: the value is their mean, the error the
    mean of their statistical errors (one evaluation's) and the spread their standard
    deviation, so that the two sources of uncertainty can be read side by side.
    """
    mine = frame[frame["dataset"] == dataset]
    if mine.empty:
        return pd.DataFrame()
    order = list(dict.fromkeys([TRUTH] * (TRUTH in set(mine["model"])) + list(mine["model"])))
    numbers = mine.groupby(["model", "metric"], sort=False).agg(
        value=("value", "mean"), error=("error", "mean"), spread=("value", lambda v: v.std(ddof=1) if v.count() > 1 else np.nan),
    )  # fmt: skip
    table = numbers.unstack("metric").swaplevel(axis=1).sort_index(axis=1, level=0, sort_remaining=False)
    files = mine.drop_duplicates(["model", "instance"])
    rows = pd.DataFrame({
        "family": files.groupby("model", sort=False)["family"].first(),
        "status": files.groupby("model", sort=False)["status"].agg(lambda s: "diverged" if (s == "diverged").any() else s.iloc[0]),
        "status_detail": files.groupby("model", sort=False).apply(_status_detail, include_groups=False),
        "n_replicas": files.groupby("model", sort=False)["instance"].nunique(),
    })  # fmt: skip
    rows.columns = pd.MultiIndex.from_product([["row"], rows.columns])
    return pd.concat([rows, table], axis=1).loc[order]


def _status_detail(files: pd.DataFrame) -> str:
    diverged = files[files["status"] == "diverged"]
    if len(files) == 1 or diverged.empty:
        return str(files["status_detail"].iloc[0]) if len(files) == 1 else ""
    return "; ".join(f"replica {r}: {d}" for r, d in zip(diverged["replica"], diverged["status_detail"]))


def headline_columns(summary: pd.DataFrame) -> list[tuple[str, str, str]]:
    """The :data:`HEADLINE` columns with at least one value in ``summary``."""
    present = set(summary.columns.get_level_values(0))
    return [(k, label, mode) for k, label, mode in HEADLINE if k in present and summary[(k, "value")].notna().any()]


# ---------------------------------------------------------------- ranking


def rank_score(value, mode: str):
    """Distance from the ideal: the value itself (``lower``), |v − 0.5| (``half``), |v − 1|
    (``one``) or −v (``higher``); works on numbers and on pandas Series."""
    if mode == "lower":
        return value
    if mode == "higher":
        return -value
    if mode == "half":
        return abs(value - 0.5)
    if mode == "one":
        return abs(value - 1.0)
    raise InputError(f"unknown rank mode '{mode}' in HEADLINE; expected 'lower', 'half', 'one' or 'higher'")


def _contender_scores(summary: pd.DataFrame, key: str, mode: str) -> pd.Series:
    # Truth is the reference, not a contender; a diverged model keeps its numbers but no prize.
    contenders = (summary.index != TRUTH) & (summary[("row", "status")] != "diverged")
    return rank_score(summary.loc[contenders, (key, "value")].dropna(), mode)


def best_models(summary: pd.DataFrame, key: str, mode: str) -> set[str]:
    """Models with the best score in column ``key`` (ties share it)."""
    scores = _contender_scores(summary, key, mode)
    if scores.empty:
        return set()
    return set(scores.index[np.isclose(scores, scores.min(), rtol=1e-12, atol=0)])


def within_noise_floor(value: float, error: float, truth_value: float, truth_error: float, mode: str) -> bool:
    """Whether a model's value is within truth's value + 2σ (σ combines both errors)."""
    sigma = math.hypot(np.nan_to_num(error), np.nan_to_num(truth_error))
    return bool(rank_score(value, mode) <= rank_score(truth_value, mode) + 2 * sigma)


def ranking_table(summary: pd.DataFrame, columns: list[tuple[str, str, str]]) -> pd.DataFrame:
    """Per model: mean rank over ``columns`` (1 = best, ties averaged), how many columns it
    was ranked in, and in how many it is within the noise floor; best first."""
    models = [m for m in summary.index if m != TRUTH]
    ranks = pd.DataFrame(index=models, columns=[k for k, _, _ in columns], dtype=float)
    within = pd.Series(0, index=models)
    with_floor = pd.Series(0, index=models)
    for key, _, mode in columns:
        scores = _contender_scores(summary, key, mode)
        ranks.loc[scores.index, key] = scores.rank(method="average")
        if TRUTH not in summary.index or np.isnan(summary.at[TRUTH, (key, "value")]):
            continue
        truth_value, truth_error = summary.at[TRUTH, (key, "value")], summary.at[TRUTH, (key, "error")]
        for m in models:
            value = summary.at[m, (key, "value")]
            if not np.isnan(value):
                with_floor[m] += 1
                within[m] += within_noise_floor(value, summary.at[m, (key, "error")], truth_value, truth_error, mode)
    out = pd.DataFrame({"mean_rank": ranks.mean(axis=1).fillna(np.inf), "n_ranked": ranks.notna().sum(axis=1),
                        "within_noise": within, "n_with_floor": with_floor})  # fmt: skip
    out.index.name = "model"
    return out.reset_index().sort_values(["mean_rank", "model"]).set_index("model")


# ---------------------------------------------------------------- formatting


def format_value_error(value: float | None, error: float | None = None, digits: int = 2) -> str:
    """``value ± error`` with the error to ``digits`` significant figures and the value to match.

    Very large or small numbers share one exponent: ``(1.23 ± 0.05)e-4``.
    """
    if value is None or not math.isfinite(value):
        return "—"
    if error is None or not math.isfinite(error) or error <= 1e-9 * abs(value):
        return f"{value:.4g}"
    last = math.floor(math.log10(error)) - (digits - 1)  # decimal place of the error's last digit
    lead = math.floor(math.log10(abs(value))) if value != 0 else math.floor(math.log10(error))
    top = max(lead, math.floor(math.log10(error)))
    if top >= 5 or top < -3:
        decimals = max(0, top - last)
        return f"({value / 10**top:.{decimals}f} ± {error / 10**top:.{decimals}f})e{top}"
    decimals = max(0, -last)
    return f"{value:.{decimals}f} ± {error:.{decimals}f}"


def format_spread(spread: float | None) -> str:
    return "—" if spread is None else f"± {spread:.2g}"


def format_count(n: float | None) -> str:
    """Parameter counts as ``12.3k`` / ``1.2M``."""
    n = finite_or_none(n)
    if n is None:
        return "—"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.0f}"


def format_seconds(s: float | None) -> str:
    s = finite_or_none(s)
    if s is None:
        return "—"
    if s >= 3600:
        return f"{s / 3600:.2g} h"
    if s >= 60:
        return f"{s / 60:.2g} min"
    return f"{s:.2g} s"


def format_milliseconds(ms: float | None) -> str:
    """A time per event in milliseconds, to 3 significant figures."""
    ms = finite_or_none(ms)
    return "—" if ms is None else f"{ms:.3g} ms"


def format_rate(rate: float | None) -> str:
    """Events per second as ``850/s`` or ``2.5e5/s``."""
    rate = finite_or_none(rate)
    if rate is None or rate <= 0:
        return "—"
    if rate < 1e4:
        return f"{rate:.3g}/s"
    exponent = math.floor(math.log10(rate))
    return f"{rate / 10**exponent:.2g}e{exponent}/s"


def status_text(model: str, status: str, detail: str, family: str = "") -> str:
    """``ok`` (``external`` for a sample made outside hepgenbench), ``diverged at …`` with
    the trainer's reason, ``flagged: …`` with the warning, or nothing for truth."""
    if status == "flagged":
        return f"{'external; ' if family == EXTERNAL else ''}flagged: {detail.strip()}"
    if status != "diverged":
        if model == TRUTH:
            return ""
        return "external" if family == EXTERNAL else "ok"
    detail = detail.strip()
    if detail.lower().startswith("diverged"):
        return detail
    return f"diverged at {detail}" if detail else "diverged"


# ---------------------------------------------------------------- views of the frame


def display_table(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The summary as text, and the metric behind each text cell.

    Returns ``(text, metric)``: two frames of equal shape, one row per model, columns as the
    reader sees them; ``metric`` holds the metric key of each value cell (else ``""``), for
    the HTML cells' ``data-`` attributes and the highlighting of the best per column.
    """
    columns = headline_columns(summary)
    replicated = bool((summary[("row", "n_replicas")] > 1).any())
    text: dict[str, list[str]] = {"model": [], "status": []}
    metric: dict[str, list[str]] = {"model": [], "status": []}
    for m in summary.index:
        row = summary.loc[m]
        text["model"].append(m)
        text["status"].append(status_text(m, row[("row", "status")], row[("row", "status_detail")], row[("row", "family")]))
    for key, label, mode in columns:
        header = f"{label} {IDEAL[mode]}"
        text[header] = [format_value_error(_opt(v), _opt(e)) for v, e in
                        zip(summary[(key, "value")], summary[(key, "error")])]  # fmt: skip
        metric[header] = [key] * len(summary)
        if replicated:
            text[f"{label} ± replicas"] = [format_spread(_opt(x)) for x in summary[(key, "spread")]]
            metric[f"{label} ± replicas"] = [""] * len(summary)
    formatters = {"params": format_count, "train time": format_seconds, "ms/event @1": format_milliseconds,
                  "ms/event @1e4": format_milliseconds, "FLOPs/event": format_count}
    for key, label in COST_COLUMNS:
        values = summary[(key, "value")] if (key, "value") in summary.columns else pd.Series(np.nan, summary.index)
        text[label] = ["" if m == TRUTH else formatters[label](_opt(v)) for m, v in zip(summary.index, values)]
        metric[label] = [""] * len(summary)
    metric["model"] = metric["status"] = [""] * len(summary)
    return pd.DataFrame(text), pd.DataFrame(metric)


def _opt(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def metrics_csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``metrics.csv``: the results frame in long format, one row per file and metric."""
    return frame[CSV_COLUMNS]


def _csv(x) -> str:
    x = finite_or_none(x)
    return "" if x is None else repr(x)


def write_metrics_csv(path: str, frame: pd.DataFrame) -> None:
    """Write :func:`metrics_csv_frame` atomically (floats in full precision, empty when absent)."""
    with atomic_path(path) as tmp:
        metrics_csv_frame(frame).to_csv(tmp, index=False, float_format=None, na_rep="")


def collect_provenance(config: Mapping | None = None) -> dict:
    """Git commit, package versions, host and time of the report; tolerant of no git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown (not a git checkout)"
    versions = {}
    for package in PROVENANCE_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "git_commit": commit,
        "packages": versions,
        "python": platform.python_version(),
        "report_host": platform.node(),
        "report_time": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": (config or {}).get("seed"),
    }


def _resolve_png(path: str, manifest: str) -> Path:
    for candidate in (Path(path), Path(manifest).parent / path):
        if candidate.exists():
            return candidate
    raise InputError(f"{manifest}: figure {path} does not exist")


def png_data_uri(path: Path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI."""
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise InputError(f"{path}: not a PNG file; the report inlines PNG figures only")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def build_report(
    metrics_files: list[str] | list[MetricsRecord],
    plot_manifests: list[str],
    config: dict,
    outdir: str,
    provenance: dict | None = None,
    title: str | None = None,
    null_files: list[str] | None = None,
    budget_files: Iterable[str] = (),
) -> None:
    """Write ``index.html``, ``report.md`` and ``metrics.csv`` under ``outdir``, atomically.

    Args:
        metrics_files: metrics JSON per (dataset, model), including the ``truth`` rows (or
            the records themselves).
        plot_manifests: one manifest per dataset from :func:`hepgenbench.plots.write_plot_manifest`.
        config: the workflow config, shown as YAML in the provenance.
        outdir: the report directory.
        provenance: git commit, package versions...; collected here when not given.
        title: the page's title; by default the config's ``report.title`` (:func:`report_title`).
        null_files: the truth null per dataset (:class:`~hepgenbench.records.NullRecord`),
            for the p-values and N_eq; without one a dataset shows neither.
        budget_files: the quality-against-compute curves (:class:`~hepgenbench.records.BudgetCurve`).
    """
    entries = load_metrics(metrics_files)
    frame = results_frame(entries)
    plots: dict[str, list[tuple[PlotRecord, str]]] = {}
    for manifest in plot_manifests:
        dataset, records = read_plot_manifest(manifest)
        plots.setdefault(dataset, []).extend((r, manifest) for r in records)
    datasets = list(dict.fromkeys(list(frame["dataset"]) + list(plots)))
    provenance = dict(provenance) if provenance is not None else collect_provenance(config)
    provenance.setdefault("seed", (config or {}).get("seed"))
    title = title or report_title(config)
    curves = budget_curves_by_dataset(budget_files)
    datasets += [d for d in curves if d not in datasets]
    nulls = {n.dataset: n for n in (NullRecord.read(path) for path in null_files or [])}
    options = ConfidenceOptions.from_config((config or {}).get("confidence"))
    sections = [_section(d, summary_table(frame, d), plots.get(d, [])) | {"budget": curves.get(d, [])}
                for d in datasets]
    for section in sections:
        section["published"] = published_view(config, section["dataset"], section.get("summary"))
        _add_confidence(section, entries, nulls.get(section["dataset"]), options, (config or {}).get("seed") or 0)
        section["physics"] = physics_tables(section["dataset"], entries)
    training = _training_frame(entries)

    out = Path(outdir)
    write_metrics_csv(str(out / "metrics.csv"), frame)
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(render_markdown(title, sections, config, provenance, training))
    with atomic_path(out / "index.html") as tmp:
        tmp.write_text(render_html(title, sections, config, provenance, training), encoding="utf-8")


def report_title(config: Mapping | None) -> str:
    """The config's ``report.title``, or :data:`DEFAULT_TITLE`."""
    return str(((config or {}).get("report") or {}).get("title") or DEFAULT_TITLE)


def _section(dataset: str, summary: pd.DataFrame, plots: list[tuple[PlotRecord, str]]) -> dict:
    """Everything the page and the Markdown show of one dataset."""
    section: dict = {"dataset": dataset, "text": None, "plots": plots}
    if summary.empty:
        return section
    text, metric = display_table(summary)
    columns = headline_columns(summary)
    best = {key: best_models(summary, key, mode) for key, _, mode in columns}
    section.update(summary=summary, text=text, metric=metric, best=best,
                   ranking=ranking_table(summary, columns))  # fmt: skip
    return section


def _training_frame(entries: list[dict]) -> pd.DataFrame:
    keys = ("replica", "trained_at", "hostname", "device", "budget", "stopped_because", "best_epoch")
    rows = [{"dataset": e["dataset"], "model": e["model"], **{k: str((e.get("training") or {}).get(k, "")) for k in keys}}
            for e in entries if e["model"] != TRUTH and e.get("training")]  # fmt: skip
    header = ["dataset", "model", "replica", "trained at", "host", "device", "budget", "stopped because", "best epoch"]
    return pd.DataFrame([list(r.values()) for r in rows], columns=header)


# ---------------------------------------------------------------- confidence: P(best), p-values, N_eq


def _instances(entries: list[dict], dataset: str) -> list[dict]:
    """The metrics files of ``dataset`` (truth first), each with its values and errors by key."""
    mine = [e for e in entries if e["dataset"] == dataset]
    mine.sort(key=lambda e: e["model"] != TRUTH)
    return [{"instance": e["model"], "model": model_name(e), "status": e.get("status", "ok"),
             "n_truth": e.get("n_truth"), "n_generated": e.get("n_generated"),
             "value": {k: _float(m.get("value")) for k, m in e["metrics"].items() if isinstance(m, dict)},
             "error": {k: _float(m.get("error")) for k, m in e["metrics"].items() if isinstance(m, dict)}}
            for e in mine]  # fmt: skip


def ranking_probabilities(entries: list[dict], summary: pd.DataFrame, columns: list[tuple[str, str, str]],
                          draws: int, seed: int) -> pd.DataFrame:
    """P(best) and the 16–84 % rank interval of every ranked model, and P(best) per metric.

    Each draw takes, per model, one of its training replicas at random and every metric
    from a normal around that replica's value with its statistical error
    (:func:`hepgenbench.confidence.draw_scores`), then ranks as :func:`ranking_table`
    does. Draws are independent across models: the rows share truth A and the metric seed,
    whose common fluctuation cannot change the order, so the probabilities are if
    anything less decisive than the truth. Diverged models get no prize (P = 0, no interval).

    Returns a frame indexed by model with ``p_best``, ``rank_low``, ``rank_high`` and one
    ``p_best:<metric>`` column per ranked metric.
    """
    contenders = [m for m in summary.index if m != TRUTH and summary.at[m, ("row", "status")] != "diverged"]
    keys = [k for k, _, _ in columns]
    modes = [mode for _, _, mode in columns]
    dataset = None
    values, errors = [], []
    by_model: dict[str, list[dict]] = {}
    for e in entries:
        by_model.setdefault(model_name(e), []).append(e)
    for m in contenders:
        files = [e for e in by_model[m] if e.get("status", "ok") != "diverged"] or by_model[m]
        dataset = files[0]["dataset"]
        values.append(np.array([[_float((e["metrics"].get(k) or {}).get("value")) for k in keys] for e in files]))
        errors.append(np.array([[_float((e["metrics"].get(k) or {}).get("error")) for k in keys] for e in files]))
    out = pd.DataFrame(index=pd.Index([m for m in summary.index if m != TRUTH], name="model"),
                       columns=["p_best", "rank_low", "rank_high", *[f"p_best:{k}" for k in keys]], dtype=float)  # fmt: skip
    out.loc[:, "p_best"] = 0.0
    if not contenders or not keys:
        return out
    rng = np.random.default_rng(derive_seed(seed, dataset, "ranking"))
    scores = draw_scores(values, errors, lambda x, j: rank_score(x, modes[j]), draws, rng)
    stats = ranking_statistics(scores)
    out.loc[contenders, "p_best"] = stats.p_best
    out.loc[contenders, "rank_low"] = stats.rank_low
    out.loc[contenders, "rank_high"] = stats.rank_high
    for j, k in enumerate(keys):
        out.loc[contenders, f"p_best:{k}"] = stats.p_best_metric[:, j]
    return out


def null_columns(null: NullRecord) -> list[tuple[str, str, str]]:
    """The :data:`HEADLINE` columns that ``null`` holds at least one value of."""
    return [(k, label, mode) for k, label, mode in HEADLINE
            if any(v is not None for v in null.replicas.get(k, []))]  # fmt: skip


def _null_shortfall(row: dict, null: NullRecord) -> str:
    """Why ``null`` gives no p-value at this row's sample sizes ("" when it does)."""
    n_truth, n_gen = row["n_truth"], row["n_generated"]
    if n_truth is None or n_gen is None or (n_truth, n_gen) == (null.n_truth, null.n_generated):
        return ""
    need = n_truth + n_gen
    if need > null.n_pool:
        return f"null needs {need} truth events; the holdout has {null.n_pool}"
    return f"null drawn at {null.n_generated} events, this row has {n_gen}"


def pvalue_table(entries: list[dict], dataset: str, null: NullRecord, level: float) -> pd.DataFrame:
    """Per metrics file of ``dataset`` (truth first): raw and Benjamini–Hochberg adjusted
    p-values of every metric with a null, and the verdict.

    Columns: ``model`` (the instance), ``(key, "p")``, ``(key, "p_adjusted")``,
    ``(key, "note")`` per metric, ``compatible`` (True, False, or None when the row has no
    p-value or is *unresolved*: BH keeps it, but would reject it were its p-values at the
    floor 1/(K+1), where the row lies beyond every null draw, any smaller) and
    ``verdict_note`` (why there is no verdict). The truth row is itself one draw of the null: its p-values
    are a check.
    """
    columns = null_columns(null)
    rows = []
    for row in _instances(entries, dataset):
        shortfall = _null_shortfall(row, null)
        raw, notes = [], []
        for key, _, mode in columns:
            value = row["value"].get(key, math.nan)
            if null.n_replicas == 0:
                raw.append(math.nan), notes.append("no null (confidence.null_replicas is 0)")
            elif shortfall:
                raw.append(math.nan), notes.append(shortfall)
            elif not math.isfinite(value):
                raw.append(math.nan), notes.append("")
            else:
                null_scores = [rank_score(v, mode) for v in null.replicas[key] if v is not None]
                raw.append(p_value(rank_score(value, mode), null_scores)), notes.append("")
        adjusted = bh_adjust(raw)
        out: dict = {("model", ""): row["instance"], ("compatible", ""): compatible(adjusted, level),
                     ("verdict_note", ""): ""}  # fmt: skip
        beyond = np.isfinite(raw) & (np.asarray(raw) <= 1 / (null.n_replicas + 1) * (1 + 1e-9)) if null.n_replicas else []
        if out[("compatible", "")] and np.any(beyond) and not compatible(bh_adjust(np.where(beyond, 0.0, raw)), level):
            # Beyond every null draw, a p-value is only known to be ≤ 1/(K+1); had those been
            # smaller, the row would fail: "compatible" would be an artefact of too small a null.
            out.update({("compatible", ""): None,
                        ("verdict_note", ""): f"unresolved: beyond all {null.n_replicas} null draws on "
                                              f"{int(np.sum(beyond))} metric(s); raise confidence.null_replicas"})  # fmt: skip
        for (key, _, _), p, q, note in zip(columns, raw, adjusted, notes):
            out.update({(key, "p"): p, (key, "p_adjusted"): q, (key, "note"): note})
        rows.append(out)
    return pd.DataFrame(rows)


def neq_table(entries: list[dict], dataset: str, null: NullRecord) -> pd.DataFrame:
    """Per model file of ``dataset``: the equivalent truth sample size of each null metric.

    The truth-vs-truth score at each size of the null's curve is the mean of its replicas'
    scores; :func:`hepgenbench.confidence.equivalent_sample_size` reads off N_eq, or the
    bound beyond the curve. Cells are :class:`~hepgenbench.confidence.EquivalentSize` or
    a string saying why there is none.
    """
    columns = null_columns(null)
    rows = []
    for row in _instances(entries, dataset):
        if row["instance"] == TRUTH:
            continue
        out: dict = {"model": row["instance"]}
        for key, _, mode in columns:
            sizes, means = [], []
            for size, draws in zip(null.curve_sizes, null.curve.get(key, [])):
                scores = [rank_score(v, mode) for v in draws if v is not None]
                if scores:
                    sizes.append(size), means.append(float(np.mean(scores)))
            value = row["value"].get(key, math.nan)
            if len(sizes) < 2:
                out[key] = "no truth curve" + (f" ({null.notes[key]})" if key in null.notes else "")
            elif not math.isfinite(value):
                out[key] = "—"
            else:
                out[key] = equivalent_sample_size(sizes, means, rank_score(value, mode))
        rows.append(out)
    return pd.DataFrame(rows)


def _add_confidence(section: dict, entries: list[dict], null: NullRecord | None, options: ConfidenceOptions,
                    seed: int) -> None:
    """Put the ranking probabilities, p-values and N_eq of one dataset into its section."""
    section.update(ranking_p=None, pvalues=None, neq=None, null=null, level=options.level)
    if section["text"] is None:
        return
    mine = [e for e in entries if e["dataset"] == section["dataset"]]
    columns = headline_columns(section["summary"])
    section["ranking_p"] = ranking_probabilities(mine, section["summary"], columns, options.ranking_draws, seed)
    if null is not None:
        section["pvalues"] = pvalue_table(mine, section["dataset"], null, options.level)
        section["neq"] = neq_table(mine, section["dataset"], null)


def format_probability(p: float | None) -> str:
    """A probability to two decimals; ``< 0.01`` / ``> 0.99`` rather than a rounded 0 or 1 that is not exact."""
    p = finite_or_none(p)
    if p is None:
        return "—"
    if 0 < p < 0.005:
        return "< 0.01"
    if 0.995 < p < 1:
        return "> 0.99"
    return f"{p:.2f}"


def format_rank_interval(low: float | None, high: float | None) -> str:
    """The 16–84 % rank interval, ``1–2``, or one place ``1``."""
    low, high = finite_or_none(low), finite_or_none(high)
    if low is None or high is None:
        return "—"
    text = [f"{x:g}" for x in (low, high)]
    return text[0] if text[0] == text[1] else f"{text[0]}–{text[1]}"


def format_p_value(p: float | None) -> str:
    p = finite_or_none(p)
    if p is None:
        return "—"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def verdict_text(ok: bool | None) -> str:
    return {True: "yes", False: "no", None: "—"}[ok]


def confidence_views(section: dict) -> dict:
    """The p-value, N_eq and P(best)-per-metric tables as the page and the Markdown show them:
    each a header and rows of cells ``{"text", "attrs"}`` (empty when the dataset has no null)."""
    views: dict = {"pvalues": None, "neq": None, "pbest": None, "level": section.get("level"),
                   "null": section.get("null")}  # fmt: skip
    null = section.get("null")
    if section.get("pvalues") is not None:
        columns = null_columns(null)
        table = section["pvalues"]
        rows = []
        for _, r in table.iterrows():
            cells = []
            for key, _, _ in columns:
                note = r[(key, "note")]
                text = note if note else format_p_value(r[(key, "p_adjusted")])
                cells.append({"text": text, "attrs": {"data-metric": key, "data-p": _csv(r[(key, "p")]),
                                                      "data-p-adjusted": _csv(r[(key, "p_adjusted")])}})  # fmt: skip
            rows.append({"model": r[("model", "")], "cells": cells,
                         "verdict": r[("verdict_note", "")] or verdict_text(r[("compatible", "")])})  # fmt: skip
        views["pvalues"] = {"header": ["model", *[f"{label}" for _, label, _ in columns], "compatible with truth"],
                            "rows": rows}  # fmt: skip
    if section.get("neq") is not None:
        columns = null_columns(null)
        rows = []
        for _, r in section["neq"].iterrows():
            cells = []
            for key, _, _ in columns:
                cell = r[key]
                attrs = {"data-metric": key}
                if hasattr(cell, "relation"):
                    attrs.update({"data-n": _csv(cell.n), "data-relation": cell.relation})
                cells.append({"text": cell.text() if hasattr(cell, "text") else str(cell), "attrs": attrs})
            rows.append({"model": r["model"], "cells": cells})
        views["neq"] = {"header": ["model", *[label for _, label, _ in columns]], "rows": rows,
                        "sizes": list(null.curve_sizes)}  # fmt: skip
    ranking_p = section.get("ranking_p")
    if ranking_p is not None and section.get("text") is not None:
        columns = headline_columns(section["summary"])
        rows = [{"model": m, "cells": [{"text": format_probability(ranking_p.at[m, f"p_best:{k}"]),
                                        "attrs": {"data-metric": k, "data-p-best": _csv(ranking_p.at[m, f"p_best:{k}"])}}
                                       for k, _, _ in columns]} for m in ranking_p.index]  # fmt: skip
        views["pbest"] = {"header": ["model", *[label for _, label, _ in columns]], "rows": rows}
    return views


def _markdown_view(view: dict, last: str | None = None) -> str:
    """A confidence view (header, rows of cells) as a Markdown table; ``last`` names a per-row extra column."""
    body = [[r["model"], *[c["text"] for c in r["cells"]], *([r[last]] if last else [])] for r in view["rows"]]
    return _markdown(pd.DataFrame(body, columns=view["header"]))


# ---------------------------------------------------------------- HTML


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("hepgenbench", "templates"), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )  # fmt: skip


def _ordered_kinds(records: list[tuple[PlotRecord, str]]) -> list[str]:
    kinds = list(dict.fromkeys(r.kind for r, _ in records))
    return [k for k in PLOT_KIND_ORDER if k in kinds] + [k for k in kinds if k not in PLOT_KIND_ORDER]


def _figure_groups(records: list[tuple[PlotRecord, str]]) -> list[dict]:
    groups = []
    for kind in _ordered_kinds(records):
        figures = [{"uri": png_data_uri(_resolve_png(rec.path_png, manifest)), "title": rec.title, "caption": rec.caption}
                   for rec, manifest in records if rec.kind == kind]  # fmt: skip
        groups.append({"title": PLOT_KIND_TITLES.get(kind, kind), "figures": figures, "open": kind not in FOLDED_PLOT_KINDS})
    return groups


def _html_rows(section: dict) -> list[dict]:
    """The summary rows as the template draws them: css class, cells with their attributes."""
    text, metric, summary, best = section["text"], section["metric"], section["summary"], section["best"]
    rows = []
    for i, model in enumerate(summary.index):
        status = summary.at[model, ("row", "status")]
        cells = []
        for column in text.columns:
            key = metric.at[i, column]
            cell = {"text": text.at[i, column], "class": "", "attrs": {}, "note": ""}
            if column == "model":
                cell["class"] = "model"
                cell["note"] = "(noise floor)" if model == TRUTH else (
                    f"(×{summary.at[model, ('row', 'n_replicas')]} replicas)" if summary.at[model, ("row", "n_replicas")] > 1 else "")
            elif column == "status":
                cell["class"] = f"status {status}" if status in ("diverged", "flagged") else "status"
            elif key:
                cell["class"] = "best" if model in best[key] else ""
                cell["attrs"] = {"data-metric": key, "data-value": _csv(summary.at[model, (key, "value")]),
                                 "data-error": _csv(summary.at[model, (key, "error")])}  # fmt: skip
            cells.append(cell)
        css = "truth" if model == TRUTH else ("diverged" if status == "diverged" else "model")
        rows.append({"model": model, "class": css, "cells": cells})
    return rows


def render_html(title: str, sections: list[dict], config, provenance: dict, training: pd.DataFrame) -> str:
    """The page as one string, rendered from ``templates/report.html.j2``."""
    views = []
    for section in sections:
        view = {"dataset": section["dataset"], "figure_groups": _figure_groups(section["plots"]), "table": None,
                "physics": section.get("physics", []),
                "budget": _budget_view(section.get("budget", []))}
        if section["text"] is not None:
            ranking = section["ranking"]
            view["table"] = {"header": list(section["text"].columns), "rows": _html_rows(section)}
            # itertuples keeps each column's dtype (iterrows would make the counts floats: "7.0 / 12.0")
            view["ranking"] = [{"model": r.Index, "mean_rank": _format_rank(r.mean_rank),
                                "within": f"{r.within_noise} / {r.n_with_floor}"} for r in ranking.itertuples()]  # fmt: skip
            _add_ranking_probabilities(view["ranking"], section.get("ranking_p"))
        view["published"] = section.get("published")
        view["confidence"] = confidence_views(section)
        views.append(view)
    return _environment().get_template("report.html.j2").render(
        title=title, sections=views, provenance=provenance, training=training,
        config_yaml=yaml.safe_dump(config or {}, sort_keys=False),
    )  # fmt: skip


def _add_ranking_probabilities(rows: list[dict], ranking_p: pd.DataFrame | None) -> None:
    """Each ranking row gains its P(best) and 16–84 % rank interval (text and raw value)."""
    for row in rows:
        has = ranking_p is not None and row["model"] in ranking_p.index
        p = ranking_p.at[row["model"], "p_best"] if has else None
        row["p_best"], row["p_best_raw"] = format_probability(p), _csv(p)
        row["rank_interval"] = format_rank_interval(*(ranking_p.loc[row["model"], ["rank_low", "rank_high"]] if has
                                                      else (None, None)))  # fmt: skip


def _format_rank(mean_rank: float) -> str:
    return "—" if not math.isfinite(mean_rank) else f"{mean_rank:.2f}"


# ---------------------------------------------------------------- published reference rows

#: Columns of the published-rows table: (label, published column, this run's metric key,
#: factor on this run's value, formatter). FPD and KPD are published × 10³.
PUBLISHED_COLUMNS = (
    ("AUC low-level", "auc_low", "c2st_auc", 1.0, "value"),
    ("AUC high-level", "auc_high", "c2st_auc_high_level", 1.0, "value"),
    ("FPD ×10³", "fpd_x1e3", "fpd", 1e3, "value"),
    ("KPD ×10³", "kpd_x1e3", "kpd", 1e3, "value"),
    ("precision", "precision", "prdc_precision", 1.0, "plain"),
    ("recall", "recall", "prdc_recall", 1.0, "plain"),
    ("density", "density", "prdc_density", 1.0, "plain"),
    ("coverage", "coverage", "prdc_coverage", 1.0, "plain"),
    ("params (generation)", "params_generation", "cost.n_parameters", 1.0, "count"),
    ("ms/shower CPU, batch 1", "time_cpu_1_ms", "cost.time_per_event_ms_cpu_1", 1.0, "plain"),
    ("ms/shower CPU, batch 100", "time_cpu_100_ms", "cost.time_per_event_ms_cpu_100", 1.0, "plain"),
    ("ms/shower CPU, batch 10⁴", "time_cpu_10000_ms", "cost.time_per_event_ms_cpu_10000", 1.0, "plain"),
    ("ms/shower GPU, batch 1", "time_gpu_1_ms", "cost.time_per_event_ms_cuda_1", 1.0, "plain"),
    ("ms/shower GPU, batch 100", "time_gpu_100_ms", "cost.time_per_event_ms_cuda_100", 1.0, "plain"),
    ("ms/shower GPU, batch 10⁴", "time_gpu_10000_ms", "cost.time_per_event_ms_cuda_10000", 1.0, "plain"),
)  # fmt: skip


def calochallenge_dataset(config: Mapping | None, dataset: str) -> str | None:
    """The ``calochallenge:`` key of ``dataset``'s config block, if it declares one."""
    block = ((config or {}).get("datasets") or {}).get(dataset) or {}
    return block.get("calochallenge") if isinstance(block, Mapping) else None


def _published_cell(value, error, how: str) -> str:
    value, error = finite_or_none(value), finite_or_none(error)
    if how == "count":
        return format_count(value)
    if how == "plain" or error is None:
        return "—" if value is None else f"{value:.4g}"
    return format_value_error(value, error)


def published_view(config: Mapping | None, dataset: str, summary: pd.DataFrame | None) -> dict | None:
    """This run's rows and the CaloChallenge's published rows of the dataset the config
    declares (``calochallenge:``), in one table; None when it declares none.

    The published rows (:mod:`hepgenbench.reference.calochallenge`) were computed on the
    official samples with the challenge's own classifier and evaluation: they frame this
    run's rows and are never ranked with them.
    """
    from hepgenbench.reference.calochallenge import CITATION, GEANT4, published_results

    key = calochallenge_dataset(config, dataset)
    if key is None:
        return None
    published = published_results(key)
    header = ["model", "source"] + [label for label, *_ in PUBLISHED_COLUMNS]
    rows = []
    if summary is not None and not summary.empty:
        for model in summary.index:
            cells = [model, "this run, noise floor" if model == TRUTH else "this run"]
            for _, _, metric, factor, how in PUBLISHED_COLUMNS:
                if (metric, "value") not in summary.columns or (model == TRUTH and metric.startswith("cost.")):
                    cells.append("—")
                    continue
                value, error = finite_or_none(summary.at[model, (metric, "value")]), finite_or_none(summary.at[model, (metric, "error")])
                cells.append(_published_cell(None if value is None else value * factor,
                                             None if error is None else error * factor, how))
            rows.append({"class": "truth" if model == TRUTH else "model", "model": model, "cells": cells})
    for submission, row in published.iterrows():
        cells = [submission, "published, Geant4 vs Geant4" if submission == GEANT4 else "published"]
        for _, column, _, _, how in PUBLISHED_COLUMNS:
            std = f"{column}_std"
            cells.append(_published_cell(row[column], row[std] if std in row.index else None, how))
        rows.append({"class": "published", "model": submission, "cells": cells})
    classifier = ((config or {}).get("evaluation") or {}).get("c2st_classifier", "hgb")
    note = (f"Published figures of the CaloChallenge 2022 ({CITATION}), dataset {key}: computed by the challenge "
            f"on the official Geant4 and submitted samples with its own classifier and evaluation. They frame "
            f"this run's rows; they do not rank them. This run's AUCs come from the '{classifier}' classifier"
            + (" (the challenge's network and protocol)" if classifier == "cc22" else
               ", not the challenge's network: set evaluation.c2st_classifier: cc22 to put them on its scale")
            + "; sample sizes and, unless this run scores the challenge's files, the showers differ.")
    return {"key": key, "citation": CITATION, "header": header, "rows": rows, "note": note}


def published_markdown(view: dict) -> list[str]:
    """The published-rows table as Markdown lines."""
    table = pd.DataFrame([row["cells"] for row in view["rows"]], columns=view["header"])
    return [f"### CaloChallenge published rows ({view['key']}, {view['citation']})", "", _markdown(table), "",
            view["note"], ""]


# ---------------------------------------------------------------- Markdown


def render_markdown(title: str, sections: list[dict], config, provenance: dict, training: pd.DataFrame) -> str:
    """The same tables as the page, in Markdown (``DataFrame.to_markdown``); figures by path."""
    out = [f"# {title}", ""]
    for section in sections:
        out += [f"## {section['dataset']}", ""]
        if section["text"] is not None:
            text = section["text"].copy()
            text.loc[text["model"] == TRUTH, "model"] = "*truth (noise floor)*"
            for column in text.columns:
                keys = section["metric"][column]
                best = [bool(k) and m in section["best"][k] for k, m in zip(keys, section["summary"].index)]
                text.loc[best, column] = "**" + text.loc[best, column] + "**"
            ranking = section["ranking"].reset_index()
            ranking = pd.DataFrame({"model": ranking["model"], "mean rank": ranking["mean_rank"].map(_format_rank),
                                    "within noise floor": ranking["within_noise"].astype(str) + " / "
                                    + ranking["n_with_floor"].astype(str)})  # fmt: skip
            probabilities = [{"model": m} for m in ranking["model"]]
            _add_ranking_probabilities(probabilities, section.get("ranking_p"))
            ranking["P(best)"] = [r["p_best"] for r in probabilities]
            ranking["rank 16–84 %"] = [r["rank_interval"] for r in probabilities]
            out += [_markdown(text), "", "Best per column in **bold**.", "", "### Ranking", "", _markdown(ranking), ""]
            out += _markdown_confidence(confidence_views(section))
        if section.get("published"):
            out += published_markdown(section["published"])
        out += _physics_markdown(section.get("physics", []))
        out += _budget_markdown(section.get("budget", []))
        if section["plots"]:
            out += ["### Figures", ""] + [f"- {rec.title}: `{rec.path_png}`" for rec, _ in section["plots"]] + [""]
    out += ["## Provenance", "", f"- git commit: `{provenance.get('git_commit', 'unknown')}`",
            f"- seed: `{provenance.get('seed')}`"]  # fmt: skip
    out += [f"- {k}: {v}" for k, v in provenance.get("packages", {}).items()]
    if not training.empty:
        out += ["", _markdown(training)]
    out += ["", "### Config", "", "```yaml", yaml.safe_dump(config or {}, sort_keys=False).rstrip(), "```", ""]
    return "\n".join(out)


def _markdown_confidence(views: dict) -> list[str]:
    out = []
    if views["pbest"] is not None:
        out += ["### P(best) per metric", "", _markdown_view(views["pbest"]), ""]
    if views["pvalues"] is not None:
        out += [f"### p-values against the truth null (Benjamini–Hochberg adjusted; compatible: all > {views['level']})",
                "", _markdown_view(views["pvalues"], last="verdict"), ""]  # fmt: skip
    if views["neq"] is not None:
        out += ["### Equivalent truth sample size N_eq", "", _markdown_view(views["neq"]), ""]
    return out


def _physics_markdown(tables: list[PhysicsTable]) -> list[str]:
    """The physics tables (:mod:`hepgenbench.physics.tables`), each with its note."""
    out = []
    for table in tables:
        frame = pd.DataFrame([row["cells"] for row in table.rows], columns=table.header)
        out += [f"### {table.title}", "", _markdown(frame), "", table.note, ""]
    return out


# ---------------------------------------------------------------- quality against training compute


def budget_curves_by_dataset(paths: Iterable[str]) -> dict[str, list]:
    """The :class:`~hepgenbench.records.BudgetCurve` files, grouped by dataset, in file order."""
    from hepgenbench.records import BudgetCurve

    out: dict[str, list] = {}
    for path in paths:
        curve = BudgetCurve.read(path)
        out.setdefault(curve.dataset, []).append(curve)
    return out


def _budget_view(curves: list) -> dict | None:
    """The template's view of one dataset's curves (``budget.html.j2``), or None without any."""
    if not curves:
        return None
    from hepgenbench.budget import budget_table, winner_note

    table = budget_table(curves)
    return {"header": list(table.columns), "rows": table.values.tolist(), "note": winner_note(curves),
            "axis": curves[0].axis, "n": curves[0].n_per_class}


def _budget_markdown(curves: list) -> list[str]:
    if not curves:
        return []
    from hepgenbench.budget import budget_table, winner_note

    return ["### Quality against training compute", "", _markdown(budget_table(curves)), "", winner_note(curves), ""]


def _markdown(frame: pd.DataFrame) -> str:
    # Every cell is already text; "|" inside one would split it.
    return frame.map(lambda x: str(x).replace("|", "\\|")).to_markdown(index=False, disable_numparse=True)


__all__ = [
    "neq_table",
    "pvalue_table",
    "ranking_probabilities",
    "best_models",
    "build_report",
    "collect_provenance",
    "display_table",
    "format_value_error",
    "headline_columns",
    "load_metrics",
    "rank_score",
    "ranking_table",
    "report_title",
    "results_frame",
    "summary_table",
    "within_noise_floor",
    "write_metrics_csv",
]
