"""Normalising flows built from zuko: MAF, RealNVP, NSF (coupling splines) and IAF.

All four share one wrapper, :class:`FlowGenerator`: the loss is the negative
log-likelihood, and sampling pushes N(0, 1) noise drawn from the caller's
``torch.Generator`` through the inverse transform, so samples are seeded without touching
the global RNG. Each family only says which zuko flow it builds.

Speed is part of what the benchmark measures, so the families keep their natural costs:
MAF needs one network pass per feature to sample and IAF one pass per feature to evaluate
the density of an arbitrary point; the coupling flows are fast both ways.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cached_property
from typing import Any

import torch
import zuko
from torch import Tensor
from torch.distributions import Distribution, constraints
from torch.nn.functional import pad, softplus
from zuko.lazy import UnconditionalTransform
from zuko.transforms import MonotonicRQSTransform, Transform

from hepgenbench.errors import InputError
from hepgenbench.models.base import Generator, in_chunks, register, standard_normal

#: Largest gradient norm of a :meth:`FlowGenerator.density_step`. One event of large weight
#: p/q makes a self-normalised estimate's gradient heavy-tailed: on a 2-D truncated Gaussian
#: (tests/test_train.py) a spline IAF's step norms had a median of 2.8 and a maximum of 1.1e4,
#: and one such step undid the training (KL 0.14 → 1.39 nats); clipped at 10, seeds 0-4 all
#: trained past their first epoch. The affine IAF's norms stay below 15, so it is barely touched.
DENSITY_GRAD_CLIP = 10.0

DensityFn = Callable[[Tensor], Tensor]


class FlowGenerator(Generator):
    """A zuko flow behind the :class:`Generator` interface (subclasses set :meth:`build_flow`).

    Hyperparameters: ``transforms`` (number of bijective layers), ``hidden`` (widths of the
    conditioner MLPs) and ``base``, the latent distribution: ``"normal"`` or
    ``"logistic"`` (unit variance). The logistic is the image of a uniform under the logit
    that the ``bounded`` preprocessing applies, so a flow on bounded features with that base
    starts as the flat distribution on their box, and its tails fall like the target's,
    e^{-|u|}, rather than like e^{-u²/2}.
    """

    has_likelihood = True
    defaults: dict[str, Any] = {"transforms": 5, "hidden": (128, 128), "base": "normal"}
    choices = {"base": ("normal", "logistic")}

    def __init__(self, n_features: int, n_conditions: int = 0, **hparams: Any) -> None:
        super().__init__(n_features, n_conditions, **hparams)
        flow = self.build_flow(n_features, n_conditions, **{k: v for k, v in self.hparams.items() if k != "base"})
        if self.hparams["base"] == "logistic":
            flow = zuko.flows.Flow(flow.transform, zuko.flows.UnconditionalDistribution(
                UnitLogistic, torch.zeros(n_features), buffer=True))
        self.flow = flow

    def build_flow(self, n_features: int, n_conditions: int, **hparams: Any) -> zuko.flows.Flow:
        raise NotImplementedError

    def _dist(self, cond: Tensor | None):
        return self.flow(cond)

    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        cond = self._check_cond(cond, len(x))
        return self._dist(cond).log_prob(x)

    def loss(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        return -self.log_prob(x, cond).mean()

    def sample(self, n: int, cond: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        cond = self._check_cond(cond, n)
        return in_chunks(lambda z, c: self._dist(c).transform.inv(z), self.draw_base(n, generator), cond)

    def draw_base(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws from the base distribution, from ``generator``."""
        # The base is fixed, so drawing z ourselves keeps the seed in the caller's generator
        # rather than in the global RNG.
        z = standard_normal((n, self.n_features), generator, self.device)
        if self.hparams["base"] == "logistic":
            # Φ(z) is uniform, and its logit, scaled, is the unit-variance logistic.
            return _standard_logistic(z) * _LOGISTIC_SCALE
        return z

    # ------------------------------------------------------------------------------------
    # Training against an explicit density (used by ``iaf``; any flow can do it).

    def sample_and_log_prob(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Samples and their log q in one pass in the sampling direction."""
        return self._flow_sample_and_log_prob(n, generator)

    def _flow_sample_and_log_prob(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        # The flow alone, with gradient: what density_step trains, whatever a family adds around it.
        z = self.draw_base(n, generator)
        dist = self._dist(None)
        x, ladj = dist.transform.inv.call_and_ladj(z)
        return x, dist.base.log_prob(z) - ladj

    def density_step(self, log_density: DensityFn, batch_size: int, optimizers: list[torch.optim.Optimizer]) -> dict[str, float]:
        """One step of forward KL, KL(p‖q), with the reparameterised (pathwise) gradient.

        Events x = T(z) are drawn from q with gradient, weighted by w = p/q, and the
        self-normalised estimate of KL(p‖q) (:func:`forward_kl`) is differentiated through
        x as well as through log q. Forward KL covers the mass of p, which is what keeps
        the largest weight, and so the unweighting efficiency, in check; reverse KL seeks
        modes and leaves q thin where p is not. The pathwise gradient needs only the
        sampling direction, one pass for an IAF (Kingma et al., arXiv:1606.04934); the
        score-function form, Σ w̃ ∇log q at fixed points (MadNIS, arXiv:2212.06172), needs
        the density of given points, one pass per feature for an IAF: on the phasespace
        density in 75 s it took a quarter of the steps and ended at a KL of 0.004 nats
        against 0.0003 (2026-12-01).
        """
        (optimizer,) = optimizers
        x, log_q = self._flow_sample_and_log_prob(batch_size)
        log_p = log_density(x)
        inside = torch.isfinite(log_p)
        if not inside.any():
            return {"loss": float("nan")}
        if not inside.all():
            # Outside the physical region p is −inf and the backward pass through it NaN:
            # the density is taken again on the inside events only.
            x, log_q = x[inside], log_q[inside]
            log_p = log_density(x)
        loss = forward_kl(log_p - log_q)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.parameters(), DENSITY_GRAD_CLIP)
        optimizer.step()
        return {"loss": loss.item()}

    @torch.no_grad()
    def density_validation(self, log_density: DensityFn, z: Tensor) -> float:
        """KL(p‖q) estimated on fixed base draws ``z`` (same noise every epoch)."""
        dist = self._dist(None)
        x, ladj = dist.transform.inv.call_and_ladj(z.to(self.device))
        log_w = log_density(x) - (dist.base.log_prob(z.to(self.device)) - ladj)
        return kl_estimate(log_w)


_LOGISTIC_SCALE = math.sqrt(3.0) / math.pi  # the standard logistic has variance π²/3


class UnitLogistic(Distribution):
    """Independent logistic distributions with mean ``loc`` and unit variance.

    Written out because torch has no logistic, and the usual sigmoid-of-uniform
    construction returns −inf once the sigmoid rounds to 1 in float32 (|u| ≳ 9).
    """

    arg_constraints = {"loc": constraints.real}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc: Tensor) -> None:
        self.loc = loc
        super().__init__(batch_shape=loc.shape[:-1], event_shape=loc.shape[-1:], validate_args=False)

    def log_prob(self, x: Tensor) -> Tensor:
        y = (x - self.loc) / _LOGISTIC_SCALE
        return (_log_standard_logistic_pdf(y) - math.log(_LOGISTIC_SCALE)).sum(-1)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:  # noqa: B008 (torch's own signature; immutable)
        u = torch.rand(self._extended_shape(sample_shape), device=self.loc.device).clamp(1e-7, 1 - 1e-7)
        return self.loc + _LOGISTIC_SCALE * u.logit()


def _standard_logistic(z: Tensor) -> Tensor:
    """N(0, 1) draws made standard logistic: the logit of the uniform Φ(z), clamped to stay finite in float32."""
    return torch.special.ndtr(z).clamp(1e-7, 1 - 1e-7).logit()


def _log_standard_logistic_pdf(y: Tensor) -> Tensor:
    """log(e^{-y} / (1 + e^{-y})²), finite for any y (the uniform's density in its logit)."""
    return -y - 2 * softplus(-y)


def forward_kl(log_w: Tensor) -> Tensor:
    """Self-normalised importance estimate of KL(p‖q) from finite log weights log p − log q of q-samples.

    With normalised weights w̃ = w / Σw, KL ≈ Σ w̃ log(n w̃); it is 0 when q = p (up to p's
    normalisation, which cancels) and grows as q misses regions where p lives.
    Differentiable in ``log_w``.
    """
    return (torch.softmax(log_w, dim=0) * log_w).sum() - torch.logsumexp(log_w, dim=0) + math.log(len(log_w))


def kl_estimate(log_w: Tensor) -> float:
    """:func:`forward_kl` as a number; events with weight 0 (p = 0, log w = −inf) count in n."""
    finite = torch.isfinite(log_w)
    if not finite.any():
        return float("nan")
    kl = forward_kl(log_w[finite])
    # Σ w̃ log(n w̃) over all n events: the zero-weight events add nothing but log(n / n_finite).
    return float(kl) + math.log(len(log_w) / int(finite.sum()))


@register("maf")
class MAF(FlowGenerator):
    """Masked autoregressive flow (Papamakarios et al., arXiv:1705.07057), ``zuko.flows.MAF``.

    Affine MADE layers with alternating feature order. Density evaluation is one pass;
    sampling is one pass per feature, kept on purpose: that cost is a benchmark result.
    """

    def build_flow(self, n_features: int, n_conditions: int, transforms: int, hidden: tuple[int, ...]) -> zuko.flows.Flow:
        return zuko.flows.MAF(n_features, n_conditions, transforms=transforms, hidden_features=hidden)


@register("realnvp")
class RealNVP(FlowGenerator):
    """Affine coupling flow (Dinh et al., arXiv:1605.08803), ``zuko.flows.RealNVP``.

    zuko 1.6 ships RealNVP as affine coupling layers whose masks alternate between the two
    halves of the features; fast in both directions.
    """

    def build_flow(self, n_features: int, n_conditions: int, transforms: int, hidden: tuple[int, ...]) -> zuko.flows.Flow:
        if n_features < 2:
            raise InputError("model family 'realnvp' needs at least 2 features to split into coupling halves")
        return zuko.flows.RealNVP(n_features, n_conditions, transforms=transforms, hidden_features=hidden)


@register("nsf")
class NSF(FlowGenerator):
    """Rational-quadratic spline coupling flow (Durkan et al., arXiv:1906.04032).

    zuko's general coupling flow (``zuko.flows.NICE``, alternating halves) with monotonic
    rational-quadratic splines as the elementwise map. ``zuko.flows.NSF(passes=2)`` would
    also be a coupling flow, but through a masked autoregressive conditioner whose inverse
    takes two passes; the two-half conditioner takes one each way, which samples 4× faster
    at 2/3 of the parameters (``benchmarks/bench_models.py``). The splines cover [-5, 5]
    and are the identity outside, which is why the inputs must be standardised.
    Extra hyperparameter: ``bins`` (spline knots, default 8).

    Above 64 features the defaults drop to 3 transforms and 4 bins: at the 368 voxels of a
    calorimeter shower the 5 × 8 flow has 2.9 M parameters, 3 × 4 has 0.9 M, and the larger
    one stops on a minutes-long CPU budget after only a few epochs.
    """

    defaults = {**FlowGenerator.defaults, "bins": 8}

    @classmethod
    def complete_hparams(cls, given: dict[str, Any], n_features: int) -> dict[str, Any]:
        wide = {"transforms": 3, "bins": 4} if n_features > 64 else {}
        return {**cls.defaults, **wide, **given}

    def build_flow(
        self, n_features: int, n_conditions: int, transforms: int, hidden: tuple[int, ...], bins: int
    ) -> zuko.flows.Flow:
        if n_features < 2:
            raise InputError("model family 'nsf' is a coupling flow and needs at least 2 features")
        return spline_couplings(n_features, n_conditions, transforms, hidden, int(bins))


@register("iaf")
class IAF(FlowGenerator):
    """Inverse autoregressive flow (Kingma et al., arXiv:1606.04934), the phase-space sampler.

    Sampling and the density of its own samples take one pass. It is trained without
    data, against an explicit target density, by :func:`hepgenbench.train.fit_density`
    (see :meth:`density_step`): the use it has in phase-space integration. Unconditional.

    Extra hyperparameters:

    * ``transform: "affine"`` (default): the classic IAF, the inverse of an affine MAF,
      autoregressive over every feature. Its logistic base matches the exponential tails
      that a bounded (logit) preprocessing gives a phase-space density; with a normal base
      the largest weight p/q grows without bound in the tails. Evaluating the density of an
      arbitrary point takes one pass per feature, so a 64-wide conditioner (twice the
      density steps of a 128-wide one in a fixed time) does better at 5 features.
    * ``marginal_bins`` (affine only; 0 for none): an elementwise rational-quadratic spline
      with this many bins, its own parameters unconditioned, at the data end of the affine
      flow. An affine map of a logistic cannot make a resonance peak in one feature's
      marginal, and the autoregressive layers spent 30 s of the default run's 75 s on a
      plateau at KL ≈ 0.05 before they made the phasespace m2_23 Breit-Wigner. The spline
      bends the marginal directly: in a side run of both (seed 1, 2026-12-02) it had no
      plateau and ended at a KL of 0.0003 against 0.0008.
    * ``transform: "spline"``: the flow that phase-space integrators use (i-flow,
      arXiv:2001.05486; MadNIS, arXiv:2212.06172): rational-quadratic spline couplings on
      the unit box of the features, an autoregressive flow over two blocks of features, one
      pass each way. ``bins`` sets the spline knots. ``unit_box`` (``{"loc": [...],
      "scale": [...]}``) says where the box is: logit u_j = scale_j · x_j + loc_j with
      u ∈ (0, 1). The workflow fills it from a bounded (logit) preprocessing; without it the
      network coordinates are taken as unit logistics, the image of a flat box. On the box
      the spline's slopes are bounded, so p/q stays bounded up to the phase-space boundary,
      where the affine flow's largest weights sit.
    * ``defensive`` (α, default 0.05): the sampler is the mixture (1 − α) q + α·flat, with
      flat the uniform density on the unit box, a defensive importance sampler
      (Hesterberg, Technometrics 37 (1995) 185). Every weight is then at most
      p / (α·flat), whatever the flow does in the tails that its training rarely samples:
      the largest weights, and so the unweighting efficiency, stop depending on a few
      events at the edge of the box. The flow q is trained alone; sampling, ``log_prob``
      and :meth:`sample_and_log_prob` are the mixture's. It costs at most −log(1 − α) in
      KL(p‖q): the default run's exact KL went from 0.0009 to 0.0084 nats. On two flows trained for 75 s, each weighed over 10 seeds of 1e5 events,
      the median efficiency went from 0.29 and 0.50 at α = 0 to 0.74 and 0.73 at 0.05
      (0.53–0.70 at 0.01–0.1). Training q as the mixture, the box's events in the
      forward-KL estimate, cost a quarter of the epochs and ended lower (median 0.44
      against 0.71 over three seeds, 2026-12-02).

    ``benchmarks/bench_iaf.py`` trains both transforms on the phasespace density for the
    default budget over three seeds. A spline step costs about six affine ones on a CPU,
    and in 75 s it ends well behind the affine flow in KL and efficiency (the table there
    has the figures); it also samples 3–4× slower, so the affine flow stays the default.
    """

    trains_on_density = True
    supports_condition = False
    kinds = ("phasespace",)
    choices = {**FlowGenerator.choices, "transform": ("affine", "spline")}
    defaults = {
        **FlowGenerator.defaults, "hidden": (64, 64), "base": "logistic",
        "transform": "affine", "bins": 8, "unit_box": None, "marginal_bins": 8, "defensive": 0.05,
    }

    @classmethod
    def complete_hparams(cls, given: dict[str, Any], n_features: int) -> dict[str, Any]:
        merged = super().complete_hparams(given, n_features)
        if not 0 <= merged["defensive"] < 1:
            raise InputError(f"model family 'iaf': defensive must be a fraction in [0, 1), got {merged['defensive']!r}")
        return merged

    def __init__(self, n_features: int, n_conditions: int = 0, **hparams: Any) -> None:
        super().__init__(n_features, n_conditions, **hparams)
        loc, scale = _unit_box(n_features, self.hparams["unit_box"], default=_base_box(n_features))
        self.register_buffer("box_loc", loc)
        self.register_buffer("box_scale", scale)

    def build_flow(
        self, n_features: int, n_conditions: int, transforms: int, hidden: tuple[int, ...],
        transform: str, bins: int, unit_box: dict[str, list[float]] | None, marginal_bins: int, defensive: float,
    ) -> zuko.flows.Flow:
        if transform == "affine":
            maf = zuko.flows.MAF(n_features, n_conditions, transforms=transforms, hidden_features=hidden)
            layers = [maf.transform.inv]
            if int(marginal_bins) > 0:
                # All-zero parameters are the identity spline: the flow starts as the affine IAF.
                k = int(marginal_bins)
                shapes = ((n_features, k), (n_features, k), (n_features, k - 1))
                layers.insert(0, UnconditionalTransform(RQSTransform, *(torch.zeros(shape) for shape in shapes)))
            return zuko.flows.Flow(layers, maf.base)
        if n_features < 2:
            raise InputError("model family 'iaf' with transform 'spline' is a coupling flow and needs at least 2 features")
        base_box = _base_box(n_features)
        to_box = UnconditionalTransform(BoxSquash, *_unit_box(n_features, unit_box, default=base_box), buffer=True)
        from_box = UnconditionalTransform(_inverse_box_squash, *base_box, buffer=True)
        couplings = spline_couplings(n_features, n_conditions, transforms, hidden, int(bins))
        # data → box → splines on the box → the base's own box coordinates → base.
        return zuko.flows.Flow([to_box, *couplings.transform.transforms, from_box], couplings.base)

    # The defensive mixture (1 − α) q + α·flat around the trained flow q.

    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        return self._mixture_log_prob(x, super().log_prob(x, cond))

    def sample(self, n: int, cond: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        if not self.hparams["defensive"]:
            return super().sample(n, cond, generator)
        from_box, x_box = self._draw_components(n, generator)
        x = x_box.new_empty(n, self.n_features)
        x[from_box] = x_box
        if n_flow := n - len(x_box):
            x[~from_box] = super().sample(n_flow, cond, generator)
        return x

    def sample_and_log_prob(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        if not self.hparams["defensive"]:
            return self._flow_sample_and_log_prob(n, generator)
        from_box, x_box = self._draw_components(n, generator)
        x, log_q = x_box.new_empty(n, self.n_features), x_box.new_empty(n)
        if len(x_box):
            # The flow's density of the box's events takes the slow direction, for a fraction α of them.
            x[from_box], log_q[from_box] = x_box, super().log_prob(x_box)
        if n_flow := n - len(x_box):
            x[~from_box], log_q[~from_box] = self._flow_sample_and_log_prob(n_flow, generator)
        return x, self._mixture_log_prob(x, log_q)

    def _mixture_log_prob(self, x: Tensor, log_q: Tensor) -> Tensor:
        alpha = self.hparams["defensive"]
        if not alpha:
            return log_q
        a = self.box_scale * x + self.box_loc
        log_flat = (self.box_scale.log() + _log_standard_logistic_pdf(a)).sum(-1)  # a flat box is logistic in its logit
        return torch.logaddexp(log_q + math.log1p(-alpha), log_flat + math.log(alpha))

    def _draw_components(self, n: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """Which of ``n`` events the flat box gives (each with probability α), and those events."""
        from_box = torch.special.ndtr(standard_normal((n,), generator, self.device)) < self.hparams["defensive"]
        logit = _standard_logistic(standard_normal((int(from_box.sum()), self.n_features), generator, self.device))
        return from_box, (logit - self.box_loc) / self.box_scale


def _base_box(n_features: int) -> tuple[Tensor, Tensor]:
    """The unit box of the logistic base: a unit-variance logistic is the image of a uniform."""
    return torch.zeros(n_features), torch.full((n_features,), 1 / _LOGISTIC_SCALE)


_SPLINE_BOUND = 5.0  # zuko's MonotonicRQSTransform covers [-5, 5]


def spline_couplings(n_features: int, n_conditions: int, transforms: int, hidden: tuple[int, ...], bins: int) -> zuko.flows.Flow:
    """Two-half coupling layers (``zuko.flows.NICE``) whose elementwise maps are
    rational-quadratic splines with ``bins`` bins (:class:`RQSTransform`)."""
    return zuko.flows.NICE(
        n_features, n_conditions, transforms=transforms, hidden_features=hidden,
        univariate=RQSTransform, shapes=[(bins,), (bins,), (bins - 1,)],
    )


class RQSTransform(MonotonicRQSTransform):
    """zuko's monotonic rational-quadratic spline, its bins normalised by exp / sum, and
    its inverse (the sampling direction of a coupling flow) written for speed.

    The same function as :class:`zuko.transforms.MonotonicRQSTransform` (the tests compare
    the two both ways); what differs is the cost. torch's CPU softmax over a last
    dimension of a few bins runs about 9× slower than an exp and a sum, and it was 42 % of
    the NSF's sampling time. The inverse then works on the unnormalised cumulative bin
    sizes: it finds the bin, gathers its two knots and slopes, and normalises only those,
    instead of normalising every knot of every event first. No maximum needs subtracting
    before the exp: zuko's squash keeps every unconstrained width and height within
    ±|log slope| / 2, so it cannot overflow.
    """

    def __init__(self, widths: Tensor, heights: Tensor, derivatives: Tensor, bound: float = 5.0,
                 slope: float = 1e-3, **kwargs: Any) -> None:
        super(MonotonicRQSTransform, self).__init__(**kwargs)
        squash = abs(math.log(slope))
        self.bound = bound
        self._widths = (widths / (1 + abs(widths) * (2 / squash))).exp()  # unnormalised bin sizes
        self._heights = (heights / (1 + abs(heights) * (2 / squash))).exp()
        self._log_derivatives = pad(derivatives / (1 + abs(derivatives) * (1 / squash)), (1, 1))

    @property
    def bins(self) -> int:
        return self._widths.shape[-1]

    @cached_property
    def horizontal(self) -> Tensor:
        return _knots(self._widths, self.bound)

    @cached_property
    def vertical(self) -> Tensor:
        return _knots(self._heights, self.bound)

    @cached_property
    def derivatives(self) -> Tensor:
        return self._log_derivatives.exp()

    def _inverse(self, y: Tensor) -> Tensor:
        bound = self.bound
        # Parameters without the batch's shape (an unconditional spline) are broadcast to it.
        widths, heights, log_derivatives = (t.expand(*y.shape, t.shape[-1]) for t in (self._widths, self._heights, self._log_derivatives))
        width_ends, height_ends = widths.cumsum(-1), heights.cumsum(-1)
        total_width, total_height = width_ends[..., -1:], height_ends[..., -1:]
        inside = y.abs() < bound
        # y's place along the heights, in their unnormalised units; outside it lands in an
        # end bin, and the result there is replaced by the identity below.
        level = (y.unsqueeze(-1) / bound + 1) * 0.5 * total_height
        k = (height_ends[..., :-1] < level).sum(-1, keepdim=True)
        bin_width = 2 * bound * widths.gather(-1, k) / total_width
        bin_height = 2 * bound * heights.gather(-1, k) / total_height
        x0 = bound * (2 * width_ends.gather(-1, k) / total_width - 1) - bin_width
        y0 = bound * (2 * height_ends.gather(-1, k) / total_height - 1) - bin_height
        d0, d1 = log_derivatives.gather(-1, torch.cat([k, k + 1], -1)).exp().unbind(-1)
        x0, y0, bin_width, bin_height = (t.squeeze(-1) for t in (x0, y0, bin_width, bin_height))
        s = bin_height / bin_width
        y_ = inside * (y - y0)
        curvature = d0 + d1 - 2 * s
        a = bin_height * (s - d0) + y_ * curvature
        b = bin_height * d0 - y_ * curvature
        c = -s * y_
        z = 2 * c / (-b - (b**2 - 4 * a * c).sqrt())
        return torch.where(inside, x0 + z * bin_width, y)


def _knots(sizes: Tensor, bound: float) -> Tensor:
    """The K + 1 knots from −bound to bound of K bins with the given unnormalised sizes."""
    ends = pad(sizes, (1, 0)).cumsum(-1)
    return bound * (2 * ends / ends[..., -1:] - 1)


class BoxSquash(Transform):
    """x ↦ B tanh((scale·x + loc)/2) = B (2u − 1) with logit u = scale·x + loc: the real line
    onto the spline's interval (−B, B), through the unit box u ∈ (0, 1)."""

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = 1

    def __init__(self, loc: Tensor, scale: Tensor) -> None:
        super().__init__()
        self.loc, self.scale = loc, scale

    def _call(self, x: Tensor) -> Tensor:
        return _SPLINE_BOUND * torch.tanh((self.scale * x + self.loc) / 2)

    def _inverse(self, y: Tensor) -> Tensor:
        # float32 puts no value strictly between B(1 − 6e-8) and B: keep atanh finite.
        inner = (y / _SPLINE_BOUND).clamp(-1 + 1e-7, 1 - 1e-7)
        return (2 * torch.atanh(inner) - self.loc) / self.scale

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        # log(1 − tanh² a) written in a so that it stays exact where tanh rounds to ±1.
        a = ((self.scale * x + self.loc) / 2).abs()
        return torch.log(_SPLINE_BOUND * self.scale / 2) + math.log(4.0) - 2 * a - 2 * softplus(-2 * a)


def _inverse_box_squash(loc: Tensor, scale: Tensor) -> Transform:
    return BoxSquash(loc, scale).inv


def _unit_box(n_features: int, unit_box: dict[str, list[float]] | None, default: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    if unit_box is None:
        return default
    try:
        loc, scale = (torch.as_tensor(unit_box[k], dtype=torch.float32) for k in ("loc", "scale"))
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"model family 'iaf': unit_box must be {{'loc': [...], 'scale': [...]}}, got {unit_box!r}") from err
    if loc.shape != (n_features,) or scale.shape != (n_features,) or not (scale > 0).all():
        raise InputError(f"model family 'iaf': unit_box needs {n_features} 'loc' and {n_features} positive 'scale' values")
    return loc, scale
