"""The quality-against-compute figure: C2ST AUC of each family against training time and epochs.

One line per model through the weights kept at fractions of its budget
(:mod:`hepgenbench.budget`), error bars from the C2ST's folds, and truth-vs-truth's AUC on
as many events as a band: a curve that reaches the band cannot be told from truth, one still
falling at its last point would gain from a longer budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hepgenbench.records import BudgetCurve, PlotRecord


def budget_figure(curves: Sequence[BudgetCurve], outdir: str | Path, dataset: str) -> PlotRecord:
    """Draw the figure of one dataset's curves under ``outdir``; returns its record."""
    import mplhep

    from hepgenbench.plots import model_colors, plt, save_figure  # the backend is set there

    with plt.style.context(mplhep.style.CMS), plt.rc_context({"font.size": 13}):
        return _draw(plt, model_colors, save_figure, curves, outdir, dataset)


def _draw(plt, model_colors, save_figure, curves: Sequence[BudgetCurve], outdir: str | Path, dataset: str) -> PlotRecord:
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), sharey=True)
    colors = model_colors([c.model for c in curves])
    for ax, (x_of, label) in zip(axes, ((lambda p: p.time_s, "training time [s]"),
                                        (lambda p: p.epoch, "epochs"))):  # fmt: skip
        if curves:
            floor = curves[0]
            ax.axhspan(floor.truth_auc - floor.truth_auc_error, floor.truth_auc + floor.truth_auc_error,
                       color="0.85", label="truth vs truth (±1σ)")
        ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
        for curve in curves:
            x = [x_of(p) for p in curve.points]
            ax.errorbar(x, [p.auc for p in curve.points], yerr=[p.auc_error for p in curve.points], marker="o",
                        ms=4, capsize=2, color=colors[curve.model], label=curve.model)
            # an open marker: the run stopped before this fraction, its final weights stand in
            missed = [(xi, p.auc) for xi, p in zip(x, curve.points) if not p.reached]
            if missed:
                ax.plot(*zip(*missed), ls="none", marker="o", ms=8, mfc="none", color=colors[curve.model])
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("C2ST AUC (0.5: like truth)")
    axes[1].legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.suptitle(f"{dataset}: quality against training compute", fontsize=15)
    fig.tight_layout()
    png, pdf = save_figure(fig, Path(outdir) / "quality_vs_compute.png")
    n = curves[0].n_per_class if curves else 0
    axis = curves[0].axis if curves else "budget"
    caption = (f"C2ST AUC of the weights each model kept at fractions of its {axis} budget, on {n} truth events "
               "against as many generated (same events and classifier seed for every point); grey band: truth "
               "against truth on as many events. An open circle marks a fraction the run stopped before "
               "(early stopping or another limit): its final weights stand there. A curve still falling at its "
               "last point would gain from a longer budget; crossing curves mean the winner depends on it.")
    return PlotRecord(path_png=png, path_pdf=pdf, kind="budget", title="Quality against training compute",
                      caption=caption)
