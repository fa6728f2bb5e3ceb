"""Conditional flow matching (Lipman et al., arXiv:2210.02747).

An MLP velocity field v(t, x, c) is regressed onto the velocity of the linear
(optimal-transport) path x_t = (1 − t) x₀ + t x₁ between noise x₀ ~ N(0, 1) and data x₁,

    L = E_{t, x₀, x₁} ‖v(t, x_t, c) − (x₁ − x₀)‖²,

with σ_min = 0 (the rectified-flow form of the path). Sampling integrates dx/dt = v from
t = 0 to 1 with a *fixed-step* explicit solver (``solver`` ∈ euler, midpoint, rk4;
``n_steps``). zuko's ``odeint`` is adaptive, so its cost would depend on the model and the
batch; a fixed step makes the number of network evaluations a hyperparameter that the
benchmark can trade against accuracy (``benchmarks/bench_models.py`` scans it).

``log_prob`` uses the instantaneous change of variables (Chen et al., arXiv:1806.07366),
log p₁(x₁) = log N(x₀) − ∫₀¹ ∇·v(t, x_t) dt, integrated backwards with the same solver.
The divergence is the exact Jacobian trace (``torch.func``) up to ``exact_trace_max_dim``
features and Hutchinson's estimator (Rademacher probes, arXiv:1810.01367) above, which is
unbiased but noisy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from hepgenbench.errors import InputError
from hepgenbench.models.base import Generator, mlp, register, standard_normal

_SOLVERS = ("euler", "midpoint", "rk4")


def ode_step(f: Callable[[Tensor, Tensor], Tensor], t: Tensor, y: Tensor, dt: float, solver: str) -> Tensor:
    """One explicit step of dy/dt = f(t, y)."""
    if solver == "euler":
        return y + dt * f(t, y)
    if solver == "midpoint":
        return y + dt * f(t + dt / 2, y + dt / 2 * f(t, y))
    k1 = f(t, y)
    k2 = f(t + dt / 2, y + dt / 2 * k1)
    k3 = f(t + dt / 2, y + dt / 2 * k2)
    k4 = f(t + dt, y + dt * k3)
    return y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


class VelocityField(nn.Module):
    """v(t, x, c): an MLP on [x, c, sin/cos Fourier features of t]."""

    def __init__(self, n_features: int, n_conditions: int, hidden: tuple[int, ...], n_frequencies: int = 4) -> None:
        super().__init__()
        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(n_frequencies, dtype=torch.get_default_dtype()))
        self.net = mlp(n_features + n_conditions + 1 + 2 * n_frequencies, n_features, hidden)

    def forward(self, t: Tensor, x: Tensor, cond: Tensor | None = None) -> Tensor:
        t = t.expand(*x.shape[:-1], 1) if t.dim() else t.expand(*x.shape[:-1]).unsqueeze(-1)
        phases = t * self.frequencies
        parts = [x, t, phases.sin(), phases.cos()] + ([] if cond is None else [cond])
        return self.net(torch.cat(parts, dim=-1))


@register("cfm")
class CFM(Generator):
    """Hyperparameters: ``hidden``, ``n_steps`` (default 20), ``solver`` (default rk4),
    ``exact_trace_max_dim`` (default 20), ``hutchinson_probes`` (default 1)."""

    has_likelihood = True
    defaults: dict[str, Any] = {
        "hidden": (256, 256, 256),
        "n_steps": 20,
        "solver": "rk4",
        "exact_trace_max_dim": 20,
        "hutchinson_probes": 1,
    }

    choices = {"solver": _SOLVERS}

    @classmethod
    def complete_hparams(cls, given: dict[str, Any], n_features: int) -> dict[str, Any]:
        merged = super().complete_hparams(given, n_features)
        if merged["n_steps"] < 1:
            raise InputError(f"cfm hyperparameter 'n_steps' is {merged['n_steps']}; expected an integer >= 1")
        return merged

    def __init__(self, n_features: int, n_conditions: int = 0, **hparams: Any) -> None:
        super().__init__(n_features, n_conditions, **hparams)
        self.velocity = VelocityField(n_features, n_conditions, self.hparams["hidden"])

    def loss(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        x0 = torch.randn_like(x)
        t = torch.rand((len(x), 1), device=x.device)
        xt = (1 - t) * x0 + t * x
        return ((self.velocity(t, xt, cond) - (x - x0)) ** 2).sum(-1).mean()

    def sample(self, n: int, cond: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        cond = self._check_cond(cond, n)
        x = standard_normal((n, self.n_features), generator, self.device)
        n_steps = int(self.hparams["n_steps"])
        dt = 1.0 / n_steps
        with torch.no_grad():
            for i in range(n_steps):
                t = torch.tensor(i * dt, device=x.device)
                x = ode_step(lambda s, y: self.velocity(s, y, cond), t, x, dt, self.hparams["solver"])
        return x

    def _divergence_fn(self, cond: Tensor | None, probes: Tensor | None) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """(t, x) ↦ (v, ∇·v) per event, exact or Hutchinson depending on ``probes``."""

        def single(x1: Tensor, c1: Tensor | None, t: Tensor) -> Tensor:
            return self.velocity(t, x1.unsqueeze(0), None if c1 is None else c1.unsqueeze(0)).squeeze(0)

        def exact(t: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
            jac = torch.func.vmap(torch.func.jacrev(single), in_dims=(0, None if cond is None else 0, None))(x, cond, t)
            return self.velocity(t, x, cond), jac.diagonal(dim1=-2, dim2=-1).sum(-1)

        def hutchinson(t: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
            def jacobian_times(eps: Tensor) -> Tensor:
                return torch.func.jvp(lambda y: self.velocity(t, y, cond), (x,), (eps,))[1]

            jv = torch.func.vmap(jacobian_times)(probes)  # (probes, n, D), all probes in one pass
            return self.velocity(t, x, cond), (probes * jv).sum(-1).mean(0)

        return exact if probes is None else hutchinson

    @torch.no_grad()
    def log_prob(self, x: Tensor, cond: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Exact (ODE-discretisation-limited) log-density; stochastic only with Hutchinson."""
        cond = self._check_cond(cond, len(x))
        probes = None
        if self.n_features > int(self.hparams["exact_trace_max_dim"]):
            shape = (int(self.hparams["hutchinson_probes"]), *x.shape)
            gen_device = generator.device if generator is not None else torch.device("cpu")
            probes = (torch.randint(0, 2, shape, generator=generator, device=gen_device) * 2.0 - 1.0).to(x)
        field = self._divergence_fn(cond, probes)
        n_features = self.n_features

        # Augmented state [x, ∫ div]; integrating from t = 1 back to 0 (dt < 0).
        def augmented(t: Tensor, y: Tensor) -> Tensor:
            v, div = field(t, y[:, :n_features])
            return torch.cat([v, div.unsqueeze(-1)], dim=-1)

        n_steps = int(self.hparams["n_steps"])
        dt = -1.0 / n_steps
        y = torch.cat([x, torch.zeros(len(x), 1, device=x.device, dtype=x.dtype)], dim=-1)
        for i in range(n_steps):
            t = torch.tensor(1.0 + i * dt, device=x.device)
            y = ode_step(augmented, t, y, dt, self.hparams["solver"])
        x0, integral = y[:, :n_features], y[:, -1]
        # integral = ∫_1^0 div dt = −∫_0^1 div dt, so log p1 = log N(x0) + integral.
        log_base = (-0.5 * x0**2 - 0.5 * math.log(2 * math.pi)).sum(-1)
        return log_base + integral
