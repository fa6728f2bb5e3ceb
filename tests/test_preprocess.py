"""Preprocessing: invertible, fitted on train only, with a correct Jacobian."""

import numpy as np
import pytest
import torch

from hepgenbench.errors import InputError
from hepgenbench.io import EventSet
from hepgenbench.preprocess import Preprocessor, map_types


def _events(n=2000, seed=0) -> EventSet:
    rng = np.random.default_rng(seed)
    pt = rng.exponential(30, n) + 5
    phi = rng.uniform(-np.pi, np.pi, n)
    eta = rng.normal(0, 2, n)
    e_inc = 2.0 ** rng.integers(8, 23, n)
    cell = e_inc * rng.beta(0.5, 5, n) * (rng.random(n) > 0.3)  # many exact zeros, as in showers
    return EventSet(
        np.stack([pt, phi, eta, cell], 1),
        ["pt", "phi", "eta", "cell"],
        transforms=[
            {"type": "log", "offset": 0.0},
            {"type": "bounded", "low": -np.pi, "high": np.pi},
            {"type": "standard"},
            {"type": "fraction_logit", "alpha": 1e-6},
        ],
        condition=e_inc[:, None],
        condition_names=["E_inc"],
    )


def test_round_trip_and_standardised():
    ev = _events()
    pre = Preprocessor.fit(ev)
    u = pre.forward(ev.features, ev.condition)
    np.testing.assert_allclose(u.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(u.std(0), 1, atol=1e-9)
    back = pre.inverse(u, ev.condition)
    np.testing.assert_allclose(back[:, :3], ev.features[:, :3], rtol=1e-9)
    # Cells: exact zeros come back as zeros (to the regulariser's precision, ~alpha * E_inc).
    np.testing.assert_allclose(back[:, 3], ev.features[:, 3], atol=1e-9 * ev.condition.max(), rtol=1e-6)


def test_inverse_stays_physical_for_any_network_output():
    ev = _events()
    pre = Preprocessor.fit(ev)
    wild = np.random.default_rng(1).normal(0, 30, size=(1000, 4))  # far outside the training range
    x = pre.inverse(wild, ev.condition[:1000])
    assert (x[:, 0] > 0).all(), "log transform must give positive pT"
    assert (np.abs(x[:, 1]) <= np.pi).all(), "bounded transform must stay inside its limits"
    assert (x[:, 3] >= 0).all() and (x[:, 3] <= ev.condition[:1000, 0] + 1e-9).all()


def test_fitted_on_the_events_it_is_given_only():
    ev = _events(2000)
    train = ev.subset(np.arange(1000))
    pre = Preprocessor.fit(train)
    assert pre.features[2].mean == pytest.approx(train.features[:, 2].mean())
    assert pre.features[2].mean != pytest.approx(ev.features[:, 2].mean())


def test_json_round_trip():
    ev = _events(200)
    pre = Preprocessor.fit(ev)
    again = Preprocessor.from_dict(pre.to_dict())
    np.testing.assert_array_equal(pre.forward(ev.features, ev.condition), again.forward(ev.features, ev.condition))


def test_constant_feature_passes_through_with_a_warning():
    ev = EventSet(np.c_[np.ones(100), np.arange(100.0)], ["const", "x"])
    with pytest.warns(UserWarning, match="'const' is constant"):
        pre = Preprocessor.fit(ev)
    np.testing.assert_allclose(pre.inverse(pre.forward(ev.features))[:, 0], 1.0)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"type": "sqrt"}, "unknown transform type 'sqrt'; known: " + ", ".join(map_types())),
        ({"type": "bounded", "low": 1, "high": 0}, "needs numeric low < high"),
        ({"type": "fraction_logit"}, "needs a condition column"),
        ({"type": "dalitz", "given": "y"}, r"needs \['m_parent', 'm1', 'm2', 'm3'\]"),
        ({"type": "dalitz", "given": "x", "m_parent": 2, "m1": 0.5, "m2": 0.1, "m3": 0.1}, "must name another feature"),
    ],
)
def test_bad_transform_specs_name_the_feature(spec, message):
    ev = EventSet(np.random.default_rng(0).random((50, 1)), ["x"], transforms=[spec])
    with pytest.raises(InputError, match=f"feature 'x'.*{message}"):
        Preprocessor.fit(ev)


def test_fraction_logit_threshold_zero_suppresses_generated_cells_only():
    """Cells generated below the readout threshold read exactly 0; the truth is untouched."""
    e_inc = np.full((6, 1), 1000.0)
    cells = np.array([[0.0], [0.02], [0.5], [12.0], [0.0], [300.0]])
    ev = EventSet(cells, ["v000"], transforms=[{"type": "fraction_logit", "alpha": 1e-6, "threshold": 0.015}],
                  condition=e_inc, condition_names=["E_inc"])
    pre = Preprocessor.fit(ev)
    np.testing.assert_allclose(pre.inverse(pre.forward(cells, e_inc), e_inc), cells, rtol=1e-6, atol=1e-9)
    # network values whose cell energies are 1 keV, 14 keV, 16 keV and 1 MeV
    wanted = np.array([[0.001], [0.014], [0.016], [1.0]])
    u = pre.forward(wanted, e_inc[:4])
    back = pre.inverse(u, e_inc[:4])
    assert back[0, 0] == 0.0 and back[1, 0] == 0.0
    np.testing.assert_allclose(back[2:], wanted[2:], rtol=1e-6)
    # and the same in torch, where the stages apply it
    back_t = pre.inverse(torch.as_tensor(u), torch.as_tensor(e_inc[:4]))
    np.testing.assert_allclose(back_t.numpy(), back, rtol=1e-6, atol=0)


def dalitz_events(n: int = 3000) -> tuple[EventSet, "object"]:
    from hepgenbench.data import phasespace

    x, _ = phasespace.sample(n, seed=2)
    return EventSet(x, list(phasespace.FEATURE_NAMES), transforms=phasespace.transforms()), phasespace


def test_dalitz_pair_maps_the_whole_network_space_onto_the_dalitz_plot():
    """Square-Dalitz coordinates: every network point is physical and the map inverts exactly."""
    events, phasespace = dalitz_events()
    pre = Preprocessor.fit(events)
    np.testing.assert_allclose(pre.inverse(pre.forward(events.features)), events.features, rtol=1e-10, atol=1e-12)
    u = np.random.default_rng(1).standard_normal((50_000, 5)) * 4  # far beyond the data, too
    assert np.isfinite(phasespace.log_density(pre.inverse(u))).all()
    # m²₁₂ at the two ends of its interval for one m²₂₃, by the PDG formula worked by hand:
    # at m²₂₃ = m_ρ² the K⁻ and π⁺ momenta in the (π⁺π⁰) frame fix the extremes.
    d = phasespace.DALITZ
    s23 = d.m_res**2
    e2 = (s23 - d.m3**2 + d.m2**2) / (2 * np.sqrt(s23))
    e1 = (d.m_parent**2 - s23 - d.m1**2) / (2 * np.sqrt(s23))
    p1, p2 = np.sqrt(e1**2 - d.m1**2), np.sqrt(e2**2 - d.m2**2)
    edge = pre.inverse(pre.forward(np.array([[(e1 + e2) ** 2 - (p1 + p2) ** 2 + 1e-9, s23, 0, 0, 0]])))
    # (the logit clips at 1e-6 of the interval, ~2e-6 GeV² here; the global limit is 3e-3 lower)
    assert edge[0, 0] == pytest.approx((e1 + e2) ** 2 - (p1 + p2) ** 2, abs=1e-5)
    assert (e1 + e2) ** 2 - (p1 + p2) ** 2 - d.m2_12_limits[0] > 3e-3
    assert pre.forward(np.array([[(e1 + e2) ** 2 - (p1 - p2) ** 2 - 1e-4, s23, 0, 0, 0]]))[0, 0] > 2


def zmumu_events(n: int) -> EventSet:
    from hepgenbench.data.readers import default_transform, zmumu_spec
    from hepgenbench.testing import zmumu_like

    ev = zmumu_like(n, seed=3)
    spec = zmumu_spec("unused.root").transforms
    return EventSet(ev.features, ev.feature_names, transforms=[spec.get(k, default_transform(k)) for k in ev.feature_names])


def test_pair_mass_puts_log_m_mumu_on_a_network_axis():
    """The second muon's pT enters as log m_μμ, checked against `vector`'s invariant mass."""
    import vector

    events = zmumu_events(4000)
    pre = Preprocessor.fit(events)
    col = {k: events.features[:, j] for j, k in enumerate(events.feature_names)}
    mu = [vector.array({"pt": col[f"Muon{i}_pt"], "eta": col[f"Muon{i}_eta"], "phi": col[f"Muon{i}_phi"],
                        "mass": np.zeros(len(events))}) for i in (1, 2)]
    m_mumu = (mu[0] + mu[1]).mass
    f = pre.features[3]
    assert f.name == "Muon2_pt" and f.type == "pair_mass"
    np.testing.assert_allclose(pre.forward(events.features)[:, 3] * f.std + f.mean, np.log(m_mumu), rtol=1e-10)
    np.testing.assert_allclose(pre.inverse(pre.forward(events.features)), events.features, rtol=1e-9)


def test_delta_phi_measures_azimuths_from_the_reference():
    """A back-to-back pair lands mid-interval at every φ₁, across the ±π seam too, and the
    inverse comes back in (−π, π]; the pair_mass map then takes that dependent azimuth."""
    events = zmumu_events(3000)
    names = events.feature_names
    i1, i2, ipt2 = names.index("Muon1_phi"), names.index("Muon2_phi"), names.index("Muon2_pt")
    pre = Preprocessor.fit(events)
    f = pre.features[i2]
    assert f.type == "delta_phi" and pre.features[names.index("Jet1_phi")].type == "delta_phi"
    pairs = events.features.copy()
    pairs[:, i1] = np.linspace(-np.pi + 1e-3, np.pi, len(pairs))
    pairs[:, i2] = np.remainder(pairs[:, i1] + 2 * np.pi, 2 * np.pi) - np.pi  # φ₁ + π, wrapped
    y = pre.forward(pairs)[:, i2] * f.std + f.mean
    np.testing.assert_allclose(y, 0.0, atol=1e-6)  # logit(½): the opening angle is π everywhere
    u = np.random.default_rng(0).standard_normal((5000, len(names)))
    back = pre.inverse(u)
    assert (back[:, i2] > -np.pi).all() and (back[:, i2] <= np.pi).all()
    np.testing.assert_allclose(pre.forward(back), u, atol=1e-6)
    # The Jacobian with the chain φ₁ → φ₂ → pT₂: still triangular, the per-feature sum exact.
    x = torch.tensor(back[:10], dtype=torch.float64)
    for xi, expected in zip(x, pre.log_abs_det_jacobian(x)):
        jac = torch.autograd.functional.jacobian(lambda r: pre.forward(r[None])[0], xi)
        assert abs(jac[i2, i1]) > 0 and abs(jac[ipt2, i2]) > 0
        assert torch.linalg.slogdet(jac).logabsdet.item() == pytest.approx(expected.item(), abs=1e-9)


def test_dependent_transforms_in_a_cycle_are_refused():
    events = zmumu_events(50)
    events.transforms[events.feature_names.index("Muon1_phi")] = {"type": "delta_phi", "given": "Jet1_phi"}
    events.transforms[events.feature_names.index("Jet1_phi")] = {"type": "delta_phi", "given": "Muon2_phi"}
    with pytest.raises(InputError, match=r"\['Jet1_phi', 'Muon1_phi', 'Muon2_phi', 'Muon2_pt'\].*cycle"):
        Preprocessor.fit(events)


@pytest.mark.parametrize(
    "given, message",
    [
        (["Muon1_pt", "Muon1_eta"], "needs given = 5 feature name"),
        (["Muon1_pt", "Muon1_eta", "Muon1_phi", "Muon2_eta", "nope"], "given 'nope' must name another feature"),
    ],
)
def test_pair_mass_spec_errors_name_the_feature(given, message):
    events = zmumu_events(50)
    events.transforms[3] = {"type": "pair_mass", "given": given}
    with pytest.raises(InputError, match=f"feature 'Muon2_pt'.*{message}"):
        Preprocessor.fit(events)


@pytest.mark.parametrize("source", ["zmumu", "phasespace", "calo"])
def test_round_trip_on_every_embedded_dataset(tmp_path, source):
    """inverse(forward(x)) == x on the real generated events of each dataset."""
    from hepgenbench import stages
    from hepgenbench.records import IngestParams, SourceParams

    dataset = {"zmumu": {"source": "pythia", "level": "parton", "n_events": 3000},
               "phasespace": {"source": "phasespace", "n_events": 2000},
               "calo": {"source": "calo", "n_events": 500}}[source]
    config = {"seed": 1, "datasets": {source: dataset}}
    path = str(tmp_path / ("events.root" if source == "zmumu" else "events.h5"))
    stages.source({}, {"data": path}, SourceParams.from_config(config, source), threads=1)
    events = stages.read_dataset([path], IngestParams.from_config(config, source))
    pre = Preprocessor.fit(events)
    u = pre.forward(events.features, events.condition)
    assert np.isfinite(u).all()
    back = pre.inverse(u, events.condition)
    scale = np.abs(events.features).max(axis=0) + 1e-12
    # Relative to each column's scale: calorimeter cells span six decades.
    np.testing.assert_allclose(back / scale, events.features / scale, atol=1e-7)


def test_unit_box_locates_each_logit_feature_on_its_interval():
    """logit u = scale·x + loc recovers the fraction u of each feature's own interval."""
    events, phasespace = dalitz_events()
    pre = Preprocessor.fit(events)
    box = pre.unit_box()
    x = pre.forward(events.features)
    u = 1 / (1 + np.exp(-(np.asarray(box["scale"]) * x + np.asarray(box["loc"]))))
    m2_12, m2_23 = events.features[:, 0], events.features[:, 1]
    low, high = phasespace.DALITZ.m2_12_range(m2_23)
    np.testing.assert_allclose(u[:, 0], (m2_12 - low) / (high - low), atol=1e-9)
    for j, f in enumerate(pre.features[1:], start=1):  # m²₂₃ and the three angles are 'bounded'
        lo, hi = f.params["low"], f.params["high"]
        np.testing.assert_allclose(u[:, j], (events.features[:, j] - lo) / (hi - lo), atol=1e-9)
    # a log or standardised feature has no box: the whole set then has none
    assert Preprocessor.fit(_events()).unit_box() is None


def _share_events(n: int = 400, seed: int = 0, zeros: float = 0.2) -> EventSet:
    """Three layers of 3, 4 and 1 cells, some exactly empty, and E_inc above their sum."""
    rng = np.random.default_rng(seed)
    scales = np.array([1, 2, 5, 0.5, 3, 1, 8, 2.0])
    x = rng.gamma(1.0, scales, size=(n, 8)) * (rng.random((n, 8)) >= zeros)
    e_inc = x.sum(1, keepdims=True) * rng.uniform(1.0, 1.3, (n, 1)) + 1.0
    groups = ["a"] * 3 + ["b"] * 4 + ["c"]
    return EventSet(x, [f"v{i}" for i in range(8)], transforms=[
        {"type": "shower_share", "group": g, "alpha": 1e-6} for g in groups], condition=e_inc, condition_names=["E_inc"])


def test_shower_shares_order_each_stick_by_mean_energy_and_round_trip():
    ev = _share_events()
    pre = Preprocessor.fit(ev)
    (block,) = pre.blocks
    assert block.columns == tuple(range(8))  # so the block's columns are the features'
    shares = block.map
    mean = ev.features.mean(0)
    layer_means = [mean[list(cells)].sum() for cells in shares.layers]
    assert layer_means == sorted(layer_means)
    for cells in shares.layers:
        assert list(mean[list(cells)]) == sorted(mean[list(cells)]), "the remainder of a stick is its largest cell"
    u = pre.forward(ev.features, ev.condition)
    np.testing.assert_allclose(u.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(u.std(0), 1, atol=1e-9)
    back = pre.inverse(u, ev.condition)
    np.testing.assert_allclose(back, ev.features, rtol=1e-9, atol=1e-9)  # zeros to α's precision
    # E_tot / E_inc is one coordinate: the last cell of the last layer holds it
    j = shares.layers[-1][-1]
    total = pre.features[j]
    np.testing.assert_allclose(np.exp(u[:, j] * total.std + total.mean) - shares.TOTAL_OFFSET,
                               ev.features.sum(1) / ev.condition[:, 0], rtol=1e-9)


def test_shower_shares_inverse_of_any_output_conserves_energy_and_stays_physical():
    ev = _share_events()
    pre = Preprocessor.fit(ev)
    rng = np.random.default_rng(3)
    wild = rng.normal(0, 5, size=(2000, 8))
    e_inc = np.full((2000, 1), 50.0)
    cells = pre.inverse(wild, e_inc)
    assert (cells >= 0).all()
    j = pre.blocks[0].map.layers[-1][-1]
    total = pre.features[j]
    np.testing.assert_allclose(cells.sum(1), e_inc[:, 0] * (np.exp(wild[:, j] * total.std + total.mean) - 1e-6), rtol=1e-9)


def test_shower_shares_survive_json_and_zero_suppress():
    ev = _share_events()
    for t in ev.transforms:
        t["threshold"] = 0.05
    pre = Preprocessor.fit(ev)
    again = Preprocessor.from_dict(pre.to_dict())
    assert again.blocks == pre.blocks
    u = pre.forward(ev.features, ev.condition)
    np.testing.assert_array_equal(again.forward(ev.features, ev.condition), u)
    small = ev.features.copy()
    small[:, 0] = 0.04  # below the threshold: generated, it reads 0
    back = pre.inverse(pre.forward(small, ev.condition), ev.condition)
    assert (back[:, 0] == 0).all()
    np.testing.assert_allclose(back, np.where(small < 0.05, 0.0, small), rtol=1e-6, atol=0)


@pytest.mark.parametrize("change, message", [
    (lambda t: t[0].pop("group"), r"feature 'v0': 'shower_share' needs \['group'\] \(group: the name of the cell's layer\)"),
    (lambda t: t[1].update(alpha=1e-3), "must share one alpha and one threshold"),
])
def test_shower_share_specs_are_checked(change, message):
    ev = _share_events()
    change(ev.transforms)
    with pytest.raises(InputError, match=message):
        Preprocessor.fit(ev)


@pytest.mark.parametrize("kind", ["shower_share", "fraction_logit"])
def test_dequantize_spreads_suppressed_cells_below_the_threshold_and_the_inverse_restores_them(kind):
    ev = _share_events(n=4000, zeros=0.3)
    ev.features[ev.features < 0.05] = 0.0  # read out as the detector does
    for t in ev.transforms:
        t.update(type=kind, threshold=0.05)
        if kind == "fraction_logit":
            t.pop("group")
    pre = Preprocessor.fit(ev)
    cells = pre.dequantize(ev.features, np.random.default_rng(1))
    empty = ev.features == 0
    np.testing.assert_array_equal(cells[~empty], ev.features[~empty])
    spread = cells[empty] / 0.05  # uniform on [0, 1): mean 1/2, variance 1/12
    assert spread.min() >= 0 and spread.max() < 1
    assert abs(spread.mean() - 0.5) < 4 * np.sqrt(1 / 12 / spread.size)
    assert abs(spread.var() - 1 / 12) < 0.01
    # the models see the dequantized cells standardised, and their inverse suppresses them again
    u = pre.forward(cells, ev.condition)
    np.testing.assert_allclose(u.mean(0), 0, atol=0.05)
    np.testing.assert_allclose(pre.inverse(u, ev.condition), ev.features, rtol=1e-6, atol=0)
    # features without a threshold are left alone
    ev_plain = _events()
    np.testing.assert_array_equal(Preprocessor.fit(ev_plain).dequantize(ev_plain.features, np.random.default_rng(1)),
                                  ev_plain.features)


@pytest.mark.parametrize("kind", ["shower_share", "fraction_logit"])
def test_cell_space_keeps_empty_cells_exactly_zero_in_units_of_each_cells_hit_scale(kind):
    ev = _share_events(n=3000, zeros=0.3)
    for t in ev.transforms:
        t.update(type=kind, threshold=0.05)
        if kind == "fraction_logit":
            t.pop("group")
    ev.features[:, 5] = 0.0  # a cell that never reads out
    below = (ev.features > 0) & (ev.features < 0.05)  # left above 0: the cell space suppresses them
    assert below.any()
    train = ev.subset(np.arange(2000))
    pre = Preprocessor.fit(train)
    fractions = train.features / train.condition
    for j in (0, 7):
        read_out = train.features[:, j] >= 0.05
        assert pre.features[j].params["hit_scale"] == pytest.approx(fractions[read_out, j].mean(), rel=1e-12)
    others = [f.params["hit_scale"] for j, f in enumerate(pre.features) if j != 5]
    assert pre.features[5].params["hit_scale"] == min(others)
    u = pre.forward_cells(ev.features, ev.condition)
    read_out = ev.features >= 0.05
    assert (u[~read_out] == 0).all() and (u[read_out] > 0).all()
    assert u[:2000][read_out[:2000]].mean() == pytest.approx(1.0, rel=1e-9)  # every cell averages 1 on its hits
    back = pre.inverse_cells(u, ev.condition)
    np.testing.assert_allclose(back, np.where(read_out, ev.features, 0.0), rtol=1e-12, atol=0)
    # torch in, torch out, the same numbers; and any output comes back ≥ 0 and zero-suppressed
    back_t = pre.inverse_cells(torch.as_tensor(u), torch.as_tensor(ev.condition))
    np.testing.assert_allclose(back_t.numpy(), back, rtol=1e-12)
    wild = pre.inverse_cells(np.random.default_rng(2).normal(0, 1e-3, u.shape), ev.condition)
    assert (wild >= 0).all() and ((wild == 0) | (wild >= 0.05)).all() and (wild == 0).any()
    assert Preprocessor.from_dict(pre.to_dict()).features[0].params["hit_scale"] == pre.features[0].params["hit_scale"]


def test_cell_space_refuses_features_that_are_not_cells():
    ev = _events()
    pre = Preprocessor.fit(ev)
    with pytest.raises(InputError, match="feature 'pt' is 'log', not a calorimeter cell"):
        pre.forward_cells(ev.features, ev.condition)
    cells = _share_events()
    stale = Preprocessor.fit(cells).to_dict()
    for f in stale["features"]:
        del f["params"]["hit_scale"]
    with pytest.raises(InputError, match="feature 'v0' has no fitted 'hit_scale'.*re-run the preprocess stage"):
        Preprocessor.from_dict(stale).inverse_cells(cells.features, cells.condition)
