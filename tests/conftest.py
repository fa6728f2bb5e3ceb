"""Shared test helpers: a copy of the workflow in a temporary directory, a runner for it,
and a parser of the report page's tables."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_snakemake(workdir: Path, *args: str, timeout: float = 900, check: bool = False,
                  env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m snakemake`` in ``workdir`` with the venv's CLI on PATH; ``env`` is set over
    this process's environment (which is left as it is: several runs may go at once)."""
    env = {**os.environ, **(env or {})}
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


class ReportPage(HTMLParser):
    """The page's tables (by id or class), each cell's text and attributes, the images, the
    <title> and the <h1>."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[dict]]] = {}
        self.images: list[str] = []
        self.title = self.h1 = ""
        self._table: list[list[dict]] | None = None
        self._row: list[dict] | None = None
        self._cell: dict | None = None
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id") or a.get("class") or f"table{len(self.tables)}", [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
            self._row_attrs = a
        elif tag in ("td", "th") and self._row is not None:
            self._cell = {**a, "text": "", "tag": tag, "row": self._row_attrs}
            self._row.append(self._cell)
        elif tag == "img":
            self.images.append(a["src"])
        elif tag in ("title", "h1"):
            self._in = tag

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._cell = None
        elif tag == "tr":
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
        if self._in == "title":
            self.title += data
        elif self._in == "h1":
            self.h1 += data

    def frame(self, name: str) -> pd.DataFrame:
        """A table as a DataFrame of cell texts, indexed by each row's first cell."""
        header, *body = self.tables[name]
        return pd.DataFrame([[c["text"].strip() for c in row] for row in body],
                            columns=[c["text"].strip() for c in header]).set_index(header[0]["text"].strip())  # fmt: skip

    def cells(self, name: str) -> dict[tuple[str, str], dict]:
        """The value cells of a summary table by (row model, metric key), with their attributes."""
        return {(c["row"]["data-model"], c["data-metric"]): c for row in self.tables[name][1:] for c in row
                if "data-metric" in c}  # fmt: skip


#: The CaloChallenge binning XMLs and published results, beside the project (never in it).
SHARED_CALOCHALLENGE = ROOT.parent / "shared" / "data" / "calochallenge"


@pytest.fixture
def calochallenge_files() -> Path:
    """``../shared/data/calochallenge``: the challenge's binning XMLs and results tables.

    A cross-check against the challenge's own files. On a user's clone they are absent and
    the test is skipped with its reason; under CI (``CI`` set) their absence is a failure.
    """
    if not SHARED_CALOCHALLENGE.is_dir():
        message = f"{SHARED_CALOCHALLENGE} is absent: the CaloChallenge files are not distributed with the project"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run this cross-check)")
        pytest.skip(message)
    return SHARED_CALOCHALLENGE
