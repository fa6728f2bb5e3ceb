"""The per-shower fluctuations of the embedded GFlash showers (hepgenbench.data.calo).

Each test fails if the fluctuation it guards is switched off or loses its documented law.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hepgenbench.data import calo
from hepgenbench.data.calo import _expected_energies, _log_t_width
from hepgenbench.data.calo_geometry import resolve_geometry
from hepgenbench.errors import InputError

LAYER, RADIUS, ALPHA, _ = calo.voxel_geometry()
MID_DEPTH = np.array([np.mean(calo.LAYER_DEPTHS_X0[layer]) for layer in LAYER])
DEFAULT = calo.ShowerFluctuations()


def _medium(**changes) -> calo.GFlashMedium:
    return calo.GFlashMedium(fluctuations=dataclasses.replace(DEFAULT, **changes))


def _centre_of_gravity(showers: np.ndarray) -> np.ndarray:
    return (showers * MID_DEPTH).sum(1) / showers.sum(1)


def _width(showers: np.ndarray, layer: int) -> np.ndarray:
    """Energy-weighted rms radius (mm) in one layer."""
    m = LAYER == layer
    return np.sqrt((showers[:, m] * RADIUS[m] ** 2).sum(1) / np.maximum(showers[:, m].sum(1), 1e-9))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def test_width_follows_the_centre_of_gravity_with_the_documented_signs():
    # At 1 TeV the spot noise is small, so the showers' correlation is the parameterisation's:
    # the one of the noise-free voxel expectations of the same latent parameters.
    e = np.full(1500, 2.0**20)
    showers = calo.simulate(e, seed=0)
    expected = _expected_energies(e / 1000.0, calo.shower_parameters(e, seed=0), calo.GFlashMedium())
    cog = _centre_of_gravity(showers)
    strip, middle = _corr(cog, _width(showers, 1)), _corr(cog, _width(showers, 2))
    # Documented: deeper showers are younger at fixed depth, so broader in the strips (where
    # GFlash's tail narrows with age) and narrower in the middle layer (past the maximum).
    assert strip > 0.5 and middle < -0.08
    assert strip == pytest.approx(_corr(_centre_of_gravity(expected), _width(expected, 1)), abs=0.04)
    assert middle == pytest.approx(_corr(_centre_of_gravity(expected), _width(expected, 2)), abs=0.04)
    # The start shift ages a deeper shower less than t/T does; with the same draws the strip
    # correlation is stronger than with κ = 0.
    no_shift = calo.simulate(e, seed=0, medium=_medium(start_shift_share=0.0))
    assert strip > _corr(_centre_of_gravity(no_shift), _width(no_shift, 1)) + 0.05


def test_lateral_offsets_have_the_documented_law():
    e = np.full(4000, 65536.0)
    params = calo.shower_parameters(e, seed=2)
    sigma = _log_t_width(np.log(65536.0 / calo.GFlashMedium().critical_energy_mev))
    for shift in (params.log_core_shift, params.log_tail_shift, params.core_logit_shift):
        # σ(ln T)·λ in every layer, whatever the depth.
        assert shift.std(axis=0) / sigma == pytest.approx(np.full(5, DEFAULT.lateral_own), rel=0.06)
        assert abs(_corr(shift[:, 1], params.log_t_normal)) < 0.06
    assert abs(_corr(params.log_core_shift[:, 2], params.log_tail_shift[:, 2])) < 0.08
    # Between two layers: 1 − w + w exp(−|Δτ|/ℓ), averaged over the showers' ages.
    w, length = DEFAULT.lateral_depth_share, DEFAULT.lateral_depth_length
    analytic = np.mean(1 - w + w * np.exp(-np.abs(params.tau[:, 2] - params.tau[:, 1]) / length))
    assert analytic < 0.8  # the layers' ages differ enough for the depth part to show
    assert _corr(params.log_core_shift[:, 1], params.log_core_shift[:, 2]) == pytest.approx(analytic, abs=0.05)


def test_lateral_offsets_widen_the_spread_of_the_width():
    e = np.full(1000, 2.0**20)
    spread = np.std(np.log(_width(calo.simulate(e, seed=1), 2)))
    without = np.std(np.log(_width(calo.simulate(e, seed=1, medium=_medium(lateral_own=0.0)), 2)))
    two_parameter = np.std(np.log(_width(calo.simulate(e, seed=1, medium=_medium(**vars(calo.TWO_PARAMETER))), 2)))
    assert spread > 2.0 * without and spread > 2.0 * two_parameter


def test_layer_sampling_fluctuation_has_variance_f_a2_e():
    e_inc = 65536.0
    e = np.full(4000, e_inc)
    medium = calo.GFlashMedium()
    quantum_mev = DEFAULT.layer_sampling_share * medium.sampling_term**2 * 1000.0
    params = calo.shower_parameters(e, seed=3)
    mean = params.layer_share[:, 2] * e_inc
    # Gamma(E_ℓ/(f a²), f a²): mean E_ℓ, variance f a² E_ℓ around the profile's share.
    assert np.mean(params.layer_energy_mev[:, 2] - mean) == pytest.approx(0.0, abs=0.05 * np.sqrt(quantum_mev * mean.mean()))
    assert np.var(params.layer_energy_mev[:, 2] - mean) / mean.mean() == pytest.approx(quantum_mev, rel=0.08)
    assert np.array_equal(calo.shower_parameters(e, 3, _medium(layer_sampling_share=0.0)).layer_energy_mev,
                          calo.shower_parameters(e, 3, _medium(layer_sampling_share=0.0)).layer_share * e_inc)


@pytest.mark.parametrize("share", [DEFAULT.layer_sampling_share, 0.0])
def test_spots_carry_the_rest_of_the_sampling_variance(share):
    # The two α halves of the middle layer share the profile, the lateral offsets and the
    # layer's sampling fluctuation; only the spots differ, so Var(A − B) = (1 − f) a² E[A + B].
    e = np.full(3000, 65536.0)
    medium = _medium(layer_sampling_share=share)
    showers = calo.simulate(e, seed=4, medium=medium)
    middle = LAYER == 2
    a, b = showers[:, middle & (ALPHA < 0)].sum(1), showers[:, middle & (ALPHA > 0)].sum(1)
    spot_variance_per_mev = (1 - share) * medium.sampling_term**2 * 1000.0
    assert np.var(a - b) / np.mean(a + b) == pytest.approx(spot_variance_per_mev, rel=0.08)


def test_one_seed_fixes_every_draw():
    e = np.geomspace(1e3, 1e6, 50)
    assert np.array_equal(calo.simulate(e, seed=5), calo.simulate(e, seed=5))
    assert not np.array_equal(calo.simulate(e, seed=5), calo.simulate(e, seed=6))
    first, again = calo.shower_parameters(e, seed=5), calo.shower_parameters(e, seed=5)
    for field in dataclasses.fields(first):
        assert np.array_equal(getattr(first, field.name), getattr(again, field.name))


def test_one_seed_fixes_a_file_in_the_ds2_layout(tmp_path):
    import h5py

    detector = calo.detector_for(resolve_geometry("ds2"))
    quiet = {"log": lambda *_: None, "detector": detector}
    for name, seed in (("a.h5", 1), ("b.h5", 1), ("c.h5", 2)):
        calo.simulate_showers(tmp_path / name, 12, seed, **quiet)
    read = {n: h5py.File(tmp_path / n)["showers"][()] for n in ("a.h5", "b.h5", "c.h5")}
    assert np.array_equal(read["a.h5"], read["b.h5"]) and not np.array_equal(read["a.h5"], read["c.h5"])
    assert read["a.h5"].shape == (12, detector.geometry.n_voxels)


@pytest.mark.parametrize("changes", [{"start_shift_share": 1.5}, {"lateral_own": -0.1},
                                     {"lateral_depth_share": 2.0}, {"lateral_depth_length": 0.0},
                                     {"layer_sampling_share": 1.0}])
def test_out_of_range_fluctuations_are_one_input_error(changes):
    with pytest.raises(InputError, match="GFlash fluctuations: " + next(iter(changes))):
        calo.ShowerFluctuations(**changes)
