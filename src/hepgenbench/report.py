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

from hepgenbench.errors import InputError
from hepgenbench.io import atomic_path
from hepgenbench.metrics import HEADLINE
from hepgenbench.plots import PlotRecord, read_plot_manifest
from hepgenbench.records import MetricsRecord

#: Packages whose versions the provenance lists (distribution names).
PROVENANCE_PACKAGES = ("torch", "zuko", "numpy", "scikit-learn", "POT", "uproot", "snakemake", "hepgenbench")
#: The order in which figure kinds appear on the page; unknown kinds follow.
PLOT_KIND_ORDER = ("observable", "observable_per_model", "feature", "feature_per_model", "calo", "dalitz",
                   "correlation", "classifier", "cost", "training")  # fmt: skip
PLOT_KIND_TITLES = {
    "observable": "Derived observables", "observable_per_model": "Derived observables, every model",
    "feature": "Features", "feature_per_model": "Features, every model", "calo": "Calorimeter showers",
    "dalitz": "Dalitz plots", "correlation": "Correlations", "classifier": "Classifier weights",
    "cost": "Quality vs cost", "training": "Training curves",
}  # fmt: skip
#: Figure kinds shown folded: one figure per model and column is a lot to scroll past.
FOLDED_PLOT_KINDS = ("observable_per_model", "feature_per_model", "correlation")
TRUTH = "truth"
#: The family of a sample made outside hepgenbench (``hepgenbench score``, ``family: external``).
EXTERNAL = "external"
DEFAULT_TITLE = "hepgenbench report"
#: Cost columns of the summary table: (key in the frame, column label, formatter name).
COST_COLUMNS = (("cost.n_parameters", "params"), ("cost.train_time_s", "train time"),
                ("cost.sample_rate_100000", "rate @1e5"))  # fmt: skip
#: How each ranking mode reads as the column's ideal.
IDEAL = {"lower": "↓", "half": "→ 0.5", "one": "→ 1", "higher": "↑"}
#: The columns of ``metrics.csv``, in order.
CSV_COLUMNS = ["dataset", "model", "metric", "value", "error", "status", "replica"]


# ---------------------------------------------------------------- loading and the frame


def load_metrics(metrics: Iterable[str | MetricsRecord]) -> list[dict]:
    """Metrics records as dicts: JSON files (:class:`~hepgenbench.records.MetricsRecord`,
    validated as read) or records already in memory."""
    return [(m if isinstance(m, MetricsRecord) else MetricsRecord.read(m)).to_dict() for m in metrics]


def _number(x) -> float | None:
    """``x`` as a finite float, or None."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _float(x) -> float:
    """``x`` as a finite float, or NaN (the frame's missing value)."""
    x = _number(x)
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
        flat.update({f"sample_rate_{n}": v for n, v in (cost.get("sample_rate") or {}).items()})
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
    n = _number(n)
    if n is None:
        return "—"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.0f}"


def format_seconds(s: float | None) -> str:
    s = _number(s)
    if s is None:
        return "—"
    if s >= 3600:
        return f"{s / 3600:.2g} h"
    if s >= 60:
        return f"{s / 60:.2g} min"
    return f"{s:.2g} s"


def format_rate(rate: float | None) -> str:
    """Events per second as ``850/s`` or ``2.5e5/s``."""
    rate = _number(rate)
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
    formatters = {"params": format_count, "train time": format_seconds, "rate @1e5": format_rate}
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
    x = _number(x)
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
    sections = [_section(d, summary_table(frame, d), plots.get(d, [])) for d in datasets]
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
        view = {"dataset": section["dataset"], "figure_groups": _figure_groups(section["plots"]), "table": None}
        if section["text"] is not None:
            ranking = section["ranking"]
            view["table"] = {"header": list(section["text"].columns), "rows": _html_rows(section)}
            # itertuples keeps each column's dtype (iterrows would make the counts floats: "7.0 / 12.0")
            view["ranking"] = [{"model": r.Index, "mean_rank": _format_rank(r.mean_rank),
                                "within": f"{r.within_noise} / {r.n_with_floor}"} for r in ranking.itertuples()]  # fmt: skip
        views.append(view)
    return _environment().get_template("report.html.j2").render(
        title=title, sections=views, provenance=provenance, training=training,
        config_yaml=yaml.safe_dump(config or {}, sort_keys=False),
    )  # fmt: skip


def _format_rank(mean_rank: float) -> str:
    return "—" if not math.isfinite(mean_rank) else f"{mean_rank:.2f}"


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
            out += [_markdown(text), "", "Best per column in **bold**.", "", "### Ranking", "", _markdown(ranking), ""]
        if section["plots"]:
            out += ["### Figures", ""] + [f"- {rec.title}: `{rec.path_png}`" for rec, _ in section["plots"]] + [""]
    out += ["## Provenance", "", f"- git commit: `{provenance.get('git_commit', 'unknown')}`",
            f"- seed: `{provenance.get('seed')}`"]  # fmt: skip
    out += [f"- {k}: {v}" for k, v in provenance.get("packages", {}).items()]
    if not training.empty:
        out += ["", _markdown(training)]
    out += ["", "### Config", "", "```yaml", yaml.safe_dump(config or {}, sort_keys=False).rstrip(), "```", ""]
    return "\n".join(out)


def _markdown(frame: pd.DataFrame) -> str:
    # Every cell is already text; "|" inside one would split it.
    return frame.map(lambda x: str(x).replace("|", "\\|")).to_markdown(index=False, disable_numparse=True)


__all__ = [
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
