"""The physics figures (:mod:`hepgenbench.physics`): the Z line shape with its fits, and the
calorimeter response and resolution against incident energy.

Both draw what the metrics records hold (``z_lineshape``, ``calo_response``), so a figure
shows the very fits and points of the report's physics table; the line shape adds the
histogram of m_μμ each fit was made on.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

from hepgenbench.kinds.base import KindPlotInputs
from hepgenbench.physics.calo_response import resolution_model
from hepgenbench.physics.lineshape import BIN_WIDTH_GEV, FIT_RANGE_GEV, voigtian_cdf
from hepgenbench.plots import TRUTH_COLOR, save_figure
from hepgenbench.records import PlotRecord

#: the figure kind the report groups these under
PLOT_KIND = "physics"
#: the line shape is drawn in wider bins than it is fitted in, for legible points
DRAW_BINS_PER_FIT_BIN = 2


def _block(metrics: Mapping[str, Mapping], model: str, key: str) -> dict | None:
    block = ((metrics.get(model) or {}).get("metrics") or {}).get(key)
    return block if isinstance(block, dict) else None


def fitted_counts(fit: Mapping, edges: np.ndarray) -> np.ndarray:
    """Expected events per bin of ``edges`` of a line-shape fit (``LineShapeFit.to_dict``)."""
    lo, hi = fit["fit_range"]
    fine = np.linspace(lo, hi, round((hi - lo) / BIN_WIDTH_GEV) * 8 + 1)
    cdf = np.interp(edges, fine, voigtian_cdf(fine, fit["mass"], fit["width"], fit["resolution"]))
    f = fit["background_fraction"]
    return fit["n_in_range"] * ((1 - f) * np.diff(cdf) + f * np.diff(edges) / (hi - lo))


def z_lineshape_plot(inp: KindPlotInputs) -> PlotRecord:
    """One panel per model: truth's m_μμ (points) and fit (dashed), the model's histogram
    and fit, and the mass and width pulls the model's ``z_lineshape`` record holds."""
    i = inp.obs_names.index("m_mumu")
    lo, hi = FIT_RANGE_GEV
    edges = np.linspace(lo, hi, round((hi - lo) / (BIN_WIDTH_GEV * DRAW_BINS_PER_FIT_BIN)) + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    truth_counts, _ = np.histogram(inp.truth_obs[:, i], edges)
    models = list(inp.samples)
    ncols = min(4, max(1, len(models)))
    nrows = -(-max(1, len(models)) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.8 * ncols, 4.2 * nrows), squeeze=False, constrained_layout=True)
    fine = np.linspace(lo, hi, 441)  # the fitted curve, as expected events per drawn bin
    fine_centres, per_drawn_bin = 0.5 * (fine[1:] + fine[:-1]), (edges[1] - edges[0]) / (fine[1] - fine[0])
    for ax, model in zip(axes.flat, models):
        block = _block(inp.metrics, model, "z_lineshape") or {}
        ax.errorbar(centres, truth_counts, yerr=np.sqrt(truth_counts), fmt="o", ms=2.5, color=TRUTH_COLOR, label="truth")
        counts, _ = np.histogram(inp.sample_obs[model][:, i], edges)
        ax.stairs(counts, edges, color=inp.colors[model], label=model)
        title = model
        for which, style in (("truth", {"color": TRUTH_COLOR, "ls": "--"}), ("generated", {"color": inp.colors[model]})):
            fit = block.get(which)
            if fit:
                ax.plot(fine_centres, fitted_counts(fit, fine) * per_drawn_bin, lw=1.2, **style)
        if block.get("generated"):
            title += (f": pull m {block.get('pull_mass') or float('nan'):+.1f}σ, "
                      f"Γ {block.get('pull_width') or float('nan'):+.1f}σ")
        elif block.get("skipped"):
            title += f": {block['skipped'][:40]}"
        ax.set_title(title, fontsize="small")
        ax.set_xlabel(r"$m_{\mu\mu}$ [GeV]", fontsize="small")
        ax.set_ylabel(f"events / {edges[1] - edges[0]:.2g} GeV", fontsize="small")
        ax.tick_params(labelsize="x-small")
        ax.legend(fontsize="xx-small")
    for ax in list(axes.flat)[len(models):]:
        ax.set_axis_off()
    png, pdf = save_figure(fig, inp.out / "physics" / "z_lineshape.png")
    return PlotRecord(
        png, pdf, PLOT_KIND, f"{inp.dataset}: Z line shape",
        f"m_μμ in the fit window {lo:g}–{hi:g} GeV: truth (points, fit dashed) against each model (histogram, "
        "fit solid). The fit is a Voigtian plus a flat background, a binned extended likelihood; the title "
        "gives the model's pulls on the Z mass and width against truth.",
    )  # fmt: skip


def calo_resolution_plot(inp: KindPlotInputs) -> list[PlotRecord]:
    """Response ⟨E_tot/E_inc⟩ and resolution σ/E against E_inc with the a/√E ⊕ b ⊕ c/E fits,
    for truth and every model whose record has ``calo_response``; none if no record has it."""
    found = {m: b for m in inp.samples if (b := _block(inp.metrics, m, "calo_response"))}
    if not found:
        return []
    fig, axes = plt.subplots(1, 2, figsize=(14, 6), constrained_layout=True)
    first = next(iter(found.values()))
    curves = [("truth", "truth", first, {"color": TRUTH_COLOR, "lw": 2, "ls": "--"})]
    curves += [(m, "generated", block, {"color": inp.colors[m], "lw": 1.2}) for m, block in found.items()]
    for name, which, block, style in curves:
        rows = [r for r in block.get("bins", []) if "skipped" not in r]
        if not rows:
            continue
        e = np.array([r["e_gev"] for r in rows])
        for ax, what in zip(axes, ("response", "resolution")):
            y = np.array([np.nan if r[f"{what}_{which}"] is None else r[f"{what}_{which}"] for r in rows], dtype=float)
            err = np.array([np.nan if r[f"{what}_{which}_error"] is None else r[f"{what}_{which}_error"] for r in rows],
                           dtype=float)  # fmt: skip
            ax.errorbar(e, y, yerr=err, fmt="o", ms=4, capsize=2, color=style["color"], label=name)
        fit = block.get(f"fit_{which}") or {}
        if "a" in fit:
            grid = np.geomspace(e.min(), e.max(), 200)
            axes[1].plot(grid, resolution_model(grid, fit["a"], fit["b"], fit["c"]), **style)
    axes[0].set_ylabel(r"response $\langle E_{tot}/E_{inc}\rangle$", fontsize="small")
    axes[1].set_ylabel(r"resolution $\sigma/E$", fontsize="small")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("$E_{inc}$ [GeV]", fontsize="small")
        ax.tick_params(labelsize="x-small")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), fontsize="x-small")
    png, pdf = save_figure(fig, inp.out / "physics" / "calo_response.png")
    return [PlotRecord(
        png, pdf, PLOT_KIND, f"{inp.dataset}: response and resolution vs incident energy",
        "Mean E_tot/E_inc (left) and relative resolution σ/E (right) per incident-energy bin, with bootstrap "
        "errors; the curves are the fits σ/E = a/√E ⊕ b ⊕ c/E (E in GeV), truth dashed.",
    )]  # fmt: skip
