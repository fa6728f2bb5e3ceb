"""Derived observables against hand-computed kinematics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hepgenbench.data import calo, phasespace
from hepgenbench.data.observables import MUON_MASS_GEV, derived_observables
from hepgenbench.data.phasespace import DALITZ
from hepgenbench.errors import InputError
from hepgenbench.io import EventSet

ZMUMU_NAMES = ["Muon1_pt", "Muon1_eta", "Muon1_phi", "Muon2_pt", "Muon2_eta", "Muon2_phi",
               "Jet1_pt", "Jet1_eta", "Jet1_phi", "Jet1_mass"]


def zmumu_events(rows):
    return EventSet(features=np.array(rows, dtype=float), feature_names=list(ZMUMU_NAMES), kind="zmumu")


def test_back_to_back_pair_has_the_analytic_mass():
    # Two muons of pT 45 GeV at η = 0, back to back: m = 2E with E = √(45² + m_μ²), pT = 0.
    events = zmumu_events([[45.0, 0.0, 0.3, 45.0, 0.0, 0.3 - math.pi, 30.0, 1.0, 2.0, 5.0]])
    values, names = derived_observables(events)
    row = dict(zip(names, values[0]))
    assert names == ["m_mumu", "pt_mumu", "dR_mumu", "dphi_mumu_jet"]
    assert row["m_mumu"] == pytest.approx(2 * math.sqrt(45.0**2 + MUON_MASS_GEV**2), rel=1e-12)
    assert row["pt_mumu"] == pytest.approx(0.0, abs=1e-9)
    assert row["dR_mumu"] == pytest.approx(math.pi)


def test_general_pair_matches_four_vector_algebra():
    pt1, eta1, phi1, pt2, eta2, phi2 = 40.0, 0.5, 0.2, 30.0, -1.2, 2.9
    events = zmumu_events([[pt1, eta1, phi1, pt2, eta2, phi2, 25.0, 0.0, -2.0, 0.0]])
    values, _ = derived_observables(events)

    def four(pt, eta, phi, m):
        px, py, pz = pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)
        return np.array([math.sqrt(px**2 + py**2 + pz**2 + m**2), px, py, pz])

    total = four(pt1, eta1, phi1, MUON_MASS_GEV) + four(pt2, eta2, phi2, MUON_MASS_GEV)
    mass = math.sqrt(total[0] ** 2 - total[1:] @ total[1:])
    pt = math.hypot(total[1], total[2])
    dphi = abs((math.atan2(total[2], total[1]) - (-2.0) + math.pi) % (2 * math.pi) - math.pi)
    dphi_muons = (phi1 - phi2 + math.pi) % (2 * math.pi) - math.pi
    np.testing.assert_allclose(values[0], [mass, pt, math.hypot(eta1 - eta2, dphi_muons), dphi], rtol=1e-10)


def test_phasespace_observables_satisfy_the_dalitz_identity():
    x, _ = phasespace.sample(1000, seed=0)
    events = EventSet(features=x, feature_names=list(phasespace.FEATURE_NAMES), kind="phasespace")
    values, names = derived_observables(events)
    assert names == ["m2_13", "m_23"]
    total = DALITZ.m_parent**2 + DALITZ.m1**2 + DALITZ.m2**2 + DALITZ.m3**2
    np.testing.assert_allclose(values[:, 0] + x[:, 0] + x[:, 1], total, rtol=1e-12)
    np.testing.assert_allclose(values[:, 1] ** 2, x[:, 1], rtol=1e-12)
    # m²₁₃ lies within its own kinematic limits.
    assert (values[:, 0] > (DALITZ.m1 + DALITZ.m3) ** 2).all()
    assert (values[:, 0] < (DALITZ.m_parent - DALITZ.m2) ** 2).all()


def test_calo_dispatch_and_generic():
    showers = np.zeros((1, 368))
    showers[0, 0] = 10.0
    events = EventSet(features=showers, feature_names=[f"v{i:03d}" for i in range(368)], kind="calo",
                      condition=np.array([[20.0]]), condition_names=["E_inc"])
    values, names = derived_observables(events)
    assert names == calo.high_level_feature_names()
    assert values[0, names.index("Etot_over_Einc")] == 0.5
    assert values[0, names.index("ECx_layer0")] == 2.5  # the first r bin of layer 0 is 0–5 mm
    generic = EventSet(features=np.ones((3, 2)), feature_names=["a", "b"])
    values, names = derived_observables(generic)
    assert values.shape == (3, 0) and names == []


def test_errors_name_what_is_missing():
    events = EventSet(features=np.ones((2, 1)), feature_names=["Muon1_pt"], kind="zmumu")
    with pytest.raises(InputError, match="'Muon1_eta'"):
        derived_observables(events)
    with pytest.raises(InputError, match="kind 'jets'"):
        derived_observables(EventSet(features=np.ones((2, 1)), feature_names=["a"], kind="jets"))
