"""The Dalitz plot of a three-body decay: m²₁₂ against m²₂₃, truth beside every model."""

from __future__ import annotations

import re
import warnings

import matplotlib.pyplot as plt
import numpy as np

from hepgenbench.kinds.base import KindPlotInputs
from hepgenbench.plots import histogram_edges, save_figure, unit_text
from hepgenbench.records import PlotRecord


def dalitz_columns(names: list[str]) -> tuple[int, int] | None:
    """Indices of m²₁₂ and m²₂₃ among ``names`` (``m2_12``, ``m12_sq``, ``s12``, ...), if present."""

    def find(pair: str) -> int | None:
        pattern = re.compile(rf"^(m2_?{pair}|m_?{pair}_?sq|m_?{pair}\^?2|s_?{pair})(\b|_|\s|\[|$)", re.I)
        return next((i for i, n in enumerate(names) if pattern.match(n)), None)

    i, j = find("12"), find("23")
    return None if i is None or j is None else (i, j)


def dalitz_plots(inp: KindPlotInputs, observable_axes: list[tuple[str, str]]) -> list[PlotRecord]:
    """The Dalitz plot of truth and every model on truth's colour scale, from the features
    and derived observables (``observable_axes``: their (label, unit) from the kind); none,
    with a warning, when no m²₁₂/m²₂₃ pair is among them."""
    truth, samples = inp.truth, inp.samples
    names = list(truth.feature_names) + list(inp.obs_names)
    cols = dalitz_columns(names)
    if cols is None:
        warnings.warn(f"{inp.dataset}: no m2_12/m2_23 among columns {names}; the Dalitz plot is not drawn", stacklevel=2)
        return []
    i, j = cols
    units = list(truth.units) + [unit for _, unit in observable_axes]
    labels = [f"{n} [{unit_text(u)}]" if u else n for n, u in zip(names, units)]
    sets = {"truth": np.hstack([truth.features, inp.truth_obs])}
    sets.update({m: np.hstack([s.features, inp.sample_obs[m]]) for m, s in samples.items()})
    x_edges, y_edges = histogram_edges(sets["truth"][:, i], 60), histogram_edges(sets["truth"][:, j], 60)
    ncols = min(4, len(sets))
    nrows = -(-len(sets) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 4.2 * nrows), squeeze=False, constrained_layout=True)
    h_truth = np.histogram2d(sets["truth"][:, i], sets["truth"][:, j], [x_edges, y_edges], density=True)[0]
    vmax = h_truth.max()
    for ax, (name, values) in zip(axes.flat, sets.items()):
        finite = np.all(np.isfinite(values[:, [i, j]]), axis=1)
        h = np.histogram2d(values[finite, i], values[finite, j], [x_edges, y_edges], density=True)[0]
        mesh = ax.pcolormesh(x_edges, y_edges, np.ma.masked_equal(h, 0).T, vmin=0, vmax=vmax, cmap="viridis")
        ax.set_title(name, fontsize="small")
        ax.set_xlabel(labels[i], fontsize="small")
        ax.set_ylabel(labels[j], fontsize="small")
        ax.tick_params(labelsize="x-small")
    for ax in list(axes.flat)[len(sets) :]:
        ax.set_axis_off()
    density_unit = f" [1/({unit_text(units[i])} {unit_text(units[j])})]" if units[i] and units[j] else ""
    fig.colorbar(mesh, ax=axes.ravel().tolist(), shrink=0.8, label=f"density{density_unit}")
    png, pdf = save_figure(fig, inp.out / "phasespace" / "dalitz.png")
    return [
        PlotRecord(
            png, pdf, "dalitz", f"{inp.dataset}: Dalitz plot",
            f"Dalitz plot ({names[i]} vs {names[j]}) of truth and every model, on truth's colour scale: "
            "events outside the kinematic boundary are unphysical.",
        )  # fmt: skip
    ]
