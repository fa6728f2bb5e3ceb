"""The suite runner: headline keys, determinism, sensitivity, options, showers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from hepgenbench.errors import InputError
from hepgenbench.evaluate import EvalOptions, evaluate_sample
from hepgenbench.io import EventSet
from hepgenbench.testing import zmumu_like
from hepgenbench.metrics import HEADLINE

#: small settings so that one suite call takes about a second
FAST = EvalOptions(
    n_bootstrap=3, n_bins=20, emd_subsample=300, emd_repeats=2, swd_projections=20, swd_seeds=2, c2st_folds=3,
    fpd_min_samples=1_000, fpd_max_samples=2_000, fpd_points=4, fpd_resamples=3, kpd_batch_size=500,
    kpd_batches=4, memorisation_max_events=1_000, memorisation_max_train=4_000,
)


@pytest.fixture(autouse=True, scope="module")
def single_openmp_thread():
    # see tests/test_metrics.py: OpenMP barriers stall on a shared 2-core machine
    with threadpool_limits(limits=1):
        yield


def test_suite_has_every_headline_key_and_is_deterministic():
    truth, gen, train = zmumu_like(3_000, 1), zmumu_like(3_000, 2), zmumu_like(4_000, 3)
    first = evaluate_sample(truth, gen, train, FAST, seed=7)
    second = evaluate_sample(truth, gen, train, FAST, seed=7)
    assert first == second
    assert {key for key, _, _ in HEADLINE} - {"nll_per_dim", "kl_exact", "unweighting_efficiency"} == set(first) & {
        key for key, _, _ in HEADLINE
    }
    assert all(v["value"] is not None for v in first.values())
    other_seed = evaluate_sample(truth, gen, train, FAST, seed=8)
    assert other_seed["c2st_auc"]["value"] != first["c2st_auc"]["value"]
    assert set(first["w1_observables_mean"]["per_feature"]) == {"m_mumu", "pt_mumu", "dR_mumu", "dphi_mumu_jet"}


def test_suite_separates_a_bad_generator_from_the_noise_floor():
    truth, twin, train = zmumu_like(3_000, 1), zmumu_like(3_000, 2), zmumu_like(4_000, 3)
    floor = evaluate_sample(truth, twin, train, FAST, seed=0)
    bad = evaluate_sample(truth, zmumu_like(3_000, 4, pt_shift=10.0), train, FAST, seed=0)
    for key in ("w1_mean", "w1_observables_mean", "kl_mean", "emd", "swd", "fpd"):
        assert bad[key]["value"] > floor[key]["value"] + 3 * (bad[key]["error"] or 0.0), key
    assert bad["c2st_auc"]["value"] > 0.8 and abs(floor["c2st_auc"]["value"] - 0.5) < 0.05


def test_likelihood_keys_appear_when_the_model_has_a_density():
    truth, gen, train = zmumu_like(2_000, 1), zmumu_like(2_000, 2), zmumu_like(2_000, 3)
    truth.log_density = np.full(len(truth), -3.0)
    out = evaluate_sample(truth, gen, train, FAST, seed=0, log_q_truth=np.full(500, -3.5), likelihood_is_bound=True)
    assert out["nll_per_dim"]["value"] == pytest.approx(3.5 / truth.n_features)
    assert out["nll_per_dim"]["is_bound"] is True
    assert out["kl_exact"]["value"] == pytest.approx(0.5)


def test_showers_get_voxel_and_high_level_c2st_and_energy_bins():
    from hepgenbench.data.calo import simulate

    def showers(n: int, seed: int, scale: float = 1.0) -> EventSet:
        e_inc = np.random.default_rng(seed).choice([1024.0, 65536.0], size=n)
        voxels = simulate(e_inc, seed) * scale
        return EventSet(voxels, [f"voxel_{i}" for i in range(voxels.shape[1])], kind="calo",
                        condition=e_inc[:, None], condition_names=["E_inc"])

    truth, train = showers(1_000, 1), showers(1_000, 3)
    # the 369-input voxel classifier dominates the time: keep its sample small
    options = dataclasses.replace(FAST, c2st_max_events=600)
    out = evaluate_sample(truth, showers(1_000, 2, scale=1.3), train, options, seed=0)
    assert {"c2st_auc", "c2st_auc_high_level", "per_energy_bin"} <= set(out)
    bins = out["per_energy_bin"]["bins"]
    assert [b["e_inc_low"] for b in bins] == [1024.0, 65536.0]
    assert all(b["c2st_auc"] > 0.8 for b in bins)  # 30% too much energy is visible at each energy
    assert out["c2st_auc_high_level"]["value"] > 0.9
    assert out["unphysical_fraction"]["by_reason"]["etot_over_einc_outside_truth"] > 0


def test_options_reject_unknown_and_bad_keys():
    assert EvalOptions.from_config({"n_bins": 30}).n_bins == 30
    assert EvalOptions.from_config(None) == EvalOptions()
    with pytest.raises(InputError, match="emd_subsampel"):
        EvalOptions.from_config({"emd_subsampel": 1000})
    with pytest.raises(InputError, match="c2st_classifier"):
        EvalOptions.from_config({"c2st_classifier": "bdt"})
    with pytest.raises(InputError, match="evaluation.n_bins"):
        EvalOptions.from_config({"n_bins": 0})


def test_mismatched_features_are_an_input_error():
    truth = zmumu_like(100, 1)
    other = EventSet(truth.features[:, :3], ["a", "b", "c"])
    with pytest.raises(InputError, match="same features"):
        evaluate_sample(truth, other, truth, FAST, seed=0)


def test_sparse_discrete_energies_fall_back_to_populated_quantile_bins():
    from hepgenbench.data.calo_geometry import MIN_EVENTS_PER_ENERGY_BIN, EnergyBins

    energies = np.repeat(2.0 ** np.arange(8, 23), 40)  # 15 energies, 40 showers each: too few per energy
    bins = EnergyBins.from_truth(energies, max_bins=5)
    assert 1 < len(bins) <= len(energies) // (2 * MIN_EVENTS_PER_ENERGY_BIN)
    assert bins.low[0] == 256.0 and bins.high[-1] == 2.0**22
    plenty = np.repeat([1024.0, 4096.0], 200)
    assert EnergyBins.from_truth(plenty, max_bins=5) == EnergyBins((1024.0, 4096.0), (1024.0, 4096.0))
