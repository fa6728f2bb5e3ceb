"""A three-body decay with a known density (:mod:`hepgenbench.data.phasespace`): the embedded
generator, the Dalitz observables, the true density and the flat-phase-space baseline.

The density is what makes this kind special: the evaluation gets an exact KL and the
unweighting efficiency of a model as a sampler (arXiv:2212.06172), the physics check
flags points outside the Dalitz boundary, and density-trained families (IAF) train on it.
Its extra figure is the Dalitz plot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hepgenbench.kinds.base import DatasetKind, KindPlotInputs, Source, TrueDensity, feature_column
from hepgenbench.kinds.registry import register

if TYPE_CHECKING:
    from hepgenbench.evaluate import EvalOptions
    from hepgenbench.io import EventSet
    from hepgenbench.metrics.base import MetricResult
    from hepgenbench.records import PlotRecord

#: the generator's features, in order; the true density applies to exactly these
FEATURE_NAMES = ("m2_12", "m2_23", "phi", "cos_theta", "psi")
#: Axis label and unit of each Dalitz observable.
OBSERVABLE_AXES: dict[str, tuple[str, str]] = {
    "m2_13": (r"$m^2_{13}$", "GeV^2"),
    "m_23": (r"$m_{23}$", "GeV"),
}


class PhaseSpaceSource(Source):
    """D⁰ → K⁻π⁺π⁰ through a ρ⁺ Breit–Wigner, by accept–reject, with its true log-density."""

    name: ClassVar[str] = "phasespace"
    kind: ClassVar[str] = "phasespace"
    embedded: ClassVar[bool] = True

    def generate(self, output: str, params: dict[str, Any], log: Callable[..., None]) -> dict:
        from hepgenbench.data.phasespace import generate

        return generate(output, int(params["n_events"]), int(params["seed"]), log=log)

    def read(self, files: list[str], params: dict[str, Any], sink=None) -> EventSet:
        from hepgenbench.io import read_events

        return read_events(files[0])


class DalitzDensity(TrueDensity):
    """|BW(m²₂₃)|² on the Dalitz plot, uniform angles, normalised; flat phase space as baseline."""

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        from hepgenbench.data.phasespace import log_density

        return log_density(x)

    def log_prob_torch(self, x):
        from hepgenbench.data.phasespace import log_density_torch

        return log_density_torch(x)

    def box(self) -> list[tuple[float, float]]:
        """The Dalitz plot's bounding box in (m²₁₂, m²₂₃) and the angles' ranges."""
        from hepgenbench.data.phasespace import DALITZ

        return [DALITZ.m2_12_limits, DALITZ.m2_23_limits, (-np.pi, np.pi), (-1.0, 1.0), (-np.pi, np.pi)]

    def baseline_weights(self, n: int, seed: int) -> dict:
        """Weights p/q of flat phase space: the proposal a trained sampler must beat."""
        from hepgenbench.data.phasespace import flat_log_density, log_density, sample_flat
        from hepgenbench.metrics.unweighting import unweighting_efficiency

        x, _ = sample_flat(n, np.random.default_rng(seed))
        return unweighting_efficiency(log_density(x), flat_log_density(x))


@register
class PhaseSpace(DatasetKind):
    """Points of a three-body phase space, ``(m2_12, m2_23, phi, cos_theta, psi)``."""

    name: ClassVar[str] = "phasespace"
    sources: ClassVar[tuple[type[Source], ...]] = (PhaseSpaceSource,)
    support_reason: ClassVar[str] = "outside_dalitz"

    def observables(self, events: EventSet) -> tuple[np.ndarray, list[str]]:
        """The third Dalitz invariant m²₁₃ and the resonance-pair mass m₂₃ (the ρ⁺ line shape)."""
        from hepgenbench.data.phasespace import DALITZ

        m2_12, m2_23 = feature_column(events, "m2_12"), feature_column(events, "m2_23")
        m_23 = np.sqrt(np.clip(m2_23, 0.0, None))
        return np.column_stack([DALITZ.m2_13(m2_12, m2_23), m_23]), ["m2_13", "m_23"]

    def observable_axes(self, names: list[str]) -> list[tuple[str, str]]:
        return [OBSERVABLE_AXES.get(name, (name, "")) for name in names]

    def extra_metrics(self, truth: EventSet, generated: EventSet, truth_obs: np.ndarray, gen_obs: np.ndarray,
                      obs_names: list[str], options: EvalOptions, seed: int) -> dict[str, MetricResult]:
        """``unweighting_vs_vegas``: the sampler's unweighting efficiency against the reduced
        maximum beside VEGAS's at the same number of density evaluations
        (:mod:`hepgenbench.physics.vegas_baseline`). A model's sample carries its weights
        (``meta["importance_weights"]``, written by the sample stage); the truth row's sampler
        is flat phase space, the baseline. A model without an exact likelihood has none."""
        from hepgenbench.evaluate import metric_seed
        from hepgenbench.physics.vegas_baseline import unweighting_vs_vegas

        density = self.density(truth.feature_names)
        if density is None:
            return {}
        if "trained" in generated.meta:  # a model's sample
            weights = generated.meta.get("importance_weights")
            if not weights:
                return {}
            proposal = "model"
        else:
            weights, proposal = density.baseline_weights(len(generated), seed), "flat phase space (baseline)"
        return {"unweighting_vs_vegas": unweighting_vs_vegas(density, weights, proposal, metric_seed(seed, "vegas"))}

    def extra_plots(self, inputs: KindPlotInputs) -> list[PlotRecord]:
        """The Dalitz plot, m²₁₂ against m²₂₃ (:mod:`hepgenbench.plotting.dalitz`)."""
        from hepgenbench.plotting.dalitz import dalitz_plots

        return dalitz_plots(inputs, self.observable_axes(inputs.obs_names))

    def density(self, feature_names: list[str]) -> TrueDensity | None:
        return DalitzDensity() if tuple(feature_names) == FEATURE_NAMES else None

    def example(self, directory: str, n_events: int, seed: int) -> dict[str, Any]:
        return {"source": "phasespace", "n_events": n_events}
