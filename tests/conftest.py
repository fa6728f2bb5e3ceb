"""Shared fixtures: a copy of the workflow in a temporary directory, and a runner for it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_snakemake(workdir: Path, *args: str, timeout: float = 900, check: bool = False) -> subprocess.CompletedProcess:
    """``python -m snakemake`` in ``workdir`` with the venv's CLI on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("CONDOR_CONFIG", "/dev/null")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def copy_workflow(dest: Path) -> Path:
    """The workflow's definition (not its results) copied into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Snakefile", dest / "Snakefile")
    shutil.copytree(ROOT / "workflow", dest / "workflow", dirs_exist_ok=True)
    shutil.copytree(ROOT / "config", dest / "config", dirs_exist_ok=True)
    shutil.copytree(ROOT / "profiles", dest / "profiles", dirs_exist_ok=True)
    return dest


def write_config(workdir: Path, config: dict, name: str = "test.yaml") -> Path:
    path = workdir / "config" / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def workflow_dir(tmp_path: Path) -> Path:
    return copy_workflow(tmp_path / "wf")


@pytest.fixture
def quick_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "quick.yaml").read_text())
