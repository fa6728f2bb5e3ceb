"""Adversarial families: the non-saturating GAN and WGAN-GP.

Both have an MLP generator G(z, c) and an MLP discriminator/critic D(x, c), and do their
own alternating updates in :meth:`training_step` so that they run in the one shared loop.

A GAN's losses say little about sample quality, so early stopping uses
:meth:`AdversarialGenerator.validation_loss`: the sliced Wasserstein distance (POT,
``ot.sliced_wasserstein_distance``) between the validation events and as many generated
ones, both with their conditions appended, using fixed projections and fixed generator
noise so that the number changes only when the model does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import ot
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hepgenbench.models.base import Generator, TrainSettings, cat_cond, mlp, register, standard_normal

# Validation: at most this many events and this many projections; fixed seeds.
_VAL_MAX_EVENTS = 20_000
_VAL_PROJECTIONS = 128
_VAL_SEED = 12345


class AdversarialGenerator(Generator):
    """Shared parts of the two GANs. Hyperparameters: ``latent`` (default max(8, features),
    at most 64), ``hidden`` (both networks), ``g_lr``/``d_lr`` (default: the training
    learning rate)."""

    defaults: dict[str, Any] = {"latent": None, "hidden": (128, 128, 128), "g_lr": None, "d_lr": None}
    betas: tuple[float, float] = (0.5, 0.999)

    @classmethod
    def complete_hparams(cls, given: dict[str, Any], n_features: int) -> dict[str, Any]:
        merged = super().complete_hparams(given, n_features)
        merged["latent"] = int(merged["latent"] or min(max(8, n_features), 64))
        return merged

    def __init__(self, n_features: int, n_conditions: int = 0, **hparams: Any) -> None:
        super().__init__(n_features, n_conditions, **hparams)
        hp = self.hparams
        self.generator = mlp(hp["latent"] + n_conditions, n_features, hp["hidden"], nn.LeakyReLU)
        self.discriminator = mlp(n_features + n_conditions, 1, hp["hidden"], nn.LeakyReLU)
        # Counts generator-side batches; a buffer so that checkpoints resume it exactly.
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def sample(self, n: int, cond: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        cond = self._check_cond(cond, n)
        z = standard_normal((n, self.hparams["latent"]), generator, self.device)
        return self.generator(cat_cond(z, cond))

    def _fake(self, n: int, cond: Tensor | None) -> Tensor:
        z = torch.randn((n, self.hparams["latent"]), device=self.device)
        return self.generator(cat_cond(z, cond))

    def critic(self, x: Tensor, cond: Tensor | None) -> Tensor:
        return self.discriminator(cat_cond(x, cond)).squeeze(-1)

    def configure_optimizers(self, settings: TrainSettings) -> list[torch.optim.Optimizer]:
        """Two Adams, generator first."""
        g_lr = self.hparams["g_lr"] or settings.learning_rate
        d_lr = self.hparams["d_lr"] or settings.learning_rate
        return [
            torch.optim.Adam(self.generator.parameters(), lr=g_lr, betas=self.betas, weight_decay=settings.weight_decay),
            torch.optim.Adam(self.discriminator.parameters(), lr=d_lr, betas=self.betas, weight_decay=settings.weight_decay),
        ]

    @torch.no_grad()
    def validation_loss(self, x: Tensor, cond: Tensor | None = None, batch_size: int = 4096) -> float:
        """Sliced Wasserstein-2 distance between validation and generated events (see module doc)."""
        n = min(len(x), _VAL_MAX_EVENTS)
        x, cond = x[:n], None if cond is None else cond[:n]
        noise = torch.Generator().manual_seed(_VAL_SEED)
        fake = torch.cat(
            [
                self.sample(len(xb), None if cond is None else cond[i : i + batch_size], generator=noise)
                for i, xb in zip(range(0, n, batch_size), x.split(batch_size))
            ]
        )
        if not torch.isfinite(fake).all():
            return float("nan")
        real_np = cat_cond(x, cond).double().cpu().numpy()
        fake_np = cat_cond(fake, cond).double().cpu().numpy()
        return float(
            ot.sliced_wasserstein_distance(real_np, fake_np, n_projections=_VAL_PROJECTIONS, seed=np.random.RandomState(_VAL_SEED))
        )


@register("gan")
class GAN(AdversarialGenerator):
    """Non-saturating GAN (Goodfellow et al., arXiv:1406.2661): BCE discriminator and
    generator loss −log D(G(z)). One discriminator and one generator step per batch; Adam
    with betas (0.5, 0.999) as in DCGAN (arXiv:1511.06434)."""

    def training_step(self, x: Tensor, cond: Tensor | None, optimizers: list[torch.optim.Optimizer]) -> dict[str, float]:
        g_opt, d_opt = optimizers
        n = len(x)
        ones, zeros = torch.ones(n, device=x.device), torch.zeros(n, device=x.device)

        d_opt.zero_grad(set_to_none=True)
        real_logit = self.critic(x, cond)
        fake_logit = self.critic(self._fake(n, cond).detach(), cond)
        d_loss = F.binary_cross_entropy_with_logits(real_logit, ones) + F.binary_cross_entropy_with_logits(fake_logit, zeros)
        if torch.isfinite(d_loss):
            d_loss.backward()
            d_opt.step()
        accuracy = 0.5 * (float((real_logit > 0).float().mean()) + float((fake_logit < 0).float().mean()))

        g_opt.zero_grad(set_to_none=True)
        g_loss = F.binary_cross_entropy_with_logits(self.critic(self._fake(n, cond), cond), ones)
        if torch.isfinite(g_loss):
            g_loss.backward()
            g_opt.step()
        self.steps += 1
        return {"loss": float(g_loss.detach()), "d_loss": float(d_loss.detach()), "d_accuracy": accuracy}

    def check_divergence(self, history: list[dict[str, float]], window: int = 5) -> str:
        """The discriminator wins outright: accuracy ≥ 0.99 and the generator loss rising
        and above 5 nats (D(G(z)) < 1 %) for ``window`` epochs in a row."""
        if len(history) < window:
            return ""
        recent = history[-window:]
        g_losses = [h["loss"] for h in recent]
        rising = all(b >= a for a, b in zip(g_losses, g_losses[1:]))
        if all(h["d_accuracy"] >= 0.99 for h in recent) and rising and g_losses[-1] > 5.0:
            return (
                f"discriminator wins outright: accuracy >= 0.99 and generator loss rising to "
                f"{g_losses[-1]:.3g} over the last {window} epochs"
            )
        return ""


@register("wgan")
class WGANGP(AdversarialGenerator):
    """Wasserstein GAN with gradient penalty (Gulrajani et al., arXiv:1704.00028).

    The critic is updated on every batch and the generator every ``n_critic`` batches, with
    penalty λ (E[(‖∇D(x̂)‖ − 1)²] on random interpolates x̂) and Adam betas (0, 0.9) as in
    the paper's Algorithm 1. The reported loss is the critic's Wasserstein estimate
    E[D(real)] − E[D(fake)], which tracks sample quality.
    """

    defaults = {**AdversarialGenerator.defaults, "n_critic": 5, "gp_lambda": 10.0}
    betas = (0.0, 0.9)

    def training_step(self, x: Tensor, cond: Tensor | None, optimizers: list[torch.optim.Optimizer]) -> dict[str, float]:
        g_opt, d_opt = optimizers
        n = len(x)

        d_opt.zero_grad(set_to_none=True)
        fake = self._fake(n, cond).detach()
        wasserstein = self.critic(x, cond).mean() - self.critic(fake, cond).mean()
        alpha = torch.rand((n, 1), device=x.device)
        mixed = (alpha * x + (1 - alpha) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.critic(mixed, cond).sum(), mixed, create_graph=True)
        penalty = ((grad.norm(dim=-1) - 1.0) ** 2).mean()
        d_loss = -wasserstein + self.hparams["gp_lambda"] * penalty
        if torch.isfinite(d_loss):
            d_loss.backward()
            d_opt.step()

        self.steps += 1
        if int(self.steps) % int(self.hparams["n_critic"]) == 0:
            g_opt.zero_grad(set_to_none=True)
            g_loss = -self.critic(self._fake(n, cond), cond).mean()
            if torch.isfinite(g_loss):
                g_loss.backward()
                g_opt.step()
        return {"loss": float(wasserstein.detach()), "d_loss": float(d_loss.detach())}
