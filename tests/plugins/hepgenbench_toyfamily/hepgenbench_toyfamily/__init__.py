"""A toy hepgenbench family, declared through the ``hepgenbench.models`` entry point."""

import torch
from torch import nn

from hepgenbench.models.base import Generator, register, standard_normal


@register("toygauss")
class ToyGaussian(Generator):
    """One Gaussian with a full covariance: x = μ + L z, L lower triangular, z ~ N(0, 1)."""

    has_likelihood = True
    supports_condition = False
    defaults = {"init_scale": 1.0}

    def __init__(self, n_features, n_conditions=0, **hparams):
        super().__init__(n_features, n_conditions, **hparams)  # checks and fills self.hparams
        self.mean = nn.Parameter(torch.zeros(n_features))
        self.raw_scale = nn.Parameter(torch.eye(n_features) * self.hparams["init_scale"])

    def scale(self):
        lower = torch.tril(self.raw_scale, -1)
        return lower + torch.diag(nn.functional.softplus(self.raw_scale.diagonal()) + 1e-4)

    def sample(self, n, cond=None, generator=None):  # network space, (n, n_features)
        self._check_cond(cond, n)
        return self.mean + standard_normal((n, self.n_features), generator, self.device) @ self.scale().T

    def log_prob(self, x, cond=None):
        return torch.distributions.MultivariateNormal(self.mean, scale_tril=self.scale()).log_prob(x)

    def loss(self, x, cond=None):  # mean training loss of a batch
        return -self.log_prob(x, cond).mean()
