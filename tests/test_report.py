"""The report: tables, highlighting, replicas, CSV agreement, inlined figures, headless rendering."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from hepgenbench.errors import InputError
from hepgenbench.plots import PlotRecord, write_plot_manifest
from hepgenbench.report import (
    Cell,
    TableRow,
    best_models,
    build_report,
    collect_provenance,
    format_count,
    format_rate,
    format_seconds,
    format_value_error,
    rankings,
    summary_rows,
)

PROVENANCE = {"git_commit": "abc123", "packages": {"torch": "2.13.0"}, "seed": 7}


def _entry(model, metrics, status="ok", detail="", family=None, replica=0, dataset="zmumu"):
    entry = {
        "dataset": dataset, "model": model, "name": model, "family": family or model, "status": status,
        "status_detail": detail, "n_truth": 1000, "n_generated": 1000,
        "metrics": {k: {"value": v, "error": e} for k, (v, e) in metrics.items()},
        "cost": None if model == "truth" else {"n_parameters": 12345, "train_time_s": 65.0, "time_to_best_s": 40.0,
                                               "sample_rate": {"1": 10.0, "1000": 1e4, "100000": 2.5e5}, "peak_memory_mb": 100.0},
        "training": None if model == "truth" else {"device": "cpu", "hostname": "node7", "machine": "x86_64", "gpu": None,
                                                   "trained_at": "2025-01-01T00:00:00", "seed": 1, "epochs": 3,
                                                   "best_epoch": 3, "stopped_because": "max_epochs", "budget": "epochs", "replica": replica},
    }  # fmt: skip
    return entry


# Handcrafted: MAF is closest to AUC 0.5 among the healthy models; the diverged VAE would
# win the AUC column (exactly 0.5) but a diverged model gets no highlight. The GAN has the
# lowest W1. Nobody has an NLL: that column is dropped.
ENTRIES = [
    _entry("truth", {"c2st_auc": (0.502, 0.004), "w1_mean": (0.010, 0.002), "nll_per_dim": (None, None)}),
    _entry("maf", {"c2st_auc": (0.512, 0.004), "w1_mean": (0.030, 0.003), "nll_per_dim": (None, None)}),
    _entry("gan", {"c2st_auc": (0.431, 0.004), "w1_mean": (0.011, 0.002), "nll_per_dim": (None, None)}),
    _entry("vae", {"c2st_auc": (0.500, 0.004), "w1_mean": (0.500, 0.010)}, status="diverged", detail="epoch 7 (loss is NaN)"),
]


def _write_inputs(tmp_path: Path, entries=ENTRIES) -> tuple[list[str], list[str]]:
    files = []
    for k, e in enumerate(entries):
        path = tmp_path / "metrics" / f"{e['dataset']}_{e['model']}_{k}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(e))
        files.append(str(path))
    plots = tmp_path / "plots"
    plots.mkdir()
    records = []
    for name, color in (("m_mumu", "red"), ("losses", "blue")):
        Image.new("RGB", (40, 30), color).save(plots / f"{name}.png", format="PNG")
        kind = "observable" if name == "m_mumu" else "training"
        records.append(PlotRecord(str(plots / f"{name}.png"), str(plots / f"{name}.pdf"), kind, name, f"caption {name}"))
    write_plot_manifest(str(tmp_path / "manifest.json"), records, dataset="zmumu")
    return files, [str(tmp_path / "manifest.json")]


class _TableParser(HTMLParser):
    """Collects summary-table cells (by row model and metric), row classes, imgs and status cells."""

    def __init__(self):
        super().__init__()
        self.cells: dict[tuple[str, str], dict] = {}
        self.row_class: dict[str, str] = {}
        self.images: list[str] = []
        self.status: dict[str, str] = {}
        self._row = None
        self._cell = None
        self._in_metrics = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("class") == "metrics":
            self._in_metrics = True
        elif tag == "tr" and self._in_metrics and "data-model" in a:
            self._row = a["data-model"]
            self.row_class[self._row] = a.get("class", "")
        elif tag == "td" and self._row is not None:
            if "data-metric" in a:
                self._cell = self.cells.setdefault((self._row, a["data-metric"]), dict(a, text=""))
            elif "status" in a.get("class", ""):
                self._cell = self.status.setdefault(self._row, {"text": "", "class": a["class"]})
        elif tag == "img":
            self.images.append(a["src"])

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        elif tag == "table":
            self._in_metrics = False
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data


def _report(tmp_path, entries=ENTRIES) -> tuple[_TableParser, Path]:
    files, manifests = _write_inputs(tmp_path, entries)
    out = tmp_path / "report"
    build_report(files, manifests, {"seed": 7, "models": ["maf", "gan", "vae"]}, str(out), provenance=PROVENANCE)
    parser = _TableParser()
    parser.feed((out / "index.html").read_text())
    return parser, out


def test_report_lists_every_model_and_a_distinct_truth_row(tmp_path):
    parser, out = _report(tmp_path)
    assert set(parser.row_class) == {"truth", "maf", "gan", "vae"}
    assert parser.row_class["truth"] == "truth" and parser.row_class["maf"] == "model"
    assert {metric for _, metric in parser.cells} == {"c2st_auc", "w1_mean"}  # all-null NLL column omitted
    markdown = (out / "report.md").read_text()
    assert "*truth (noise floor)*" in markdown and "| vae | diverged at epoch 7 (loss is NaN) |" in markdown
    html = (out / "index.html").read_text()
    assert "abc123" in html and "node7" in html and "seed: 7" in html  # provenance and config


def test_best_model_per_column_is_highlighted(tmp_path):
    parser, _ = _report(tmp_path)
    best = {(m, k) for (m, k), cell in parser.cells.items() if cell.get("class") == "best"}
    assert best == {("maf", "c2st_auc"), ("gan", "w1_mean")}
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "**0.5120 ± 0.0040**" in markdown and "**0.0110 ± 0.0020**" in markdown


def test_diverged_row_is_marked_and_keeps_its_numbers(tmp_path):
    parser, _ = _report(tmp_path)
    assert parser.row_class["vae"] == "diverged"
    assert parser.status["vae"]["text"] == "diverged at epoch 7 (loss is NaN)"
    assert parser.cells[("vae", "w1_mean")]["text"] == "0.500 ± 0.010"


def test_html_numbers_match_metrics_csv(tmp_path):
    parser, out = _report(tmp_path)
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert set(rows[0]) == {"dataset", "model", "metric", "value", "error", "status", "replica"}
    table = {(r["model"], r["metric"]): r for r in rows}
    for (model, metric), cell in parser.cells.items():
        row = table[(model, metric)]
        assert cell["data-value"] == row["value"] and cell["data-error"] == row["error"]
        value, error = (float(x) for x in cell["text"].split(" ± "))
        assert value == pytest.approx(float(row["value"]), abs=float(row["error"]))
    assert table[("vae", "c2st_auc")]["status"] == "diverged"
    assert table[("maf", "cost.sample_rate_100000")]["value"] == "250000.0"


def test_every_image_is_an_inlined_png(tmp_path):
    parser, _ = _report(tmp_path)
    assert len(parser.images) == 2
    for src in parser.images:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        with Image.open(io.BytesIO(base64.b64decode(src[len(prefix) :]))) as im:
            assert im.format == "PNG" and im.size == (40, 30)


def test_replicas_show_mean_and_spread(tmp_path):
    entries = ENTRIES[:1] + [
        _entry("maf", {"c2st_auc": (0.52, 0.004), "w1_mean": (0.03, 0.002)}, replica=0),
        _entry("maf", {"c2st_auc": (0.54, 0.006), "w1_mean": (0.05, 0.004)}, replica=1),
    ]
    rows = summary_rows(entries, "zmumu")
    assert [r.model for r in rows] == ["truth", "maf"] and rows[1].n_replicas == 2
    auc = rows[1].cells["c2st_auc"]
    assert auc.value == pytest.approx(0.53) and auc.error == pytest.approx(0.005)
    assert auc.spread == pytest.approx(0.02 / 2**0.5)
    _, out = _report(tmp_path, entries)
    html = (out / "index.html").read_text()
    assert "<th>± replicas</th>" in html and "± 0.014" in html


def test_format_value_error():
    assert format_value_error(0.51234, 0.0031) == "0.5123 ± 0.0031"
    assert format_value_error(12.345, 0.6) == "12.35 ± 0.60"
    assert format_value_error(123456.0, 1234.0) == "(1.235 ± 0.012)e5"
    assert format_value_error(1.2e-5, 3e-7) == "(1.200 ± 0.030)e-5"
    assert format_value_error(0.123456, None) == "0.1235"
    assert format_value_error(None, 0.1) == "—"


def _row(model, auc, err=0.01, status="ok"):
    return TableRow("d", model, model, status, "", {"c2st_auc": Cell(auc, err)})


def test_rankings_and_noise_floor_counts():
    rows = [_row("truth", 0.50), _row("a", 0.51), _row("b", 0.40), _row("c", 0.49), _row("d", 0.5, status="diverged")]
    # |AUC − 0.5|: a and c tie at 0.01 (rank 1.5 each), b is last; the diverged d is not ranked.
    assert best_models(rows, "c2st_auc", "half") == {"a", "c"}
    ranked = {r.model: r for r in rankings(rows, [("c2st_auc", "AUC", "half")])}
    assert ranked["a"].mean_rank == 1.5 and ranked["b"].mean_rank == 3.0
    assert ranked["d"].n_ranked == 0
    # Noise floor: |v − 0.5| ≤ 0 + 2·hypot(0.01, 0.01) = 0.028.
    assert (ranked["a"].within_noise, ranked["b"].within_noise, ranked["a"].n_with_floor) == (1, 0, 1)


def test_metrics_without_required_keys_are_an_input_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"dataset": "zmumu", "metrics": {}}))
    with pytest.raises(InputError, match=r"bad\.json.*model: required key is missing"):
        build_report([str(bad)], [], {}, str(tmp_path / "out"), provenance=PROVENANCE)


def test_provenance_without_git(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    prov = collect_provenance({"seed": 3})
    assert prov["git_commit"].startswith("unknown") and prov["seed"] == 3
    assert prov["packages"]["numpy"][0].isdigit()


def test_cost_formatting():
    assert (format_count(12345), format_seconds(65.0), format_rate(2.5e5)) == ("12.3k", "1.1 min", "2.5e5/s")
    assert (format_rate(850.0), format_rate(None), format_seconds(7200)) == ("850/s", "—", "2 h")


@pytest.mark.chromium
def test_report_renders_in_headless_chromium(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is not installed: apt-get install -y chromium"
    _, out = _report(tmp_path)
    # Break one copy of the page's image on purpose: the check must see the difference.
    broken = out / "broken.html"
    text = (out / "index.html").read_text()
    broken.write_text(text.replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1))
    doms = {}
    for page in (out / "index.html", broken):
        result = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
             "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        doms[page.name] = result.stdout
    assert '<table class="metrics">' in doms["index.html"]
    assert 'data-images="2" data-broken-images="0"' in doms["index.html"]
    assert 'data-broken-images="1"' in doms["broken.html"]
