"""Each stage's time against the number of events, with the fitted exponent of t ∝ n^k.

At n = 1e4, 1e5, 1e6 events (one run each, one thread, as the rules run them):

* ingest: :func:`hepgenbench.stages.ingest` (read + write ``events.h5``) of a synthetic
  NanoAOD-like ROOT file written with uproot (see ``bench_memory.write_nanoaod_like``; the
  ≥ 1 jet requirement keeps about 92 % of its n events);
* preprocessing: :meth:`Preprocessor.fit` + :meth:`Preprocessor.forward`;
* one training epoch of a representative flow (RealNVP, default hyperparameters);
* sampling n events from it in batches of 1e4 (as the sample stage does);
* the whole metric suite (:func:`hepgenbench.evaluate.evaluate_sample`, default options),
  n vs n events;
* the classifier two-sample test with its event cap raised to n, and the exact EMD against
  its subsample size (quadratic memory, so up to 4000).

The device is chosen as the pipeline chooses it (CUDA when present).

    python benchmarks/bench_scaling.py --out benchmarks/results/scaling.md [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import hepgenbench.models  # noqa: F401  (registers the families)
from bench_memory import ZMUMU_SLICE, write_nanoaod_like
from hepgenbench import stages
from hepgenbench.evaluate import EvalOptions, evaluate_sample
from hepgenbench.io import read_events
from hepgenbench.metrics.classifier import classifier_two_sample_test
from hepgenbench.metrics.wasserstein import exact_emd
from hepgenbench.models.base import TrainSettings, build, select_device
from hepgenbench.preprocess import Preprocessor
from hepgenbench.records import IngestParams
from hepgenbench.train import fit

from _output import write_outputs  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

FLOW = "realnvp"
QUIET = lambda *message: None  # noqa: E731


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def exponent(sizes: list[int], seconds: list[float]) -> float:
    """Slope of log t against log n (least squares)."""
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def stage_times(n: int, workdir: Path, device: torch.device) -> dict[str, float]:
    """Seconds of each stage at ``n`` events."""
    params = IngestParams.from_dict({**ZMUMU_SLICE, "name": "scaling"})
    for name, seed in (("truth", 1), ("other", 2), ("train", 3)):
        write_nanoaod_like(workdir / f"{name}.root", n, seed=seed)
    out: dict[str, float] = {}
    def ingest(name: str) -> None:
        stages.ingest({"files": str(workdir / f"{name}.root")}, {"events": str(workdir / f"{name}.h5")}, params, threads=1)

    out["ingest"], _ = timed(lambda: ingest("truth"))
    for name in ("other", "train"):  # an independent "generated" sample and training set
        ingest(name)
    truth, other, train = (read_events(workdir / f"{name}.h5") for name in ("truth", "other", "train"))
    out["preprocess fit+transform"], u = timed(lambda: Preprocessor.fit(truth).forward(truth.features))

    model = build(FLOW, truth.n_features)
    settings = TrainSettings(max_epochs=1, seed=0, device=device.type)
    val = u[: min(len(u), 10_000)]
    out[f"train 1 epoch ({FLOW})"], _ = timed(lambda: fit(model, u, val, settings=settings, log=QUIET))
    gen = torch.Generator(device=device).manual_seed(0)

    def sample() -> None:
        with torch.no_grad():
            for start in range(0, n, 10_000):
                model.sample(min(10_000, n - start), generator=gen)

    out[f"sample ({FLOW}, batches of 1e4)"], _ = timed(sample)
    out["metric suite (n vs n)"], _ = timed(lambda: evaluate_sample(truth, other, train, EvalOptions(), seed=0))
    out["C2ST (hgb, 5 folds, cap = n)"], _ = timed(
        lambda: classifier_two_sample_test(truth.features, other.features, "hgb", 5, 0, max_events=n))
    for path in workdir.iterdir():
        path.unlink()
    return out


def emd_times(sizes: list[int]) -> list[float]:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((max(sizes), 10)), rng.standard_normal((max(sizes), 10)) + 0.1
    return [timed(lambda: exact_emd(x, y, subsample=n, n_repeats=1, rng=0, num_itermax=10_000_000))[0] for n in sizes]


def run(sizes: list[int], emd_sizes: list[int]) -> dict:
    device = select_device("auto")
    # Warm-up: torch's first optimiser step and first autograd pass cost about a second.
    warm = np.random.default_rng(0).standard_normal((2_000, 10))
    fit(build(FLOW, 10), warm, warm[:500], settings=TrainSettings(max_epochs=1, device=device.type), log=QUIET)
    per_n = {}
    with tempfile.TemporaryDirectory(prefix="hgb-scaling-") as tmp:
        for n in sizes:
            per_n[n] = stage_times(n, Path(tmp), device)
            print(n, {k: round(v, 2) for k, v in per_n[n].items()}, flush=True)
    stages_ = list(per_n[sizes[0]])
    table = {s: [per_n[n][s] for n in sizes] for s in stages_}
    emd = emd_times(emd_sizes)
    return {
        "device": str(device), "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        "sizes": sizes, "seconds": table, "exponents": {s: exponent(sizes, t) for s, t in table.items()},
        "emd_sizes": emd_sizes, "emd_seconds": emd, "emd_exponent": exponent(emd_sizes, emd),
        "load_average": os.getloadavg()[0],
    }


def to_markdown(r: dict) -> list[str]:
    sizes = r["sizes"]
    device = r["device"] + (f" ({r['gpu']})" if r["gpu"] else " (no GPU on this machine: the CUDA table is not measured)")
    return [
        f"Device: {device}; one thread (as the rules run). Time in seconds, one run each; k is the slope of "
        "log t against log n. The metric suite subsamples (EMD 1500, C2ST 50k, FPD ≤ 50k, memorisation 10k), so "
        "its k is below 1; the C2ST row raises its cap to n.",
        "",
        "| stage | " + " | ".join(f"n = {n:.0e}" for n in sizes) + " | k |",
        "|---|" + "---|" * (len(sizes) + 1),
        *[f"| {s} | " + " | ".join(f"{t:.2f}" for t in ts) + f" | {r['exponents'][s]:.2f} |" for s, ts in r["seconds"].items()],
        "",
        "Exact EMD (one repeat, 10-D) against its subsample size: "
        + ", ".join(f"n = {n}: {t:.2f} s" for n, t in zip(r["emd_sizes"], r["emd_seconds"]))
        + f"; k = {r['emd_exponent']:.2f} (the n×n cost matrix: 800 MB at n = 1e4).",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/scaling.md")
    parser.add_argument("--json", default=None)
    parser.add_argument("--quick", action="store_true", help="n = 1e3, 1e4 only (a smoke run)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes = [1_000, 10_000] if args.quick else [10_000, 100_000, 1_000_000]
    emd_sizes = [250, 500] if args.quick else [1000, 2000, 4000]
    with threadpool_limits(limits=1):
        result = run(sizes, emd_sizes)
    lines = ["# Scaling with the number of events", "", *to_markdown(result)]
    write_outputs(args.out, lines, args.json, result)


if __name__ == "__main__":
    main()
