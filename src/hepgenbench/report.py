"""The comparison report: one self-contained HTML page, the same tables in Markdown, a CSV.

Per dataset the page shows a summary table (one row per model and the truth-vs-truth
noise-floor row, one column per headline metric, ``value ± error``, the best model per
column highlighted), a ranking across metrics, the figures from :mod:`hepgenbench.plots`
and, at the end, the provenance of every number: config, seed, git commit, package
versions and where each model was trained.

The HTML page inlines its PNGs as base64 data URIs and its CSS, so it opens from disk,
from an e-mail attachment or from a CI artefact with no server and no network.

Reading the table against the truth row follows the noise-floor practice of
arXiv:2211.10295 (Kansal et al., "Evaluating generative models in high energy physics"):
a model whose metric is within truth's own value plus twice the combined uncertainty
cannot be told apart from truth with this many events.
"""

from __future__ import annotations

import base64
import csv
import html
import importlib.metadata
import math
import platform
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import yaml
from scipy.stats import rankdata

from hepgenbench.errors import InputError
from hepgenbench.io import atomic_path
from hepgenbench.metrics import HEADLINE
from hepgenbench.plots import PlotRecord, read_plot_manifest
from hepgenbench.records import MetricsRecord

#: Packages whose versions the provenance lists (distribution names).
PROVENANCE_PACKAGES = ("torch", "zuko", "numpy", "scikit-learn", "POT", "uproot", "snakemake", "hepgenbench")
#: The order in which figure kinds appear on the page; unknown kinds follow.
PLOT_KIND_ORDER = ("observable", "feature", "calo", "dalitz", "correlation", "classifier", "cost", "training")
PLOT_KIND_TITLES = {
    "observable": "Derived observables", "feature": "Features", "calo": "Calorimeter showers",
    "dalitz": "Dalitz plots", "correlation": "Correlations", "classifier": "Classifier weights",
    "cost": "Quality vs cost", "training": "Training curves",
}  # fmt: skip
TRUTH = "truth"


@dataclass
class Cell:
    """One table cell: a metric's value, its statistical error and, for replicas, their spread."""

    value: float | None
    error: float | None = None
    spread: float | None = None


@dataclass
class TableRow:
    """One row of a dataset's summary table: a model (or its replicas, averaged) or truth."""

    dataset: str
    model: str
    family: str
    status: str
    status_detail: str
    cells: dict[str, Cell]
    cost: dict = field(default_factory=dict)
    training: list[dict] = field(default_factory=list)
    n_replicas: int = 1

    @property
    def is_truth(self) -> bool:
        return self.model == TRUTH

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"


@dataclass
class Ranking:
    """A model's standing across the headline metrics of one dataset."""

    model: str
    mean_rank: float
    n_ranked: int
    within_noise: int
    n_with_floor: int


# ---------------------------------------------------------------- loading and tables


def load_metrics(paths: Iterable[str]) -> list[dict]:
    """Read metrics JSON files (:class:`~hepgenbench.records.MetricsRecord`, validated)."""
    return [MetricsRecord.read(path).to_dict() for path in paths]


def _number(x) -> float | None:
    if x is None:
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _cell(entry: dict, key: str) -> Cell:
    m = entry["metrics"].get(key)
    return Cell(_number(m.get("value")), _number(m.get("error"))) if isinstance(m, dict) else Cell(None)


def summary_rows(entries: list[dict], dataset: str) -> list[TableRow]:
    """The table rows of ``dataset``: truth first, then models in input order.

    Several files of one model (its config name, ``name``) with distinct
    ``training.replica`` become one row: each
    cell is the mean over replicas, its error the mean of the replicas' statistical errors
    (one evaluation's), and its spread the standard deviation across replicas, so the two
    sources of uncertainty can be read side by side.
    """
    keys = [k for k, _, _ in HEADLINE]
    mine = [e for e in entries if e["dataset"] == dataset]
    rows = [_single_row(e, keys) for e in mine if e["model"] == TRUTH]
    groups: dict[str, list[dict]] = {}
    for e in mine:
        if e["model"] != TRUTH:
            groups.setdefault(model_name(e), []).append(e)
    for name, members in groups.items():
        replicas = [(m.get("training") or {}).get("replica") for m in members]
        if len(members) > 1 and None not in replicas and len(set(replicas)) == len(members):
            rows.append(_replica_row(name, members, keys))
        else:
            rows += [_single_row(m, keys) for m in members]
    return rows


def model_name(e: dict) -> str:
    """The model's config name: replicas ``nsf``, ``nsf_r1``, ... share ``nsf``."""
    return e.get("name") or e["model"]


def _single_row(e: dict, keys: list[str]) -> TableRow:
    return TableRow(
        dataset=e["dataset"], model=model_name(e), family=e.get("family") or e["model"],
        status=e.get("status", "ok"), status_detail=e.get("status_detail", ""),
        cells={k: _cell(e, k) for k in keys}, cost=dict(e.get("cost") or {}),
        training=[dict(e["training"])] if e.get("training") else [],
    )  # fmt: skip


def _replica_row(name: str, members: list[dict], keys: list[str]) -> TableRow:
    cells = {}
    for k in keys:
        per = [_cell(m, k) for m in members]
        values = [c.value for c in per if c.value is not None]
        errors = [c.error for c in per if c.error is not None]
        cells[k] = Cell(
            float(np.mean(values)) if values else None,
            float(np.mean(errors)) if errors else None,
            float(np.std(values, ddof=1)) if len(values) > 1 else None,
        )
    diverged = [m for m in members if m.get("status") == "diverged"]
    detail = "; ".join(f"replica {(m.get('training') or {}).get('replica')}: {m.get('status_detail', '')}" for m in diverged)
    costs = [m.get("cost") or {} for m in members]
    cost = {c: float(np.mean([x[c] for x in costs if _number(x.get(c)) is not None]))
            for c in ("n_parameters", "train_time_s", "time_to_best_s", "peak_memory_mb")
            if any(_number(x.get(c)) is not None for x in costs)}  # fmt: skip
    rates = [_number((x.get("sample_rate") or {}).get("100000")) for x in costs]
    if any(r is not None for r in rates):
        cost["sample_rate"] = {"100000": float(np.mean([r for r in rates if r is not None]))}
    return TableRow(
        dataset=members[0]["dataset"], model=name, family=members[0].get("family") or name,
        status="diverged" if diverged else "ok", status_detail=detail, cells=cells, cost=cost,
        training=[dict(m["training"]) for m in members], n_replicas=len(members),
    )  # fmt: skip


def rank_score(value: float, mode: str) -> float:
    """Distance from the ideal: the value itself (``lower``), |v − 0.5| (``half``), |v − 1|
    (``one``) or −v (``higher``)."""
    if mode == "lower":
        return value
    if mode == "higher":
        return -value
    if mode == "half":
        return abs(value - 0.5)
    if mode == "one":
        return abs(value - 1.0)
    raise InputError(f"unknown rank mode '{mode}' in HEADLINE; expected 'lower', 'half', 'one' or 'higher'")


def _contenders(rows: list[TableRow], key: str) -> list[TableRow]:
    # Truth is the reference, not a contender; a diverged model keeps its numbers but no prize.
    return [r for r in rows if not r.is_truth and not r.diverged and r.cells[key].value is not None]


def best_models(rows: list[TableRow], key: str, mode: str) -> set[str]:
    """Models with the best score in column ``key`` (ties share it)."""
    contenders = _contenders(rows, key)
    if not contenders:
        return set()
    scores = np.array([rank_score(r.cells[key].value, mode) for r in contenders])
    return {r.model for r, s in zip(contenders, scores) if np.isclose(s, scores.min(), rtol=1e-12, atol=0)}


def within_noise_floor(cell: Cell, truth: Cell, mode: str) -> bool:
    """Whether a model's value is within truth's value + 2σ (σ combines both errors)."""
    sigma = math.hypot(cell.error or 0.0, truth.error or 0.0)
    return rank_score(cell.value, mode) <= rank_score(truth.value, mode) + 2 * sigma


def rankings(rows: list[TableRow], columns: list[tuple[str, str, str]]) -> list[Ranking]:
    """Mean rank (1 = best, ties averaged) per model over ``columns`` and noise-floor counts, best first."""
    ranks: dict[str, list[float]] = {r.model: [] for r in rows if not r.is_truth}
    within = dict.fromkeys(ranks, 0)
    with_floor = dict.fromkeys(ranks, 0)
    truth = next((r for r in rows if r.is_truth), None)
    for key, _, mode in columns:
        contenders = _contenders(rows, key)
        if contenders:
            scores = [rank_score(r.cells[key].value, mode) for r in contenders]
            for r, rank in zip(contenders, rankdata(scores, method="average")):
                ranks[r.model].append(float(rank))
        floor = truth.cells[key] if truth else Cell(None)
        if floor.value is None:
            continue
        for r in rows:
            if not r.is_truth and r.cells[key].value is not None:
                with_floor[r.model] += 1
                within[r.model] += within_noise_floor(r.cells[key], floor, mode)
    out = [Ranking(m, float(np.mean(v)) if v else math.inf, len(v), within[m], with_floor[m]) for m, v in ranks.items()]
    return sorted(out, key=lambda r: (r.mean_rank, r.model))


def table_columns(rows: list[TableRow]) -> list[tuple[str, str, str]]:
    """The HEADLINE columns with at least one value among ``rows``."""
    return [(k, label, mode) for k, label, mode in HEADLINE if any(r.cells[k].value is not None for r in rows)]


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


def status_text(row: TableRow) -> str:
    """``ok``, or ``diverged at …`` with the trainer's reason."""
    if not row.diverged:
        return "" if row.is_truth else "ok"
    detail = row.status_detail.strip()
    if detail.lower().startswith("diverged"):
        return detail
    return f"diverged at {detail}" if detail else "diverged"


def _cost_cells(row: TableRow) -> list[str]:
    if row.is_truth:
        return ["", "", ""]
    rate = (row.cost.get("sample_rate") or {}).get("100000")
    return [format_count(row.cost.get("n_parameters")), format_seconds(row.cost.get("train_time_s")), format_rate(rate)]


# ---------------------------------------------------------------- outputs


def write_metrics_csv(path: str, entries: list[dict]) -> None:
    """Every metric of every file in long format: dataset, model, metric, value, error, status, replica."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["dataset", "model", "metric", "value", "error", "status", "replica"])
        for e in entries:
            replica = (e.get("training") or {}).get("replica", "")
            status = e.get("status", "ok")
            for key, m in e["metrics"].items():
                if isinstance(m, dict) and "value" in m:
                    w.writerow([e["dataset"], model_name(e), key, _csv(m.get("value")), _csv(m.get("error")), status, replica])
            cost = e.get("cost") or {}
            flat = {k: v for k, v in cost.items() if not isinstance(v, dict)}
            flat.update({f"sample_rate_{n}": v for n, v in (cost.get("sample_rate") or {}).items()})
            for key, v in flat.items():
                w.writerow([e["dataset"], model_name(e), f"cost.{key}", _csv(v), "", status, replica])


def _csv(x) -> str:
    x = _number(x)
    return "" if x is None else repr(x)


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
        "report_time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
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
    metrics_files: list[str],
    plot_manifests: list[str],
    config: dict,
    outdir: str,
    provenance: dict | None = None,
) -> None:
    """Write ``index.html``, ``report.md`` and ``metrics.csv`` under ``outdir``, atomically.

    Args:
        metrics_files: metrics JSON per (dataset, model), including the ``truth`` rows.
        plot_manifests: one manifest per dataset from :func:`hepgenbench.plots.write_plot_manifest`.
        config: the workflow config, shown as YAML in the provenance.
        outdir: the report directory.
        provenance: git commit, package versions...; collected here when not given.
    """
    entries = load_metrics(metrics_files)
    plots: dict[str, list[tuple[PlotRecord, str]]] = {}
    for manifest in plot_manifests:
        dataset, records = read_plot_manifest(manifest)
        plots.setdefault(dataset, []).extend((r, manifest) for r in records)
    datasets = list(dict.fromkeys([e["dataset"] for e in entries] + list(plots)))
    provenance = dict(provenance) if provenance is not None else collect_provenance(config)
    provenance.setdefault("seed", (config or {}).get("seed"))

    tables = {d: summary_rows(entries, d) for d in datasets}
    out = Path(outdir)
    write_metrics_csv(str(out / "metrics.csv"), entries)
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(render_markdown(datasets, tables, plots, config, provenance, entries))
    with atomic_path(out / "index.html") as tmp:
        tmp.write_text(render_html(datasets, tables, plots, config, provenance, entries), encoding="utf-8")


# ---------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:1.5em auto;max-width:1400px;
 color:#222;padding:0 1em;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:2px solid #3f90da;padding-bottom:.2em;margin-top:2em}
.summary{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}
table{border-collapse:collapse;font-size:.85em}th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right;
 white-space:nowrap}th{background:#eef3fa}td.model,th.model{text-align:left}
tr.truth td{background:#f1f1f1;font-style:italic;color:#555;border-top:2px solid #888;border-bottom:2px solid #888}
tr.diverged td{background:#fff0ee}td.status.diverged{color:#bd1f01;font-weight:bold}
td.best{background:#dff5df;font-weight:bold}.note{font-size:.8em;color:#555;max-width:60em}
figure{display:inline-block;margin:.5em;vertical-align:top;max-width:48%}figure img{max-width:100%;height:auto;
 border:1px solid #ddd}figcaption{font-size:.8em;color:#444}pre{background:#f7f7f7;padding:.8em;overflow-x:auto;
 font-size:.8em}#broken{display:none;background:#bd1f01;color:#fff;padding:.5em}
.ranking{max-width:28em}
details summary{cursor:pointer;font-weight:bold;margin:.5em 0}
"""

# Counts images that failed to decode, marks <body> for headless checks and shows a banner.
_IMAGE_CHECK = """
window.addEventListener("load",function(){var bad=0,imgs=document.images;
for(var i=0;i<imgs.length;i++){if(!imgs[i].complete||imgs[i].naturalWidth===0){bad++;}}
document.body.setAttribute("data-images",imgs.length);document.body.setAttribute("data-broken-images",bad);
if(bad>0){var b=document.getElementById("broken");b.textContent=bad+" figure(s) failed to load";b.style.display="block";}});
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _html_table(rows: list[TableRow]) -> str:
    columns = table_columns(rows)
    replicated = any(r.n_replicas > 1 for r in rows)
    best = {k: best_models(rows, k, mode) for k, _, mode in columns}
    head = ['<th class="model">model</th>', "<th>status</th>"]
    for _, label, mode in columns:
        ideal = {"lower": "↓", "half": "→ 0.5", "one": "→ 1", "higher": "↑"}[mode]
        head.append(f"<th>{_e(label)} <small>{ideal}</small></th>")
        if replicated:
            head.append("<th>± replicas</th>")
    head += ["<th>params</th>", "<th>train time</th>", "<th>rate @1e5</th>"]
    body = []
    for row in rows:
        css = "truth" if row.is_truth else ("diverged" if row.diverged else "model")
        name = row.model + (f" <small>(×{row.n_replicas} replicas)</small>" if row.n_replicas > 1 else "")
        label = "truth <small>(noise floor)</small>" if row.is_truth else name
        status_css = "status diverged" if row.diverged else "status"
        cells = [f'<td class="model">{label}</td>', f'<td class="{status_css}">{_e(status_text(row))}</td>']
        for key, _, _ in columns:
            c = row.cells[key]
            cls = "best" if row.model in best[key] and not row.is_truth else ""
            attrs = f' data-metric="{key}" data-value="{_csv(c.value)}" data-error="{_csv(c.error)}"'
            cells.append(f'<td class="{cls}"{attrs}>{_e(format_value_error(c.value, c.error))}</td>')
            if replicated:
                cells.append(f"<td>{_e(format_spread(c.spread))}</td>")
        cells += [f"<td>{_e(x)}</td>" for x in _cost_cells(row)]
        body.append(f'<tr class="{css}" data-model="{_e(row.model)}">' + "".join(cells) + "</tr>")
    return (
        '<table class="metrics"><thead><tr>' + "".join(head) + "</tr></thead><tbody>\n"
        + "\n".join(body) + "\n</tbody></table>"
    )  # fmt: skip


def _html_ranking(rows: list[TableRow]) -> str:
    ranked = rankings(rows, table_columns(rows))
    items = []
    for r in ranked:
        mean = "—" if not math.isfinite(r.mean_rank) else f"{r.mean_rank:.2f}"
        items.append(
            f'<tr data-model="{_e(r.model)}"><td class="model">{_e(r.model)}</td><td>{mean}</td>'
            f"<td>{r.within_noise} / {r.n_with_floor}</td></tr>"
        )
    return (
        '<div class="ranking"><h3>Ranking</h3><table><thead><tr><th class="model">model</th><th>mean rank</th>'
        "<th>within noise floor</th></tr></thead><tbody>" + "".join(items) + "</tbody></table>"
        '<p class="note">Mean rank over the columns (1 = best; diverged models are not ranked). '
        "Within noise floor: metrics where the model is within truth's value + 2σ.</p></div>"
    )


def _ordered_kinds(records: list[tuple[PlotRecord, str]]) -> list[str]:
    kinds = list(dict.fromkeys(r.kind for r, _ in records))
    return [k for k in PLOT_KIND_ORDER if k in kinds] + [k for k in kinds if k not in PLOT_KIND_ORDER]


def _html_plots(records: list[tuple[PlotRecord, str]]) -> str:
    parts = []
    for kind in _ordered_kinds(records):
        figures = []
        for rec, manifest in (x for x in records if x[0].kind == kind):
            uri = png_data_uri(_resolve_png(rec.path_png, manifest))
            figures.append(
                f'<figure><img src="{uri}" alt="{_e(rec.title)}"><figcaption><b>{_e(rec.title)}.</b> '
                f"{_e(rec.caption)}</figcaption></figure>"
            )
        title = PLOT_KIND_TITLES.get(kind, kind)
        parts.append(f"<details open><summary>{_e(title)} ({len(figures)})</summary>{''.join(figures)}</details>")
    return "\n".join(parts)


def _training_rows(entries: list[dict]) -> list[list[str]]:
    rows = []
    for e in entries:
        t = e.get("training") or {}
        if e["model"] == TRUTH or not t:
            continue
        rows.append([e["dataset"], e["model"], str(t.get("replica", "")), str(t.get("trained_at", "")),
                     str(t.get("hostname", "")), str(t.get("device", "")), str(t.get("budget", "")),
                     str(t.get("stopped_because", "")), str(t.get("best_epoch", ""))])  # fmt: skip
    return rows


_TRAINING_HEADER = ["dataset", "model", "replica", "trained at", "host", "device", "budget", "stopped because", "best epoch"]


def render_html(datasets, tables, plots, config, provenance, entries) -> str:
    """The page as one string (see :func:`build_report`)."""
    sections = []
    for d in datasets:
        rows = tables[d]
        summary = ""
        if rows:
            summary = (
                f'<div class="summary">{_html_table(rows)}{_html_ranking(rows)}</div>'
                '<p class="note">Cells are value ± statistical error; the shaded truth row is truth against '
                "an independent truth sample of the same size (the noise floor). Green: best model per column "
                "(↓ lower is better, ↑ higher is better, → 0.5 / → 1 closeness to the ideal). "
                "For the unweighting efficiency the truth row is flat phase space, the baseline to beat.</p>"
            )
        sections.append(f'<section id="{_e(d)}"><h2>{_e(d)}</h2>{summary}{_html_plots(plots.get(d, []))}</section>')
    versions = "".join(f"<tr><td class='model'>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in provenance.get("packages", {}).items())
    trained = "".join("<tr>" + "".join(f"<td class='model'>{_e(x)}</td>" for x in r) + "</tr>" for r in _training_rows(entries))
    head = "".join(f"<th>{_e(h)}</th>" for h in _TRAINING_HEADER)
    nav = " · ".join(f'<a href="#{_e(d)}">{_e(d)}</a>' for d in datasets)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>hepgenbench report</title><style>{_CSS}</style></head>
<body><div id="broken"></div>
<h1>hepgenbench: generative models benchmark</h1>
<p>Datasets: {nav} · <a href="#provenance">provenance</a></p>
{''.join(sections)}
<section id="provenance"><h2>Provenance</h2>
<p>git commit <code>{_e(provenance.get('git_commit', 'unknown'))}</code>; seed <code>{_e(provenance.get('seed'))}</code>;
report written {_e(provenance.get('report_time', ''))} on {_e(provenance.get('report_host', ''))}
(Python {_e(provenance.get('python', ''))}).</p>
<h3>Packages</h3><table>{versions}</table>
<h3>Training runs</h3><table><thead><tr>{head}</tr></thead><tbody>{trained}</tbody></table>
<h3>Config</h3><pre>{_e(yaml.safe_dump(config or {}, sort_keys=False))}</pre>
</section><script>{_IMAGE_CHECK}</script></body></html>
"""


# ---------------------------------------------------------------- Markdown


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *map(line, rows)])


def render_markdown(datasets, tables, plots, config, provenance, entries) -> str:
    """The same tables as the page, in Markdown; figures are listed by path."""
    out = ["# hepgenbench report", ""]
    for d in datasets:
        rows = tables[d]
        out += [f"## {d}", ""]
        if rows:
            columns = table_columns(rows)
            replicated = any(r.n_replicas > 1 for r in rows)
            best = {k: best_models(rows, k, mode) for k, _, mode in columns}
            header = ["model", "status"]
            for _, label, _ in columns:
                header += [label] + (["± replicas"] if replicated else [])
            header += ["params", "train time", "rate @1e5"]
            body = []
            for row in rows:
                cells = ["*truth (noise floor)*" if row.is_truth else row.model, status_text(row)]
                for key, _, _ in columns:
                    text = format_value_error(row.cells[key].value, row.cells[key].error)
                    cells.append(f"**{text}**" if row.model in best[key] and not row.is_truth else text)
                    if replicated:
                        cells.append(format_spread(row.cells[key].spread))
                body.append(cells + _cost_cells(row))
            ranked = [[r.model, "—" if not math.isfinite(r.mean_rank) else f"{r.mean_rank:.2f}",
                       f"{r.within_noise} / {r.n_with_floor}"] for r in rankings(rows, columns)]  # fmt: skip
            out += [_md_table(header, body), "", "Best per column in **bold**.", "", "### Ranking", ""]
            out += [_md_table(["model", "mean rank", "within noise floor"], ranked), ""]
        if plots.get(d):
            out += ["### Figures", ""]
            out += [f"- {rec.title}: `{rec.path_png}`" for rec, _ in plots[d]]
            out.append("")
    out += ["## Provenance", "", f"- git commit: `{provenance.get('git_commit', 'unknown')}`",
            f"- seed: `{provenance.get('seed')}`"]  # fmt: skip
    out += [f"- {k}: {v}" for k, v in provenance.get("packages", {}).items()]
    out += ["", _md_table(_TRAINING_HEADER, _training_rows(entries)), "", "### Config", "", "```yaml",
            yaml.safe_dump(config or {}, sort_keys=False).rstrip(), "```", ""]  # fmt: skip
    return "\n".join(out)


__all__ = [
    "Cell",
    "Ranking",
    "TableRow",
    "best_models",
    "build_report",
    "collect_provenance",
    "format_value_error",
    "load_metrics",
    "rank_score",
    "rankings",
    "summary_rows",
    "table_columns",
    "within_noise_floor",
    "write_metrics_csv",
]
