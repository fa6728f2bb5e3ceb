"""The report's physics tables, built from the metrics records of one dataset.

Which tables a dataset gets follows from the metrics its records hold, whatever its kind's
name: ``z_lineshape`` gives the Z line-shape table, ``calo_response`` the response and
resolution table and the bias per energy, ``unweighting_vs_vegas`` the unweighting table
with its VEGAS row, ``held_out_energy_auc`` (leave-one-energy-out) the table of the scores at
the energy the models never saw. The truth record (truth B scored against truth A) supplies the
reference rows: the fit of truth A, and truth B's own figures, the noise floor of the pulls
and biases at this sample size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from hepgenbench.metrics.base import finite_or_none
from hepgenbench.physics.lineshape import PULL_FLAG, SHAPE_P_FLAG

TRUTH = "truth"


@dataclass
class PhysicsTable:
    """One table of the physics section: text cells, one row per sample, first cell the row's name.

    Attributes:
        id: the HTML id, ``<what>-<dataset>``.
        rows: ``{"model", "class", "cells"}``; ``class`` is ``truth`` for the reference rows.
    """

    id: str
    title: str
    header: list[str]
    rows: list[dict] = field(default_factory=list)
    note: str = ""

    def add(self, model: str, cells: list[str], css: str = "model") -> None:
        self.rows.append({"model": model, "class": css, "cells": [model, *cells]})


def _ve(value, error=None, scale: float = 1.0) -> str:
    from hepgenbench.report import format_value_error

    v, e = finite_or_none(value), finite_or_none(error)
    return format_value_error(None if v is None else v * scale, None if e is None else e * scale)


def _fixed(x, fmt: str) -> str:
    x = finite_or_none(x)
    return "—" if x is None else format(x, fmt)


def _signed_percent(value, error) -> str:
    v, e = finite_or_none(value), finite_or_none(error)
    if v is None:
        return "—"
    return f"{100 * v:+.2f} %" if e is None else f"{100 * v:+.2f} ± {100 * e:.2f} %"


def _ordered(entries: list[dict]) -> tuple[dict | None, list[dict]]:
    truth = next((e for e in entries if e["model"] == TRUTH), None)
    return truth, [e for e in entries if e["model"] != TRUTH]


def _metric(entry: Mapping, key: str) -> dict | None:
    block = (entry.get("metrics") or {}).get(key)
    return block if isinstance(block, dict) else None


# ---------------------------------------------------------------- zmumu


#: how the verdict names each flag of ``lineshape_comparison``
FLAG_WORDS = {"pull_mass": "mass", "pull_width": "width", "shape": "shape", "fit": "fit failed"}


def _lineshape_cells(fit: Mapping | None, block: Mapping | None) -> list[str]:
    if not fit:
        return ["—"] * 8
    flags = [FLAG_WORDS.get(f, f) for f in (block or {}).get("flagged", [])]
    pulls = ["", "", "", ""] if block is None else [
        _fixed(block.get("pull_mass"), "+.2f"), _fixed(block.get("pull_width"), "+.2f"),
        f"{_fixed(block.get('shape_chi2'), '.1f')} / {block.get('shape_ndf', '—')}",
        ("off: " + ", ".join(flags)) if flags else "compatible"]  # fmt: skip
    return [_ve(fit["mass"], fit["mass_error"]), _ve(fit["width"], fit["width_error"]), _fixed(fit["resolution"], ".2f"),
            _ve(fit["background_fraction"], fit["background_fraction_error"], 100), *pulls]  # fmt: skip


def lineshape_table(dataset: str, entries: list[dict]) -> PhysicsTable | None:
    """m_Z, Γ_Z, σ and the background fraction of every sample, and the pulls against truth A."""
    truth, models = _ordered(entries)
    blocks = {e["model"]: b for e in entries if (b := _metric(e, "z_lineshape"))}
    if not blocks:
        return None
    any_block = blocks.get(TRUTH) or next(iter(blocks.values()))
    lo, hi = (any_block.get("truth") or {}).get("fit_range", [None, None])
    table = PhysicsTable(
        f"zlineshape-{dataset}", "Z line shape",
        ["sample", "m_Z [GeV]", "Γ_Z [GeV]", "σ [GeV]", "background [%]", "pull m_Z", "pull Γ_Z", "shape χ² / ndf",
         "verdict"],
        note=f"Voigtian (Breit–Wigner ⊗ Gaussian σ) plus a flat background, fitted to m_μμ in {lo}–{hi} GeV by a "
             "binned extended likelihood (iminuit), Hesse errors. Pull = (model − truth A) / √(σ_model² + σ_truth²); "
             f"|pull| > {PULL_FLAG:g} flags the parameter. Shape: the two-sample χ² of the model's and truth A's "
             f"m_μμ histograms in the window; p < {SHAPE_P_FLAG:g} (3σ) flags it. The truth B row is the pull of an independent truth sample "
             "of the same size: the noise floor. σ sits near 0 where the line shape is a pure Breit–Wigner; its "
             "error is then meaningless and not shown.")  # fmt: skip
    table.add("truth A (reference)", _lineshape_cells(any_block.get("truth"), None), css=TRUTH)
    for e in ([truth] if truth is not None else []) + models:
        block = blocks.get(e["model"])
        name = "truth B (noise floor)" if e["model"] == TRUTH else e["model"]
        if block is None:
            continue
        if block.get("skipped"):
            table.add(name, ["—"] * 7 + [block["skipped"]], css=TRUTH if e["model"] == TRUTH else "model")
        else:
            table.add(name, _lineshape_cells(block.get("generated"), block), css=TRUTH if e["model"] == TRUTH else "model")
    return table


# ---------------------------------------------------------------- calo


def _resolution_cells(fit: Mapping | None) -> list[str]:
    if not fit or "a" not in fit:
        return ["—", "—", "—", (fit or {}).get("skipped", "—")]
    return [_ve(fit["a"], fit["a_error"]), _ve(fit["b"], fit["b_error"]), _ve(fit["c"], fit["c_error"]),
            f"{fit['chi2']:.1f} / {fit['ndf']}"]  # fmt: skip


def _worst(block: Mapping, what: str) -> str:
    worst = block.get(f"worst_{what}_bias")
    if not worst:
        return "—"
    return f"{_signed_percent(worst['value'], worst['error'])} at {_fixed(worst['e_gev'], '.3g')} GeV"


def calo_tables(dataset: str, entries: list[dict]) -> list[PhysicsTable]:
    """The fitted resolution terms and worst biases per sample, and the response and resolution
    bias per incident energy."""
    truth, models = _ordered(entries)
    blocks = {e["model"]: b for e in entries if (b := _metric(e, "calo_response"))}
    if not blocks:
        return []
    ref = blocks.get(TRUTH) or next(iter(blocks.values()))
    summary = PhysicsTable(
        f"caloresponse-{dataset}", "Calorimeter response and resolution",
        ["sample", "a [√GeV]", "b", "c [GeV]", "χ² / ndf", "worst response bias", "worst resolution bias"],
        note="σ/E = a/√E ⊕ b ⊕ c/E (E = incident energy in GeV, terms ≥ 0), a least-squares fit (iminuit) to σ/E "
             "per incident-energy bin with bootstrap errors. Response R = ⟨E_tot/E_inc⟩; bias = model/truth A − 1, "
             "the bin farthest from 0. The truth B row is the noise floor of the biases at this sample size.")  # fmt: skip
    summary.add("truth A (reference)", _resolution_cells(ref.get("fit_truth")) + ["", ""], css=TRUTH)
    rows = [(e, blocks[e["model"]]) for e in ([truth] if truth is not None else []) + models if e["model"] in blocks]
    for e, block in rows:
        name = "truth B (noise floor)" if e["model"] == TRUTH else e["model"]
        summary.add(name, _resolution_cells(block.get("fit_generated")) + [_worst(block, "response"),
                    _worst(block, "resolution")], css=TRUTH if e["model"] == TRUTH else "model")  # fmt: skip
    tables = [summary]
    energies = [b for b in ref.get("bins", []) if "skipped" not in b]
    for what, title in (("response", "Response bias per incident energy"),
                        ("resolution", "Resolution bias per incident energy")):  # fmt: skip
        per_energy = PhysicsTable(
            f"calo{what}bias-{dataset}", title, ["sample"] + [f"{b['e_gev']:.3g} GeV" for b in energies],
            note=f"({what} of the model) / ({what} of truth A) − 1 per incident-energy bin, with its error; "
                 "— where a bin holds too few showers.")  # fmt: skip
        per_energy.add("truth A (reference)", [_fixed(b[f"{what}_truth"], ".4f") for b in energies], css=TRUTH)
        for e, block in rows:
            by_low = {b["e_inc_low"]: b for b in block.get("bins", []) if "skipped" not in b}
            cells = [_signed_percent(by_low[b["e_inc_low"]][f"{what}_bias"], by_low[b["e_inc_low"]][f"{what}_bias_error"])
                     if b["e_inc_low"] in by_low else "—" for b in energies]  # fmt: skip
            name = "truth B (noise floor)" if e["model"] == TRUTH else e["model"]
            per_energy.add(name, cells, css=TRUTH if e["model"] == TRUTH else "model")
        tables.append(per_energy)
    return tables


# ---------------------------------------------------------------- phasespace


def _unweighting_cells(w: Mapping, ratio: float | None) -> list[str]:
    return [_fixed(w.get("efficiency"), ".3f"), _fixed(w.get("efficiency_reduced_max"), ".3f"),
            _fixed(w.get("reduced_max_over_max"), ".3f"), _signed_percent(w.get("overweight_fraction"), None).lstrip("+"),
            _signed_percent(w.get("overweight_integral_fraction"), None).lstrip("+"),
            _fixed(w.get("relative_error"), ".2e"), "—" if ratio is None else f"{ratio:.2f} ×", str(w.get("n", "—"))]  # fmt: skip


def unweighting_table(dataset: str, entries: list[dict]) -> PhysicsTable | None:
    """Every sampler's unweighting figures, flat phase space and VEGAS first, and each one's
    efficiency as a multiple of VEGAS's at the same budget."""
    truth, models = _ordered(entries)
    blocks = {e["model"]: b for e in entries if (b := _metric(e, "unweighting_vs_vegas"))}
    if not blocks:
        return None
    ref = blocks.get(TRUTH) or next(iter(blocks.values()))
    sampler = ref.get("sampler") or {}
    table = PhysicsTable(
        f"unweighting-{dataset}", "Unweighting efficiency against VEGAS",
        ["sampler", "⟨w⟩/max w", "⟨w⟩/w̃_max", "w̃_max/max w", "overweights", "overweight integral",
         "σ_I/I", "× VEGAS", "events"],
        note=f"Weights w = p/q of each sampler's own events, p the true density. w̃_max: the median over "
             f"{sampler.get('replicas', '—')} bootstrap replicas of {sampler.get('replica_size', '—')} events "
             "(a tenth of the sample) of the largest weight, the reduced maximum (arXiv:2001.10028); overweights: "
             "events above it, and the share of the integral they carry above it. σ_I/I: the relative Monte-Carlo "
             "error of the integral. VEGAS adapts its grid with as many density evaluations as the sampler has "
             "weighted events, and is scored on as many fresh ones; × VEGAS is ⟨w⟩/w̃_max over VEGAS's (⟨w⟩/max w "
             "over VEGAS's for a sample written before the reduced maximum, whose other cells are —).")  # fmt: skip
    if truth is not None and TRUTH in blocks:
        table.add("flat phase space", _unweighting_cells(blocks[TRUTH].get("sampler") or {}, blocks[TRUTH].get("ratio_to_vegas")), css=TRUTH)
    vegas = ref.get("vegas") or {}
    if "efficiency" in vegas:
        table.add("VEGAS", _unweighting_cells(vegas, 1.0), css=TRUTH)
    elif vegas.get("skipped"):
        table.add("VEGAS", ["—"] * 7 + [vegas["skipped"]], css=TRUTH)
    for e in models:
        if e["model"] in blocks:
            block = blocks[e["model"]]
            table.add(e["model"], _unweighting_cells(block.get("sampler") or {}, block.get("ratio_to_vegas")))
    return table


# ---------------------------------------------------------------- leave-one-energy-out


#: the two AUCs of ``held_out_energy_auc``: (name in the verdict, value key, error key)
_HELD_OUT_AUCS = (("voxels", "value", "error"), ("high-level", "auc_high_level", "auc_high_level_error"))


def _held_out_verdict(block: Mapping, floor: Mapping | None) -> str:
    """Whether each AUC is within truth B's floor, as the ranking's floor column decides it."""
    from hepgenbench.report import within_noise_floor

    off = []
    for what, key, error_key in _HELD_OUT_AUCS:
        value, truth_value = finite_or_none(block.get(key)), finite_or_none((floor or {}).get(key))
        if value is None or truth_value is None:
            return "—"
        if not within_noise_floor(value, block.get(error_key) or 0.0, truth_value, floor.get(error_key) or 0.0, "half"):
            off.append(what)
    return ("beyond the floor: " + ", ".join(off)) if off else "within the floor"


def held_out_energy_table(dataset: str, entries: list[dict]) -> PhysicsTable | None:
    """The C2ST AUCs at the incident energy left out of training, against truth B's there."""
    truth, models = _ordered(entries)
    blocks = {e["model"]: b for e in entries if (b := _metric(e, "held_out_energy_auc"))}
    if not blocks:
        return None
    floor = blocks.get(TRUTH)
    energy = finite_or_none(next(iter(blocks.values())).get("energy_mev"))
    energy_gev = _fixed(None if energy is None else energy / 1e3, ".4g")
    table = PhysicsTable(
        f"heldoutenergy-{dataset}", "Interpolation: the incident energy left out of training",
        ["sample", "showers (truth A / sample)", "voxel AUC", "high-level AUC", "verdict"],
        note=f"The conditional models trained without the showers at E_inc = {energy_gev} GeV "
             "(training.leave_out_energy) and generated showers there, conditioned on truth A's energies. Each AUC is "
             "the C2ST of those showers against truth A's at that energy, on the voxels and on the high-level "
             "features. Truth B's row, an independent truth sample at the same energy, is the noise floor: a model is "
             "within it when its AUC's distance from 0.5 is at most truth B's + 2σ (σ combining both errors), as the "
             "ranking's floor column has it.")  # fmt: skip
    for e in ([truth] if truth is not None else []) + models:
        if e["model"] not in blocks:
            continue
        block, is_truth = blocks[e["model"]], e["model"] == TRUTH
        counts = f"{block.get('n_truth', '—')} / {block.get('n_generated', '—')}"
        if block.get("skipped"):
            cells = [counts, "—", "—", block["skipped"]]
        else:
            cells = [counts, *(_ve(block.get(key), block.get(error_key)) for _, key, error_key in _HELD_OUT_AUCS),
                     "" if is_truth else _held_out_verdict(block, floor)]
        table.add("truth B (noise floor)" if is_truth else e["model"], cells, css=TRUTH if is_truth else "model")
    return table


#: the table builders, in the order the section shows them
BUILDERS: tuple[Callable[[str, list[dict]], PhysicsTable | list[PhysicsTable] | None], ...] = (
    lineshape_table, calo_tables, unweighting_table, held_out_energy_table)


def physics_tables(dataset: str, entries: list[dict]) -> list[PhysicsTable]:
    """Every physics table of ``dataset`` from its metrics records (``MetricsRecord.to_dict``)."""
    mine = [e for e in entries if e["dataset"] == dataset]
    tables: list[PhysicsTable] = []
    for build in BUILDERS:
        made = build(dataset, mine)
        tables += made if isinstance(made, list) else ([made] if made is not None else [])
    return tables
