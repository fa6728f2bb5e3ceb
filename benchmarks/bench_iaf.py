"""The IAF as a phase-space sampler: its two transforms, trained as the workflow trains them.

Each transform (``affine``, the default, and ``spline`` on the unit box) is trained on the
phasespace dataset's explicit density for the default config's budget, once per training
seed, with the preprocessing fitted on freshly generated events exactly as the workflow
does. Each trained flow then draws 1e5 events, weighted w = p/q with p the true density;
the table gives the unweighting efficiency ⟨w⟩/max w (arXiv:2212.06172), where in the unit
box the largest weight sits, and the sampling rate at batch 1e5 on one thread. Flat phase
space is drawn alike as the baseline.

Each flow is also quoted against VEGAS (:mod:`hepgenbench.physics.vegas_baseline`), seeded
like the flow, at two budgets of density evaluations: as many as the flow's weighted events
(the report's rule) and as many as the flow's training drew (epochs × steps × batch, an
upper bound: the last epoch may stop early). Both sides are read against the reduced
maximum, the median of bootstrap-replica maxima (arXiv:2001.10028), and the table gives the
flow's efficiency as a multiple of VEGAS's per seed. Run:

    python benchmarks/bench_iaf.py --out benchmarks/results/iaf.md
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _output import write_outputs

import hepgenbench.models  # noqa: F401  (registers the families)
from hepgenbench.data import phasespace
from hepgenbench.io import EventSet
from hepgenbench.kinds import get as get_kind
from hepgenbench.metrics.unweighting import unweighting_efficiency
from hepgenbench.models.base import build
from hepgenbench.physics.vegas_baseline import vegas_weights
from hepgenbench.preprocess import Preprocessor
from hepgenbench.stages import density_in_network_space
from hepgenbench.train import TrainSettings, fit_density, sampling_rates

TRANSFORMS = ("affine", "spline")


def unweighting(model, pre: Preprocessor, n: int, seed: int) -> tuple[dict, np.ndarray]:
    """The unweighting figures of ``n`` fresh events of a density-trained flow
    (:func:`unweighting_efficiency`), and the largest weight's point in the features' unit
    box (fraction of each feature's interval)."""
    with torch.no_grad():
        u, log_q_u = model.sample_and_log_prob(n, generator=torch.Generator().manual_seed(seed))
    u, log_q_u = u.double().cpu().numpy(), log_q_u.double().cpu().numpy()
    x = pre.inverse(u)
    log_p, log_q = phasespace.log_density(x), log_q_u + pre.log_abs_det_jacobian(x)
    box = pre.unit_box()
    heaviest = u[np.argmax(log_p - log_q)]
    at = 1 / (1 + np.exp(-(np.asarray(box["scale"]) * heaviest + np.asarray(box["loc"])))) if box else heaviest
    return unweighting_efficiency(log_p, log_q, seed), at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=75.0, help="training seconds per flow (the default config's)")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per transform")
    parser.add_argument("--events", type=int, default=100_000, help="events drawn to weigh each flow")
    parser.add_argument("--out", default="benchmarks/results/iaf.md")
    parser.add_argument("--json", default="benchmarks/results/iaf.json")
    parser.add_argument("--transforms", nargs="+", default=list(TRANSFORMS), choices=TRANSFORMS)
    args = parser.parse_args()

    torch.set_num_threads(1)
    x, _ = phasespace.sample(60_000, seed=0)
    pre = Preprocessor.fit(EventSet(x, list(phasespace.FEATURE_NAMES), transforms=phasespace.transforms()))
    log_density = density_in_network_space("phasespace", pre)
    flat_x, _ = phasespace.sample_flat(args.events, np.random.default_rng(0))
    flat = unweighting_efficiency(phasespace.log_density(flat_x), phasespace.flat_log_density(flat_x))["efficiency"]

    figures: dict = {"flat": flat, "budget_s": args.budget, "events": args.events}
    lines = [
        f"# IAF on the phasespace density: {args.budget:.0f} s of training, {args.events:.0e} events weighed",
        "",
        f"Flat phase space: unweighting efficiency {flat:.3f}.",
        "",
        "| transform | seed | epochs | KL(p‖q) val | efficiency | largest weight at (box u of m2_12, m2_23, phi, cos_theta, psi) |",
        "|---|---|---|---|---|---|",
    ]
    density = get_kind("phasespace").density(list(phasespace.FEATURE_NAMES))
    vegas_rows = []
    for transform in args.transforms:
        effs = []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            model = build("iaf", len(pre.features),
                          transform=transform, unit_box=pre.unit_box())
            settings = TrainSettings(time_budget_s=args.budget, seed=seed)
            record = fit_density(model, log_density, settings, log=lambda m: None)
            weights, at = unweighting(model, pre, args.events, seed=100 + seed)
            eff = weights["efficiency"]
            effs.append(eff)
            lines.append(f"| {transform} | {seed} | {len(record.epochs)} | {record.best_val_loss:.4f} | {eff:.3f} | "
                         f"{', '.join(f'{v:.3f}' for v in at)} |")
            trained_on = len(record.epochs) * settings.density_steps_per_epoch * settings.density_batch_size
            for budget, n_train in (("events", args.events), ("training", trained_on)):
                vegas = vegas_weights(density, n_train=n_train, n_events=args.events, seed=100 + seed)
                vegas_rows.append({"transform": transform, "seed": seed, "budget": budget, "n_train": vegas["n_train_evaluations"],
                                   "flow": weights["efficiency_reduced_max"], "flow_raw": eff,
                                   "vegas": vegas["efficiency_reduced_max"], "vegas_raw": vegas["efficiency"],
                                   "ratio": weights["efficiency_reduced_max"] / vegas["efficiency_reduced_max"]})
        rate = sampling_rates(model, batch_sizes=(100_000,), cond_pool=None, repeats=3)[100_000]
        figures[transform] = {"efficiency_median": float(np.median(effs)), "per_seed": effs, "sampling_rate_1e5": rate}
    lines += ["", "| transform | median efficiency | sampling rate at batch 1e5, 5-D, one thread (events/s) |", "|---|---|---|"]
    lines += [f"| {t} | {figures[t]['efficiency_median']:.3f} | {figures[t]['sampling_rate_1e5']:.2e} |" for t in args.transforms]
    lines += ["", "Against VEGAS, seeded like the flow, both read against the reduced maximum ⟨w⟩/w̃_max (raw ⟨w⟩/max w in "
              "brackets); VEGAS budget: as many density evaluations as the flow's weighted events, or as its training drew.",
              "", "| transform | seed | VEGAS budget (evaluations) | flow | VEGAS | flow / VEGAS |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['transform']} | {r['seed']} | {r['budget']} ({r['n_train']:.2e}) | {r['flow']:.3f} ({r['flow_raw']:.3f}) | "
              f"{r['vegas']:.3f} ({r['vegas_raw']:.3f}) | {r['ratio']:.2f} × |" for r in vegas_rows]
    figures["vegas"] = vegas_rows
    write_outputs(args.out, lines, args.json, figures)


if __name__ == "__main__":
    main()
