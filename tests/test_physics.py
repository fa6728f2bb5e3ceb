"""The physics figures: the Z line-shape fit and its pulls, the calorimeter resolution fit,
the reduced maximum of the unweighting efficiency, the VEGAS baseline, and the report's
physics tables built from the evaluate suite's own output."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import ReportPage
from threadpoolctl import threadpool_limits

from hepgenbench import kinds
from hepgenbench.data import phasespace
from hepgenbench.data.calo_geometry import EnergyBins
from hepgenbench.errors import InputError
from hepgenbench.evaluate import EvalOptions, evaluate_sample
from hepgenbench.io import EventSet
from hepgenbench.kinds.base import TrueDensity
from hepgenbench.metrics.unweighting import reduced_maximum, unweighting_efficiency
from hepgenbench.physics.calo_response import TERMS, resolution_model, response_comparison
from hepgenbench.physics.lineshape import PULL_FLAG, fit_lineshape, lineshape_comparison
from hepgenbench.physics.vegas_baseline import vegas_weights
from hepgenbench.records import MetricsRecord
from hepgenbench.report import build_report
from hepgenbench.testing import voigtian_masses, zmumu_peak

M_Z, GAMMA_Z, SIGMA = 91.1876, 2.4955, 1.0


@pytest.fixture(autouse=True, scope="module")
def single_openmp_thread():
    # see tests/test_metrics.py: OpenMP barriers stall on a shared 2-core machine
    with threadpool_limits(limits=1):
        yield


# ---------------------------------------------------------------- Z line shape


def test_the_voigtian_fit_recovers_mass_and_width_within_their_errors():
    """Over seeds, (fit − true)/error of M and Γ behaves as a unit normal: each within 3σ,
    and their spread neither far above 1 (errors too small) nor far below (too large)."""
    pulls = []
    for seed in range(6):
        fit = fit_lineshape(voigtian_masses(4_000, seed, M_Z, GAMMA_Z, SIGMA, flat_fraction=0.05))
        assert fit.valid
        pulls += [(fit.mass - M_Z) / fit.mass_error, (fit.width - GAMMA_Z) / fit.width_error]
        assert fit.background_fraction == pytest.approx(0.05, abs=4 * fit.background_fraction_error)
    assert max(abs(p) for p in pulls) < 3.0, pulls
    assert 0.4 < np.std(pulls) < 1.8, pulls


def test_a_200_mev_mass_shift_is_flagged_and_a_twin_is_not():
    truth = voigtian_masses(20_000, 1, M_Z, GAMMA_Z, SIGMA)
    shifted = lineshape_comparison(truth, voigtian_masses(20_000, 2, M_Z, GAMMA_Z, SIGMA) + 0.2)
    twin = lineshape_comparison(truth, voigtian_masses(20_000, 3, M_Z, GAMMA_Z, SIGMA))
    assert shifted["pull_mass"] > PULL_FLAG and "pull_mass" in shifted["flagged"]
    assert shifted["generated"]["mass"] - shifted["truth"]["mass"] == pytest.approx(0.2, abs=0.06)
    assert abs(twin["pull_mass"]) < PULL_FLAG and twin["flagged"] == []


def test_a_sample_without_a_peak_fails_the_shape_test_and_too_few_events_skip_the_fit():
    truth = voigtian_masses(5_000, 1, M_Z, GAMMA_Z, SIGMA)
    flat = np.random.default_rng(0).uniform(80.0, 102.0, 5_000)
    assert "shape" in lineshape_comparison(truth, flat)["flagged"]
    assert lineshape_comparison(truth, np.full(10, 91.0))["skipped"].startswith("generated: Z line shape: 10 events")
    with pytest.raises(InputError, match=r"m_mumu in \[80, 102\] GeV"):
        fit_lineshape(np.full(10, 91.0))


# ---------------------------------------------------------------- calorimeter response


def _showers(a: float, b: float, c: float, response: float, n_per_energy: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """E_tot and E_inc (MeV) at the 15 energies of CaloChallenge ds1: E_tot/E_inc is normal
    around ``response`` with relative width a/√E ⊕ b ⊕ c/E (E in GeV)."""
    rng = np.random.default_rng(seed)
    e_inc = np.repeat(2.0 ** np.arange(8, 23), n_per_energy)
    sigma = resolution_model(e_inc / 1000.0, a, b, c)
    return e_inc * response * (1.0 + sigma * rng.normal(size=len(e_inc))), e_inc


def test_the_resolution_fit_recovers_known_terms_and_a_response_shift_shows_as_bias():
    truth_terms, shift = {"a": 0.10, "b": 0.01, "c": 0.02}, 1.03
    e_tot, e_inc = _showers(**truth_terms, response=0.95, n_per_energy=400, seed=1)
    gen_tot, gen_inc = _showers(**truth_terms, response=0.95 * shift, n_per_energy=400, seed=2)
    out = response_comparison(e_tot, e_inc, gen_tot, gen_inc, EnergyBins.from_truth(e_inc, 5), seed=0)
    for which in ("fit_truth", "fit_generated"):
        fit = out[which]
        assert fit["valid"] and fit["ndf"] == 12
        for term in TERMS:
            assert fit[term] == pytest.approx(truth_terms[term], abs=3 * fit[f"{term}_error"]), (which, term, fit)
    biases = np.array([r["response_bias"] for r in out["bins"]])
    errors = np.array([r["response_bias_error"] for r in out["bins"]])
    assert np.all(np.abs(biases - (shift - 1)) < 3.5 * errors)
    assert out["worst_response_bias"]["value"] > 0.02
    responses = np.array([r["response_truth"] for r in out["bins"]])
    assert np.all(np.abs(responses - 0.95) < 4 * np.array([r["response_truth_error"] for r in out["bins"]]))


# ---------------------------------------------------------------- unweighting


def test_the_reduced_maximum_ignores_one_outlier_and_counts_what_it_carries():
    w = np.append(np.ones(1000), 1000.0)
    raw = unweighting_efficiency(np.log(w), np.zeros(len(w)))
    assert raw["efficiency"] == pytest.approx(w.mean() / 1000.0)
    # a replica of 100 holds the outlier with probability 1 − (1 − 1/1001)^100 ≈ 0.095 < ½
    assert raw["reduced_max_over_max"] == pytest.approx(1e-3)
    assert raw["efficiency_reduced_max"] == pytest.approx(w.mean())
    assert raw["overweight_fraction"] == pytest.approx(1 / 1001)
    assert raw["overweight_integral_fraction"] == pytest.approx(999 / w.sum())
    equal = reduced_maximum(np.full(500, 0.3))
    assert equal["efficiency_reduced_max"] == pytest.approx(1.0) and equal["overweight_fraction"] == 0.0
    with pytest.raises(InputError, match="non-negative"):
        reduced_maximum(np.array([1.0, -1.0]))


DALITZ_DENSITY = kinds.get("phasespace").density(list(phasespace.FEATURE_NAMES))


def test_vegas_adapts_to_the_resonance_and_is_seeded():
    flat = DALITZ_DENSITY.baseline_weights(5_000, seed=0)
    first = vegas_weights(DALITZ_DENSITY, n_train=20_000, n_events=5_000, seed=3)
    assert first == vegas_weights(DALITZ_DENSITY, n_train=20_000, n_events=5_000, seed=3)
    # the ρ Breit–Wigner is what VEGAS's m²₂₃ grid learns: 3× smaller integration error than flat
    assert first["relative_error"] < flat["relative_error"] / 2
    assert 15_000 < first["n_train_evaluations"] <= 20_000
    assert first["efficiency_reduced_max"] > flat["efficiency_reduced_max"]


def test_vegas_needs_a_bounding_box_and_a_budget():
    class Unbounded(TrueDensity):
        def log_prob(self, x):
            return np.zeros(len(x))

        def log_prob_torch(self, x):
            return x.sum(-1) * 0

    with pytest.raises(InputError, match="bounding box"):
        vegas_weights(Unbounded(), 10_000, 100, seed=0)
    with pytest.raises(InputError, match="below one iteration"):
        vegas_weights(DALITZ_DENSITY, 100, 100, seed=0)


# ---------------------------------------------------------------- the report's physics tables

FAST = EvalOptions(
    n_bootstrap=3, n_bins=20, emd_subsample=300, emd_repeats=2, swd_projections=20, swd_seeds=2, c2st_folds=3,
    fpd_min_samples=1_000, fpd_max_samples=2_000, fpd_points=4, fpd_resamples=3, kpd_batch_size=500,
    kpd_batches=4, memorisation_max_events=1_000, memorisation_max_train=2_000, c2st_max_events=1_000,
)


def _record(dataset: str, model: str, truth: EventSet, generated: EventSet, train: EventSet) -> dict:
    """The metrics record the evaluate stage writes, around the suite's own output."""
    metrics = evaluate_sample(truth, generated, train, FAST, seed=5)
    return {"dataset": dataset, "model": model, "name": model, "family": model, "n_truth": len(truth),
            "n_generated": len(generated), "metrics": metrics}


def _report(tmp_path: Path, records: list[dict]) -> ReportPage:
    paths = []
    for r in records:
        path = tmp_path / f"{r['dataset']}_{r['model']}.json"
        MetricsRecord.from_dict(r).write(str(path))
        paths.append(str(path))
    build_report(paths, [], {"seed": 1}, str(tmp_path / "report"), provenance={"git_commit": "x", "packages": {}})
    page = ReportPage()
    page.feed((tmp_path / "report" / "index.html").read_text())
    return page


def test_the_report_shows_the_z_fit_and_flags_a_shifted_model(tmp_path):
    truth, twin, train = zmumu_peak(5_000, 1), zmumu_peak(5_000, 2), zmumu_peak(2_000, 3)
    shifted = zmumu_peak(5_000, 4, mass_shift=0.3)
    records = [_record("z", "truth", truth, twin, train), _record("z", "shifty", truth, shifted, train)]
    table = _report(tmp_path, records).frame("zlineshape-z")
    assert list(table.index) == ["truth A (reference)", "truth B (noise floor)", "shifty"]
    block = records[1]["metrics"]["z_lineshape"]
    assert float(table.at["shifty", "pull m_Z"]) == pytest.approx(block["pull_mass"], abs=0.005)
    assert block["pull_mass"] > PULL_FLAG and table.at["shifty", "verdict"].startswith("off: mass")
    assert table.at["truth B (noise floor)", "verdict"] == "compatible"
    mass, error = (float(x) for x in table.at["truth A (reference)", "m_Z [GeV]"].split(" ± "))
    assert mass == pytest.approx(M_Z, abs=4 * error)


def test_the_report_quotes_each_sampler_against_vegas(tmp_path):
    x, _ = phasespace.sample(6_000, seed=0)
    events = EventSet(x, list(phasespace.FEATURE_NAMES), kind="phasespace", log_density=phasespace.log_density(x))
    truth, twin, train = (events.subset(np.arange(i, i + 2_000)) for i in (0, 2_000, 4_000))
    # a sampler's sample carries its weights, as the sample stage writes them: here flat phase space's
    flat_x, _ = phasespace.sample_flat(2_000, np.random.default_rng(1))
    sampler = EventSet(flat_x, list(phasespace.FEATURE_NAMES), kind="phasespace")
    sampler.meta.update(trained={}, importance_weights=unweighting_efficiency(phasespace.log_density(flat_x),
                                                                              phasespace.flat_log_density(flat_x)))
    records = [_record("ps", "truth", truth, twin, train), _record("ps", "flatsampler", truth, sampler, train)]
    table = _report(tmp_path, records).frame("unweighting-ps")
    assert list(table.index) == ["flat phase space", "VEGAS", "flatsampler"]
    block = records[1]["metrics"]["unweighting_vs_vegas"]
    expected = block["sampler"]["efficiency_reduced_max"] / block["vegas"]["efficiency_reduced_max"]
    assert table.at["flatsampler", "× VEGAS"] == f"{expected:.2f} ×"
    assert table.at["VEGAS", "events"] == "2000"
    assert float(table.at["VEGAS", "⟨w⟩/w̃_max"]) == pytest.approx(block["vegas"]["efficiency_reduced_max"], abs=5e-4)


def test_the_report_shows_calo_resolution_terms_and_bias_per_energy(tmp_path):
    from hepgenbench.data.calo import simulate

    def showers(n_per_energy: int, seed: int, scale: float = 1.0) -> EventSet:
        e_inc = np.repeat([1024.0, 8192.0, 65536.0, 524288.0], n_per_energy)
        voxels = simulate(e_inc, seed) * scale
        return EventSet(voxels, [f"voxel_{i}" for i in range(voxels.shape[1])], kind="calo",
                        condition=e_inc[:, None], condition_names=["E_inc"])

    # the voxel classifiers dominate the suite's time: one model row, few showers
    truth, train = showers(60, 1), showers(30, 3)
    options = dataclasses.replace(FAST, c2st_max_events=200, c2st_folds=2)
    hot = showers(60, 1, scale=1.1)  # truth's own showers, 10 % hotter: a 10 % response bias at every energy
    records = [{"dataset": "c", "model": "hot", "name": "hot", "family": "hot", "n_truth": len(truth), "n_generated": len(hot),
                "metrics": evaluate_sample(truth, hot, train, options, seed=5)}]  # fmt: skip
    page = _report(tmp_path, records)
    summary = page.frame("caloresponse-c")
    assert list(summary.index) == ["truth A (reference)", "hot"]
    assert summary.at["hot", "worst response bias"].startswith("+10.00 ± ")
    bias = page.frame("caloresponsebias-c")
    assert list(bias.columns) == ["1.02 GeV", "8.19 GeV", "65.5 GeV", "524 GeV"]
    assert all(cell.startswith("+10.00") for cell in bias.loc["hot"])
    a_cell = summary.at["truth A (reference)", "a [√GeV]"]
    a, a_error = (float(v) for v in a_cell.split(" ± "))
    assert math.isfinite(a) and a_error > 0
    assert records[0]["metrics"]["calo_response"]["fit_truth"]["ndf"] == 1
