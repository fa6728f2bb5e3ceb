"""The one interface every generator family implements, and the registry that names them.

A model works in *network space*: the preprocessed, standardised coordinates produced by
:mod:`hepgenbench.preprocess`. The workflow stages move data in and out of physical units,
so a model never needs to know about GeV or radians.

Families register themselves with :func:`register` so that the config can list them by
name and the workflow can build them with :func:`build`.
"""

from __future__ import annotations

import math
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn

from hepgenbench.errors import InputError
# The training records are torch-free and live with the other stage records.
from hepgenbench.records import EpochRecord, TrainingLog, TrainSettings  # noqa: F401  (re-exported)


#: Seed of the common random numbers used by :meth:`Generator.validation_loss`.
VALIDATION_SEED = 20_221_005


class Generator(nn.Module):
    """Base class of every family.

    Subclasses set the class attributes, build their networks in ``__init__`` from
    ``n_features``, ``n_conditions`` and keyword hyperparameters, and implement
    :meth:`sample` and, where a density exists, :meth:`log_prob`. How a batch turns into
    a loss is the subclass's business (:meth:`training_step`), so that GANs, which need
    two optimisers, share the one training loop in :mod:`hepgenbench.train`.
    """

    family: ClassVar[str] = ""
    #: ``log_prob`` is available (exact for flows, a bound for the VAE).
    has_likelihood: ClassVar[bool] = False
    #: ``log_prob`` is a lower bound (ELBO / IWAE), not the exact density.
    likelihood_is_bound: ClassVar[bool] = False
    #: Trained on an explicit target density rather than on data (``iaf``).
    trains_on_density: ClassVar[bool] = False
    #: Takes a condition vector.
    supports_condition: ClassVar[bool] = True
    #: Models calorimeter cells themselves, ≥ 0 and exactly 0 when empty
    #: (:meth:`~hepgenbench.preprocess.Preprocessor.forward_cells`), rather than the
    #: dataset's preprocessed network space (``hurdlevae``).
    models_cells: ClassVar[bool] = False

    def __init__(self, n_features: int, n_conditions: int = 0, **hparams: Any) -> None:
        super().__init__()
        if n_conditions and not self.supports_condition:
            raise InputError(
                f"model family '{self.family}' cannot take a condition, but the dataset has "
                f"{n_conditions} condition column(s); remove the model or the condition"
            )
        self.n_features = n_features
        self.n_conditions = n_conditions
        self.hparams = dict(hparams)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def sample(self, n: int, cond: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` events in network space; ``cond`` is ``(n, C)`` when conditional."""
        raise NotImplementedError

    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Log-density of ``x`` in network space (a bound when ``likelihood_is_bound``)."""
        raise InputError(f"model family '{self.family}' has no likelihood")

    # ------------------------------------------------------------------------------------
    # Hooks used by the shared loop in :mod:`hepgenbench.train`. The defaults fit every
    # family that minimises one scalar loss with one optimiser; GANs override them.

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def loss(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Per-batch scalar training objective (mean over events); lower is better."""
        raise NotImplementedError

    def configure_optimizers(self, settings: TrainSettings) -> list[torch.optim.Optimizer]:
        """The optimisers the loop steps and checkpoints; one Adam by default."""
        return [
            torch.optim.Adam(self.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
        ]

    def training_step(self, x: Tensor, cond: Tensor | None, optimizers: list[torch.optim.Optimizer]) -> dict[str, float]:
        """One update on one batch; returns at least ``{"loss": ...}`` (floats, for the log).

        The model, not the loop, owns the update so that adversarial families can alternate
        their two optimisers inside the same loop.
        """
        (optimizer,) = optimizers
        optimizer.zero_grad(set_to_none=True)
        loss = self.loss(x, cond)
        if torch.isfinite(loss):  # a non-finite loss is reported, never applied
            loss.backward()
            optimizer.step()
        return {"loss": float(loss.detach())}

    @torch.no_grad()
    def validation_loss(self, x: Tensor, cond: Tensor | None = None, batch_size: int = 4096) -> float:
        """Early-stopping criterion on the validation set; the training loss by default.

        Stochastic losses (the VAE's reparametrised z, flow matching's t and noise) are
        evaluated with the same random numbers every epoch, from a forked, fixed-seed RNG:
        the criterion then moves only when the model does, and validation leaves the
        training RNG stream untouched.
        """
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(VALIDATION_SEED)
            total = 0.0
            for start in range(0, len(x), batch_size):
                xb = x[start : start + batch_size]
                cb = None if cond is None else cond[start : start + batch_size]
                total += float(self.loss(xb, cb)) * len(xb)
        return total / max(len(x), 1)

    def check_divergence(self, history: list[dict[str, float]]) -> str:
        """A reason to stop (e.g. a discriminator that wins outright), or ``""``.

        ``history`` holds the per-epoch means of what :meth:`training_step` returned.
        """
        return ""

    # ------------------------------------------------------------------------------------
    # Persistence: everything needed to rebuild the model without the config.

    def export(self) -> dict[str, Any]:
        """Family, shapes, hyperparameters and weights: what :func:`from_export` needs."""
        return {
            "family": self.family,
            "n_features": self.n_features,
            "n_conditions": self.n_conditions,
            "hparams": dict(self.hparams),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
        }

    def _check_cond(self, cond: Tensor | None, n: int) -> Tensor | None:
        """Validate a condition batch against the model; returns it on the model's device."""
        if self.n_conditions == 0:
            if cond is not None:
                raise InputError(f"model family '{self.family}' was built without conditions but got cond")
            return None
        if cond is None:
            raise InputError(
                f"model family '{self.family}' is conditional ({self.n_conditions} condition column(s)); "
                "pass cond of shape (n, C)"
            )
        cond = torch.as_tensor(cond, dtype=torch.get_default_dtype(), device=self.device)
        if cond.shape != (n, self.n_conditions):
            raise InputError(
                f"cond has shape {tuple(cond.shape)}; expected ({n}, {self.n_conditions}) for this model"
            )
        return cond


def standard_normal(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """N(0, 1) noise drawn on the generator's device, then moved.

    Drawing where the generator lives means one CPU seed gives the same noise whether the
    model runs on the CPU or on CUDA.
    """
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(shape, generator=generator, device=gen_device).to(device)


def standard_uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """U(0, 1) noise drawn on the generator's device, then moved (see :func:`standard_normal`)."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


def standard_gamma(concentration: Tensor, generator: torch.Generator | None) -> Tensor:
    """Gamma(k, rate 1) draws for each concentration k, from ``generator``, on k's device.

    ``torch.distributions.Gamma`` draws from the global RNG only; its own sampler,
    ``torch._standard_gamma``, takes a generator.
    """
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch._standard_gamma(concentration.to(gen_device), generator=generator).to(concentration.device)


#: Events per pass when a family samples a large batch (:func:`in_chunks`).
SAMPLE_CHUNK = 2_000


def in_chunks(fn: Callable[[Tensor, Tensor | None], Tensor], x: Tensor, cond: Tensor | None) -> Tensor:
    """``fn(x, cond)`` over chunks of :data:`SAMPLE_CHUNK` events, concatenated.

    A large batch goes through in chunks whose temporaries stay in a core's cache: 1e5 at
    once is up to 1.8× slower on a CPU, and chunks of 2000 (a 128-wide hidden layer is 1 MB)
    sampled NSF 1.1-1.5× faster than chunks of 1e4 (2026-12-01, EPYC). The hurdle VAE's
    decoder made 100 MB layers at 1e5 events, and the bias copies and activations into them
    took half its sampling time (2026-12-02).
    """
    if len(x) <= SAMPLE_CHUNK:
        return fn(x, cond)
    conds = cond.split(SAMPLE_CHUNK) if cond is not None else [None] * math.ceil(len(x) / SAMPLE_CHUNK)
    return torch.cat([fn(xc, c) for xc, c in zip(x.split(SAMPLE_CHUNK), conds)])


def mlp(n_in: int, n_out: int, hidden: tuple[int, ...] | list[int], activation: type[nn.Module] = nn.SiLU) -> nn.Sequential:
    """A plain fully connected network: Linear, activation, ..., Linear."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width), activation()]
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def cat_cond(x: Tensor, cond: Tensor | None) -> Tensor:
    """Append the condition columns to the input, the usual way to condition an MLP."""
    return x if cond is None else torch.cat([x, cond], dim=-1)


REGISTRY: dict[str, type[Generator]] = {}


def register(name: str):
    """Class decorator: make a family buildable by its config name."""

    def wrap(cls: type[Generator]) -> type[Generator]:
        if name in REGISTRY:
            raise ValueError(f"model family '{name}' registered twice")
        cls.family = name
        REGISTRY[name] = cls
        return cls

    return wrap


def build(name: str, n_features: int, n_conditions: int = 0, **hparams: Any) -> Generator:
    """Build a registered family; unknown names list what exists."""
    if name not in REGISTRY:
        raise InputError(f"unknown model family '{name}'; known families: {sorted(REGISTRY)}")
    return REGISTRY[name](n_features, n_conditions, **hparams)


def from_export(exported: dict[str, Any]) -> Generator:
    """Rebuild a model written by :meth:`Generator.export`."""
    model = build(exported["family"], exported["n_features"], exported["n_conditions"], **exported["hparams"])
    model.load_state_dict(exported["state_dict"])
    return model


def select_device(requested: str = "auto") -> torch.device:
    """CUDA when present and asked for; a requested but absent GPU falls back with a warning."""
    import warnings

    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if requested.startswith("cuda"):
        warnings.warn(f"device '{requested}' was requested but no CUDA device is present; using the CPU", stacklevel=2)
    return torch.device("cpu")
