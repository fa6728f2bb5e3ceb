"""One contract, checked on every registered family (as scikit-learn's ``check_estimator``
runs over every estimator): whatever is in :func:`hepgenbench.models.families`, in the tree
or installed through the ``hepgenbench.models`` entry points, is held to the same checks.

* sampling: shape, finite values, seeded by the caller's ``torch.Generator`` only, and the
  global RNG left untouched;
* persistence: a saved and loaded model, and one rebuilt from its export, draw the same
  samples;
* an unknown hyperparameter is an :class:`InputError` naming ``models.<family>.<key>``;
* learning: an untrained model fails and a trained one passes a 4-mode 2-D mixture,
  where passing means a C2ST AUC below 0.6 *and* each mode holding 0.25 ± 0.05 of the
  samples (a model that drops or starves a mode fails; :func:`test_mode_check_catches_a_starved_mode`);
  density-trained families learn it from its density;
* every conditional family reproduces per-condition means and spreads;
* every family with an exact density integrates to 1 after training.

A family that models calorimeter cells (``models_cells``) sees the same problems moved
into the positive quadrant, where a cell lives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import cross_val_score

from hepgenbench.errors import InputError
from hepgenbench.models import Generator, families
from hepgenbench.train import TrainSettings, fit, fit_density, load_model, save_model

QUIET = lambda message: None  # noqa: E731
FAMILIES = families()
NAMES = sorted(FAMILIES)
CONDITIONAL = [n for n in NAMES if FAMILIES[n].supports_condition and not FAMILIES[n].trains_on_density]
EXACT_DENSITY = [n for n in NAMES if FAMILIES[n].has_likelihood and not FAMILIES[n].likelihood_is_bound]

# The mixture: four σ = 0.3 Gaussians on a circle of radius 2, equal weights.
CENTRES = np.array([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]])
SIGMA = 0.3
#: Where a family of cells sees the problems: every coordinate > 0 (4σ and more from 0).
CELL_SHIFT = 4.0
N_EVAL = 4000


@dataclass
class Recipe:
    """How the checks build and train one family on these 2-D problems."""

    hparams: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


#: Small networks fit a 2-D problem and train in seconds on two CPU cores.
SMALL = {"hidden": (64, 64)}
DEFAULT_SETTINGS = {"max_epochs": 60, "batch_size": 256, "learning_rate": 2e-3}
#: Only where a family needs it, and why.
RECIPES: dict[str, Recipe] = {
    # The defensive share α of the sampler is flat on the unit box by design: 5 % of the
    # events between the modes. The check is of the flow; the density steps are the
    # fewest that learnt all four modes (20 x 50 of 2048 events: 13 s; 20 x 25 of 1024
    # dropped the mode at (−2, 0)).
    "iaf": Recipe({"defensive": 0}, {"max_epochs": 20, "density_steps_per_epoch": 50,
                                     "density_batch_size": 2048, "learning_rate": 1e-3}),
    # Decoding to its mean, the VAE needs longer to pull its samples off the bridges
    # between the modes: AUC 0.67 after 60 epochs, 0.59 after 150 (14 s).
    "vae": Recipe(settings={"max_epochs": 150}),
    # At β = 1 the latent leaves the modes at (0, ±2) unsplit and one broad gamma covers
    # both (AUC 0.80); β = 0.5 makes a precise latent cheaper, and the flow prior still
    # learns its aggregate posterior. Batch 128 for twice the steps: AUC 0.563, 0.563, 0.544
    # for seeds 0, 1, 2 (13 s); at batch 256, 0.570 and 0.612.
    "hurdlevae": Recipe({"beta": 0.5}, {"batch_size": 128}),
}

#: Families that do not learn the mixture within a CI budget: the check runs and must
#: fail (strict), so that a fix shows up. Measured on this machine, 2026-12-06.
#: Tried for the GAN without reaching 0.6 (seed 0): lr 5e-4 at batch 64, 40 epochs, AUC
#: 0.743 (41 s); a trial patch adding an R1 penalty (γ = 1) and an EMA of the generator's
#: weights (0.999), 0.736: the modes come out right (fractions 0.24-0.26) but non-Gaussian, joined by
#: bridges (6 % of the samples > 3σ from every centre, 1 % in the truth).
MIXTURE_SHORTFALLS = {
    "gan": "AUC 0.786 (mode fractions 0.24-0.27) after 60, 100 or 150 epochs: the sliced-Wasserstein "
           "validation keeps epoch 22",
    "wgan": "AUC 0.943 after 60 epochs, 0.814 after 150 (68 s)",
    # Trained from the density, the IAF's forward KL is estimated on its own draws: a mode
    # that q thins out gets few draws, hence little gradient, and can stay starved. Whether
    # it does depends on the seed and on the CPU's floating point: seed 0 learnt all four
    # modes on the Intel Xeon of 2026-12-06, and one of seeds 0-5 (seed 5) did on an AMD
    # EPYC on 2026-12-07. So this family's check runs seeds 0-5 and must fail on one of them.
    "iaf": "on an AMD EPYC, seeds 0-5: AUC 0.621, 0.628, 0.641, 0.600, 0.659, 0.594, weakest mode 0.18, 0.18, "
           "0.07, 0.24, 0.12, 0.23 (seed 5 passes); "
           "also tried there, each failing in 1-4 of seeds 0-3: 40 epochs, lr 2e-3, lr 5e-4 x 40 epochs, "
           "batch 4096, 8 transforms, 8 transforms at batch 4096 or 128 units, the spline transform",
}
#: The families whose mixture check runs over these training seeds (one failing is a failure).
SEED_SPREAD = {"iaf": range(6)}


#: Hyperparameters of the condition check only.
CONDITION_HPARAMS = {
    # One Gaussian per condition: the VAE's posterior collapses, its latent carries nothing,
    # and all the spread sits in the decoder's σ, which the default (decoding to the mean)
    # never draws: spreads of 0.035 for 0.3. The check is of conditioning, so it draws it.
    "vae": {"sample_noise": True},
}
CONDITION_SHORTFALLS = {
    "gan": "spreads 0.22 and 0.18 for 0.3 at c = 0 after 60 epochs (means right)",
    "wgan": "mean -0.75 for -1 at c = 0 after 60 epochs: 384 generator steps at n_critic = 5",
}


def with_shortfalls(names: list[str], shortfalls: dict[str, str]) -> list:
    return [pytest.param(n, marks=pytest.mark.xfail(reason=shortfalls[n], strict=True)) if n in shortfalls else n
            for n in names]


def recipe(name: str) -> Recipe:
    cls = FAMILIES[name]
    base = Recipe({k: v for k, v in SMALL.items() if k in cls.defaults}, dict(DEFAULT_SETTINGS))
    tuned = RECIPES.get(name, Recipe())
    return Recipe({**base.hparams, **tuned.hparams}, {**base.settings, **tuned.settings})


def space_shift(name: str) -> float:
    return CELL_SHIFT if FAMILIES[name].models_cells else 0.0


def make(name: str, n_features: int = 2, n_conditions: int = 0, **extra: Any) -> Generator:
    return FAMILIES[name](n_features, n_conditions, **{**recipe(name).hparams, **extra})


def draw(model: Generator, n: int, cond: torch.Tensor | None = None, seed: int = 1) -> np.ndarray:
    with torch.no_grad():
        return model.sample(n, cond, generator=torch.Generator().manual_seed(seed)).numpy()


def small_condition(model: Generator, n: int) -> torch.Tensor | None:
    return torch.linspace(0, 1, n)[:, None] if model.n_conditions else None


def n_conditions_for(name: str) -> int:
    return 1 if FAMILIES[name].supports_condition else 0


# ----------------------------------------------------------------------------------------
# The mixture and the verdict on it


def mixture(n: int, rng: np.random.Generator) -> np.ndarray:
    return CENTRES[rng.integers(0, 4, n)] + SIGMA * rng.standard_normal((n, 2))


def mixture_log_density(x: torch.Tensor) -> torch.Tensor:
    centres = torch.as_tensor(CENTRES, dtype=x.dtype)
    sq = ((x[:, None, :] - centres) ** 2).sum(-1) / SIGMA**2
    return torch.logsumexp(-0.5 * sq, dim=1) - math.log(4 * 2 * math.pi * SIGMA**2)


def c2st_auc(truth: np.ndarray, generated: np.ndarray) -> float:
    """Cross-validated AUC of a classifier telling truth from generated (0.5: indistinguishable)."""
    x = np.concatenate([truth, generated])
    y = np.r_[np.zeros(len(truth)), np.ones(len(generated))]
    clf = HistGradientBoostingClassifier(max_iter=50, random_state=0)
    return float(cross_val_score(clf, x, y, cv=3, scoring="roc_auc").mean())


def mode_fractions(x: np.ndarray) -> np.ndarray:
    """The share of events nearest to each of the four centres."""
    nearest = np.argmin(((x[:, None, :] - CENTRES) ** 2).sum(-1), axis=1)
    return np.bincount(nearest, minlength=4) / len(x)


def learns_the_mixture(generated: np.ndarray, truth: np.ndarray) -> tuple[bool, str]:
    """The verdict: C2ST AUC < 0.6 and every mode 0.25 ± 0.05, with the figures."""
    finite = np.isfinite(generated).all(1)
    if not finite.all():
        return False, f"{(~finite).sum()} non-finite samples"
    auc, fractions = c2st_auc(truth, generated), mode_fractions(generated)
    ok = auc < 0.6 and bool(np.all(np.abs(fractions - 0.25) <= 0.05))
    return ok, f"AUC {auc:.3f}, mode fractions {np.round(fractions, 3).tolist()}"


def test_mode_check_catches_a_starved_mode():
    """The verdict passes the true mixture and fails one that drops a mode, and one that
    starves a mode to 15 %: a C2ST alone (AUC below 0.6 there) would let that one pass."""
    rng = np.random.default_rng(0)
    truth = mixture(N_EVAL, rng)
    assert learns_the_mixture(mixture(N_EVAL, rng), truth)[0]

    def weighted(weights: list[float]) -> np.ndarray:
        return CENTRES[rng.choice(4, N_EVAL, p=weights)] + SIGMA * rng.standard_normal((N_EVAL, 2))

    dropped = weighted([1 / 3, 1 / 3, 1 / 3, 0.0])
    starved = weighted([0.85 / 3, 0.85 / 3, 0.85 / 3, 0.15])
    assert not learns_the_mixture(dropped, truth)[0]
    assert not learns_the_mixture(starved, truth)[0]
    assert c2st_auc(truth, starved) < 0.6  # the mode count is what catches it


# ----------------------------------------------------------------------------------------
# Checks on an untrained model: fast


@pytest.mark.parametrize("name", NAMES)
def test_samples_have_the_right_shape_and_are_finite(name):
    torch.manual_seed(0)
    model = make(name, 3, n_conditions_for(name))
    x = draw(model, 257, small_condition(model, 257))
    assert x.shape == (257, 3) and np.isfinite(x).all()
    if model.models_cells:
        assert (x >= 0).all(), "cells hold energies >= 0"


@pytest.mark.parametrize("name", NAMES)
def test_samples_depend_only_on_the_callers_generator(name):
    torch.manual_seed(0)
    model = make(name, 2, n_conditions_for(name))
    cond = small_condition(model, 200)
    before = torch.random.get_rng_state()
    first = draw(model, 200, cond, seed=3)
    assert torch.equal(torch.random.get_rng_state(), before), "sampling touched the global RNG"
    torch.manual_seed(12345)  # another global state must not change the samples
    np.testing.assert_array_equal(draw(model, 200, cond, seed=3), first)
    assert not np.array_equal(draw(model, 200, cond, seed=4), first)


@pytest.mark.parametrize("name", NAMES)
def test_save_and_load_give_identical_samples(name, tmp_path):
    torch.manual_seed(0)
    model = make(name, 3, n_conditions_for(name))
    cond = small_condition(model, 50)
    save_model(tmp_path / "model.pt", model)
    loaded, log = load_model(tmp_path / "model.pt")
    assert log is None and type(loaded) is type(model) and loaded.hparams == model.hparams
    np.testing.assert_array_equal(draw(loaded, 50, cond, seed=3), draw(model, 50, cond, seed=3))
    from hepgenbench.models import from_export

    np.testing.assert_array_equal(draw(from_export(model.export()), 50, cond, seed=3), draw(model, 50, cond, seed=3))


@pytest.mark.parametrize("name", NAMES)
def test_unknown_hyperparameter_raises(name):
    with pytest.raises(InputError, match=rf"models\.{name}\.hidden_featurs: unknown hyperparameter.*known: "):
        FAMILIES[name](2, 0, hidden_featurs=(64,))


@pytest.mark.parametrize("name", NAMES)
def test_card_describes_the_class(name):
    """The catalogue's card (what the workflow reads without torch) is the class's."""
    cls = FAMILIES[name]
    card = cls.card(name)
    assert (card.name, card.has_likelihood, card.supports_condition, card.trains_on_density, card.models_cells) == (
        name, cls.has_likelihood, cls.supports_condition, cls.trains_on_density, cls.models_cells)
    assert card.kinds == tuple(cls.kinds) and set(card.defaults) == set(cls.defaults)
    # every default passes its own check, and the check gives the class's own default back
    assert card.check_hparams(card.defaults, f"models.{name}") == {
        k: tuple(v) if isinstance(v, list) else v for k, v in card.defaults.items()}


# ----------------------------------------------------------------------------------------
# Learning checks: each trains a model


_TRAINED: dict[str, Generator] = {}


def train_on_the_mixture(name: str, seed: int = 0) -> Generator:
    """The family trained on the mixture (from its density when it trains on one)."""
    cls, r = FAMILIES[name], recipe(name)
    torch.manual_seed(seed)
    model = make(name, 2)
    settings = TrainSettings(seed=seed, patience=10**6, **r.settings)
    if cls.trains_on_density:
        log = fit_density(model, mixture_log_density, settings, log=QUIET)
    else:
        rng = np.random.default_rng(seed)
        shift = space_shift(name)
        log = fit(model, mixture(8000, rng) + shift, mixture(2000, rng) + shift, settings=settings, log=QUIET)
    assert not log.diverged, f"{name} diverged: {log.divergence_reason}"
    return model


def trained_on_the_mixture(name: str) -> Generator:
    """:func:`train_on_the_mixture` at seed 0, cached, so that the density check reuses the
    model the learning check trained."""
    if name not in _TRAINED:
        _TRAINED[name] = train_on_the_mixture(name)
    return _TRAINED[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", with_shortfalls(NAMES, MIXTURE_SHORTFALLS))
def test_family_learns_a_four_mode_mixture(name):
    truth = mixture(N_EVAL, np.random.default_rng(1))
    shift = space_shift(name)
    torch.manual_seed(0)
    untrained_ok, untrained = learns_the_mixture(draw(make(name, 2), N_EVAL) - shift, truth)
    assert not untrained_ok, f"the untrained {name} should fail the check ({untrained})"
    for seed in SEED_SPREAD.get(name, [0]):
        model = trained_on_the_mixture(name) if seed == 0 else train_on_the_mixture(name, seed)
        ok, verdict = learns_the_mixture(draw(model, N_EVAL) - shift, truth)
        assert ok, f"{name} did not learn the mixture at training seed {seed}: {verdict}"


def mass_on_a_grid(model: Generator, shift: float = 0.0, half_width: float = 7.0, step: float = 0.1) -> float:
    """∫ q dx over [−7, 7]² (moved by ``shift``) by the midpoint rule."""
    centres = torch.arange(-half_width + step / 2, half_width, step)
    grid = torch.cartesian_prod(centres, centres) + shift
    with torch.no_grad():
        return sum(model.log_prob(chunk).double().exp().sum().item() for chunk in grid.split(4096)) * step**2


@pytest.mark.parametrize("name", EXACT_DENSITY)
def test_untrained_density_integrates_to_one(name):
    """Random initial weights already make a non-Gaussian density."""
    torch.manual_seed(3)
    assert mass_on_a_grid(make(name, 2), space_shift(name)) == pytest.approx(1.0, abs=0.02)


@pytest.mark.slow
@pytest.mark.parametrize("name", EXACT_DENSITY)
def test_trained_density_integrates_to_one(name):
    """After training on the mixture; the step, 0.1, is a third of the modes' σ."""
    model = trained_on_the_mixture(name)
    assert mass_on_a_grid(model, space_shift(name)) == pytest.approx(1.0, abs=0.02)


def two_conditions(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """c = 0: N((−1, 1), 0.3²); c = 1: N((1, −0.5), 0.8²). Means and spreads both move."""
    cond = rng.integers(0, 2, n).astype(float)[:, None]
    mean = np.where(cond == 1, [1.0, -0.5], [-1.0, 1.0])
    sigma = np.where(cond == 1, 0.8, 0.3)
    return mean + sigma * rng.standard_normal((n, 2)), cond


@pytest.mark.slow
@pytest.mark.parametrize("name", with_shortfalls(CONDITIONAL, CONDITION_SHORTFALLS))
def test_conditional_family_reproduces_each_condition(name):
    r, shift = recipe(name), space_shift(name)
    rng = np.random.default_rng(0)
    x, cond = two_conditions(8000, rng)
    torch.manual_seed(0)
    model = make(name, 2, 1, **CONDITION_HPARAMS.get(name, {}))
    log = fit(model, x[:6500] + shift, x[6500:] + shift, cond[:6500], cond[6500:],
              settings=TrainSettings(seed=0, patience=10**6, **r.settings), log=QUIET)
    assert not log.diverged
    for value, mean, sigma in ((0.0, [-1.0, 1.0], 0.3), (1.0, [1.0, -0.5], 0.8)):
        s = draw(model, N_EVAL, torch.full((N_EVAL, 1), value)) - shift
        np.testing.assert_allclose(s.mean(0), mean, atol=0.1, err_msg=f"{name}: means at c = {value}")
        np.testing.assert_allclose(s.std(0), [sigma, sigma], rtol=0.15, err_msg=f"{name}: spreads at c = {value}")
