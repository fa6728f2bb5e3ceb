"""The report: tables, highlighting, replicas, CSV agreement, inlined figures, title, headless rendering.

The page is read as a browser would show it: its tables are parsed into DataFrames (the
page also dumps the config, so searching its text for a model name proves nothing).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import ReportPage
from PIL import Image

from hepgenbench.errors import InputError
from hepgenbench.plots import PlotRecord, write_plot_manifest
from hepgenbench.report import (
    best_models,
    build_report,
    collect_provenance,
    format_count,
    format_rate,
    format_seconds,
    format_value_error,
    ranking_table,
    results_frame,
    summary_table,
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


def _report(tmp_path, entries=ENTRIES, config=None) -> tuple[ReportPage, Path]:
    files, manifests = _write_inputs(tmp_path, entries)
    out = tmp_path / "report"
    config = config or {"seed": 7, "models": {"maf": {}, "gan": {}, "vae": {}}, "replicas": 1}
    build_report(files, manifests, config, str(out), provenance=PROVENANCE)
    parser = ReportPage()
    parser.feed((out / "index.html").read_text())
    return parser, out


def _markdown_table(markdown: str, heading: str) -> pd.DataFrame:
    """The first pipe table after ``heading`` as a DataFrame of cell texts."""
    lines = markdown.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    table = lines[start:end]
    rows = [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])] for line in table]
    return pd.DataFrame(rows[2:], columns=rows[0])


def test_report_lists_every_model_and_a_distinct_truth_row(tmp_path):
    parser, out = _report(tmp_path)
    table = parser.frame("metrics-zmumu")
    assert list(table.index) == ["truth (noise floor)", "maf", "gan", "vae"]
    classes = {row[0]["row"]["data-model"]: row[0]["row"]["class"] for row in parser.tables["metrics-zmumu"][1:]}
    assert classes == {"truth": "truth", "maf": "model", "gan": "model", "vae": "diverged"}
    # The all-null NLL column is omitted.
    assert {metric for _, metric in parser.cells("metrics-zmumu")} == {"c2st_auc", "w1_mean"}
    assert [c for c in table.columns if "NLL" in c] == []
    markdown = _markdown_table((out / "report.md").read_text(), "## zmumu")
    assert list(markdown["model"]) == ["*truth (noise floor)*", "maf", "gan", "vae"]
    assert markdown.set_index("model").at["vae", "status"] == "diverged at epoch 7 (loss is NaN)"
    training = parser.frame("training")
    assert list(training.index) == ["zmumu"] * 3 and list(training["host"]) == ["node7"] * 3
    assert list(parser.frame("packages").index) == ["torch"]


def test_best_model_per_column_is_highlighted(tmp_path):
    parser, out = _report(tmp_path)
    best = {key for key, cell in parser.cells("metrics-zmumu").items() if cell.get("class") == "best"}
    assert best == {("maf", "c2st_auc"), ("gan", "w1_mean")}
    markdown = _markdown_table((out / "report.md").read_text(), "## zmumu").set_index("model")
    bold = {(m, c) for m in markdown.index for c in markdown.columns if markdown.at[m, c].startswith("**")}
    assert bold == {("maf", "C2ST AUC → 0.5"), ("gan", "W1/σ (mean) ↓")}
    assert markdown.at["maf", "C2ST AUC → 0.5"] == "**0.5120 ± 0.0040**"


def test_diverged_row_is_marked_and_keeps_its_numbers(tmp_path):
    parser, _ = _report(tmp_path)
    table = parser.frame("metrics-zmumu")
    assert table.at["vae", "status"] == "diverged at epoch 7 (loss is NaN)"
    status_cell = next(c for c in parser.tables["metrics-zmumu"][4] if "status" in c.get("class", ""))
    assert status_cell["class"] == "status diverged"
    assert parser.cells("metrics-zmumu")[("vae", "w1_mean")]["text"] == "0.500 ± 0.010"
    # A diverged model is not ranked.
    assert parser.frame("ranking-zmumu").at["vae", "mean rank"] == "—"
    # counts of metrics, as the Markdown shows them (not "1.0 / 2.0")
    assert list(parser.frame("ranking-zmumu")["within noise floor"]) == \
        list(_markdown_table(_report(tmp_path / "again")[1].joinpath("report.md").read_text(), "### Ranking")["within noise floor"])
    assert all(re.fullmatch(r"\d+ / \d+", cell) for cell in parser.frame("ranking-zmumu")["within noise floor"])


def test_html_numbers_match_metrics_csv(tmp_path):
    parser, out = _report(tmp_path)
    rows = pd.read_csv(out / "metrics.csv", dtype=str, keep_default_na=False)
    assert list(rows.columns) == ["dataset", "model", "metric", "value", "error", "status", "replica"]
    table = rows.set_index(["model", "metric"])
    cells = parser.cells("metrics-zmumu")
    assert len(cells) == 8
    for (model, metric), cell in cells.items():
        row = table.loc[(model, metric)]
        assert cell["data-value"] == row["value"] and cell["data-error"] == row["error"]
        value, _ = (float(x) for x in cell["text"].split(" ± "))
        assert value == pytest.approx(float(row["value"]), abs=float(row["error"]))
    assert table.loc[("vae", "c2st_auc"), "status"] == "diverged"
    assert table.loc[("maf", "cost.sample_rate_100000"), "value"] == "250000.0"
    assert table.loc[("maf", "c2st_auc"), "replica"] == "0" and table.loc[("truth", "c2st_auc"), "replica"] == ""


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
    entries[2]["model"], entries[2]["name"] = "maf_r1", "maf"
    summary = summary_table(results_frame(entries), "zmumu")
    assert list(summary.index) == ["truth", "maf"] and summary.at["maf", ("row", "n_replicas")] == 2
    assert summary.at["maf", ("c2st_auc", "value")] == pytest.approx(0.53)
    assert summary.at["maf", ("c2st_auc", "error")] == pytest.approx(0.005)
    assert summary.at["maf", ("c2st_auc", "spread")] == pytest.approx(0.02 / 2**0.5)
    parser, _ = _report(tmp_path, entries)
    table = parser.frame("metrics-zmumu")
    assert table.at["maf (×2 replicas)", "C2ST AUC ± replicas"] == "± 0.014"
    assert table.at["truth (noise floor)", "C2ST AUC ± replicas"] == "—"
    # Without replicas there is no such column: the assertion above can fail.
    assert "C2ST AUC ± replicas" not in _report(tmp_path / "single")[0].frame("metrics-zmumu").columns


def test_report_title_comes_from_the_config(tmp_path):
    parser, out = _report(tmp_path, config={"seed": 7, "report": {"title": "Z → μμ <models> & more"}})
    assert parser.title == parser.h1 == "Z → μμ <models> & more"  # escaped in the page, read back as text
    assert "<models>" not in (out / "index.html").read_text()
    assert (out / "report.md").read_text().startswith("# Z → μμ <models> & more\n")
    default, _ = _report(tmp_path / "default", config={"seed": 7})
    assert default.title == default.h1 == "hepgenbench report"


def test_a_model_name_with_markup_is_escaped(tmp_path):
    entries = ENTRIES[:2] + [_entry("<b>x</b>", {"c2st_auc": (0.6, 0.01), "w1_mean": (0.1, 0.01)})]
    parser, out = _report(tmp_path, entries)
    assert list(parser.frame("metrics-zmumu").index)[-1] == "<b>x</b>"
    assert "<b>x</b>" not in (out / "index.html").read_text()


def test_format_value_error():
    assert format_value_error(0.51234, 0.0031) == "0.5123 ± 0.0031"
    assert format_value_error(12.345, 0.6) == "12.35 ± 0.60"
    assert format_value_error(123456.0, 1234.0) == "(1.235 ± 0.012)e5"
    assert format_value_error(1.2e-5, 3e-7) == "(1.200 ± 0.030)e-5"
    assert format_value_error(0.123456, None) == "0.1235"
    assert format_value_error(None, 0.1) == "—"


def test_rankings_and_noise_floor_counts():
    def entry(model, auc, status="ok"):
        return {"dataset": "d", "model": model, "status": status, "metrics": {"c2st_auc": {"value": auc, "error": 0.01}}}

    frame = results_frame([entry("truth", 0.50), entry("a", 0.51), entry("b", 0.40), entry("c", 0.49),
                           entry("d", 0.5, status="diverged")])  # fmt: skip
    summary = summary_table(frame, "d")
    # |AUC − 0.5|: a and c tie at 0.01 (rank 1.5 each), b is last; the diverged d is not ranked.
    assert best_models(summary, "c2st_auc", "half") == {"a", "c"}
    ranked = ranking_table(summary, [("c2st_auc", "AUC", "half")])
    assert list(ranked.index) == ["a", "c", "b", "d"]
    assert ranked.at["a", "mean_rank"] == 1.5 and ranked.at["b", "mean_rank"] == 3.0
    assert ranked.at["d", "n_ranked"] == 0
    # Noise floor: |v − 0.5| ≤ 0 + 2·hypot(0.01, 0.01) = 0.028.
    assert (ranked.at["a", "within_noise"], ranked.at["b", "within_noise"], ranked.at["a", "n_with_floor"]) == (1, 0, 1)


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
    assert '<table class="metrics" id="metrics-zmumu">' in doms["index.html"]
    assert 'data-images="2" data-broken-images="0"' in doms["index.html"]
    assert 'data-broken-images="1"' in doms["broken.html"]
