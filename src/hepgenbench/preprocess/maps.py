"""The one-feature maps: standard, log, bounded, dalitz, pair_mass, delta_phi, fraction_logit.

Each is one class registered under its spec's ``type``; see :mod:`hepgenbench.preprocess`
for what each is for, and :mod:`hepgenbench.preprocess.base` for the contract.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from hepgenbench.errors import InputError
from hepgenbench.io import EventSet
from hepgenbench.preprocess.arrays import Array, logit, namespace, sigmoid
from hepgenbench.preprocess.base import FeatureMap, Key, given, register_map

EPS = 1e-6  # keeps a fraction strictly inside (0, 1) before its logit
TWO_PI = 2 * math.pi


def _logit_fraction(s: Array) -> Array:
    """logit of a fraction of an interval, clipped to [ε, 1 − ε]."""
    return logit(namespace(s).clip(s, EPS, 1 - EPS))


def _log_logit_derivative(s: Array, width: Array | float) -> Array:
    """log |d logit(s)/dx| for s = (x − low)/width: −log s − log(1 − s) − log width."""
    xp = namespace(s)
    s = xp.clip(s, EPS, 1 - EPS)
    log_width = xp.log(width) if not isinstance(width, float) else math.log(width)
    return -(xp.log(s) + xp.log1p(-s) + log_width)


@register_map("standard")
class Standard(FeatureMap):
    """x itself: the standardisation that follows every map is all it gets."""

    def forward(self, x: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        return x

    def inverse(self, y: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        return y

    def log_abs_det_jacobian(self, x: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        return namespace(x).zeros_like(x)

    @classmethod
    def example_events(cls, n: int, seed: int) -> EventSet:
        return EventSet(np.random.default_rng(seed).normal(3.0, 2.0, (n, 1)), ["x"], transforms=[{"type": "standard"}])


@register_map("log")
class Log(FeatureMap):
    """y = log(x + c): for pT, masses and energies, whose spectra fall steeply and which
    must stay positive (the inverse e^y − c is > −c for every y)."""

    keys: ClassVar[dict[str, Key]] = {"offset": Key("c in log(x + c)", default=0.0)}

    def forward(self, x: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        xp = namespace(x)
        return xp.log(xp.clip(x + self.params["offset"], 1e-30, None))

    def inverse(self, y: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        return namespace(y).exp(y) - self.params["offset"]

    def log_abs_det_jacobian(self, x: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        xp = namespace(x)
        return -xp.log(xp.clip(x + self.params["offset"], 1e-30, None))

    @classmethod
    def example_events(cls, n: int, seed: int) -> EventSet:
        x = np.random.default_rng(seed).exponential(20.0, (n, 1))
        return EventSet(x, ["pt"], transforms=[{"type": "log", "offset": 1.0}])


@register_map("bounded")
class Bounded(FeatureMap):
    """y = logit((x − a)/(b − a)): for variables with hard limits (φ, cos θ, Dalitz
    invariants), so that every generated value lands inside them."""

    keys: ClassVar[dict[str, Key]] = {"low": Key("the lower limit a"), "high": Key("the upper limit b")}
    unit_box = True

    @classmethod
    def check(cls, params: dict[str, Any], feature: str, feature_names: Sequence[str] | None, where: str) -> None:
        if not params["high"] > params["low"]:
            raise InputError(f"{where}: 'bounded' needs numeric low < high, got {params}")

    def _fraction(self, x: Array) -> Array:
        lo, hi = self.params["low"], self.params["high"]
        return (x - lo) / (hi - lo)

    def forward(self, x: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        return _logit_fraction(self._fraction(x))

    def inverse(self, y: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        lo, hi = self.params["low"], self.params["high"]
        return lo + (hi - lo) * sigmoid(y)

    def log_abs_det_jacobian(self, x: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        return _log_logit_derivative(self._fraction(x), float(self.params["high"] - self.params["low"]))

    @classmethod
    def example_events(cls, n: int, seed: int) -> EventSet:
        x = np.random.default_rng(seed).uniform(-2.0, 3.0, (n, 1))
        return EventSet(x, ["cos_theta"], transforms=[{"type": "bounded", "low": -2.0, "high": 3.0}])


def dalitz_m2_12_range(m2_23: Array, m_parent: float, m1: float, m2: float, m3: float) -> tuple[Array, Array]:
    """The allowed ``(low, high)`` of m²₁₂ at fixed m²₂₃ in M → 1 2 3 (numpy or torch).

    Energies of particles 2 and 1 in the (2, 3) rest frame fix the extremes, where the two
    momenta are parallel or antiparallel (PDG "Kinematics", eq. 49.23). Outside the m²₂₃
    band the interval is empty (low = high), never NaN.
    """
    xp = namespace(m2_23)
    m23 = xp.sqrt(xp.clip(m2_23, 1e-12, None))
    e2 = (m2_23 - m3**2 + m2**2) / (2 * m23)
    e1 = (m_parent**2 - m2_23 - m1**2) / (2 * m23)
    p2 = xp.sqrt(xp.clip(e2**2 - m2**2, 0.0, None))
    p1 = xp.sqrt(xp.clip(e1**2 - m1**2, 0.0, None))
    return (e1 + e2) ** 2 - (p1 + p2) ** 2, (e1 + e2) ** 2 - (p1 - p2) ** 2


@register_map("dalitz")
class Dalitz(FeatureMap):
    """For m²₁₂ of a three-body decay M → 1 2 3: the logit of its position inside the
    interval that m²₂₃ (the given feature) allows (:func:`dalitz_m2_12_range`).

    With m²₂₃ itself ``bounded`` by its own limits, the pair maps the curved Dalitz plot onto
    the whole plane, the "square Dalitz plot" of amplitude analyses: every point a model
    generates is physical, and a density with a sharp kinematic edge becomes one without.
    """

    MASSES = ("m_parent", "m1", "m2", "m3")
    keys: ClassVar[dict[str, Key]] = {"given": given("the m²₂₃ feature's name"), "m_parent": Key("the parent's mass M"),
            "m1": Key("the mass of particle 1"), "m2": Key("the mass of particle 2"),
            "m3": Key("the mass of particle 3")}
    n_given = 1
    unit_box = True

    def _interval(self, given: Sequence[Array]) -> tuple[Array, Array]:
        (m2_23,) = given
        low, high = dalitz_m2_12_range(m2_23, *(self.params[k] for k in self.MASSES))
        return low, namespace(m2_23).clip(high - low, 1e-12, None)

    def forward(self, x: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        low, width = self._interval(given)
        return _logit_fraction((x - low) / width)

    def inverse(self, y: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        low, width = self._interval(given)
        return low + width * sigmoid(y)

    def log_abs_det_jacobian(self, x: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        low, width = self._interval(given)
        return _log_logit_derivative((x - low) / width, width)

    @classmethod
    def example_events(cls, n: int, seed: int) -> EventSet:
        rng = np.random.default_rng(seed)
        masses = {"m_parent": 1.865, "m1": 0.494, "m2": 0.140, "m3": 0.135}  # D⁰ → K⁻ π⁺ π⁰
        lo23, hi23 = (masses["m2"] + masses["m3"]) ** 2, (masses["m_parent"] - masses["m1"]) ** 2
        m2_23 = rng.uniform(lo23, hi23, n)
        low, high = dalitz_m2_12_range(m2_23, *masses.values())
        m2_12 = low + (high - low) * rng.uniform(0.01, 0.99, n)
        return EventSet(np.c_[m2_12, m2_23], ["m2_12", "m2_23"], transforms=[
            {"type": "dalitz", "given": "m2_23", **masses}, {"type": "bounded", "low": lo23, "high": hi23}])


@register_map("pair_mass")
class PairMass(FeatureMap):
    """For the pT of the second of two massless particles (a muon pair, say): y = log m of
    the pair, m² = 2 pT₁ pT₂ (cosh Δη − cos Δφ), given pT₁, η₁, φ₁, η₂, φ₂ by name.

    A resonance (the Z) is then one coordinate of the network space instead of a thin curved
    sheet, which is how precision event generators represent it (arXiv:2110.13632).
    ∂ log m / ∂pT₂ = 1 / (2 pT₂).
    """

    keys: ClassVar[dict[str, Key]] = {"given": given("the names of pT₁, η₁, φ₁, η₂, φ₂")}
    n_given = 5

    @staticmethod
    def _half_log_pair_factor(given: Sequence[Array]) -> Array:
        """½ log(2 pT₁ (cosh Δη − cos Δφ)): log m = this + ½ log pT₂."""
        pt1, eta1, phi1, eta2, phi2 = given
        xp = namespace(pt1)
        factor = 2 * pt1 * (xp.cosh(eta1 - eta2) - xp.cos(phi1 - phi2))
        return 0.5 * xp.log(xp.clip(factor, 1e-12, None))

    def forward(self, x: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        xp = namespace(x)
        return self._half_log_pair_factor(given) + 0.5 * xp.log(xp.clip(x, 1e-30, None))

    def inverse(self, y: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        return namespace(y).exp(2 * (y - self._half_log_pair_factor(given)))

    def log_abs_det_jacobian(self, x: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        xp = namespace(x)
        return -xp.log(2 * xp.clip(x, 1e-30, None))

    @classmethod
    def example_events(cls, n: int, seed: int) -> EventSet:
        rng = np.random.default_rng(seed)
        pt1, pt2 = rng.exponential(20.0, n) + 20.0, rng.exponential(20.0, n) + 10.0
        eta1, eta2 = rng.normal(0.0, 1.5, n), rng.normal(0.0, 1.5, n)
        phi1, phi2 = rng.uniform(-np.pi, np.pi, n), rng.uniform(-np.pi, np.pi, n)
        phi = {"type": "bounded", "low": -np.pi, "high": np.pi}
        names = ["pt1", "eta1", "phi1", "eta2", "phi2", "pt2"]
        return EventSet(np.c_[pt1, eta1, phi1, eta2, phi2, pt2], names, transforms=[
            {"type": "log"}, {"type": "standard"}, phi, {"type": "standard"}, phi,
            {"type": "pair_mass", "given": names[:5]}])


def _opening_fraction(phi: Array, phi_ref: Array) -> Array:
    """(φ − φ_ref) mod 2π as a fraction of 2π, in [0, 1)."""
    return namespace(phi).remainder(phi - phi_ref, TWO_PI) / TWO_PI


@register_map("delta_phi")
class DeltaPhi(FeatureMap):
    """For an azimuth measured from another object's (the leading muon's, say): the logit
    of (φ − φ_ref) mod 2π as a fraction of 2π.

    Physics is symmetric under a rotation about the beam, so only the reference azimuth is
    uniform and every other one is an opening angle. In absolute azimuths a back-to-back
    pair is a band that wraps around the (φ₁, φ₂) square; measured from φ₁ it is one peak at
    π in the middle of the interval. The inverse comes back in (−π, π].
    """

    keys: ClassVar[dict[str, Key]] = {"given": given("the name of the reference azimuth")}
    n_given = 1
    unit_box = True

    def forward(self, x: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        return _logit_fraction(_opening_fraction(x, given[0]))

    def inverse(self, y: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        # back into (−π, π], the range of the reference azimuth itself
        return math.pi - namespace(y).remainder(math.pi - given[0] - TWO_PI * sigmoid(y), TWO_PI)

    def log_abs_det_jacobian(self, x: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        return _log_logit_derivative(_opening_fraction(x, given[0]), TWO_PI)

    @classmethod
    def example_events(cls, n: int, seed: int) -> EventSet:
        rng = np.random.default_rng(seed)
        phi_ref = rng.uniform(-np.pi, np.pi, n)
        phi = np.remainder(phi_ref + rng.normal(np.pi, 1.0, n) + np.pi, 2 * np.pi) - np.pi  # mostly back to back
        return EventSet(np.c_[phi_ref, phi], ["phi_ref", "phi"], transforms=[
            {"type": "bounded", "low": -np.pi, "high": np.pi}, {"type": "delta_phi", "given": "phi_ref"}])


@register_map("fraction_logit")
class FractionLogit(FeatureMap):
    """For a calorimeter cell: its energy fraction f = x / E_inc, regularised as
    α + (1 − 2α)·f and passed through a logit, as in CaloFlow (arXiv:2106.05285).

    Zero cells map to a finite value, and the inverse never produces a negative energy.
    Cells the inverse makes below ``threshold`` come back as exactly 0.
    """

    keys: ClassVar[dict[str, Key]] = {"alpha": Key("the logit's regulariser α", default=1e-6),
            "threshold": Key("the readout threshold, in the cell's unit", default=0.0)}
    cell = True

    def _regularised(self, x: Array, e_inc: Array) -> Array:
        alpha = self.params["alpha"]
        return alpha + (1 - 2 * alpha) * namespace(x).clip(x / e_inc, 0.0, 1.0)

    def forward(self, x: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        return logit(self._regularised(x, e_inc))

    def inverse(self, y: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        xp = namespace(y)
        alpha = self.params["alpha"]
        energy = xp.clip((sigmoid(y) - alpha) / (1 - 2 * alpha), 0.0, 1.0) * e_inc
        # Zero suppression: a generated cell below the readout threshold reads 0, as the
        # detector made every truth cell. Without it a model's cells are almost never
        # exactly 0, and the sparsity alone tells it from the truth.
        threshold = self.params["threshold"]
        return xp.where(energy < threshold, xp.zeros_like(energy), energy) if threshold > 0 else energy

    def log_abs_det_jacobian(self, x: Array, given: Sequence[Array] = (), e_inc: Array | None = None) -> Array:
        xp = namespace(x)
        s = self._regularised(x, e_inc)
        return math.log(1 - 2 * self.params["alpha"]) - xp.log(e_inc) - xp.log(s) - xp.log1p(-s)

    @classmethod
    def example_events(cls, n: int, seed: int) -> EventSet:
        rng = np.random.default_rng(seed)
        e_inc = 10 ** rng.uniform(1.0, 3.0, n)
        cell = e_inc * rng.beta(0.8, 4.0, n).clip(1e-4, None)
        return EventSet(cell[:, None], ["cell"], transforms=[{"type": "fraction_logit", "alpha": 1e-6}],
                        condition=e_inc[:, None], condition_names=["E_inc"])
