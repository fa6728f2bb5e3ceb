"""The CaloChallenge-2022 views of calorimeter showers (arXiv:2410.21611).

Four figures, drawn by :meth:`hepgenbench.kinds.calo.Calo.extra_plots` with the kind's
geometry (:class:`~hepgenbench.data.calo_geometry.CaloGeometry`) and its one
incident-energy binning rule (:class:`~hepgenbench.data.calo_geometry.EnergyBins`):

- the average radial profile per layer;
- the average shower in (α, r) of the angularly binned layers;
- the mean energy per layer against the incident energy, in the bins the per-energy
  scores use;
- those scores, W1 and C2ST AUC of the high-level features per incident-energy bin, as
  ``evaluate_sample`` writes them in ``metrics["per_energy_bin"]``;

and a gallery of single showers (:func:`shower_gallery`), the first look at a generator:
the average shower hides the speckle, missing cores and identical copies that single
showers show.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from hepgenbench.data.calo_geometry import CaloGeometry, CaloLayer, EnergyBins
from hepgenbench.errors import InputError
from hepgenbench.io import EventSet
from hepgenbench.kinds.base import KindPlotInputs
from hepgenbench.plots import TRUTH_COLOR, save_figure
from hepgenbench.records import PlotRecord

if TYPE_CHECKING:
    from hepgenbench.kinds.calo import Calo


def calo_plots(inp: KindPlotInputs, kind: Calo) -> list[PlotRecord]:
    """Radial profiles, the average shower, mean layer energy against E_inc and, when the
    metrics records hold them, the scores per E_inc bin."""
    geometry = kind.geometry(inp.truth)
    sets = {"truth": inp.truth, **inp.samples}
    records = [
        radial_profiles(inp.dataset, geometry, sets, inp.colors, inp.out),
        average_shower(inp.dataset, geometry, sets, inp.out),
    ]
    e_inc = {name: _incident_energy(kind, name, events) for name, events in sets.items()}
    bins = scored_energy_bins(inp.metrics) or kind.energy_bins(inp.truth)
    records.append(layer_energy_vs_einc(inp.dataset, geometry, sets, e_inc, bins, inp.colors, inp.out))
    per_bin = per_energy_bin(inp.dataset, inp.metrics, list(inp.samples), inp.colors, inp.out)
    if per_bin is not None:
        records.append(per_bin)
    records += shower_gallery(inp.dataset, geometry, sets, e_inc, gallery_bins(e_inc["truth"]), inp.out)
    return records


def _incident_energy(kind: Calo, name: str, events: EventSet) -> np.ndarray:
    try:
        return kind.incident_energy(events)
    except InputError as err:
        raise InputError(f"calo {'truth' if name == 'truth' else f'samples of {name!r}'}: {err}") from None


def _style_layer_axes(axes, layers: tuple[CaloLayer, ...], xlabel: str, ylabel: str, log_x: bool = False) -> None:
    """One panel per calorimeter layer: log energy axis, layer titles, shared labels, one legend."""
    axes = np.atleast_1d(axes)
    for ax, layer in zip(axes, layers):
        if log_x:
            ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"layer {layer.layer_id}", fontsize="small")
        ax.set_xlabel(xlabel, fontsize="small")
        ax.tick_params(labelsize="x-small")
    axes[0].set_ylabel(ylabel, fontsize="small")
    axes[-1].legend(fontsize="xx-small")


#: most layers drawn as panels of one figure (datasets 2 and 3 have 45): evenly in depth beyond
MAX_LAYER_PANELS = 9


def panel_layers(layers: Sequence[CaloLayer]) -> tuple[list[CaloLayer], str]:
    """The layers a per-layer figure draws, and a caption note when they are not all of them.

    At most :data:`MAX_LAYER_PANELS`, spread evenly from the first to the last: a figure of
    45 layer panels is 200 inches wide and needs gigabytes to draw."""
    layers = list(layers)
    if len(layers) <= MAX_LAYER_PANELS:
        return layers, ""
    picked = [layers[i] for i in np.unique(np.linspace(0, len(layers) - 1, MAX_LAYER_PANELS).round().astype(int))]
    return picked, (f" Layers {', '.join(str(layer.layer_id) for layer in picked)} of {len(layers)} are drawn, "
                    "evenly in depth.")


def _line_style(name: str, colors: Mapping[str, str]) -> dict:
    return {"color": TRUTH_COLOR, "lw": 2} if name == "truth" else {"color": colors[name], "lw": 1.2}


def radial_profiles(dataset: str, geometry: CaloGeometry, sets: Mapping[str, EventSet],
                    colors: Mapping[str, str], out: Path) -> PlotRecord:
    """Mean energy per radial bin, summed over α, in each layer."""
    layers, note = panel_layers(geometry.layers)
    fig, axes = plt.subplots(1, len(layers), figsize=(4.5 * len(layers), 4.5), constrained_layout=True)
    for ax, layer in zip(np.atleast_1d(axes), layers):
        edges = np.asarray(layer.r_edges)
        centres = 0.5 * (edges[1:] + edges[:-1])
        for name, events in sets.items():
            profile = np.nanmean(layer.energies(events.features).sum(axis=1), axis=0)
            ax.step(centres, profile, where="mid", label=name, **_line_style(name, colors))
    _style_layer_axes(axes, layers, "r [mm]", "mean energy [MeV]")
    png, pdf = save_figure(fig, out / "calo" / "radial_profiles.png")
    return PlotRecord(
        png, pdf, "calo", f"{dataset}: average radial shower profile",
        "Mean energy per radial bin (summed over angle) in each layer, truth against every model." + note,
    )  # fmt: skip


def average_shower(dataset: str, geometry: CaloGeometry, sets: Mapping[str, EventSet], out: Path) -> PlotRecord:
    """Mean voxel energy of the angularly binned layers in the (α, r) plane, one column per sample."""
    # Only layers binned in angle have an (α, r) image; the others are in the radial profiles.
    shown, note = panel_layers([layer for layer in geometry.layers if layer.n_alpha > 1] or list(geometry.layers[:1]))
    means = {(name, l.layer_id): np.nanmean(l.energies(ev.features), axis=0) for name, ev in sets.items() for l in shown}
    fig, axes = plt.subplots(
        len(shown), len(sets), figsize=(3.2 * len(sets), 3.4 * len(shown)),
        subplot_kw={"projection": "polar"}, squeeze=False, constrained_layout=True,
    )  # fmt: skip
    for row, layer in enumerate(shown):
        positive = np.concatenate([means[(n, layer.layer_id)].ravel() for n in sets])
        positive = positive[positive > 0]
        vmin, vmax = (positive.min(), positive.max()) if positive.size else (1e-3, 1.0)
        norm = matplotlib.colors.LogNorm(vmin=max(vmin, vmax * 1e-6), vmax=vmax)
        alpha_edges = np.linspace(0, 2 * np.pi, layer.n_alpha + 1)
        # Radii on a log(1+r) scale so the dense core is visible next to the wide tail.
        r_plot = np.log1p(np.asarray(layer.r_edges))
        for col, name in enumerate(sets):
            ax = axes[row, col]
            image = np.ma.masked_less_equal(means[(name, layer.layer_id)], 0)
            mesh = ax.pcolormesh(alpha_edges, r_plot, image.T, norm=norm, cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}, layer {layer.layer_id}", fontsize="x-small")
        fig.colorbar(mesh, ax=axes[row, :].tolist(), shrink=0.8, label="mean energy [MeV]")
    png, pdf = save_figure(fig, out / "calo" / "average_shower.png")
    return PlotRecord(
        png, pdf, "calo", f"{dataset}: average shower in (α, r)",
        "Mean voxel energy of the angularly binned layers, drawn in the (α, r) plane with radius on a "
        "log(1 + r/mm) scale; one column per sample, same colour scale per row." + note,
    )  # fmt: skip


def scored_energy_bins(metrics: Mapping[str, Mapping]) -> EnergyBins | None:
    """The incident-energy bins the per-energy scores were computed in (``bins`` of any
    record's ``per_energy_bin``, skipped bins included), or None when no record has them.
    Every record of a dataset bins the same truth with the same options, so the first will do."""
    for entry in metrics.values():
        block = (entry.get("metrics") or {}).get("per_energy_bin")
        rows = block.get("bins") if isinstance(block, dict) else None
        if isinstance(rows, list) and rows:
            try:
                return EnergyBins(tuple(float(b["e_inc_low"]) for b in rows), tuple(float(b["e_inc_high"]) for b in rows))
            except (KeyError, TypeError, ValueError):
                raise InputError(f"metrics of model {entry.get('model')!r}: per_energy_bin.bins need numeric "
                                 "'e_inc_low' and 'e_inc_high'") from None
    return None


def layer_energy_vs_einc(dataset: str, geometry: CaloGeometry, sets: Mapping[str, EventSet],
                         e_inc: Mapping[str, np.ndarray], bins: EnergyBins, colors: Mapping[str, str],
                         out: Path) -> PlotRecord:
    """Mean energy per layer in each incident-energy bin, at the bin's value (discrete) or
    its geometric centre; showers outside truth's bins are left out."""
    layers, note = panel_layers(geometry.layers)
    fig, axes = plt.subplots(1, len(layers), figsize=(4.5 * len(layers), 4.5), constrained_layout=True)
    centres = bins.centres
    for name, events in sets.items():
        idx = bins.index(e_inc[name])
        inside = idx >= 0
        counts = np.bincount(idx[inside], minlength=len(bins))
        for ax, layer in zip(np.atleast_1d(axes), layers):
            e_layer = np.nan_to_num(layer.energies(events.features[inside]).sum(axis=(1, 2)))
            mean = np.bincount(idx[inside], weights=e_layer, minlength=len(bins)) / np.maximum(counts, 1)
            ax.plot(centres[counts > 0], mean[counts > 0], label=name, marker="o" if name == "truth" else ".",
                    **_line_style(name, colors))  # fmt: skip
    _style_layer_axes(axes, layers, "$E_{inc}$ [MeV]", "mean layer energy [MeV]", log_x=True)
    png, pdf = save_figure(fig, out / "calo" / "layer_energy_vs_einc.png")
    binning = ("one point per discrete incident energy" if bins.discrete else
               f"{len(bins)} equal-population bins of truth's incident energy, each at its geometric centre")
    return PlotRecord(
        png, pdf, "calo", f"{dataset}: mean layer energy vs incident energy",
        f"Mean energy deposited in each layer as a function of the incident energy: {binning}, "
        "the bins of the scores per incident energy." + note,
    )  # fmt: skip


@dataclass(frozen=True)
class EnergyBinScores:
    """One sample's scores per incident-energy bin, as ``evaluate_sample`` writes them in
    ``metrics["per_energy_bin"]["bins"]``; bins skipped for too few events are left out."""

    e_inc: np.ndarray  #: the bin's energy: the discrete value, or the geometric centre of [low, high]
    w1: np.ndarray
    w1_error: np.ndarray
    auc: np.ndarray
    auc_error: np.ndarray

    @classmethod
    def from_metrics(cls, entry: Mapping) -> EnergyBinScores | None:
        block = (entry.get("metrics") or {}).get("per_energy_bin")
        if not isinstance(block, dict) or not isinstance(block.get("bins"), list):
            return None
        scored = [b for b in block["bins"] if "c2st_auc" in b and not b.get("skipped")]
        if not scored:
            return None

        def column(key: str) -> np.ndarray:
            return np.array([np.nan if b.get(key) is None else float(b[key]) for b in scored])

        e_inc = np.sqrt(column("e_inc_low") * column("e_inc_high"))
        return cls(e_inc, column("w1_mean"), column("w1_mean_error"), column("c2st_auc"), column("c2st_auc_error"))


def per_energy_bin(dataset: str, metrics: Mapping[str, Mapping], models: list[str], colors: Mapping[str, str],
                   out: Path) -> PlotRecord | None:
    """W1 and C2ST AUC per incident-energy bin of every scored sample (None if none is)."""
    found = {m: EnergyBinScores.from_metrics(metrics[m]) for m in ["truth", *models] if m in metrics}
    found = {m: v for m, v in found.items() if v is not None}
    if not found:
        return None
    panels = (("w1", "W1/σ of the high-level features (mean)", None),
              ("auc", "C2ST AUC on the high-level features", 0.5))  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=(14, 6), constrained_layout=True)
    for ax, (key, ylabel, ideal) in zip(axes, panels):
        for model, scores in found.items():
            style = {"color": TRUTH_COLOR, "ls": "--", "lw": 2} if model == "truth" else {"color": colors[model]}
            ax.errorbar(scores.e_inc, getattr(scores, key), yerr=getattr(scores, f"{key}_error"), marker="o",
                        ms=5, capsize=2, label="truth vs truth" if model == "truth" else model, **style)  # fmt: skip
        if ideal is not None:
            ax.axhline(ideal, color="grey", lw=1, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("$E_{inc}$ [MeV]", fontsize="small")
        ax.set_ylabel(ylabel, fontsize="small")
        ax.tick_params(labelsize="x-small")
    # Below the panels: inside, it covers the points whatever corner it takes.
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), fontsize="x-small")
    png, pdf = save_figure(fig, out / "calo" / "per_energy_bin.png")
    return PlotRecord(
        png, pdf, "calo", f"{dataset}: scores per incident energy",
        "W1/σ and C2ST AUC of the high-level shower features computed separately in each incident-energy "
        "bin, with their errors; truth against truth (dashed) is the noise floor at that bin's sample size, "
        "and 0.5 (dotted) the ideal AUC.",
    )  # fmt: skip


#: showers per sample and incident energy in the gallery
GALLERY_SHOWERS = 2
#: incident energies of the gallery: the lowest, middle and highest of truth's energy bins
GALLERY_ENERGIES = 3
#: sectors the gallery draws a layer's full turn in, at least
GALLERY_ALPHA_SECTORS = 36


def gallery_bins(e_truth: np.ndarray) -> EnergyBins:
    """The gallery's energies: every discrete value of truth's spectrum (one shower is
    enough to show one), else three equal-population ranges."""
    return EnergyBins.from_truth(e_truth, max_bins=GALLERY_ENERGIES, min_events=1)


def gallery_picks(e_inc: Mapping[str, np.ndarray], bins: EnergyBins, n_showers: int = GALLERY_SHOWERS,
                  seed: int = 0) -> list[tuple[int, dict[str, np.ndarray]]]:
    """Per gallery energy bin (lowest, middle, highest of ``bins``), the indices of up to
    ``n_showers`` showers of each sample drawn at random from that bin, seeded by ``seed``
    and the sample's name so that adding a model does not change the others' picks."""
    chosen = sorted({0, len(bins) // 2, len(bins) - 1})[:GALLERY_ENERGIES]
    picks = []
    for i in chosen:
        per_sample = {}
        for name, e in e_inc.items():
            candidates = np.flatnonzero(bins.mask(np.asarray(e, dtype=np.float64).reshape(-1), i))
            rng = np.random.default_rng([seed, i, zlib.crc32(name.encode())])
            per_sample[name] = np.sort(rng.choice(candidates, min(n_showers, len(candidates)), replace=False))
        picks.append((i, per_sample))
    return picks


def shower_gallery(dataset: str, geometry: CaloGeometry, sets: Mapping[str, EventSet],
                   e_inc: Mapping[str, np.ndarray], bins: EnergyBins, out: Path,
                   n_showers: int = GALLERY_SHOWERS) -> list[PlotRecord]:
    """Single showers of truth and every model at three incident energies, one figure per
    energy: a row per shower, a column per layer, each layer in the (α, r) plane.

    The showers are drawn at random within the energy bin, seeded by the dataset's name, so
    a rerun shows the same ones. One colour scale per column (layer), shared by every row.
    """
    seed = zlib.crc32(dataset.encode())
    layers, note = panel_layers(geometry.layers)
    records = []
    for i, picks in gallery_picks(e_inc, bins, n_showers, seed):
        rows = [(name, k) for name in sets for k in picks[name]]
        if not rows:
            continue
        # Cartesian axes with the (α, r) cells as quadrilaterals: polar axes draw the same
        # picture several times slower, and a gallery has dozens of panels.
        # A fixed layout: constrained layout took most of the drawing time of a gallery.
        height = 2.3 * len(rows) + 1.2
        fig, axes = plt.subplots(len(rows), len(layers), figsize=(2.2 * len(layers) + 1, height), squeeze=False)
        fig.subplots_adjust(left=0.02, right=0.98, top=1 - 0.35 / height, bottom=1.15 / height, wspace=0.1, hspace=0.3)
        for col, layer in enumerate(layers):
            images = [layer.energies(sets[name].features[[k]])[0] for name, k in rows]
            positive = np.concatenate([im.ravel() for im in images])
            positive = positive[positive > 0]
            vmax = positive.max() if positive.size else 1.0
            norm = matplotlib.colors.LogNorm(vmin=max(positive.min() if positive.size else 1e-3, vmax * 1e-5), vmax=vmax)
            # Each α bin drawn as several sectors: a polar mesh draws straight chords between its
            # α edges, and a layer with one α bin would have no area at all.
            split = -(-GALLERY_ALPHA_SECTORS // layer.n_alpha)
            alpha_edges = np.linspace(0, 2 * np.pi, layer.n_alpha * split + 1)
            r_plot = np.log1p(np.asarray(layer.r_edges))
            x, y = r_plot[None, :] * np.cos(alpha_edges[:, None]), r_plot[None, :] * np.sin(alpha_edges[:, None])
            for row, ((name, k), image) in enumerate(zip(rows, images)):
                ax = axes[row, col]
                drawn = np.ma.masked_less_equal(np.repeat(image, split, axis=0), 0)
                mesh = ax.pcolormesh(x, y, drawn, norm=norm, cmap="viridis", rasterized=True)
                ax.set_aspect("equal")
                ax.set_axis_off()
                title = f"layer {layer.layer_id}" if col else f"{name} #{k}, E_inc {e_inc[name][k] / 1e3:.3g} GeV\nlayer {layer.layer_id}"
                ax.set_title(title, fontsize="x-small")
            box = axes[-1, col].get_position()
            cax = fig.add_axes((box.x0 + 0.1 * box.width, 0.65 / height, 0.8 * box.width, 0.12 / height))
            bar = fig.colorbar(mesh, cax=cax, orientation="horizontal", label="energy [MeV]")
            bar.ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # a short range labels its minor ticks
        energy = (f"E_inc = {bins.low[i] / 1e3:.3g} GeV" if bins.low[i] == bins.high[i]
                  else f"E_inc in [{bins.low[i] / 1e3:.3g}, {bins.high[i] / 1e3:.3g}] GeV")
        png, pdf = save_figure(fig, out / "calo" / f"single_showers_{i}.png")
        records.append(PlotRecord(
            png, pdf, "calo", f"{dataset}: single showers, {energy}",
            f"Up to {n_showers} showers per sample drawn at random (seeded) with {energy}: a row per shower, "
            "a column per layer, each layer in the (α, r) plane with radius on a log(1 + r/mm) scale, empty "
            "voxels white; one colour scale per layer. Look for speckle, missing cores and identical copies, "
            "which the average shower hides." + note,
        ))  # fmt: skip
    return records
