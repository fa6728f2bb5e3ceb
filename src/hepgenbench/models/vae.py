"""Conditional variational autoencoders (Kingma & Welling, arXiv:1312.6114).

Two families share the encoder q(z|x,c), the prior and the β-weighted loss

    −ELBO_β = E_q[−log p(x|z,c)] + β KL(q(z|x,c) ‖ p(z|c))      (β = 1: the true ELBO),

and differ in their decoder p(x|z,c):

``vae``
    N(μ(z,c), diag σ²) on the preprocessed features, one learned σ per feature
    (input-independent, floored for stability). Sampling decodes z to the decoder *mean* by
    default. That is the standard choice and shows the VAE's known failure mode, blurred
    (over-smoothed) distributions, which is what a benchmark should expose;
    ``sample_noise=True`` adds the decoder's Gaussian noise instead. ``log_prob`` is the
    importance-weighted bound of Burda et al. (IWAE, arXiv:1509.00519) with ``iw_samples``
    samples: a lower bound on log p(x).
``hurdlevae``
    for calorimeter showers, on their cells themselves (the cell space of
    :meth:`hepgenbench.preprocess.Preprocessor.forward_cells`, where an empty cell is exactly
    0): each cell is hit with probability π(z,c) and, if hit, holds a gamma-distributed
    energy of mean m(z,c) and shape k(z,c), independently given z. This is a hurdle model
    (Mullahy, J. Econometrics 33 (1986) 341), as zero-inflated decoders are for sparse counts
    elsewhere (scVI, Lopez et al., Nat. Methods 15 (2018) 1053). A density of the dequantized
    cells spreads its mass across the readout threshold and comes back with too many hit
    cells at low energy, where every flow of the default run was told apart from the truth
    (RESULTS.md); a decoder that draws which cells are hit has no such edge to learn.

The prior p(z|c) is N(0, 1) (``prior: "normal"``) or a conditional MAF on the latent
(``prior: "flow"``), trained with the rest; its KL term is then the one-sample estimate
log q(z|x,c) − log p(z|c). The aggregate posterior of a trained VAE is rarely N(0, 1), and
z drawn from N(0, 1) where it has no mass decodes to events that the truth does not have
(the "holes" of Rezende & Viola, arXiv:1810.06128); a learned prior fills exactly the
aggregate posterior (Tomczak & Welling, arXiv:1705.07120). On the default calo showers, in
75 s on one thread (``benchmarks/bench_calo.py``, two seeds, 2026-12-02), the hurdle decoder
reached a high-level C2ST AUC of 0.78 and 0.80 with the N(0, 1) prior and 0.54 and 0.55 with
the flow prior; the Gaussian decoder 0.999 with either. A side run of the hurdle decoder with
N(0, 1) gave 0.80 on its own samples and 0.60 when z came from the encoder of truth showers:
its decoder was good, its prior was not. ``hurdlevae`` therefore defaults to the flow,
``vae`` keeps N(0, 1), the classic baseline.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import zuko
from torch import Tensor

from hepgenbench.models.base import Generator, cat_cond, in_chunks, mlp, register, standard_gamma, standard_normal, standard_uniform

_LOG_2PI = math.log(2 * math.pi)
PRIORS = ("normal", "flow")


class ConditionalVAE(Generator):
    """Encoder, prior, KL and sampling shared by the VAE families; a subclass gives the
    decoder's likelihood (:meth:`_log_likelihood`), its draw (:meth:`_draw`) and the sizes
    of its networks.

    Hyperparameters: ``latent``, ``hidden`` (the encoder's widths, reversed in the
    decoder), ``beta``, ``prior`` (``"normal"`` or ``"flow"``) and ``prior_transforms``
    (MADE layers of the flow prior), plus each family's own.
    """

    defaults: dict[str, Any] = {
        "latent": None,
        "hidden": (256, 256),
        "beta": 1.0,
        "prior": "normal",
        "prior_transforms": 3,
    }
    #: Widths of the flow prior's MADE conditioners: the latent has a few dimensions.
    PRIOR_HIDDEN = (64, 64)

    choices = {"prior": PRIORS}

    @classmethod
    def complete_hparams(cls, given: dict[str, Any], n_features: int) -> dict[str, Any]:
        merged = super().complete_hparams(given, n_features)
        merged["latent"] = int(merged["latent"] or cls.default_latent(n_features))
        return merged

    def __init__(self, n_features: int, n_conditions: int = 0, **hparams: Any) -> None:
        super().__init__(n_features, n_conditions, **hparams)
        hp = self.hparams
        latent, hidden = hp["latent"], hp["hidden"]
        self.encoder = mlp(self.encoder_inputs(n_features) + n_conditions, 2 * latent, hidden)
        self.decoder = mlp(latent + n_conditions, self.decoder_outputs(n_features), hidden[::-1])
        self.prior_flow = (
            zuko.flows.MAF(latent, n_conditions, transforms=int(hp["prior_transforms"]), hidden_features=self.PRIOR_HIDDEN)
            if hp["prior"] == "flow" else None
        )

    # What a family sets -------------------------------------------------------------------
    @staticmethod
    def default_latent(n_features: int) -> int:
        return min(n_features, 32)

    def encoder_inputs(self, n_features: int) -> int:
        return n_features

    def decoder_outputs(self, n_features: int) -> int:
        return n_features

    def _encoder_input(self, x: Tensor) -> Tensor:
        return x

    def _log_likelihood(self, x: Tensor, decoded: Tensor) -> Tensor:
        """log p(x | z, c) per event, from the decoder's output."""
        raise NotImplementedError

    def _draw(self, decoded: Tensor, generator: torch.Generator | None) -> Tensor:
        """Events from the decoder's output."""
        raise NotImplementedError

    # Shared ------------------------------------------------------------------------------
    def encode(self, x: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z | x, c)."""
        mean, log_var = self.encoder(cat_cond(self._encoder_input(x), cond)).chunk(2, dim=-1)
        return mean, log_var.clamp(-12.0, 8.0)

    def decode(self, z: Tensor, cond: Tensor | None) -> Tensor:
        return self.decoder(cat_cond(z, cond))

    def prior_log_prob(self, z: Tensor, cond: Tensor | None) -> Tensor:
        """log p(z | c); ``z`` may carry leading sample dimensions before the events'."""
        if self.prior_flow is None:
            return (-0.5 * z**2 - 0.5 * _LOG_2PI).sum(-1)
        return self.prior_flow(None if cond is None else cond.expand(*z.shape[:-1], cond.shape[-1])).log_prob(z)

    def _kl(self, mean: Tensor, log_var: Tensor, z: Tensor, eps: Tensor, cond: Tensor | None) -> Tensor:
        if self.prior_flow is None:  # exact for two Gaussians
            return 0.5 * (mean**2 + log_var.exp() - 1.0 - log_var).sum(-1)
        log_q = (-0.5 * eps**2 - 0.5 * log_var - 0.5 * _LOG_2PI).sum(-1)
        return log_q - self.prior_log_prob(z, cond)

    def loss(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        mean, log_var = self.encode(x, cond)
        eps = torch.randn_like(mean)
        z = mean + eps * (0.5 * log_var).exp()
        reconstruction = -self._log_likelihood(x, self.decode(z, cond))
        return (reconstruction + self.hparams["beta"] * self._kl(mean, log_var, z, eps, cond)).mean()

    def draw_latent(self, n: int, cond: Tensor | None, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws from the prior p(z | c), from ``generator``."""
        z = standard_normal((n, self.hparams["latent"]), generator, self.device)
        return z if self.prior_flow is None else in_chunks(lambda zc, c: self.prior_flow(c).transform.inv(zc), z, cond)

    def sample(self, n: int, cond: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        cond = self._check_cond(cond, n)
        z = self.draw_latent(n, cond, generator)
        return in_chunks(lambda zc, c: self._draw(self.decode(zc, c), generator), z, cond)

@register("vae")
class VAE(ConditionalVAE):
    """Gaussian decoder on the preprocessed features. Extra hyperparameters:
    ``iw_samples``, ``sample_noise``, ``min_log_sigma``."""

    has_likelihood = True
    likelihood_is_bound = True

    defaults = {
        **ConditionalVAE.defaults,
        "iw_samples": 64,
        "sample_noise": False,
        # Floor on the decoder's log σ: without it σ → 0 on easy features and the
        # likelihood term dominates the KL without bound.
        "min_log_sigma": -4.0,
    }

    def __init__(self, n_features: int, n_conditions: int = 0, **hparams: Any) -> None:
        super().__init__(n_features, n_conditions, **hparams)
        self.log_sigma = torch.nn.Parameter(torch.zeros(n_features))

    def _sigma_log(self) -> Tensor:
        return self.log_sigma.clamp(min=self.hparams["min_log_sigma"])

    def _log_likelihood(self, x: Tensor, decoded: Tensor) -> Tensor:
        log_sigma = self._sigma_log()
        return (-0.5 * ((x - decoded) / log_sigma.exp()) ** 2 - log_sigma - 0.5 * _LOG_2PI).sum(-1)

    def _draw(self, decoded: Tensor, generator: torch.Generator | None) -> Tensor:
        if self.hparams["sample_noise"]:
            return decoded + standard_normal(decoded.shape, generator, self.device) * self._sigma_log().exp()
        return decoded

    @torch.no_grad()
    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """IWAE bound log (1/k) Σ_j p(x, z_j) / q(z_j | x), z_j ~ q; tightens as k grows.

        Evaluated in chunks of events so that the k copies stay within ~2^22 values per
        tensor (k = 64 copies of 10k calorimeter showers would otherwise need ~1 GB).
        """
        cond = self._check_cond(cond, len(x))
        chunk = max(1, 2**22 // (int(self.hparams["iw_samples"]) * max(self.n_features, max(self.hparams["hidden"]))))
        parts = [
            self._iwae(x[i : i + chunk], None if cond is None else cond[i : i + chunk]) for i in range(0, len(x), chunk)
        ]
        return torch.cat(parts) if parts else x.new_zeros(0)

    def _iwae(self, x: Tensor, cond: Tensor | None) -> Tensor:
        k = int(self.hparams["iw_samples"])
        mean, log_var = self.encode(x, cond)
        std = (0.5 * log_var).exp()
        eps = torch.randn((k, *mean.shape), device=mean.device)
        z = mean + eps * std  # (k, n, latent)
        decoded = self.decode(z, None if cond is None else cond.expand(k, *cond.shape))
        log_qz = (-0.5 * eps**2 - std.log() - 0.5 * _LOG_2PI).sum(-1)
        log_w = self._log_likelihood(x, decoded) + self.prior_log_prob(z, cond) - log_qz
        return torch.logsumexp(log_w, dim=0) - math.log(k)


@register("hurdlevae")
class HurdleVAE(ConditionalVAE):
    """Hurdle decoder on calorimeter cells: hit or not, then a gamma energy (see the module).

    It models the cell space, not the dataset's preprocessing (``models_cells``): its
    inputs are ≥ 0, 0 for an empty cell. The decoder gives, per cell, the logit of π, log m
    and log k; the encoder sees which cells are hit and the log of their values. Its
    likelihood is a density of the hit cells times the probability of the empty ones: on
    another measure than the flows' densities of dequantized cells, so it is not reported
    beside them (``has_likelihood = False``).
    """

    models_cells = True
    kinds = ("calo",)
    defaults = {**ConditionalVAE.defaults, "latent": 8, "prior": "flow"}
    #: log k is kept where a gamma's density is finite in float32 and its draws are not all
    #: equal to the mean: k from e^-4 (a spike at 0 with a long tail) to e^12.
    LOG_SHAPE_RANGE = (-4.0, 12.0)

    def encoder_inputs(self, n_features: int) -> int:
        return 2 * n_features

    def decoder_outputs(self, n_features: int) -> int:
        return 3 * n_features

    def _encoder_input(self, x: Tensor) -> Tensor:
        hit = x > 0
        return torch.cat([hit.to(x.dtype), torch.where(hit, x, 1.0).log()], -1)

    def _cell_distribution(self, decoded: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Logit of the hit probability, log mean and log shape of the hit energy, per cell."""
        hit_logit, log_mean, log_shape = decoded.unflatten(-1, (3, self.n_features)).unbind(-2)
        return hit_logit, log_mean, log_shape.clamp(*self.LOG_SHAPE_RANGE)

    def _log_likelihood(self, x: Tensor, decoded: Tensor) -> Tensor:
        hit_logit, log_mean, log_shape = self._cell_distribution(decoded)
        hit = x > 0
        # log π = −softplus(−logit), log(1 − π) = −softplus(logit)
        log_hurdle = -torch.nn.functional.softplus(torch.where(hit, -hit_logit, hit_logit))
        shape = log_shape.exp()
        log_x = torch.where(hit, x, 1.0).log()
        # Gamma(x; k, rate k/m): k log(k/m) + (k − 1) log x − k x/m − lgamma(k)
        log_gamma = shape * (log_shape - log_mean) + (shape - 1) * log_x - shape * x * (-log_mean).exp() - torch.lgamma(shape)
        return (log_hurdle + torch.where(hit, log_gamma, 0.0)).sum(-1)

    def _draw(self, decoded: Tensor, generator: torch.Generator | None) -> Tensor:
        hit_logit, log_mean, log_shape = self._cell_distribution(decoded)
        hit = standard_uniform(hit_logit.shape, generator, self.device) < torch.sigmoid(hit_logit)
        # A gamma draw is a rejection loop per value: only the hit cells get one (a shower at
        # low energy has a few dozen of its 368).
        cells = torch.zeros_like(hit_logit)
        cells[hit] = standard_gamma(log_shape[hit].exp(), generator) * (log_mean[hit] - log_shape[hit]).exp()
        return cells
