"""Readers: ROOT collections and selections, HDF5, CaloChallenge files (their errors: test_bad_inputs.py)."""

from __future__ import annotations

import awkward as ak
import h5py
import numpy as np
import pytest
import uproot

from hepgenbench.data import calo
from hepgenbench.data.calo_geometry import DS2, DS3, CaloGeometry
from hepgenbench.data.readers import (
    CollectionSpec,
    Hdf5Spec,
    RootSpec,
    _leading_indices,
    default_transform,
    read_calochallenge,
    read_hdf5,
    read_root,
    zmumu_spec,
)
from hepgenbench.errors import InputError
from hepgenbench.ordering import ObjectOrder, object_orders

# Five events; muons deliberately NOT sorted by pt, event 2 has one muon, event 4 has no jet.
MUON_PT = [[10.0, 30.0, 20.0], [50.0, 40.0], [25.0], [5.0, 6.0], [70.0, 80.0]]
MUON_ETA = [[0.1, 0.3, 0.2], [1.0, -1.0], [0.0], [2.0, -2.0], [0.5, 0.6]]
MUON_PHI = [[1.0, 3.0, 2.0], [0.5, -0.5], [0.0], [1.5, -1.5], [0.7, 0.8]]
JET_PT = [[100.0], [60.0, 90.0], [40.0], [30.0], []]
JET_MASS = [[10.0], [0.0, 5.0], [3.0], [1.0], []]
MET = [1.0, 2.0, 3.0, 4.0, 5.0]


def write_tree(path, met=MET):
    with uproot.recreate(path) as f:
        tree = f.mktree("Events", {
            "Muon": ak.zip({"pt": ak.Array(MUON_PT), "eta": ak.Array(MUON_ETA), "phi": ak.Array(MUON_PHI)}).type,
            "Jet": ak.zip({"pt": ak.Array(JET_PT), "eta": ak.Array(JET_PT) * 0.0, "phi": ak.Array(JET_PT) * 0.0,
                           "mass": ak.Array(JET_MASS)}).type,
            "MET_pt": np.float64,
        })
        tree.extend({
            "Muon": ak.zip({"pt": ak.Array(MUON_PT), "eta": ak.Array(MUON_ETA), "phi": ak.Array(MUON_PHI)}),
            "Jet": ak.zip({"pt": ak.Array(JET_PT), "eta": ak.Array(JET_PT) * 0.0, "phi": ak.Array(JET_PT) * 0.0,
                           "mass": ak.Array(JET_MASS)}),
            "MET_pt": np.asarray(met, dtype=np.float64),
        })
    return str(path)


@pytest.fixture
def root_file(tmp_path):
    return write_tree(tmp_path / "events.root")


def dimuon_spec(path, **kw):
    options = dict(files=[path], tree="Events", branches=["MET_pt"],
                   collections={"Muon": CollectionSpec(n=2, sort_by="pt", fields=["pt", "eta", "phi"])})
    options.update(kw)
    return RootSpec(**options)


def test_read_root_takes_leading_objects_sorted_and_drops_short_events(root_file):
    events = read_root(dimuon_spec(root_file))
    assert events.feature_names == ["Muon1_pt", "Muon1_eta", "Muon1_phi", "Muon2_pt", "Muon2_eta", "Muon2_phi",
                                    "MET_pt"]
    expected = np.array([
        [30.0, 0.3, 3.0, 20.0, 0.2, 2.0, 1.0],
        [50.0, 1.0, 0.5, 40.0, -1.0, -0.5, 2.0],
        [6.0, -2.0, -1.5, 5.0, 2.0, 1.5, 4.0],
        [80.0, 0.6, 0.8, 70.0, 0.5, 0.7, 5.0],
    ])
    np.testing.assert_array_equal(events.features, expected)
    assert events.meta["n_read"] == 5 and events.meta["n_dropped_too_few"] == {"Muon": 1}
    assert events.transforms[0] == {"type": "log", "offset": 0.0}
    assert events.transforms[1] == {"type": "standard"}
    assert events.transforms[2] == {"type": "bounded", "low": -3.141593, "high": 3.141593}
    # the order is recorded for the sample stage; a collection not sorted by a feature is not
    assert object_orders(events.meta) == [ObjectOrder.of_collection("Muon", 2, "pt", ["pt", "eta", "phi"])]
    unsorted = dimuon_spec(root_file, collections={"Muon": CollectionSpec(n=2, sort_by="pt", fields=["eta", "phi"])})
    assert object_orders(read_root(unsorted).meta) == []


def test_chunked_reading_equals_one_shot(root_file, tmp_path):
    second = write_tree(tmp_path / "second.root", met=[9.0, 8.0, 7.0, 6.0, 5.0])
    spec = zmumu_spec(root_file)
    spec.files = [root_file, second]
    one_shot = read_root(spec)
    spec.step_size = 2
    chunked = read_root(spec)
    np.testing.assert_array_equal(chunked.features, one_shot.features)
    assert one_shot.kind == "zmumu" and len(one_shot) == 6  # events 0, 1, 3 of each file
    assert one_shot.feature_names[-1] == "Jet1_mass"
    assert one_shot.transforms[-1] == {"type": "log", "offset": 1.0}


def test_selection_and_transform_override(root_file):
    events = read_root(dimuon_spec(root_file, selection="(MET_pt > 1.5) & (nJet >= 1)",
                                   transforms={"MET_pt": {"type": "log", "offset": 0.0}}))
    np.testing.assert_array_equal(events.features[:, -1], [2.0, 4.0])
    assert events.transforms[-1] == {"type": "log", "offset": 0.0}
    assert events.meta["n_after_selection"] == 3  # event 2 passes the cut but has one muon


def test_condition_branch(root_file):
    events = read_root(dimuon_spec(root_file, branches=[], condition=["MET_pt"]))
    assert events.condition_names == ["MET_pt"]
    np.testing.assert_array_equal(events.condition[:, 0], [1.0, 2.0, 4.0, 5.0])


def test_from_config_accepts_globs_and_rejects_unknown_keys(root_file, tmp_path):
    spec = RootSpec.from_config({
        "files": str(tmp_path / "*.root"), "tree": "Events", "branches": ["MET_pt"],
        "collections": {"Muon": {"n": 1, "fields": ["pt"]}}, "step_size": 3,
    })
    events = read_root(spec)
    assert events.feature_names == ["Muon1_pt", "MET_pt"] and len(events) == 5
    with pytest.raises(InputError, match=r"unknown option\(s\) \['treee'\]"):
        RootSpec.from_config({"files": root_file, "treee": "Events"})
    with pytest.raises(InputError, match="collections.Muon.n"):
        RootSpec.from_config({"files": root_file, "tree": "Events", "collections": {"Muon": {"n": 0}}})
    hspec = Hdf5Spec.from_config({"files": "x.h5", "features": ["a"], "kind": "generic"})
    assert hspec.files == ["x.h5"] and hspec.nan_policy == "refuse"


def test_nan_refused_or_dropped(tmp_path):
    path = write_tree(tmp_path / "nan.root", met=[1.0, np.nan, 3.0, np.inf, 5.0])
    with pytest.raises(InputError, match=r"nan.root:Events: non-finite \(NaN/inf\) values in MET_pt \(MET_pt\): 2"):
        read_root(dimuon_spec(path))
    events = read_root(dimuon_spec(path, nan_policy="drop"))
    np.testing.assert_array_equal(events.features[:, -1], [1.0, 5.0])
    assert events.meta["n_dropped_nonfinite"] == 2
    with pytest.raises(InputError, match="nan_policy 'ignore'"):
        read_root(dimuon_spec(path, nan_policy="ignore"))


def test_read_hdf5_round_trip_and_errors(tmp_path):
    path = tmp_path / "flat.h5"
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 50))
    with h5py.File(path, "w") as f:
        f["jet_pt"], f["x"], f["cond"] = np.exp(a), b.reshape(-1, 1), c
    events = read_hdf5(Hdf5Spec(files=[str(path)], features=["jet_pt", "x"], condition=["cond"]))
    np.testing.assert_array_equal(events.features, np.column_stack([np.exp(a), b]))
    np.testing.assert_array_equal(events.condition[:, 0], c)
    assert events.transforms == [{"type": "log", "offset": 0.0}, {"type": "standard"}]
    with pytest.raises(InputError, match=r"flat.h5: no dataset 'y'; it has: cond, jet_pt, x"):
        read_hdf5(Hdf5Spec(files=[str(path)], features=["y"]))
    text = tmp_path / "table.h5"
    text.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="table.h5: not a readable HDF5 file"):
        read_hdf5(Hdf5Spec(files=[str(text)], features=["a"]))


def test_read_calochallenge_round_trip(tmp_path):
    path = tmp_path / "showers.hdf5"
    calo.simulate_showers(path, 200, seed=1, log=lambda m: None)
    events = read_calochallenge(path)
    with h5py.File(path) as f:
        np.testing.assert_array_equal(events.features, f["showers"][()])
        np.testing.assert_array_equal(events.condition, f["incident_energies"][()])
    assert events.kind == "calo" and events.condition_names == ["E_inc"]
    assert events.feature_names[0] == "v000" and events.feature_names[-1] == "v367"
    assert events.transforms[5] == {"type": "shower_share", "group": "layer0", "alpha": 1e-6, "threshold": 0.015}
    assert events.transforms[8]["group"] == "layer1" and events.transforms[-1]["group"] == "layer12"
    assert [t["group"] for t in events.transforms].count("layer2") == 190
    voxels = read_calochallenge(path, representation="voxels")
    assert voxels.transforms[5] == {"type": "fraction_logit", "alpha": 1e-6, "threshold": 0.015}
    with pytest.raises(InputError, match="representation 'pixels' is not one of"):
        read_calochallenge(path, representation="pixels")


def test_read_calochallenge_errors(tmp_path):
    wrong = tmp_path / "dataset2.hdf5"
    with h5py.File(wrong, "w") as f:
        f["showers"] = np.zeros((3, 6480))
        f["incident_energies"] = np.ones((3, 1))
    with pytest.raises(InputError, match=r"dataset2.hdf5: showers have 6480 voxels but the geometry "
                                         r"\(ds1-photons, the default\) has 368; .*\(binning: ds2\)"):
        read_calochallenge(wrong)
    with pytest.raises(InputError, match=r"dataset2.hdf5: showers have 6480 voxels but the geometry \(ds3\) has 40500"):
        read_calochallenge(wrong, geometry=DS3, binning="ds3")
    ds2 = read_calochallenge(wrong, geometry=DS2)
    assert ds2.n_features == 6480 and CaloGeometry.from_meta(ds2.meta, 6480) == DS2
    assert ds2.transforms[-1]["group"] == "layer44"
    nokey = tmp_path / "nokey.hdf5"
    with h5py.File(nokey, "w") as f:
        f["showers"] = np.zeros((3, 368))
    with pytest.raises(InputError, match="nokey.hdf5: no dataset 'incident_energies'"):
        read_calochallenge(nokey)
    nan = tmp_path / "nan.hdf5"
    with h5py.File(nan, "w") as f:
        showers = np.zeros((3, 368))
        showers[1, 7] = np.nan
        f["showers"], f["incident_energies"] = showers, np.ones((3, 1))
    with pytest.raises(InputError, match=r"nan.hdf5: non-finite.*showers\[:, 7\] \(v007\): 1"):
        read_calochallenge(nan)
    assert len(read_calochallenge(nan, nan_policy="drop")) == 2


def test_default_transforms_by_field_name():
    assert default_transform("Jet1_mass") == {"type": "log", "offset": 1.0}
    assert default_transform("Electron2_energy") == {"type": "log", "offset": 0.0}
    assert default_transform("Tau1_phi")["type"] == "bounded"
    assert default_transform("Tau1_eta") == {"type": "standard"}


@pytest.mark.parametrize("pts, expected", [
    ([[], [], [3.0, 1.0], [1.0, 2.0]], [[0, 1], [3, 2]]),  # empty events first; last pair unsorted
    ([[5.0, 4.0], [2.0, 9.0, 1.0]], [[0, 1], [3, 2]]),
    ([[5.0, 4.0], [9.0, 2.0]], [[0, 1], [2, 3]]),  # already sorted: the fast path
])
def test_leading_indices(pts, expected):
    pts = ak.Array(pts)
    counts = ak.to_numpy(ak.num(pts))
    np.testing.assert_array_equal(_leading_indices(counts, ak.to_numpy(ak.flatten(pts)), 2, counts >= 2), expected)


def test_streaming_ingest_writes_the_same_events_chunk_by_chunk(root_file, tmp_path):
    """The ingest stage streams ROOT chunks into HDF5; the result equals a one-shot read."""
    from hepgenbench import stages
    from hepgenbench.io import read_events
    from hepgenbench.records import IngestParams

    chunks = []
    spec = dimuon_spec(root_file, step_size=2)
    header = read_root(spec, sink=lambda f, c: chunks.append(f))
    assert len(header) == 0 and header.meta["n_events"] == 4 and len(chunks) >= 2
    one_shot = read_root(dimuon_spec(root_file))
    np.testing.assert_array_equal(np.concatenate(chunks), one_shot.features)

    block = {"source": "root", "files": str(root_file), "tree": "Events", "branches": ["MET_pt"], "step_size": 2,
             "collections": {"Muon": {"n": 2, "sort_by": "pt", "fields": ["pt", "eta", "phi"]}}}
    params = IngestParams.from_config({"datasets": {"mine": block}}, "mine")
    stages.ingest({"files": root_file}, {"events": str(tmp_path / "events.h5")}, params, threads=1)
    written = read_events(tmp_path / "events.h5")
    np.testing.assert_array_equal(written.features, one_shot.features)
    assert written.feature_names == one_shot.feature_names and written.meta["dataset"] == "mine"


@pytest.mark.parametrize("level, has_mass", [("parton", False), ("hard", False), ("hadron", True)])
def test_embedded_zmumu_keeps_the_jet_mass_at_hadron_level_only(level, has_mass):
    """Below hadron level a jet is often one parton, its mass a spike at the parton mass."""
    from hepgenbench import kinds

    spec = kinds.source("pythia").spec(["events.root"], {"source": "pythia", "level": level})
    assert ("mass" in spec.collections["Jet"].fields) is has_mass
    assert spec.transforms["Muon2_pt"]["type"] == "pair_mass"
    assert {spec.transforms[k]["given"] for k in ("Muon2_phi", "Jet1_phi")} == {"Muon1_phi"}


# --------------------------------------------------------------------------- Cartesian collections
# Two events of muons as (px, py, pz, E), deliberately not in pT order; the second event has
# three muons, of which the softest must be dropped. Energies are on shell with m_μ.
MU_MASS = 0.10566
CART_P = [[(3.0, 4.0, 12.0), (30.0, -40.0, 20.0)], [(-6.0, 8.0, 0.0), (1.0, 0.0, -1.0), (0.0, -20.0, 15.0)]]


def _cartesian_file(path):
    def comp(i):
        return ak.Array([[p[i] for p in event] for event in CART_P])

    energy = ak.Array([[float(np.sqrt(px**2 + py**2 + pz**2 + MU_MASS**2)) for px, py, pz in event] for event in CART_P])
    muons = ak.zip({"Px": comp(0), "Py": comp(1), "Pz": comp(2), "E": energy})
    with uproot.recreate(path) as f:
        f.mktree("Events", {"Muon": muons.type})
        f["Events"].extend({"Muon": muons})
    return str(path)


def _hand_kinematics(px, py, pz):
    """pT, η, φ by the textbook formulas, independently of vector."""
    pt = np.hypot(px, py)
    p = np.sqrt(px**2 + py**2 + pz**2)
    return pt, 0.5 * np.log((p + pz) / (p - pz)), np.arctan2(py, px)


def test_cartesian_collection_gives_pt_eta_phi_mass_sorted_by_pt(tmp_path):
    path = _cartesian_file(tmp_path / "cartesian.root")
    spec = RootSpec.from_config({"files": path, "tree": "Events", "kind": "zmumu", "collections": {
        "Muon": {"n": 2, "cartesian": ["Px", "Py", "Pz", "E"], "fields": ["pt", "eta", "phi", "mass"]}}})
    events = read_root(spec)
    assert events.feature_names == [f"Muon{i}_{f}" for i in (1, 2) for f in ("pt", "eta", "phi", "mass")]
    # pT order: event 0 (50, 5), event 1 (25, 10) with the (1, 0, -1) muon of pT 1 dropped
    leading = [[CART_P[0][1], CART_P[0][0]], [CART_P[1][2], CART_P[1][0]]]
    for row, muons in zip(events.features, leading):
        for i, (px, py, pz) in enumerate(muons):
            pt, eta, phi = _hand_kinematics(px, py, pz)
            np.testing.assert_allclose(row[4 * i:4 * i + 4], [pt, eta, phi, MU_MASS], rtol=1e-6, atol=1e-6)
    assert np.all(events.features[:, 0] > events.features[:, 4])
    assert events.units[:4] == ["GeV", "", "rad", "GeV"]
    # the pT order is recorded, so that generated muons are put in the same order
    assert object_orders(events.meta) == [ObjectOrder.of_collection("Muon", 2, "pt", ["pt", "eta", "phi", "mass"])]


def test_cartesian_dimuons_get_the_zmumu_observables(tmp_path):
    from hepgenbench import kinds

    path = _cartesian_file(tmp_path / "cartesian.root")
    spec = RootSpec.from_config({"files": path, "tree": "Events", "kind": "zmumu",
                                 "collections": {"Muon": {"n": 2, "cartesian": ["Px", "Py", "Pz", "E"]}}})
    events = read_root(spec)
    values, names = kinds.get(events.kind).observables(events)
    assert names == ["m_mumu", "pt_mumu", "dR_mumu"]  # no jet in the file: no Δφ to it
    (a, b) = np.array(CART_P[0][1]), np.array(CART_P[0][0])
    e = np.sqrt(a @ a + MU_MASS**2) + np.sqrt(b @ b + MU_MASS**2)
    p = a + b
    np.testing.assert_allclose(values[0, 0], np.sqrt(e**2 - p @ p), rtol=1e-9)
    np.testing.assert_allclose(values[0, 1], np.hypot(p[0], p[1]), rtol=1e-9)


@pytest.mark.parametrize("collection, words", [
    ({"n": 2, "cartesian": ["Px", "Py", "Pz"]}, "collections.Muon.cartesian"),
    ({"n": 2, "cartesian": ["Px", "Py", "Pz", "E"], "fields": ["pt", "Px"]}, "collections.Muon.fields"),
    ({"n": 2, "cartesian": ["Px", "Py", "Pz", "E"], "sort_by": "Px"}, "collections.Muon.sort_by"),
])
def test_cartesian_collection_config_errors_name_the_key(collection, words):
    with pytest.raises(InputError, match=words):
        RootSpec.from_config({"files": "x.root", "tree": "Events", "collections": {"Muon": collection}})
