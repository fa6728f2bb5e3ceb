"""Data-layer throughput: ROOT ingestion vs bare uproot, Pythia per level, GFlash showers.

    python benchmarks/bench_data.py --n 50000 --out benchmarks/results/data.md [--json data.json]

Each figure is the median of ``--repeats`` runs on one core of the machine it runs on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import uproot

from hepgenbench.data import calo
from hepgenbench.data.pythia import generate_zmumu
from hepgenbench.data.readers import read_root, zmumu_spec

QUIET = lambda message: None  # noqa: E731


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/data.md")
    parser.add_argument("--n", type=int, default=50_000, help="events for ingestion and parton-level Pythia")
    parser.add_argument("--n-hadron", type=int, default=500, help="events for hadron-level Pythia")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the figures as JSON here")
    args = parser.parse_args()

    rows, figures = [], {"n": args.n, "load_average": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        root_file = Path(tmp) / "zmumu.root"
        generate_zmumu(root_file, args.n, seed=1, level="parton", log=QUIET)
        spec = zmumu_spec(root_file)
        branches = sorted({f"{c}_{f}" for c, cs in spec.collections.items() for f in cs.fields})
        bare = median_seconds(lambda: uproot.open(root_file)["Events"].arrays(branches), args.repeats)
        ours = median_seconds(lambda: read_root(spec), args.repeats)
        figures.update(bare_events_per_s=args.n / bare, ours_events_per_s=args.n / ours, ingest_ratio=bare / ours)
        rows.append(("ingest: bare `uproot ... .arrays(branches)`", f"{args.n / bare:,.0f} events/s", ""))
        rows.append(("ingest: `read_root(zmumu_spec)`", f"{args.n / ours:,.0f} events/s",
                     f"ratio to bare {bare / ours:.2f} (target ≥ 0.5)"))

        for level, n in (("hard", args.n), ("parton", args.n), ("hadron", args.n_hadron)):
            summary = generate_zmumu(Path(tmp) / f"{level}.root", n, seed=2, level=level, log=QUIET)
            figures[f"pythia_{level}_events_per_s"] = summary["events_per_second"]
            rows.append((f"Pythia 8 Z→μμ, level `{level}`", f"{summary['events_per_second']:,.0f} events/s",
                         f"{n} events, {summary['n_failed']} failures"))

        n_showers = max(args.n, 20_000)
        summary = calo.simulate_showers(Path(tmp) / "showers.hdf5", n_showers, seed=3, log=QUIET)
        figures["showers_per_s"] = summary["events_per_second"]
        rows.append(("GFlash showers (368 voxels)", f"{summary['events_per_second']:,.0f} showers/s",
                     f"{n_showers} showers (target ≥ 2000)"))

    lines = [
        "# Data-layer throughput",
        "",
        f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}; "
        f"median of {args.repeats} repeats for ingestion, one run for generation.",
        "",
        "| what | rate | notes |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
