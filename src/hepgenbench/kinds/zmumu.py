"""Events with two muons (Z → μμ and any dimuon sample): the embedded Pythia source and the
dimuon observables.

Whatever the source (Pythia, a user's ROOT file in (pT, η, φ) or in Cartesian
(px, py, pz, E), an HDF5 table), a ``zmumu`` dataset has the features ``Muon1_pt``,
``Muon1_eta``, ``Muon1_phi`` and the same for ``Muon2``, the harder muon first; a leading
jet ``Jet1_*`` is optional.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hepgenbench.kinds.base import ETA_LIMIT_JET, ETA_LIMIT_MUON, DatasetKind, KindPlotInputs, Source, feature_column
from hepgenbench.kinds.registry import register

if TYPE_CHECKING:
    from hepgenbench.evaluate import EvalOptions
    from hepgenbench.io import EventSet
    from hepgenbench.metrics.base import MetricResult
    from hepgenbench.records import PlotRecord

MUON_MASS_GEV = 0.10566

#: Axis label and unit of each dimuon observable.
OBSERVABLE_AXES: dict[str, tuple[str, str]] = {
    "m_mumu": (r"$m_{\mu\mu}$", "GeV"),
    "pt_mumu": (r"$p_{T}^{\mu\mu}$", "GeV"),
    "dR_mumu": (r"$\Delta R_{\mu\mu}$", ""),
    "dphi_mumu_jet": (r"$|\Delta\phi(\mu\mu, j_1)|$", "rad"),
}


class PythiaSource(Source):
    """pp → Z/γ* → μμ (+ jets) at 13.6 TeV from Pythia 8 (:mod:`hepgenbench.data.pythia`),
    generated as ``chunks`` seeded ROOT files and merged."""

    name: ClassVar[str] = "pythia"
    kind: ClassVar[str] = "zmumu"
    embedded: ClassVar[bool] = True
    file_suffix: ClassVar[str] = "root"
    chunked: ClassVar[bool] = True
    streams: ClassVar[bool] = True
    properties: ClassVar[dict[str, Any]] = {
        "chunks": {"type": "integer", "minimum": 1, "default": 1, "description": "parallel seeded generation jobs"},
        "level": {"enum": ["hard", "parton", "hadron"], "default": "parton",
                  "description": "hard process only, ISR+FSR (no MPI/hadronisation), or full hadron level"},
        "nan_policy": {"enum": ["refuse", "drop"], "default": "refuse"},
    }

    def generate(self, output: str, params: dict[str, Any], log: Callable[..., None]) -> dict:
        from hepgenbench.data.pythia import generate_zmumu

        return generate_zmumu(output, int(params["n_events"]), int(params["seed"]),
                              level=params.get("level", "parton"), log=log)

    def spec(self, files: list[str], params: dict[str, Any]):
        """The reader spec of the generated tree (:func:`hepgenbench.data.readers.zmumu_spec`)."""
        from hepgenbench.data import readers

        spec = readers.zmumu_spec(files[0], jet_mass=params.get("level", "parton") == "hadron")
        spec.nan_policy = params.get("nan_policy", "refuse")
        return spec

    def read(self, files: list[str], params: dict[str, Any], sink=None) -> EventSet:
        from hepgenbench.data import readers

        return readers.read_root(self.spec(files, params), sink=sink)


def _momenta(events: EventSet, prefix: str, mass: float):
    import vector

    pt = feature_column(events, f"{prefix}_pt")
    return vector.array({
        "pt": pt, "eta": feature_column(events, f"{prefix}_eta"), "phi": feature_column(events, f"{prefix}_phi"),
        "mass": np.full(pt.shape, mass),
    })


@register
class Zmumu(DatasetKind):
    """Two muons, the harder first, and optionally a leading jet."""

    name: ClassVar[str] = "zmumu"
    sources: ClassVar[tuple[type[Source], ...]] = (PythiaSource,)

    def observables(self, events: EventSet) -> tuple[np.ndarray, list[str]]:
        """Dimuon mass and pT, ΔR between the muons and, with a jet, |Δφ| between the dimuon
        system and the jet. Muons take their PDG mass (a reader's ``mass`` is not needed)."""
        mu1 = _momenta(events, "Muon1", MUON_MASS_GEV)
        mu2 = _momenta(events, "Muon2", MUON_MASS_GEV)
        dimuon = mu1 + mu2
        values, names = [dimuon.mass, dimuon.pt, mu1.deltaR(mu2)], ["m_mumu", "pt_mumu", "dR_mumu"]
        if {"Jet1_pt", "Jet1_eta", "Jet1_phi"} <= set(events.feature_names):
            jet = _momenta(events, "Jet1", 0.0)  # |Δφ| needs the jet's direction only
            values.append(np.abs(dimuon.deltaphi(jet)))
            names.append("dphi_mumu_jet")
        return np.column_stack(values), names

    def observable_axes(self, names: list[str]) -> list[tuple[str, str]]:
        return [OBSERVABLE_AXES.get(name, (name, "")) for name in names]

    def extra_metrics(self, truth: EventSet, generated: EventSet, truth_obs: np.ndarray, gen_obs: np.ndarray,
                      obs_names: list[str], options: EvalOptions, seed: int) -> dict[str, MetricResult]:
        """``z_lineshape``: the Voigtian fit of m_μμ on truth and on the sample, with the
        sample's mass and width pulls (:mod:`hepgenbench.physics.lineshape`)."""
        from hepgenbench.physics.lineshape import z_lineshape_metric

        i = obs_names.index("m_mumu")
        return {"z_lineshape": z_lineshape_metric(truth_obs[:, i], gen_obs[:, i])}

    def extra_plots(self, inputs: KindPlotInputs) -> list[PlotRecord]:
        """The Z line shape of truth and every model with their fits (:mod:`hepgenbench.plotting.physics`)."""
        from hepgenbench.plotting.physics import z_lineshape_plot

        return [z_lineshape_plot(inputs)] if inputs.samples else []

    def eta_limit(self, feature: str) -> float | None:
        # every η of a dimuon event that is not a jet's is a muon's
        return ETA_LIMIT_JET if "jet" in feature.lower() else ETA_LIMIT_MUON

    def example(self, directory: str, n_events: int, seed: int) -> dict[str, Any]:
        return {"source": "pythia", "n_events": n_events, "level": "parton"}
