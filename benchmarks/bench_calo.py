"""What makes a VAE draw calorimeter showers the truth cannot be told from: its decoder or its prior.

The 2 × 2 ablation behind ``hurdlevae``: the Gaussian decoder on the preprocessed shower
(``vae``) against the hurdle decoder on the cells (``hurdlevae``), each with the N(0, 1)
prior and with the learned flow prior. Every variant runs the workflow's own stages
(:mod:`hepgenbench.stages`: source, ingest, split, preprocess, train, sample, evaluate) on
the default config's calo dataset (30,000 showers), training as the default config does (75 s
wall-clock on one thread, batch 256), once per training seed. The figure is the
high-level classifier AUC of the report (CaloChallenge features and log10 E_inc), with the
truth-vs-truth row beside it. Run:

    python benchmarks/bench_calo.py --out benchmarks/results/calo.md
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hepgenbench import stages
from hepgenbench.io import read_json
from hepgenbench.records import (
    EvaluateParams,
    IngestParams,
    NoParams,
    SampleParams,
    SourceParams,
    SplitParams,
    TrainParams,
    TrainSettings,
)

from _output import write_outputs

VARIANTS = (("vae", "normal"), ("vae", "flow"), ("hurdlevae", "normal"), ("hurdlevae", "flow"))
SEED = 20261125  # the default config's


def prepare(work: Path, n_events: int) -> dict[str, str]:
    """The calo dataset through the data stages, as the workflow makes it."""
    files = {"source": str(work / "calo.hdf5"), "events": str(work / "events.h5"), "split": str(work / "split.h5"),
             "transform": str(work / "transform.json")}
    stages.source({}, {"data": files["source"]}, SourceParams(source="calo", n_events=n_events, seed=SEED), threads=1)
    stages.ingest({"files": files["source"]}, {"events": files["events"]}, IngestParams(name="calo", source="calo"), threads=1)
    stages.split({"events": files["events"]}, {"split": files["split"]}, SplitParams(seed=SEED), threads=1)
    stages.preprocess({k: files[k] for k in ("events", "split")}, {"transform": files["transform"]}, NoParams(), threads=1)
    return files


def run_variant(files: dict[str, str], work: Path, family: str, prior: str, seed: int, budget: float) -> dict:
    """Train, sample and score one variant; its metrics record and the training wall time."""
    name = f"{family}_{prior}_{seed}"
    model, sample, metrics = (str(work / f"{name}.{ext}") for ext in ("pt", "h5", "json"))
    training = TrainSettings(time_budget_s=budget, batch_size=256, seed=seed)
    stages.train({k: files[k] for k in ("events", "split", "transform")}, {"model": model, "log_csv": str(work / f"{name}.csv")},
                 TrainParams(family=family, hparams={"prior": prior}, training=training), threads=1)
    stages.sample({"model": model, **{k: files[k] for k in ("events", "split", "transform")}}, {"sample": sample},
                  SampleParams(model=name, seed=seed, rate_batch_sizes=[1000]), threads=1)
    stages.evaluate({"sample": sample, "events": files["events"], "split": files["split"]}, {"metrics": metrics},
                    EvaluateParams(dataset="calo", model=name, name=name, seed=SEED), threads=1)
    return read_json(metrics)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=75.0, help="training seconds per model (the default config's)")
    parser.add_argument("--seeds", type=int, default=2, help="training seeds per variant")
    parser.add_argument("--events", type=int, default=30_000, help="showers generated (the default config's)")
    parser.add_argument("--out", default="benchmarks/results/calo.md")
    parser.add_argument("--json", default="benchmarks/results/calo.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    t0 = time.perf_counter()
    figures: dict = {"budget_s": args.budget, "events": args.events, "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = prepare(work, args.events)
        stages.evaluate({"events": files["events"], "split": files["split"]}, {"metrics": str(work / "truth.json")},
                        EvaluateParams(dataset="calo", model="truth", name="truth", seed=SEED), threads=1)
        figures["truth_hl_auc"] = read_json(work / "truth.json")["metrics"]["c2st_auc_high_level"]["value"]
        for family, prior in VARIANTS:
            runs = []
            for seed in range(args.seeds):
                record = run_variant(files, work, family, prior, seed, args.budget)
                bins = record["metrics"]["per_energy_bin"]["bins"]
                runs.append({"hl_auc": record["metrics"]["c2st_auc_high_level"]["value"],
                             "epochs": record["training"]["epochs"],
                             "hl_auc_by_energy": [b["c2st_auc"] for b in bins if "c2st_auc" in b]})
                print(f"{family} / {prior} / seed {seed}: HL AUC {runs[-1]['hl_auc']:.3f}", flush=True)
            figures["variants"][f"{family}/{prior}"] = runs

    lines = [
        f"# VAE decoders and priors on the calo showers ({args.events:,} showers, {args.budget:.0f} s of training, "
        f"{args.seeds} seed(s))",
        "",
        f"High-level C2ST AUC (0.5: indistinguishable; target of issue 10: ≤ 0.75). Truth A against truth B: "
        f"{figures['truth_hl_auc']:.3f}. Per energy: the mean HL AUC of the 8 incident energies up to 32.8 GeV and "
        f"of the 7 above. {time.perf_counter() - t0:.0f} s in all.",
        "",
        "| decoder | prior | HL AUC per seed | median | ≤ 32.8 GeV / above | epochs |",
        "|---|---|---|---|---|---|",
    ]
    for (family, prior), runs in zip(VARIANTS, figures["variants"].values()):
        aucs = [r["hl_auc"] for r in runs]
        by_energy = np.mean([r["hl_auc_by_energy"] for r in runs], axis=0)
        split = f"{by_energy[:8].mean():.2f} / {by_energy[8:].mean():.2f}" if len(by_energy) == 15 else "—"
        decoder = "hurdle (hit, then gamma energy), on the cells" if family == "hurdlevae" else "Gaussian, on the shower shares"
        lines.append(f"| {decoder} (`{family}`) | {prior} | {', '.join(f'{a:.3f}' for a in aucs)} | {np.median(aucs):.3f} | "
                     f"{split} | {', '.join(str(r['epochs']) for r in runs)} |")
    write_outputs(args.out, lines, args.json, figures)


if __name__ == "__main__":
    main()
