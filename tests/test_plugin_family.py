"""A model family from an installed package runs through the DAG with no edit to the project.

The throwaway package in tests/plugins/hepgenbench_toyfamily declares ``toygauss`` through
the ``hepgenbench.models`` entry point. It is installed into a temporary directory (never
into the environment), put on PYTHONPATH, and the workflow runs a small config that lists
it beside a built-in family: its rows must reach the report.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, copy_workflow, run_snakemake, write_config

pytestmark = pytest.mark.slow

PLUGIN = ROOT / "tests" / "plugins" / "hepgenbench_toyfamily"


def install_plugin(target: Path, scratch: Path) -> None:
    # Built from a copy: a build writes build/ and *.egg-info beside the sources.
    source = shutil.copytree(PLUGIN, scratch / "hepgenbench_toyfamily")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_installed_plugin_family_runs_through_the_dag(tmp_path, monkeypatch):
    site = tmp_path / "site"
    install_plugin(site, tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))

    wf = copy_workflow(tmp_path / "wf")
    config = {
        "seed": 5,
        "datasets": {"phasespace": {"source": "phasespace", "n_events": 3000}},
        "models": {"toygauss": {"init_scale": 0.5}, "realnvp": {"hidden": [32, 32], "transforms": 2}},
        "training": {"max_epochs": 5, "batch_size": 256, "threads": 1},
        "evaluation": {"n_bootstrap": 5, "emd_subsample": 400, "fpd_points": 5, "fpd_resamples": 5, "kpd_batches": 5},
        "sampling": {"nll_max_events": 500, "rate_batch_sizes": [1, 1000]},
    }
    cfg = write_config(wf, config)
    run_snakemake(wf, "--cores", "2", "--configfile", str(cfg), check=True, timeout=1200)

    rows = list(csv.DictReader((wf / "results/report/metrics.csv").open()))
    by_model = {(r["model"], r["metric"]): r for r in rows if r["dataset"] == "phasespace"}
    assert {m for m, _ in by_model} == {"toygauss", "realnvp", "truth"}
    auc = float(by_model["toygauss", "c2st_auc"]["value"])
    assert 0.5 <= auc <= 1 and by_model["toygauss", "c2st_auc"]["status"] == "ok"

    record = json.loads((wf / "results/phasespace/metrics/toygauss.json").read_text())
    assert record["family"] == "toygauss"
    assert math.isfinite(record["metrics"]["nll_per_dim"]["value"])  # its log_prob reached the metrics
    # the plug-in's class, not a built-in, made the model, and the catalogue saw the entry point
    import torch

    exported = torch.load(wf / "results/phasespace/models/toygauss/model.pt", map_location="cpu", weights_only=True)["model"]
    assert (exported["family"], exported["target"]) == ("toygauss", "hepgenbench_toyfamily:ToyGaussian")
    cards = json.loads(next((wf / ".snakemake/hepgenbench").glob("families-*.json")).read_text())["families"]
    assert {c["name"]: c["target"] for c in cards}["toygauss"] == "hepgenbench_toyfamily:ToyGaussian"
