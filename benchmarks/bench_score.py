"""`hepgenbench score` speed: the full suite on showers and on an event table, with peak memory.

Two targets of the scoring issue, each timed in a fresh process so that its peak RSS is its
own:

* CaloChallenge dataset-1-photon layout, N generated against N truth showers (truth file
  2N, cut into halves for the floor), the full suite: voxel and high-level classifiers,
  FPD/KPD on the high-level features, the histograms' separation power, W1. Target at
  N = 1e5: ≤ 90 s on 2 cores.
* An event table of N × 10 (the Z→μμ features). Target at N = 1e6: ≤ 60 s.

Each is measured at a few N and the exponent of time ∝ N^k is fitted on them. The time is
``score_files`` (reading, checks, three rows of the suite), without the figures and the
page, which are timed separately once.

    python benchmarks/bench_score.py --out benchmarks/results/score.md --json benchmarks/results/score.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import write_outputs  # noqa: E402

CHILD = r"""
import json, resource, sys, time
from hepgenbench.scoring import score_files, write_outputs
kind, truth, generated, out = sys.argv[1:5]
t0 = time.perf_counter()
result = score_files(truth, {"generated": generated}, kind=kind or None, seed=1)
scored = time.perf_counter() - t0
t1 = time.perf_counter()
if out:
    write_outputs(result, out)
report = time.perf_counter() - t1 if out else None
print(json.dumps({"score_s": scored, "report_s": report, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "n": result.records["generated"].n_generated,
                  "auc": result.records["generated"].metrics["c2st_auc"]["value"]}))
"""


def showers(directory: Path, n: int) -> tuple[str, str]:
    from hepgenbench.data.calo import simulate_showers

    truth, generated = directory / f"calo_truth_{n}.h5", directory / f"calo_gen_{n}.h5"
    simulate_showers(truth, 2 * n, 1, log=lambda *_: None, dtype="float32", compression=None)
    simulate_showers(generated, n, 2, log=lambda *_: None, dtype="float32", compression=None)
    return str(truth), str(generated)


def distort(path: str, factor: float) -> str:
    """A copy of a showers file with every voxel scaled by ``factor``: a generator whose energy
    scale is off. Its classifier no longer stops early, so it is the slower case of the suite."""
    import h5py

    out = path.replace(".h5", f"_x{factor}.h5")
    with h5py.File(path) as src, h5py.File(out, "w") as dst:
        dst["incident_energies"] = src["incident_energies"][:]
        dst["showers"] = src["showers"][:] * np.float32(factor)
    return out


def events(directory: Path, n: int) -> tuple[str, str]:
    from hepgenbench.io import write_events
    from hepgenbench.testing import zmumu_peak

    truth, generated = directory / f"events_truth_{n}.h5", directory / f"events_gen_{n}.h5"
    write_events(truth, zmumu_peak(2 * n, 1))
    write_events(generated, zmumu_peak(n, 2))
    return str(truth), str(generated)


def run_child(kind: str, truth: str, generated: str, out: str = "") -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, kind, truth, generated, out], capture_output=True, text=True,
                          env={**os.environ, "POT_BACKEND_DISABLE_PYTORCH": "1"})
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def exponent(ns: list[int], seconds: list[float]) -> float | None:
    if len(ns) < 2:
        return None
    return float(np.polyfit(np.log(ns), np.log(seconds), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calo-n", default="10000,30000,100000", help="generated showers per run (truth: twice as many)")
    parser.add_argument("--events-n", default="100000,300000,1000000", help="generated events per run")
    parser.add_argument("--distorted", type=float, default=1.05,
                        help="also score, at the largest N, the showers with voxels scaled by this (0: skip)")
    parser.add_argument("--out", default="benchmarks/results/score.md")
    parser.add_argument("--json", default="benchmarks/results/score.json")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    figures: dict = {"calo": [], "events": [], "load_before": load_before, "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench_score_") as tmp:
        directory = Path(tmp)
        for key, make, kind, sizes in (("calo", showers, "calo", args.calo_n), ("events", events, "", args.events_n)):
            for n in [int(x) for x in sizes.split(",")]:
                truth, generated = make(directory, n)
                start = time.perf_counter()
                row = run_child(kind, truth, generated, str(directory / f"report_{key}") if n == int(sizes.split(",")[0]) else "")
                row["wall_s"] = time.perf_counter() - start
                figures[key].append(row)
                print(key, n, row, flush=True)
                if key == "calo" and n == max(int(x) for x in sizes.split(",")) and args.distorted:
                    off = distort(generated, args.distorted)
                    row = {**run_child(kind, truth, off), "distorted": args.distorted}
                    figures["calo_distorted"] = row
                    print(key, n, "distorted", row, flush=True)
                    Path(off).unlink()
                for path in (truth, generated):
                    Path(path).unlink()
    figures["load_after"] = os.getloadavg()[0]
    for key in ("calo", "events"):
        rows = figures[key]
        figures[f"{key}_exponent"] = exponent([r["n"] for r in rows], [r["score_s"] for r in rows])
    lines = ["# hepgenbench score: speed and memory", "",
             f"{figures['cores']} cores; load average {load_before:.1f} before, {figures['load_after']:.1f} after "
             "(other work on the machine slows every figure).", "",
             "| sample | N generated (truth 2N) | score (s) | peak RSS (MB) | C2ST AUC | report (s) |", "|---|---|---|---|---|---|"]
    for key, label in (("calo", "showers, ds1-photons (368 voxels)"), ("events", "events, 10 features")):
        distorted = [figures["calo_distorted"]] if key == "calo" and "calo_distorted" in figures else []
        for r in figures[key] + distorted:
            report = f"{r['report_s']:.1f}" if r.get("report_s") is not None else ""
            what = f"{label}, voxels × {r['distorted']}" if "distorted" in r else label
            lines.append(f"| {what} | {r['n']:,} | {r['score_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['auc']:.3f} | {report} |")
    lines += ["", "Time ∝ N^k: " + ", ".join(
        f"{key} k = {figures[f'{key}_exponent']:.2f}" for key in ("calo", "events") if figures[f"{key}_exponent"] is not None)
        + " (same-law samples). Targets: showers 1e5 ≤ 90 s, events 1e6 ≤ 60 s (2 cores).", "",
        "Scoring runs the rows (truth and each file) side by side, one core each. The C2ST is the "
        "suite's largest part: its boosted trees stop early on a sample they cannot separate, and "
        "run their 100 iterations on one they can, so a distorted sample costs more.", "",
        "Run: `python benchmarks/bench_score.py --out benchmarks/results/score.md --json benchmarks/results/score.json`.", ""]
    write_outputs(args.out, lines, args.json, figures)


if __name__ == "__main__":
    main()
