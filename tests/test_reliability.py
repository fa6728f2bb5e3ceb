"""Runs survive: a killed run resumes, a diverging model still gets its (marked) row,
replicas show their spread. Each test runs the real workflow on a small phase-space config.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import copy_workflow, run_snakemake, write_config

pytestmark = pytest.mark.slow


def small_config(**models) -> dict:
    return {
        "seed": 11,
        "datasets": {"phasespace": {"source": "phasespace", "n_events": 4000}},
        "models": models,
        "training": {"max_epochs": 10, "batch_size": 256, "patience": 100, "time_budget_s": 300},
        "sampling": {"nll_max_events": 500, "rate_batch_sizes": [1, 1000]},
    }


def start_snakemake(workdir: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.setdefault("CONDOR_CONFIG", "/dev/null")
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", *args], cwd=workdir, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def wait_for_epochs(log: Path, n: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and len(re.findall(r"^\[.*\] epoch \d+/", log.read_text(), re.M)) >= n:
            return
        assert proc.poll() is None, "snakemake ended before training reached the kill point"
        time.sleep(0.2)
    raise AssertionError(f"{log} never showed {n} epochs")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_run_resumes_from_checkpoint(tmp_path, sig):
    wf = copy_workflow(tmp_path / "wf")
    # vae trains first (prioritised) and fast; realnvp is killed in the middle of its 40 epochs.
    cfg = small_config(vae={"training": {"max_epochs": 3}}, realnvp={"training": {"max_epochs": 40}})
    cfg_path = write_config(wf, cfg)
    base = wf / "results" / "phasespace"
    args = ("--cores", "1", "--configfile", str(cfg_path))
    proc = start_snakemake(wf, *args, "--prioritize", "results/phasespace/models/vae/model.pt")
    try:
        wait_for_epochs(wf / "results/logs/phasespace/train/realnvp.log", 4, proc)
        assert (base / "models/vae/model.pt").exists(), "vae should have finished before realnvp started"
        finished = {p: p.stat().st_mtime_ns for p in [base / "models/vae/model.pt", base / "data/events.h5"]}
        os.killpg(proc.pid, sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (base / "models/realnvp/model.pt").exists(), "a killed training left a finished-looking model"
    assert (base / "models/realnvp/checkpoint.pt").exists(), "no checkpoint to resume from"

    if sig == signal.SIGKILL:  # nobody released the lock
        run_snakemake(wf, "--unlock", *args, check=True)
    # Resumed as far as the killed model's scores: the stages after them (the truth null, the
    # budget check, figures, report) do not depend on how its training was interrupted.
    metrics = "results/phasespace/metrics/realnvp.json"
    run_snakemake(wf, metrics, *args, "--rerun-incomplete", check=True, timeout=900)  # before --configfile

    for path, mtime in finished.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was redone"
    log = (wf / "results/logs/phasespace/train/realnvp.log").read_text()
    resumed = re.search(r"resuming from .*checkpoint\.pt after epoch (\d+)", log)
    # The checkpoint is written after an epoch's log line: a kill between the two loses one.
    assert resumed and int(resumed.group(1)) >= 3, log[:2000]
    epochs = [int(r["epoch"]) for r in csv.DictReader((base / "models/realnvp/training.csv").open())]
    assert epochs == list(range(1, 41)), "the resumed log must continue the killed one, not restart"
    assert json.loads((wf / metrics).read_text())["metrics"]["c2st_auc"]["value"] is not None
    assert not (base / "models/realnvp/checkpoint.pt").exists(), "checkpoint left behind after success"


def test_diverging_model_and_replicas(tmp_path):
    """One model with an absurd learning rate diverges; the report still completes, marks it,
    keeps the other rows, and shows the spread over two replicas."""
    wf = copy_workflow(tmp_path / "wf")
    cfg = small_config(realnvp={}, mafboom={"family": "maf", "training": {"learning_rate": 1.0e6}})
    cfg["replicas"] = 2
    cfg_path = write_config(wf, cfg)
    run_snakemake(wf, "--cores", "2", "--configfile", str(cfg_path), check=True, timeout=900)

    rows = list(csv.DictReader((wf / "results/report/metrics.csv").open()))
    status = {(r["model"], r["replica"]): r["status"] for r in rows}
    assert status[("mafboom", "0")] == "diverged" and status[("mafboom", "1")] == "diverged"
    assert status[("realnvp", "0")] == "ok" and status[("realnvp", "1")] == "ok"
    auc = {r["replica"]: float(r["value"]) for r in rows if r["model"] == "realnvp" and r["metric"] == "c2st_auc"}
    assert set(auc) == {"0", "1"} and auc["0"] != auc["1"], "replicas must differ in their training seed"
    html = (wf / "results/report/index.html").read_text()
    assert "diverged" in html and "NaN" in html
    assert "± replicas" in html or "replicas" in html
