"""The embedded sources: Pythia Z→μμ, the three-body decay with known density, GFlash showers."""

from __future__ import annotations

import math

import awkward as ak
import h5py
import numpy as np
import pytest
import torch
import uproot
from scipy import integrate, stats

from hepgenbench.data import calo, phasespace
from hepgenbench.data.phasespace import DALITZ
from hepgenbench.data.pythia import generate_zmumu, merge_root
from hepgenbench.errors import InputError
from hepgenbench.io import read_events

QUIET = lambda message: None  # noqa: E731


# ------------------------------------------------------------------ pythia


@pytest.fixture(scope="module")
def zmumu_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("pythia") / "z.root"
    summary = generate_zmumu(path, 400, seed=11, level="parton", log=QUIET)
    return path, summary


def test_pythia_tree_layout_and_summary(zmumu_file):
    path, summary = zmumu_file
    assert summary["n_events"] == 400 and summary["level"] == "parton" and summary["seed"] == 11
    assert summary["events_per_second"] > 0
    tree = uproot.open(path)["Events"]
    assert tree.classname == "TTree"
    expected = {"nMuon", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_charge", "nJet", "Jet_pt", "Jet_eta", "Jet_phi",
                "Jet_mass"}
    assert set(tree.keys()) == expected
    assert tree.num_entries == 400


def test_pythia_objects_pass_cuts_and_are_sorted(zmumu_file):
    path, _ = zmumu_file
    a = uproot.open(path)["Events"].arrays()
    assert ak.all(a.Muon_pt > 3.0) and ak.all(abs(a.Muon_eta) < 2.4)
    assert ak.all(a.Jet_pt > 20.0) and ak.all(abs(a.Jet_eta) < 4.7) and ak.all(a.Jet_mass >= 0)
    for pts in (a.Muon_pt, a.Jet_pt):
        assert ak.all(pts[:, 1:] <= pts[:, :-1])
    assert ak.all(abs(a.Muon_charge) == 1)
    assert ak.all(ak.num(a.Muon_pt) == a.nMuon)


def test_pythia_dimuon_mass_peaks_at_the_z(zmumu_file):
    path, _ = zmumu_file
    a = uproot.open(path)["Events"].arrays()
    two = a[(a.nMuon >= 2) & (ak.sum(a.Muon_charge[:, :2], axis=1) == 0)]
    pt1, pt2 = two.Muon_pt[:, 0], two.Muon_pt[:, 1]
    deta, dphi = two.Muon_eta[:, 0] - two.Muon_eta[:, 1], two.Muon_phi[:, 0] - two.Muon_phi[:, 1]
    mass = np.sqrt(2 * pt1 * pt2 * (np.cosh(deta) - np.cos(dphi)))  # massless approximation
    counts, edges = np.histogram(ak.to_numpy(mass), bins=np.arange(50, 131, 4))
    assert 86 <= edges[np.argmax(counts)] <= 94
    assert 88 < np.median(ak.to_numpy(mass)) < 94


def test_pythia_hard_level_jets_exclude_muons_and_is_deterministic(tmp_path):
    # Without ISR/FSR the only visible objects are the two muons: had they been clustered,
    # nearly every event would have jets at the muons' pT.
    a_path, b_path = tmp_path / "a.root", tmp_path / "b.root"
    generate_zmumu(a_path, 200, seed=5, level="hard", log=QUIET)
    generate_zmumu(b_path, 200, seed=5, level="hard", log=QUIET)
    a = uproot.open(a_path)["Events"].arrays()
    b = uproot.open(b_path)["Events"].arrays()
    assert ak.sum(a.nJet) == 0
    assert ak.mean(a.nMuon) > 1.0
    assert ak.all(a.Muon_pt == b.Muon_pt)


def test_pythia_rejects_unknown_level(tmp_path):
    with pytest.raises(InputError, match="level 'full'"):
        generate_zmumu(tmp_path / "x.root", 10, seed=1, level="full", log=QUIET)


def test_merge_root_concatenates(tmp_path, zmumu_file):
    path, _ = zmumu_file
    other = tmp_path / "other.root"
    generate_zmumu(other, 50, seed=3, level="hard", log=QUIET)
    out = tmp_path / "merged.root"
    assert merge_root([str(path), str(other)], out) == 450
    merged = uproot.open(out)["Events"].arrays()
    first = uproot.open(path)["Events"].arrays()
    second = uproot.open(other)["Events"].arrays()
    assert ak.all(merged.Jet_pt == ak.concatenate([first.Jet_pt, second.Jet_pt]))
    assert ak.all(merged.nMuon == ak.concatenate([first.nMuon, second.nMuon]))
    with pytest.raises(InputError, match="does not exist"):
        merge_root([str(tmp_path / "nope.root")], tmp_path / "m2.root")


# ------------------------------------------------------------------ phase space


def test_phasespace_density_integrates_to_one():
    # E_flat[p / p_flat] = ∫ p = 1: an MC check, independent of the quadrature normalisation.
    x, _ = phasespace.sample_flat(400_000, np.random.default_rng(0))
    ratio = np.exp(phasespace.log_density(x) - phasespace.flat_log_density(x))
    error = ratio.std() / math.sqrt(ratio.size)
    assert abs(ratio.mean() - 1.0) < 4 * error
    assert DALITZ.normalisation_error < 1e-8


def test_phasespace_dalitz_area_matches_box_fraction():
    (lo12, hi12), (lo23, hi23) = DALITZ.m2_12_limits, DALITZ.m2_23_limits
    rng = np.random.default_rng(1)
    n = 400_000
    inside = DALITZ.inside(rng.uniform(lo12, hi12, n), rng.uniform(lo23, hi23, n))
    box = (hi12 - lo12) * (hi23 - lo23)
    assert DALITZ.dalitz_area == pytest.approx(box * inside.mean(), abs=4 * box * math.sqrt(0.25 / n))


def test_phasespace_samples_follow_the_analytic_marginal():
    x, stats_ = phasespace.sample(40_000, seed=2)
    assert np.isfinite(phasespace.log_density(x)).all()
    assert 0.1 < stats_["unweighting_efficiency"] < 0.5
    lo, hi = DALITZ.m2_23_limits
    edges = np.linspace(lo, hi, 31)
    observed, _ = np.histogram(x[:, 1], bins=edges)
    expected = np.array([integrate.quad(DALITZ.marginal_m2_23, a, b)[0] for a, b in zip(edges[:-1], edges[1:])])
    expected *= len(x)
    assert expected.sum() == pytest.approx(len(x), rel=1e-6)
    chi2 = ((observed - expected) ** 2 / expected).sum()
    assert stats.chi2.sf(chi2, df=len(expected) - 1) > 1e-3
    # Orientation angles are uniform: a Kolmogorov–Smirnov test each.
    for column, (a, b) in zip((2, 3, 4), ((-math.pi, math.pi), (-1, 1), (-math.pi, math.pi))):
        assert stats.kstest(x[:, column], stats.uniform(a, b - a).cdf).pvalue > 1e-3


def test_phasespace_density_is_minus_inf_outside():
    (lo12, _), (_, hi23) = DALITZ.m2_12_limits, DALITZ.m2_23_limits
    inside_point = [1.4, 0.6, 0.0, 0.0, 0.0]
    assert DALITZ.inside(1.4, 0.6)
    outside = np.array([
        [lo12 - 0.01, 0.6, 0.0, 0.0, 0.0],  # below the m2_12 threshold
        [1.4, hi23 + 0.01, 0.0, 0.0, 0.0],
        [2.9, 1.8, 0.0, 0.0, 0.0],  # inside the box, outside the curved boundary
        [1.4, 0.6, 0.0, 1.2, 0.0],  # |cos θ| > 1
        inside_point,
    ])
    values = phasespace.log_density(outside)
    assert np.isneginf(values[:4]).all() and np.isfinite(values[4])
    assert np.isneginf(phasespace.flat_log_density(outside[:4])).all()


def test_phasespace_torch_matches_numpy_with_finite_gradients():
    x, _ = phasespace.sample(500, seed=3)
    x = np.vstack([x, [[0.0, 0.0, 0.0, 0.0, 0.0]]])
    xt = torch.tensor(x, requires_grad=True)
    log_p = phasespace.log_density_torch(xt)
    np.testing.assert_allclose(log_p.detach().numpy(), phasespace.log_density(x), rtol=1e-12)
    log_p[:-1].sum().backward()
    assert torch.isfinite(xt.grad).all()
    # d log p / d m2_23 of the Breit–Wigner, analytically: 2 (m_R² − s) / ((m_R² − s)² + m_R² Γ²).
    s = x[:-1, 1]
    mr2 = DALITZ.m_res**2
    analytic = 2 * (mr2 - s) / ((mr2 - s) ** 2 + mr2 * DALITZ.width_res**2)
    np.testing.assert_allclose(xt.grad[:-1, 1].numpy(), analytic, rtol=1e-10)


def test_phasespace_generate_writes_eventset(tmp_path):
    path = tmp_path / "ps.h5"
    summary = phasespace.generate(path, 2000, seed=4, log=QUIET)
    events = read_events(path)
    assert events.kind == "phasespace" and events.feature_names == phasespace.FEATURE_NAMES
    np.testing.assert_allclose(events.log_density, phasespace.log_density(events.features))
    masses = {"m_parent": DALITZ.m_parent, "m1": DALITZ.m1, "m2": DALITZ.m2, "m3": DALITZ.m3}
    assert events.transforms[0] == {"type": "dalitz", "given": "m2_23", **masses}
    assert events.transforms[1] == {"type": "bounded", "low": DALITZ.m2_23_limits[0], "high": DALITZ.m2_23_limits[1]}
    assert events.transforms[3] == {"type": "bounded", "low": -1.0, "high": 1.0}
    assert events.meta["unweighting_efficiency"] == summary["unweighting_efficiency"]
    again = tmp_path / "again.h5"
    phasespace.generate(again, 2000, seed=4, log=QUIET)
    assert np.array_equal(read_events(again).features, events.features)


# ------------------------------------------------------------------ calorimeter


@pytest.fixture(scope="module")
def shower_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("calo") / "showers.hdf5"
    calo.simulate_showers(path, 3000, seed=7, log=QUIET)
    return path


def test_calo_layout_matches_the_challenge(shower_file):
    assert calo.N_VOXELS == 368
    assert calo.LAYER_BINS == {0: (8, 1), 1: (16, 10), 2: (19, 10), 3: (5, 1), 12: (5, 1)}
    slices = calo.layer_slices()
    assert [(s.start, s.stop) for s in slices.values()] == [(0, 8), (8, 168), (168, 358), (358, 363), (363, 368)]
    with h5py.File(shower_file) as f:
        assert set(f.keys()) == {"incident_energies", "showers"}
        assert f["incident_energies"].shape == (3000, 1) and f["showers"].shape == (3000, 368)
        e_inc = f["incident_energies"][()][:, 0]
        showers = f["showers"][()]
    assert set(np.unique(e_inc)) <= {2.0**k for k in range(8, 23)}
    assert len(np.unique(e_inc)) == 15
    assert (showers >= 0).all() and ((showers == 0) | (showers >= calo.GFlashMedium().threshold_mev)).all()
    # The middle layer's first 19 voxels share one α bin (α is the outer index).
    layer, radius, alpha, r_index = calo.voxel_geometry()
    middle = slice(168, 168 + 19)
    assert (layer[middle] == 2).all() and np.unique(alpha[middle]).size == 1
    assert alpha[168] == pytest.approx(-math.pi + math.pi / 10)
    assert list(r_index[middle]) == list(range(19)) and radius[168] == 1.0


def test_calo_energy_response_and_sampling_term():
    medium = calo.GFlashMedium()
    energies = np.array([2.0**k for k in (10, 12, 14, 16)])
    e_inc = np.repeat(energies, 1500)
    showers = calo.simulate(e_inc, seed=8, medium=medium)
    fraction = showers.sum(axis=1) / e_inc
    means = np.array([fraction[e_inc == e].mean() for e in energies])
    resolution = np.array([fraction[e_inc == e].std() / fraction[e_inc == e].mean() for e in energies])
    # Less energy is lost in the dead material in front as showers get deeper with energy.
    assert np.all(np.diff(means) > 0) and 0.8 < means[0] < means[-1] < 1.0
    # The spot count realises σ/E = a/√E: the relative spread times √E stays near a
    # (above it by the longitudinal leakage fluctuations).
    scaled = resolution * np.sqrt(energies / 1000.0)
    assert np.all((scaled > medium.sampling_term) & (scaled < 1.5 * medium.sampling_term))
    doubled = calo.simulate(e_inc, seed=8, medium=calo.GFlashMedium(sampling_term=0.2))
    wider = np.array([(doubled.sum(1) / e_inc)[e_inc == e].std() for e in energies])
    assert np.all(wider > 1.5 * np.array([fraction[e_inc == e].std() for e in energies]))


def test_calo_simulation_is_seeded():
    e = np.full(100, 65536.0)
    assert np.array_equal(calo.simulate(e, seed=1), calo.simulate(e, seed=1))
    assert not np.array_equal(calo.simulate(e, seed=1), calo.simulate(e, seed=2))


def test_high_level_features_analytic_values():
    showers = np.zeros((2, 368))
    # Shower 0: all of layer 1 in one voxel (α bin 3, r bin 4); layer 2 split between two
    # voxels at opposite α in the same r bin.
    _, radius, alpha, _ = calo.voxel_geometry()
    v1 = 8 + 3 * 16 + 4
    showers[0, v1] = 100.0
    v2a, v2b = 168 + 0 * 19 + 2, 168 + 5 * 19 + 2  # α = −0.9π and 0.1π: opposite directions
    showers[0, [v2a, v2b]] = 50.0
    e_inc = np.array([400.0, 1000.0])
    values, names = calo.high_level_features(showers, e_inc)
    row = dict(zip(names, values[0]))
    assert row["E_layer1"] == 100.0 and row["E_layer2"] == 100.0 and row["E_layer0"] == 0.0
    assert row["Etot_over_Einc"] == 0.5
    assert row["ECx_layer1"] == pytest.approx(radius[v1] * math.cos(alpha[v1]))
    assert row["ECy_layer1"] == pytest.approx(radius[v1] * math.sin(alpha[v1]))
    assert row["width_x_layer1"] == pytest.approx(0.0, abs=1e-9)
    assert row["ECx_layer2"] == pytest.approx(0.0, abs=1e-9)
    assert row["width_x_layer2"] == pytest.approx(abs(radius[v2a] * math.cos(alpha[v2a])))
    assert row["sparsity_layer1"] == 1 / 160 and row["sparsity_layer2"] == 2 / 190
    # The empty shower and the empty layers give zeros, never NaN.
    assert np.isfinite(values).all() and (values[1] == 0).all()
    assert "ECy_layer0" not in names and len(names) == values.shape[1]
    with pytest.raises(InputError, match="368"):
        calo.high_level_features(np.zeros((2, 367)), e_inc)
