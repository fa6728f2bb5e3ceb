"""Speed of every generator family with its default hyperparameters, as a markdown table.

Measures, on standardised Gaussian data (speed does not depend on what was learned):
sampling rate at batch 1, 1e3 and 1e5 in 10-D; training throughput (events/s over one
epoch); flow matching's sampling rate against its number of ODE steps; MAF's sampling rate
against the dimension (one pass per feature). Run:

    python benchmarks/bench_models.py --out benchmarks/results/models.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from zuko.transforms import MonotonicRQSTransform

import hepgenbench.models  # noqa: F401  (registers the families)
from hepgenbench.io import atomic_path
from hepgenbench.models import flows
from hepgenbench.models.base import REGISTRY, build
from hepgenbench.train import TrainSettings, fit, sampling_rates


def training_throughput(family: str, dim: int, n_events: int) -> float:
    """Events/s of one training epoch at the default batch size."""
    data = np.random.default_rng(0).standard_normal((n_events, dim))
    model = build(family, dim)
    settings = TrainSettings(max_epochs=1, seed=0)
    if model.trains_on_density:
        from hepgenbench.train import fit_density

        log_density = lambda u: -0.5 * (u**2).sum(-1)  # noqa: E731
        settings = TrainSettings(max_epochs=1, density_steps_per_epoch=max(1, n_events // settings.density_batch_size))
        t0 = time.perf_counter()
        fit_density(model, log_density, settings, log=lambda m: None)
        return settings.density_steps_per_epoch * settings.density_batch_size / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    fit(model, data, data[:1000], settings=settings, log=lambda m: None)
    return n_events / (time.perf_counter() - t0)


def largest_batch_rate(model, batch: int) -> float | None:
    """Median rate at ``batch`` over up to 3 calls. The 1e3 batch measured first limits a
    slow sampler (cfm) to the calls that fit in a minute; a single call longer than that
    is not made, and reads None."""
    return sampling_rates(model, batch_sizes=(1000, batch), repeats=3, max_seconds=60.0)[batch]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/models.md")
    parser.add_argument("--dim", type=int, default=10)
    parser.add_argument("--largest-batch", type=int, default=100_000)
    parser.add_argument("--train-events", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the figures as JSON here")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.largest_batch, args.train_events = 10_000, 2_000
    figures: dict = {"dim": args.dim, "largest_batch": args.largest_batch, "threads": args.threads,
                     "load_average": os.getloadavg()[0], "families": {}, "nsf_variants": {}, "cfm_steps": {}, "maf_dims": {}}
    fmt = lambda rate: "skipped (> 30 s per call)" if rate is None else f"{rate:.3g}"  # noqa: E731
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    lines = [
        "# Generator speed (default hyperparameters, CPU)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} thread(s). Untrained models on {args.dim}-D data; events/s, median of repeats.",
        "",
        f"## Sampling and training, {args.dim}-D",
        "",
        f"| family | parameters | batch 1 | batch 1e3 | batch {args.largest_batch:.0e} | "
        f"batch {args.largest_batch:.0e}, all {os.cpu_count()} cores | training (events/s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for family in sorted(REGISTRY):
        model = build(family, args.dim)
        small = sampling_rates(model, batch_sizes=(1, 1000), repeats=3)
        large = largest_batch_rate(model, args.largest_batch)
        # The same batch on the whole CPU: what a user sampling on this machine gets.
        torch.set_num_threads(os.cpu_count() or 1)
        large_all = largest_batch_rate(model, args.largest_batch)
        torch.set_num_threads(args.threads)
        train_rate = training_throughput(family, args.dim, args.train_events)
        figures["families"][family] = {"parameters": model.n_parameters(), "sample_1": small[1], "sample_1e3": small[1000],
                                       "sample_largest": large,
                                       "sample_largest_all_cores": large_all, "train_events_per_s": train_rate}
        lines.append(
            f"| {family} | {model.n_parameters():,} | {fmt(small[1])} | {fmt(small[1000])} | "
            f"{fmt(large)} | {fmt(large_all)} | {train_rate:.3g} |"
        )
        print(lines[-1], flush=True)

    lines += ["", f"## NSF: the spline's bin normalisation and the conditioner width ({args.dim}-D, batch "
              f"{args.largest_batch:.0e}, {args.threads} thread(s))", "",
              "torch's CPU softmax over a last dimension of a few bins is slow; `flows.RQSTransform` normalises the "
              "bins by exp / sum instead, and its inverse normalises only the bin each value falls in; otherwise it "
              "is zuko's `MonotonicRQSTransform` (tests/test_models.py compares the two).", "",
              "| variant | parameters | events/s |", "|---|---|---|"]
    for key, label, hidden, spline in (
        ("softmax", "zuko's spline (softmax), 128 hidden", (128, 128), MonotonicRQSTransform),
        ("default", "RQSTransform (exp / sum, one bin normalised), 128 hidden: the default", (128, 128), flows.RQSTransform),
        ("narrow", "RQSTransform (exp / sum, one bin normalised), 96 hidden", (96, 96), flows.RQSTransform),
    ):
        with mock.patch.object(flows, "RQSTransform", spline):
            model = build("nsf", args.dim, hidden=hidden)
        rate = largest_batch_rate(model, args.largest_batch)
        figures["nsf_variants"][key] = {"label": label, "parameters": model.n_parameters(), "sample_largest": rate}
        lines.append(f"| {label} | {model.n_parameters():,} | {fmt(rate)} |")
        print(lines[-1], flush=True)

    lines += ["", f"## Flow matching: sampling rate against ODE steps (rk4, {args.dim}-D, batch 1e4)", "",
              "| n_steps | network evaluations | events/s |", "|---|---|---|"]
    for n_steps in (4, 8) if args.quick else (4, 8, 16, 32, 64):
        model = build("cfm", args.dim, n_steps=n_steps)
        rate = sampling_rates(model, batch_sizes=(10_000,), repeats=1)[10_000]
        figures["cfm_steps"][n_steps] = rate
        lines.append(f"| {n_steps} | {4 * n_steps} | {rate:.3g} |")
        print(lines[-1], flush=True)

    lines += ["", "## MAF: sampling rate against dimension (one pass per feature; batch 1e4)", "",
              "| dimension | MAF events/s | RealNVP events/s |", "|---|---|---|"]
    for dim in (2, 5, 10) if args.quick else (2, 5, 10, 20, 40, 80):
        maf = sampling_rates(build("maf", dim), batch_sizes=(10_000,), repeats=1)[10_000]
        nvp = sampling_rates(build("realnvp", dim), batch_sizes=(10_000,), repeats=1)[10_000]
        figures["maf_dims"][dim] = {"maf": maf, "realnvp": nvp}
        lines.append(f"| {dim} | {maf:.3g} | {nvp:.3g} |")
        print(lines[-1], flush=True)

    with atomic_path(Path(args.out)) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
