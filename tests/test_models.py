"""What is particular to each family: change of variables, bases, the IAF's box and
defensive mixture, the VAE's bound, flow matching's ODE, the hurdle decoder. The contract
that every family shares (seeded sampling, save and load, learning a mixture, conditions,
densities that integrate to 1) is checked in test_family_checks.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import cross_val_score

from hepgenbench.errors import InputError
from hepgenbench.models.base import build
from hepgenbench.train import TrainSettings, fit

QUIET = lambda message: None  # noqa: E731


def four_gaussians(n: int, rng: np.random.Generator) -> np.ndarray:
    """Four σ = 0.3 Gaussians on a circle of radius 2."""
    angle = rng.integers(0, 4, n) * np.pi / 2
    return np.stack([2 * np.cos(angle), 2 * np.sin(angle)], 1) + 0.3 * rng.standard_normal((n, 2))


def c2st_auc(truth: np.ndarray, generated: np.ndarray) -> float:
    """Cross-validated AUC of a classifier separating truth from generated (0.5 = indistinguishable)."""
    x = np.concatenate([truth, generated])
    y = np.r_[np.zeros(len(truth)), np.ones(len(generated))]
    clf = HistGradientBoostingClassifier(max_iter=50, random_state=0)
    return float(cross_val_score(clf, x, y, cv=3, scoring="roc_auc").mean())


def draw(model, n: int, cond=None, seed: int = 1) -> np.ndarray:
    with torch.no_grad():
        return model.sample(n, cond, generator=torch.Generator().manual_seed(seed)).numpy()


def logistic_log_pdf(z: torch.Tensor) -> torch.Tensor:
    """The logistic with unit variance, written from its textbook pdf e^{-y}/(s(1+e^{-y})²), y = z/s."""
    s = math.sqrt(3) / math.pi
    y = z / s
    return (-y - 2 * torch.log1p(torch.exp(-y)) - math.log(s)).sum(-1)


@pytest.mark.parametrize("base", ["normal", "logistic"])
@pytest.mark.parametrize("family, extra", [
    ("maf", {}), ("realnvp", {}), ("nsf", {}), ("iaf", {"defensive": 0}), ("iaf", {"transform": "spline", "defensive": 0}),
])
def test_flow_log_prob_is_change_of_variables(family, extra, base):
    """log q(x) = log base(f(x)) + log |det ∂f/∂x| with f the flow's x → z map, Jacobian by autograd.

    The IAF's defensive mixture is switched off: its flow alone is a change of variables.
    """
    torch.manual_seed(4)
    model = build(family, 3, hidden=(16, 16), base=base, **extra)
    x = draw(model, 5, seed=7)
    to_latent = model.flow().transform
    base_log_pdf = logistic_log_pdf if base == "logistic" else lambda z: torch.distributions.Normal(0.0, 1.0).log_prob(z).sum()
    for xi in torch.as_tensor(x):
        z = to_latent(xi)
        jac = torch.autograd.functional.jacobian(to_latent, xi)
        expected = base_log_pdf(z) + torch.linalg.slogdet(jac).logabsdet
        assert model.log_prob(xi[None]).item() == pytest.approx(expected.item(), abs=1e-4)


def test_logistic_base_draws_have_unit_variance_and_the_textbook_density():
    model = build("realnvp", 2, hidden=(8,), base="logistic")
    z = model.draw_base(200_000, torch.Generator().manual_seed(0))
    assert z.mean().item() == pytest.approx(0.0, abs=0.01)
    assert z.var().item() == pytest.approx(1.0, rel=0.02)
    # the uniform's logit has exponential tails: P(z > 3) = 1/(1 + e^{3/s}), s = √3/π
    assert (z > 3).float().mean().item() == pytest.approx(1 / (1 + math.exp(3 * math.pi / math.sqrt(3))), rel=0.1)
    far = torch.tensor([[-40.0, 0.3], [25.0, -12.0]])  # where sigmoid(·) rounds to 0 or 1 in float32
    base = model.flow().base
    assert torch.allclose(base.log_prob(far), logistic_log_pdf(far), rtol=1e-5)
    assert torch.isfinite(base.log_prob(far)).all()
    with pytest.raises(InputError, match="base"):
        build("maf", 2, base="student")


@pytest.mark.parametrize("exact_trace_max_dim", [20, 0])  # exact trace, then Hutchinson
def test_cfm_log_prob_on_a_linear_field(exact_trace_max_dim):
    """v(t, x) = a·x maps N(0, 1) to N(0, e^{2a}): log p(x) = log N(x e^{−a}) − D a."""
    a, dim = 0.7, 3
    model = build("cfm", dim, hidden=(8,), n_steps=40, exact_trace_max_dim=exact_trace_max_dim)

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(()))  # gives the model a device

        def forward(self, t, x, cond=None):
            return a * x

    model.velocity = Linear()
    x = torch.randn(50, dim, generator=torch.Generator().manual_seed(0)) * 2
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(x * math.exp(-a)).sum(-1) - dim * a
    assert torch.allclose(model.log_prob(x), expected, atol=1e-5)
    # and sampling follows the same field
    samples = draw(model, 20000)
    assert samples.std() == pytest.approx(math.exp(a), rel=0.03)


@pytest.mark.parametrize("transform", ["spline", "affine"])
def test_iaf_density_of_its_samples_agrees_both_ways(transform):
    """The sampling direction and the density direction give the same log q."""
    torch.manual_seed(5)
    box = {"loc": [0.3, -1.0, 0.0, 0.5], "scale": [1.8, 0.6, 1.0, 2.5]}
    model = build("iaf", 4, hidden=(16, 16), transform=transform, unit_box=box)
    with torch.no_grad():
        x, log_q = model.sample_and_log_prob(200)
        assert torch.allclose(model.log_prob(x), log_q, atol=1e-4)


def test_iaf_defensive_mixture_is_the_flow_plus_a_flat_box_and_samples_as_it_says():
    """q' = (1 − α) q + α·flat, flat = Π scale·u(1 − u) the uniform density on the unit box;
    q' ≥ α·flat everywhere (which bounds every weight p/q'), and draws from q' weigh any
    normalised density r to E[r/q'] = 1, near the flow and near the box alike."""
    alpha = 0.3
    box = {"loc": [2.0, -1.0], "scale": [0.5, 0.5]}  # the flat box's centre, −loc/scale, sits at (−4, 2)
    torch.manual_seed(6)
    model = build("iaf", 2, hidden=(16, 16), unit_box=box, defensive=alpha)
    flow_only = build("iaf", 2, hidden=(16, 16), unit_box=box, defensive=0)
    flow_only.load_state_dict(model.state_dict())
    x = torch.tensor([[0.0, 0.0], [-4.0, 2.0], [1.5, -2.0], [30.0, -30.0], [-25.0, 40.0]])
    scale, loc = torch.tensor(box["scale"]), torch.tensor(box["loc"])
    u = torch.sigmoid(scale * x.double() + loc)
    flat = (scale * u * (1 - u)).prod(-1)
    with torch.no_grad():
        q = flow_only.log_prob(x).double().exp()
        mixture = model.log_prob(x).double().exp()
    assert torch.allclose(mixture, (1 - alpha) * q + alpha * flat, rtol=1e-4)
    assert (model.log_prob(x).double() >= math.log(alpha) + flat.log() - 1e-5).all()
    assert q[3] < 1e-6 * flat[3]  # far out the flow alone would give weights 1e6 times larger

    with torch.no_grad():
        xs, log_q = model.sample_and_log_prob(200_000, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(model.log_prob(xs[:500]), log_q[:500], atol=1e-4)
    for centre, width in (((0.0, 0.0), 1.0), ((-4.0, 2.0), 2.0)):
        r = torch.distributions.Normal(torch.tensor(centre), width).log_prob(xs.double()).sum(-1)
        ratio = (r - log_q.double()).exp()
        assert ratio.mean().item() == pytest.approx(1.0, abs=4 * ratio.std().item() / math.sqrt(len(ratio)) + 1e-3)
    drawn = model.sample(200_000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(drawn, xs)  # one seed, the same events whether or not their density is asked for
    with pytest.raises(InputError, match="defensive"):
        build("iaf", 2, defensive=1.0)
    almost_all_box = build("iaf", 2, defensive=0.9999)  # the flow's share of a small batch is then empty
    assert almost_all_box.sample_and_log_prob(3)[0].shape == almost_all_box.sample(3).shape == (3, 2)


def test_iaf_marginal_spline_starts_as_the_identity():
    torch.manual_seed(7)
    with_marginals = build("iaf", 3, hidden=(16, 16), defensive=0)
    plain = build("iaf", 3, hidden=(16, 16), defensive=0, marginal_bins=0)
    marginals, affine = "flow.transform.transforms.0.", "flow.transform.transforms.1."
    state = {k.replace(affine, marginals, 1) if k.startswith(affine) else k: v
             for k, v in with_marginals.state_dict().items() if not k.startswith(marginals)}
    plain.load_state_dict(state)
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(with_marginals.log_prob(x), plain.log_prob(x), atol=1e-5)
    assert with_marginals.n_parameters() == plain.n_parameters() + 3 * (8 + 8 + 7)


def test_box_squash_maps_the_real_line_through_the_unit_box():
    """y = B(2u − 1) with logit u = scale·x + loc; its log-derivative by autograd, and finite
    where tanh rounds to ±1 in float32."""
    from hepgenbench.models.flows import BoxSquash

    loc, scale = torch.tensor([0.4, -2.0]), torch.tensor([1.5, 0.7])
    squash = BoxSquash(loc, scale)
    x = torch.tensor([[0.3, -1.2], [2.0, 4.0], [-3.0, 0.0]])
    u = torch.sigmoid(scale * x + loc)
    assert torch.allclose(squash(x), 5.0 * (2 * u - 1), atol=1e-6)
    assert torch.allclose(squash.inv(squash(x)), x, atol=1e-4)
    for xi in x:
        jac = torch.autograd.functional.jacobian(squash, xi)
        assert torch.allclose(squash.log_abs_det_jacobian(xi, squash(xi)), jac.diagonal().log(), atol=1e-5)
    far = torch.tensor([[40.0, -60.0]])
    assert torch.isfinite(squash.log_abs_det_jacobian(far, squash(far))).all()
    assert torch.isfinite(squash.inv(squash(far))).all()


def test_iaf_spline_on_the_unit_box_is_flat_there_at_identity_splines():
    """With identity splines the spline IAF is the flat density on its unit box: q(x) is the
    box's Jacobian, Π scale·u(1 − u), whatever loc and scale say."""
    box = {"loc": [0.3, -1.0], "scale": [1.8, 0.6]}
    model = build("iaf", 2, hidden=(8,), transform="spline", unit_box=box)
    with torch.no_grad():
        for coupling in model.flow.transform.transforms[1:-1]:
            # zuko's spline is the identity when all its parameters are 0 (even bins, slopes e⁰)
            coupling.hyper[-1].weight.zero_()
            coupling.hyper[-1].bias.zero_()
        x = torch.tensor([[0.0, 0.0], [2.0, -3.0], [-4.0, 5.0]])
        u = torch.sigmoid(torch.tensor(box["scale"]) * x + torch.tensor(box["loc"]))
        flat = (torch.tensor(box["scale"]) * u * (1 - u)).log().sum(-1)
        assert torch.allclose(model.log_prob(x), flat, atol=1e-4)


def test_iaf_hyperparameters_are_checked():
    with pytest.raises(InputError, match="unknown transform 'planar'"):
        build("iaf", 3, transform="planar")
    with pytest.raises(InputError, match="unit_box needs 3"):
        build("iaf", 3, transform="spline", unit_box={"loc": [0.0, 0.0], "scale": [1.0, 1.0]})
    with pytest.raises(InputError, match="unit_box must be"):
        build("iaf", 3, transform="spline", unit_box=[1, 2, 3])


def four_gaussians_log_density(x: np.ndarray) -> np.ndarray:
    centres = 2 * np.array([[1, 0], [0, 1], [-1, 0], [0, -1]])
    sq = ((x[:, None, :] - centres[None]) ** 2).sum(-1) / 0.3**2
    return np.log(np.exp(-0.5 * sq).mean(1)) - np.log(2 * np.pi * 0.3**2)


def test_vae_log_prob_is_a_bound_below_the_truth():
    """On data from p, E_p[log q] <= E_p[log p] for any density q, and a bound sits lower still;
    the IWAE bound with many samples is above the single-sample ELBO."""
    torch.manual_seed(6)
    model = build("vae", 2, hidden=(32,))
    fit(model, four_gaussians(2000, np.random.default_rng(1)), four_gaussians(500, np.random.default_rng(2)),
        settings=TrainSettings(max_epochs=40, batch_size=128, learning_rate=3e-3), log=QUIET)
    x = four_gaussians(4000, np.random.default_rng(3))
    xt = torch.as_tensor(x, dtype=torch.float32)
    torch.manual_seed(0)
    model.hparams["iw_samples"] = 1
    elbo = model.log_prob(xt).mean().item()
    model.hparams["iw_samples"] = 128
    iwae = model.log_prob(xt).mean().item()
    truth = four_gaussians_log_density(x).mean()
    assert model.likelihood_is_bound
    assert elbo < iwae < truth


def test_condition_errors_are_input_errors():
    with pytest.raises(InputError, match="iaf.*cannot take a condition"):
        build("iaf", 3, 1)
    model = build("maf", 3, 1, hidden=(8,))
    with pytest.raises(InputError, match=r"pass cond of shape \(n, C\)"):
        model.sample(4)
    with pytest.raises(InputError, match=r"expected \(4, 1\)"):
        model.sample(4, torch.zeros(4, 2))
    with pytest.raises(InputError, match="models.cfm.widht: unknown hyperparameter"):
        build("cfm", 3, widht=4)
    with pytest.raises(InputError, match="solver"):
        build("cfm", 3, solver="dopri5")
    with pytest.raises(InputError, match="unknown model family 'glow'"):
        build("glow", 3)


def test_cfm_hutchinson_agrees_with_exact_trace_for_a_conditional_field():
    torch.manual_seed(0)
    model = build("cfm", 3, 2, hidden=(8,), n_steps=4)
    x, cond = torch.randn(5, 3), torch.randn(5, 2)
    exact = model.log_prob(x, cond)
    model.hparams.update(exact_trace_max_dim=0, hutchinson_probes=2000)
    estimate = model.log_prob(x, cond, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(exact, estimate)  # really a different estimator
    assert torch.allclose(exact, estimate, atol=0.02)


def test_nsf_defaults_shrink_for_calorimeter_dimensions():
    assert build("nsf", 10).hparams == {"transforms": 5, "hidden": (128, 128), "bins": 8, "base": "normal"}
    big = build("nsf", 368, 1)
    assert (big.hparams["transforms"], big.hparams["bins"]) == (3, 4)
    assert big.n_parameters() < 2_000_000
    assert build("nsf", 368, 1, bins=6).hparams["bins"] == 6  # explicit choices win


def test_rqs_transform_is_zukos_spline():
    """The exp/sum bin normalisation gives zuko's own spline: same knots, values, inverse
    and log-Jacobian, including far outside the spline's interval and at extreme parameters."""
    from zuko.transforms import MonotonicRQSTransform

    from hepgenbench.models.flows import RQSTransform

    g = torch.Generator().manual_seed(0)
    # Scale 10 reaches zuko's squash, where a slope nears its 1e-3 floor.
    widths, heights = (torch.randn(500, 3, 8, generator=g, dtype=torch.float64) * 10 for _ in range(2))
    derivatives = torch.randn(500, 3, 7, generator=g, dtype=torch.float64) * 10
    x = torch.randn(500, 3, generator=g, dtype=torch.float64) * 4
    ours, zukos = RQSTransform(widths, heights, derivatives), MonotonicRQSTransform(widths, heights, derivatives)
    for attr in ("horizontal", "vertical", "derivatives"):
        torch.testing.assert_close(getattr(ours, attr), getattr(zukos, attr), rtol=1e-12, atol=1e-12)
    y, ladj = ours.call_and_ladj(x)
    y_ref, ladj_ref = zukos.call_and_ladj(x)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ladj, ladj_ref, rtol=1e-12, atol=1e-12)
    # The inverse solves a quadratic, ill-conditioned in the flattest bins: both agree to 1e-6.
    torch.testing.assert_close(ours.inv(y), zukos.inv(y), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours.inv(y), x, rtol=1e-6, atol=1e-6)
    assert (x.abs() > 5).any()  # the identity tails were exercised too


def two_kinds_of_sparse_shower(n: int, cond: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Six cells ≥ 0, most of them empty: a hidden kind (A or B, evenly) decides which three
    cells are likely hit (0.9 against 0.1), and a hit holds a gamma energy of shape 2 and
    mean 1 + cond. Cells 0 and 3 are hit together rarely: their hit indicators correlate at
    (0.09 − 0.25) / 0.25 = −0.64, which only a model whose cells depend on one latent can draw."""
    kind_a = rng.random(n) < 0.5
    p_hit = np.where(kind_a[:, None], [0.9, 0.9, 0.9, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.9, 0.9, 0.9])
    hit = rng.random((n, 6)) < p_hit
    energy = rng.gamma(2.0, (1.0 + cond) / 2.0, (n, 6))
    return np.where(hit, energy, 0.0)


@pytest.mark.parametrize("prior", ["flow", "normal"])
def test_hurdlevae_learns_which_cells_are_hit_and_their_energies(prior):
    rng = np.random.default_rng(0)
    cond = rng.integers(0, 2, 7000).astype(float)[:, None]
    x = two_kinds_of_sparse_shower(7000, cond, rng)
    torch.manual_seed(0)
    model = build("hurdlevae", 6, 1, hidden=(64, 64), latent=2, prior=prior)
    untrained = c2st_auc(x[:4000], draw(model, 4000, torch.as_tensor(cond[:4000], dtype=torch.float32)))
    assert untrained > 0.9, f"the untrained model should fail the test (AUC {untrained:.3f})"
    fit(model, x[:6000], x[6000:], cond[:6000], cond[6000:],
        settings=TrainSettings(max_epochs=40, batch_size=256, learning_rate=3e-3, patience=40), log=QUIET)
    for value in (0.0, 1.0):
        s = draw(model, 8000, torch.full((8000, 1), value))
        truth = two_kinds_of_sparse_shower(8000, np.full((8000, 1), value), np.random.default_rng(1))
        assert (s >= 0).all()
        np.testing.assert_allclose((s > 0).mean(0), 0.5, atol=0.04)  # every cell is hit half the time
        hits = s[s > 0]
        assert hits.mean() == pytest.approx(1.0 + value, rel=0.08)
        # shape 2: the variance of a hit's energy is mean² / 2
        assert hits.var() == pytest.approx((1.0 + value) ** 2 / 2, rel=0.2)
        corr = np.corrcoef((s[:, 0] > 0), (s[:, 3] > 0))[0, 1]
        assert corr == pytest.approx(-0.64, abs=0.1), f"cells 0 and 3 hit together: correlation {corr:.2f}"
        assert c2st_auc(truth, s) < 0.6


def test_hurdlevae_samples_exact_zeros_from_the_callers_generator():
    torch.manual_seed(0)
    model = build("hurdlevae", 5, 1, hidden=(8,))
    cond = torch.zeros(2000, 1)
    before = torch.random.get_rng_state()
    s = draw(model, 2000, cond, seed=2)
    assert torch.equal(torch.random.get_rng_state(), before), "sampling touched the global RNG"
    np.testing.assert_array_equal(s, draw(model, 2000, cond, seed=2))
    assert (s == 0).any() and (s > 0).any() and (s >= 0).all()
    assert not model.has_likelihood
    with pytest.raises(InputError, match="no likelihood"):
        model.log_prob(torch.as_tensor(s), cond)


def test_flow_prior_draws_follow_its_density():
    """E_{z ~ p}[N(z; 0, 1) / p(z | c)] = 1 exactly when the draws come from the density that
    prior_log_prob gives: the sampling direction and the density are one distribution."""
    torch.manual_seed(5)
    model = build("hurdlevae", 4, 1, hidden=(8,), latent=3, prior="flow")
    with torch.no_grad():
        for p in model.prior_flow.parameters():
            p.add_(0.3 * torch.randn_like(p))  # move the prior well away from N(0, 1)
        cond = torch.full((200_000, 1), 0.7)
        z = model.draw_latent(200_000, cond, torch.Generator().manual_seed(1))
        w = (torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1) - model.prior_log_prob(z, cond)).exp()
    assert abs(z.mean(0)).max() > 0.1 or abs(z.std(0) - 1).max() > 0.1, "the prior stayed N(0, 1)"
    assert w.mean().item() == pytest.approx(1.0, abs=4 * w.std().item() / math.sqrt(len(w)))


def test_vae_prior_choice_is_checked():
    with pytest.raises(InputError, match="prior"):
        build("vae", 3, prior="vamp")
    assert build("vae", 3).prior_flow is None
    assert build("hurdlevae", 3).prior_flow is not None
