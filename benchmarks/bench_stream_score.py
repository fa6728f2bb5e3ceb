"""``hepgenbench score --stream`` on a CaloChallenge pair: wall time, peak RSS, voxel-classifier epochs.

Synthesises a truth file and a generated file in a layout (default ds3: N = 5·10⁴ showers ×
40,500 float32 voxels, 8.1 GB each; :func:`bench_calochallenge.synthesise`), then runs the real
CLI in a fresh process::

    hepgenbench score --truth truth.h5 --generated generated.h5 --binning ds3 --stream \\
        --voxel-epochs 1 --threads 2 --out DIR

and reports its wall time, its peak RSS (the child's ru_maxrss) and the seconds of each voxel
classifier's epoch, read from its log lines. The truth row (halves of the truth file) and the
generated row each train one classifier; with ``--voxel-epochs 1`` the challenge's 50 epochs
are **extrapolated** as the run's time plus 49 more epochs per row, not measured.

    python benchmarks/bench_stream_score.py --layout ds3 --n 50000 \\
        --out benchmarks/results/stream_score.md --json benchmarks/results/stream_score.json
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _output import write_outputs
from bench_calochallenge import TARGET_RSS_MB, synthesise

from hepgenbench.data.calo_geometry import BUILTIN_GEOMETRIES

EPOCH_LINE = re.compile(r"voxel classifier (\S+): epoch (\d+)/(\d+), validation loss \S+, ([\d.]+) s")
SCORING_PEAK = re.compile(r"streamed scoring done: peak RSS (\d+) MB before the figures")
CHALLENGE_EPOCHS = 50


def run_score(truth: Path, generated: Path, layout: str, out: Path, epochs: int, threads: int) -> dict:
    cmd = [sys.executable, "-m", "hepgenbench.cli", "score", "--truth", str(truth), "--generated", str(generated),
           "--binning", layout, "--stream", "--voxel-epochs", str(epochs), "--threads", str(threads), "--out", str(out),
           # each file resamples its own pool of a few hundred simulated showers, so at 5·10⁴ showers the KS
           # test of the incident energies tells the two pools apart: a warning here, not a refusal
           "--allow-einc-mismatch"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"hepgenbench score failed ({result.returncode}):\n{result.stderr[-3000:]}")
    epochs_s: dict[str, list[float]] = {}
    for match in EPOCH_LINE.finditer(result.stderr + result.stdout):
        epochs_s.setdefault(match.group(1), []).append(float(match.group(4)))
    scoring_peak = SCORING_PEAK.search(result.stderr + result.stdout)
    return {"command": " ".join(cmd[1:]), "seconds": seconds,
            "scoring_peak_rss_mb": float(scoring_peak.group(1)) if scoring_peak else None,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "epoch_seconds": epochs_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", default="ds3", choices=sorted(BUILTIN_GEOMETRIES))
    parser.add_argument("--n", type=int, default=50_000, help="showers per file")
    parser.add_argument("--pool", type=int, default=500, help="GFlash showers simulated, then resampled")
    parser.add_argument("--voxel-epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--out", default="benchmarks/results/stream_score.md")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    n_voxels = BUILTIN_GEOMETRIES[args.layout].n_voxels
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="stream-score-", dir=args.workdir))
    try:
        files = {}
        for role, seed in (("truth", 1), ("generated", 2)):
            files[role] = work / f"{role}.h5"
            written = synthesise(files[role], args.layout, args.n, args.pool, seed)
            print(f"{role}: {args.n} × {n_voxels} written in {written:.0f} s", flush=True)
        fig = run_score(files["truth"], files["generated"], args.layout, work / "report", args.voxel_epochs, args.threads)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    per_epoch = {row: sum(s) / len(s) for row, s in fig["epoch_seconds"].items() if s}
    extra = sum((CHALLENGE_EPOCHS - args.voxel_epochs) * s for s in per_epoch.values())
    figures = {"layout": args.layout, "n": args.n, "n_voxels": n_voxels, "file_gb": args.n * n_voxels * 4 / 1e9,
               "voxel_epochs": args.voxel_epochs, "threads": args.threads, **fig, "per_epoch_seconds": per_epoch,
               "extrapolated_50_epochs_seconds": fig["seconds"] + extra, "target_rss_mb": TARGET_RSS_MB,
               "load": [load_before, load_after], "cores": os.cpu_count()}
    lines = [
        "# `hepgenbench score --stream` on a CaloChallenge pair",
        "",
        f"Two synthetic {args.layout} files (GFlash electrons, {args.n:,} showers × {n_voxels:,} float32 voxels, "
        f"{figures['file_gb']:.2f} GB each), scored by the CLI in a fresh process with the default evaluation "
        f"options, the voxel classifier capped at {args.voxel_epochs} epoch(s), {args.threads} threads. "
        f"{os.cpu_count()} cores; load average {' / '.join(f'{x:.2f}' for x in load_before)} before, "
        f"{' / '.join(f'{x:.2f}' for x in load_after)} after.",
        "",
        "| wall [s] | peak RSS [MB] | of which scoring, before the figures [MB] | voxel classifier s/epoch "
        f"(truth row) | (generated row) | {CHALLENGE_EPOCHS} epochs, extrapolated [s] |",
        "|---|---|---|---|---|---|",
        f"| {fig['seconds']:.0f} | {fig['peak_rss_mb']:.0f} | {fig['scoring_peak_rss_mb'] or float('nan'):.0f} | "
        f"{per_epoch.get('truth', float('nan')):.1f} | "
        f"{per_epoch.get('generated', float('nan')):.1f} | {figures['extrapolated_50_epochs_seconds']:.0f} |",
        "",
        f"The {CHALLENGE_EPOCHS}-epoch figure is extrapolated (the run's wall time plus "
        f"{CHALLENGE_EPOCHS - args.voxel_epochs} more epochs per row at the measured rate), not measured. "
        f"Peak RSS target ≤ {TARGET_RSS_MB:.0f} MB. Command: `{fig['command']}`.",
    ]
    write_outputs(args.out, lines, args.json, figures)


if __name__ == "__main__":
    main()
