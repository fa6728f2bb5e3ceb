"""Conditional variational autoencoder (Kingma & Welling, arXiv:1312.6114).

Gaussian encoder q(z|x,c), Gaussian decoder p(x|z,c) = N(μ(z,c), diag σ²) with one learned
σ per feature (input-independent, floored for stability), and the β-weighted loss

    −ELBO_β = E_q[−log p(x|z,c)] + β KL(q(z|x,c) ‖ N(0, 1))      (β = 1: the true ELBO).

Sampling decodes z ~ N(0, 1) to the decoder *mean* by default. That is the standard choice
and shows the VAE's known failure mode, blurred (over-smoothed) distributions, which is
what a benchmark should expose; ``sample_noise=True`` adds the decoder's Gaussian noise
instead. ``log_prob`` is the importance-weighted bound of Burda et al. (IWAE,
arXiv:1509.00519) with ``iw_samples`` samples: a lower bound on log p(x).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from hepgenbench.errors import InputError
from hepgenbench.models.base import Generator, cat_cond, mlp, register, standard_normal

_LOG_2PI = math.log(2 * math.pi)


@register("vae")
class VAE(Generator):
    """Hyperparameters: ``latent`` (default: number of features, at most 32), ``hidden``,
    ``beta``, ``iw_samples``, ``sample_noise``, ``min_log_sigma``."""

    has_likelihood = True
    likelihood_is_bound = True
    defaults: dict[str, Any] = {
        "latent": None,
        "hidden": (256, 256),
        "beta": 1.0,
        "iw_samples": 64,
        "sample_noise": False,
        # Floor on the decoder's log σ: without it σ → 0 on easy features and the
        # likelihood term dominates the KL without bound.
        "min_log_sigma": -4.0,
    }

    def __init__(self, n_features: int, n_conditions: int = 0, **hparams: Any) -> None:
        unknown = set(hparams) - set(self.defaults)
        if unknown:
            raise InputError(f"unknown hyperparameter(s) {sorted(unknown)} for model family 'vae'; known: {sorted(self.defaults)}")
        merged = {**self.defaults, **hparams}
        merged["latent"] = int(merged["latent"] or min(n_features, 32))
        merged["hidden"] = tuple(int(h) for h in merged["hidden"])
        super().__init__(n_features, n_conditions, **merged)
        latent, hidden = merged["latent"], merged["hidden"]
        self.encoder = mlp(n_features + n_conditions, 2 * latent, hidden)
        self.decoder = mlp(latent + n_conditions, n_features, hidden[::-1])
        self.log_sigma = torch.nn.Parameter(torch.zeros(n_features))

    def _sigma_log(self) -> Tensor:
        return self.log_sigma.clamp(min=self.hparams["min_log_sigma"])

    def encode(self, x: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z | x, c)."""
        mean, log_var = self.encoder(cat_cond(x, cond)).chunk(2, dim=-1)
        return mean, log_var.clamp(-12.0, 8.0)

    def decode(self, z: Tensor, cond: Tensor | None) -> Tensor:
        """Mean of p(x | z, c)."""
        return self.decoder(cat_cond(z, cond))

    def _log_likelihood(self, x: Tensor, x_mean: Tensor) -> Tensor:
        log_sigma = self._sigma_log()
        return (-0.5 * ((x - x_mean) / log_sigma.exp()) ** 2 - log_sigma - 0.5 * _LOG_2PI).sum(-1)

    def loss(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        mean, log_var = self.encode(x, cond)
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        reconstruction = -self._log_likelihood(x, self.decode(z, cond))
        kl = 0.5 * (mean**2 + log_var.exp() - 1.0 - log_var).sum(-1)
        return (reconstruction + self.hparams["beta"] * kl).mean()

    def sample(self, n: int, cond: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        cond = self._check_cond(cond, n)
        z = standard_normal((n, self.hparams["latent"]), generator, self.device)
        x = self.decode(z, cond)
        if self.hparams["sample_noise"]:
            x = x + standard_normal((n, self.n_features), generator, self.device) * self._sigma_log().exp()
        return x

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
        x_mean = self.decode(z, None if cond is None else cond.expand(k, *cond.shape))
        log_px_z = self._log_likelihood(x, x_mean)
        log_pz = (-0.5 * z**2 - 0.5 * _LOG_2PI).sum(-1)
        log_qz = (-0.5 * eps**2 - std.log() - 0.5 * _LOG_2PI).sum(-1)
        return torch.logsumexp(log_px_z + log_pz - log_qz, dim=0) - math.log(k)
