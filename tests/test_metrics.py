"""Metrics against analytic values: each test states the number it must reproduce."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import linalg, stats
from scipy.stats import wasserstein_distance
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from hepgenbench.errors import InputError
from hepgenbench.metrics.classifier import classifier_two_sample_test, grouped_auc
from hepgenbench.metrics.histogram import histogram_divergences, separation_power
from hepgenbench.metrics.likelihood import kl_exact, nll_per_dim
from hepgenbench.metrics.memorisation import memorisation
from hepgenbench.metrics.physics_distance import fpd, frechet_distance, kpd, mmd2_unbiased
from hepgenbench.metrics.sanity import unphysical_fraction
from hepgenbench.metrics.wasserstein import (
    EMDNotConvergedError,
    exact_emd,
    sliced_wasserstein,
    w1_1d,
    w1_per_feature,
)


@pytest.fixture(autouse=True, scope="module")
def single_openmp_thread():
    # HistGradientBoosting's OpenMP barriers stall when the 2 cores are shared with other
    # jobs (a 0.3 s C2ST took 15 s); results do not depend on the thread count.
    with threadpool_limits(limits=1):
        yield


def gaussians(n: int, d: int, seed: int, shift: float | np.ndarray = 0.0, scale: float | np.ndarray = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) * scale + shift


# ----------------------------------------------------------------------------- Wasserstein
def test_w1_of_shifted_unit_gaussians_is_the_shift():
    mu = np.array([0.3, -1.0])
    truth, gen = gaussians(200_000, 2, 0), gaussians(200_000, 2, 1, shift=mu)
    result = w1_per_feature(truth, gen, n_boot=5, rng=0, feature_names=["a", "b"])
    for name, m in zip(["a", "b"], mu):
        assert result.details["per_feature"][name]["w1"] == pytest.approx(abs(m), abs=0.01)
    assert result.value == pytest.approx(np.mean(np.abs(mu)), abs=0.01)
    assert 0 < result.error < 0.01


def test_w1_physical_units_scale_and_normalised_value_does_not():
    truth, gen = gaussians(50_000, 1, 0, scale=10.0), gaussians(50_000, 1, 1, shift=5.0, scale=10.0)
    result = w1_per_feature(truth, gen, n_boot=2, rng=0, feature_names=["x"])
    assert result.details["per_feature"]["x"]["w1"] == pytest.approx(5.0, abs=0.2)
    assert result.value == pytest.approx(0.5, abs=0.02)


def test_batched_weighted_w1_equals_scipy():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=300), rng.exponential(size=200)
    wx, wy = rng.integers(0, 3, size=(2, 300)).astype(float), rng.integers(0, 3, size=(2, 200)).astype(float)
    batched = w1_1d(x, y, wx, wy)
    for b in range(2):
        assert batched[b] == pytest.approx(wasserstein_distance(x, y, wx[b], wy[b]), rel=1e-10)


def test_exact_emd_matches_scipy_in_one_dimension():
    truth, gen = gaussians(600, 1, 0), gaussians(600, 1, 1, shift=0.4, scale=1.3)
    result = exact_emd(truth, gen, subsample=600, n_repeats=1, rng=0)
    mean, std = truth.mean(), truth.std()
    expected = wasserstein_distance((truth[:, 0] - mean) / std, (gen[:, 0] - mean) / std)
    assert result.value == pytest.approx(expected, rel=1e-9)


def test_unconverged_emd_raises_instead_of_returning_a_number():
    truth, gen = gaussians(800, 3, 0), gaussians(800, 3, 1)
    with pytest.raises(EMDNotConvergedError, match="emd_num_itermax"):
        exact_emd(truth, gen, subsample=800, n_repeats=1, num_itermax=10)


def test_sliced_wasserstein_of_a_shift_along_one_axis():
    # projecting a shift δ e_1 on θ gives |θ_1| δ; E|θ_1| on the unit sphere in 2-D is 2/π
    truth, gen = gaussians(50_000, 2, 0), gaussians(50_000, 2, 1, shift=np.array([1.0, 0.0]))
    result = sliced_wasserstein(truth, gen, n_projections=100, rng=0, n_seeds=4)
    assert result.value == pytest.approx(2 / np.pi, abs=max(4 * result.error, 0.02))
    capped = sliced_wasserstein(truth, gen, n_projections=100, rng=0, n_seeds=4, max_events=5_000)
    assert capped.details["n_per_sample"] == 5_000
    assert capped.value == pytest.approx(2 / np.pi, abs=max(4 * capped.error, 0.03))


# ----------------------------------------------------------------------------- histograms
def test_histogram_kl_converges_to_the_analytic_gaussian_kl():
    # KL(N(0,1) ‖ N(μ,1)) = μ²/2
    truth, gen = gaussians(200_000, 1, 0), gaussians(200_000, 1, 1, shift=0.5)
    result = histogram_divergences(truth, gen, n_bins=100, n_boot=5, rng=0)
    assert result["kl_mean"].value == pytest.approx(0.125, abs=0.005)
    assert 0 < result["kl_mean"].error < 0.005


def test_histogram_divergences_of_identical_samples_are_only_the_finite_sample_bias():
    truth, gen = gaussians(100_000, 3, 0), gaussians(100_000, 3, 1)
    result = histogram_divergences(truth, gen, n_bins=50, n_boot=3, rng=0)
    # expected bias of a binned KL: about (B − 1)/(2N) per sample → 2 · 49 / 2e5 ≈ 5e-4
    assert result["kl_mean"].value < 1.5e-3
    assert result["jsd_mean"].value < 5e-4


def test_separation_power_is_one_for_disjoint_and_zero_for_equal_histograms():
    p, q = np.array([0.5, 0.5, 0.0, 0.0]), np.array([0.0, 0.0, 0.25, 0.75])
    assert separation_power(p, q) == pytest.approx(1.0)
    assert separation_power(p, p) == pytest.approx(0.0)


def test_generated_events_outside_truth_range_are_counted():
    truth = gaussians(20_000, 1, 0)
    gen = np.vstack([gaussians(10_000, 1, 1), np.full((10_000, 1), 100.0)])  # half far away
    result = histogram_divergences(truth, gen, n_bins=20, n_boot=2, rng=0)
    # half of gen lands in the top open bin: separation power ≈ ½[Σ(p-q)²/(p+q)] with q = p/2 except top
    assert result["separation_power_mean"].value > 0.25


# ----------------------------------------------------------------------------- FPD / KPD
def reference_frechet(mu1, cov1, mu2, cov2) -> float:
    """The FID formula as printed in arXiv:1706.08500 (Eq. 6), with scipy's sqrtm."""
    covmean = linalg.sqrtm(cov1 @ cov2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1 + cov2 - 2 * covmean))


def reference_mmd2(x, y) -> float:
    """Unbiased MMD² (Gretton et al. 2012, Eq. 3) from full kernel matrices, k = (x·y/d + 1)^4."""
    d = x.shape[1]
    kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 4, ((y @ y.T) / d + 1) ** 4, ((x @ y.T) / d + 1) ** 4
    m, n = len(x), len(y)
    return (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean()


def test_frechet_distance_equals_the_closed_form_and_the_sqrtm_reference():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    cov1, cov2 = a @ a.T + np.eye(4), b @ b.T + np.eye(4)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    assert frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(reference_frechet(mu1, cov1, mu2, cov2), rel=1e-8)
    # diagonal case: ‖Δμ‖² + Σ(σ1 − σ2)²
    s1, s2 = np.array([1.0, 2.0]), np.array([1.5, 0.5])
    closed = 1.0 + np.sum((s1 - s2) ** 2)
    assert frechet_distance(np.zeros(2), np.diag(s1**2), np.array([1.0, 0.0]), np.diag(s2**2)) == pytest.approx(closed)


def test_fpd_of_two_gaussians_recovers_the_closed_form():
    shift, scale = np.array([0.5, 0.0, 0.0]), np.array([1.5, 1.0, 1.0])
    truth, gen = gaussians(60_000, 3, 0), gaussians(60_000, 3, 1, shift=shift, scale=scale)
    result = fpd(truth, gen, min_samples=10_000, max_samples=30_000, n_resamples=5, rng=0, normalise=False)
    closed = 0.25 + (1.5 - 1.0) ** 2
    assert result.value == pytest.approx(closed, abs=3 * result.error + 0.01)


def test_fpd_of_identical_distributions_is_compatible_with_zero():
    truth, gen = gaussians(60_000, 4, 0), gaussians(60_000, 4, 1)
    result = fpd(truth, gen, min_samples=10_000, max_samples=30_000, n_resamples=10, rng=0)
    assert abs(result.value) < 2.5 * result.error
    assert result.details["slope"] > 0


def test_fpd_agrees_with_a_reference_written_from_the_paper():
    truth, gen = gaussians(40_000, 3, 0), gaussians(40_000, 3, 1, shift=0.3)
    result = fpd(truth, gen, min_samples=10_000, max_samples=20_000, n_resamples=5, rng=0)
    # arXiv:2211.10295: scale by truth's max |x|, FD at sizes in 1/N, linear fit in 1/N
    scale = np.abs(truth).max(axis=0)
    x, y = truth / scale, gen / scale
    rng = np.random.default_rng(99)
    sizes = (1 / np.linspace(1 / 10_000, 1 / 20_000, 10)).astype(int)
    values = []
    for n in sizes:
        vals = []
        for _ in range(5):
            xs, ys = x[rng.integers(0, len(x), n)], y[rng.integers(0, len(y), n)]
            vals.append(reference_frechet(xs.mean(0), np.cov(xs.T), ys.mean(0), np.cov(ys.T)))
        values.append(np.mean(vals))
    slope, intercept = np.polyfit(1 / sizes, values, 1)
    # independent resamples: agreement within the combined resampling errors (≈5% here)
    assert result.value == pytest.approx(intercept, abs=3 * math.sqrt(2) * result.details["fit_error"] + 1e-4)
    assert result.value == pytest.approx(0.3**2 * np.sum(1 / scale**2), rel=0.15)


def test_blockwise_mmd_equals_the_full_matrix_reference():
    x, y = gaussians(700, 3, 0), gaussians(500, 3, 1, shift=0.2)
    assert mmd2_unbiased(x, y) == pytest.approx(reference_mmd2(x, y), rel=1e-9)


def test_kpd_is_centred_on_zero_for_identical_and_positive_for_shifted_samples():
    truth, same, shifted = gaussians(20_000, 3, 0), gaussians(20_000, 3, 1), gaussians(20_000, 3, 2, shift=0.3)
    null = kpd(truth, same, batch_size=2_000, n_batches=10, rng=0)
    assert abs(null.value) < 3 * null.error
    alternative = kpd(truth, shifted, batch_size=2_000, n_batches=10, rng=0)
    assert alternative.value > 5 * alternative.error


# ----------------------------------------------------------------------------- C2ST
def test_c2st_auc_is_one_half_for_identical_and_one_for_disjoint_samples():
    truth = gaussians(3_000, 2, 0)
    same = classifier_two_sample_test(truth, gaussians(3_000, 2, 1), folds=3, rng=0)
    assert same.value == pytest.approx(0.5, abs=0.04)
    disjoint = classifier_two_sample_test(truth, gaussians(3_000, 2, 1, shift=20.0), folds=3, rng=0)
    assert disjoint.value > 0.99
    assert len(same.details["fold_auc"]) == 3
    hist = same.details["log_w_hist"]
    assert sum(hist["truth"]) == sum(hist["generated"]) == 3_000
    assert len(hist["edges"]) == len(hist["truth"]) + 1


def test_c2st_weights_point_at_the_feature_the_generator_gets_wrong():
    # the generator is too narrow in feature "b": truth's tails in b are missing, so the
    # largest weights p_truth/p_gen sit at wide |b| and their spread in b exceeds gen's own
    truth = gaussians(6_000, 3, 0)
    gen = gaussians(6_000, 3, 1, scale=np.array([1.0, 0.6, 1.0]))
    result = classifier_two_sample_test(truth, gen, folds=3, rng=0, feature_names=["a", "b", "c"])
    widths = {k: v["width_ratio"] for k, v in result.details["where_w_largest"].items()}
    assert max(widths, key=widths.get) == "b"
    assert result.value > 0.55


def test_c2st_scores_each_group_on_the_held_out_predictions_at_the_analytic_auc():
    # a grouping feature g ∈ {0, 1}; the generator is exact in group 0 and shifted by d = 0.6σ
    # in group 1, where the best classifier's AUC is Φ(d/√2) for two unit Gaussians
    rng = np.random.default_rng(0)
    n, d = 8_000, 0.6
    g_truth, g_gen = rng.integers(0, 2, n), rng.integers(0, 2, n)
    truth = np.column_stack([g_truth, rng.normal(size=n)])
    gen = np.column_stack([g_gen, rng.normal(size=n) + d * g_gen])
    result = classifier_two_sample_test(truth, gen, folds=4, rng=0, groups=(g_truth, g_gen))
    per_group = result.details["per_group"]
    assert set(per_group) == {0, 1}
    assert per_group[0]["auc"] == pytest.approx(0.5, abs=4 * per_group[0]["error"] + 0.01)
    expected = float(stats.norm.cdf(d / np.sqrt(2)))
    assert per_group[1]["auc"] == pytest.approx(expected, abs=4 * per_group[1]["error"] + 0.01)
    assert per_group[1]["n_truth"] + per_group[0]["n_truth"] == n


def test_grouped_auc_is_the_mean_of_per_fold_aucs():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    p = np.clip(0.5 + 0.2 * (y - 0.5) + rng.normal(0, 0.2, 400), 0, 1)
    group, fold = rng.integers(-1, 2, 400), rng.integers(0, 3, 400)
    out = grouped_auc(p, y, group, fold)
    assert set(out) == {0, 1}  # −1 is no group
    for g in (0, 1):
        aucs = [roc_auc_score(y[(group == g) & (fold == k)], p[(group == g) & (fold == k)]) for k in range(3)]
        assert out[g]["auc"] == pytest.approx(np.mean(aucs))
        assert out[g]["error"] == pytest.approx(np.std(aucs, ddof=1) / np.sqrt(3))


def test_c2st_rejects_an_unknown_classifier():
    with pytest.raises(InputError, match="c2st_classifier"):
        classifier_two_sample_test(gaussians(100, 1, 0), gaussians(100, 1, 1), classifier="svm")


# ----------------------------------------------------------------------------- likelihood
def test_kl_exact_of_two_gaussians():
    # KL(N(0,1) ‖ N(1, 2²)) = ln 2 + (1 + 1)/(2·4) − 1/2
    x = np.random.default_rng(0).normal(size=200_000)
    log_p = -0.5 * x**2 - 0.5 * np.log(2 * np.pi)
    log_q = -0.5 * ((x - 1) / 2) ** 2 - np.log(2) - 0.5 * np.log(2 * np.pi)
    result = kl_exact(log_p, log_q)
    assert result.value == pytest.approx(math.log(2) + 0.25 - 0.5, abs=3 * result.error)
    assert result.error < 0.005


def test_nll_per_dim_of_a_standard_normal_is_its_entropy():
    x = np.random.default_rng(0).normal(size=(100_000, 2))
    log_q = (-0.5 * x**2 - 0.5 * np.log(2 * np.pi)).sum(axis=1)
    result = nll_per_dim(log_q, n_dims=2, is_bound=True)
    assert result.value == pytest.approx(0.5 * np.log(2 * np.pi * np.e), abs=3 * result.error)
    assert result.details["is_bound"] is True


def test_nan_log_density_is_an_input_error():
    with pytest.raises(InputError, match="log_q_truth"):
        nll_per_dim(np.array([0.0, np.nan, 1.0]), n_dims=1)


# ----------------------------------------------------------------------------- sanity
def test_unphysical_fraction_counts_planted_events_exactly():
    names = ["Muon1_pt", "Muon1_eta", "Jet1_pt", "Jet1_eta"]
    rng = np.random.default_rng(0)
    truth = np.column_stack([rng.uniform(20, 100, 1000), rng.uniform(-2.3, 2.3, 1000), rng.uniform(20, 100, 1000), rng.uniform(-4.5, 4.5, 1000)])
    gen = truth.copy()
    gen[0:3, 0] = np.nan  # 3 non-finite
    gen[3:8, 2] = -1.0  # 5 negative jet pT
    gen[8:15, 1] = 2.5  # 7 muons outside |η| < 2.4
    gen[15:17, 3] = 4.0  # inside the jet acceptance: fine
    gen[17:19, 3] = 5.0  # 2 jets outside |η| < 4.7
    gen[3, 1] = -3.0  # overlaps an event already bad: counted once
    result = unphysical_fraction(gen, "zmumu", names, truth=truth)
    assert result.details["n_unphysical"] == 3 + 5 + 7 + 2
    assert result.value == pytest.approx(17 / 1000)
    assert result.details["by_reason"] == {"nonfinite": 3, "negative_pt": 5, "eta_outside_acceptance": 10}
    assert result.error == pytest.approx(math.sqrt(0.017 * 0.983 / 1000))


def test_unphysical_fraction_for_showers_and_the_dalitz_boundary():
    rng = np.random.default_rng(0)
    e_inc = rng.uniform(1e3, 1e4, 500)
    truth = rng.uniform(0, 1, (500, 4)) * e_inc[:, None] / 4
    gen = truth.copy()
    gen[:4, 2] = -1.0  # 4 negative cells
    gen[4:6] *= 10.0  # 2 showers with E_tot/E_inc far above truth's range
    result = unphysical_fraction(gen, "calo", [f"E{i}" for i in range(4)], truth=truth, condition=e_inc, truth_condition=e_inc)
    assert result.details["by_reason"]["negative_cell_energy"] == 4
    assert result.details["by_reason"]["etot_over_einc_outside_truth"] == 2
    assert result.details["n_unphysical"] == 6

    inside_unit_disc = lambda x: np.where((x**2).sum(axis=1) < 1, 0.0, -np.inf)  # noqa: E731
    points = np.array([[0.0, 0.0], [0.5, 0.5], [1.0, 1.0], [2.0, 0.0]])
    result = unphysical_fraction(points, "phasespace", ["m2_12", "m2_23"], log_density_fn=inside_unit_disc)
    assert result.details["by_reason"]["outside_dalitz"] == 2


# ----------------------------------------------------------------------------- memorisation
def test_memorisation_flags_a_generator_that_returns_training_events():
    train, truth = gaussians(20_000, 4, 0), gaussians(5_000, 4, 1)
    copier = train[np.random.default_rng(2).integers(0, len(train), 5_000)]
    copied = memorisation(copier, train, truth, rng=0, n_boot=20)
    assert copied.value < 0.05
    assert copied.details["fraction_closer_than_truth_q01"] > 0.95
    healthy = memorisation(gaussians(5_000, 4, 3), train, truth, rng=0, n_boot=20)
    assert healthy.value == pytest.approx(1.0, abs=max(4 * healthy.error, 0.05))
    assert healthy.details["fraction_closer_than_truth_q01"] < 0.03


def test_mismatched_feature_counts_are_input_errors():
    with pytest.raises(InputError, match="same columns"):
        w1_per_feature(gaussians(10, 2, 0), gaussians(10, 3, 0))


def test_a_sample_of_nan_events_is_an_input_error_not_a_crash():
    with pytest.raises(InputError, match="finite features"):
        w1_per_feature(gaussians(100, 2, 0), np.full((100, 2), np.nan))


def test_w1_bootstrap_error_matches_the_scatter_of_independent_samples():
    # the quoted error must describe what a fresh pair of samples would give
    values = [w1_per_feature(gaussians(5_000, 1, 2 * s), gaussians(5_000, 1, 2 * s + 1, shift=0.5), n_boot=2).value
              for s in range(30)]
    quoted = w1_per_feature(gaussians(5_000, 1, 100), gaussians(5_000, 1, 101, shift=0.5), n_boot=30, rng=0).error
    assert quoted == pytest.approx(np.std(values, ddof=1), rel=0.5)


def test_w1_m_out_of_n_bootstrap_error_matches_the_scatter_of_independent_samples():
    # replicas that resample 1,000 of 8,000 events, their spread scaled by √(m/n), must still
    # describe a fresh pair of 8,000-event samples (unscaled they would be √8 too wide)
    n, m = 8_000, 1_000
    values = [w1_per_feature(gaussians(n, 1, 2 * s), gaussians(n, 1, 2 * s + 1, shift=0.5), n_boot=2).value
              for s in range(40)]
    quoted = [w1_per_feature(gaussians(n, 1, 100 + 2 * s), gaussians(n, 1, 101 + 2 * s, shift=0.5), n_boot=30,
                             rng=s, bootstrap_events=m) for s in range(3)]
    assert all(q.details["bootstrap_events"] == m for q in quoted)
    assert np.mean([q.error for q in quoted]) == pytest.approx(np.std(values, ddof=1), rel=0.3)


def test_w1_m_out_of_n_bootstrap_error_at_the_floor_is_the_full_bootstraps():
    # Where the laws coincide every bootstrap of W1 is too wide (here by ~1.4x against the
    # scatter of fresh samples: the estimator sits at its boundary); the m-out-of-n one must
    # not be wider than the full bootstrap it replaces, nor much narrower.
    n, m = 8_000, 1_000
    pairs = [(gaussians(n, 1, 100 + 2 * s), gaussians(n, 1, 101 + 2 * s)) for s in range(4)]
    full = np.mean([w1_per_feature(a, b, n_boot=30, rng=s).error for s, (a, b) in enumerate(pairs)])
    subsampled = np.mean([w1_per_feature(a, b, n_boot=30, rng=s, bootstrap_events=m).error for s, (a, b) in enumerate(pairs)])
    assert 0.7 * full < subsampled < 1.1 * full


def test_c2st_with_the_mlp_separates_shifted_samples():
    truth, gen = gaussians(1_500, 2, 0), gaussians(1_500, 2, 1, shift=3.0)
    result = classifier_two_sample_test(truth, gen, classifier="mlp", folds=3, rng=0)
    assert result.value > 0.95
    assert result.details["classifier"] == "mlp"
