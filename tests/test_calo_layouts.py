"""CaloChallenge layouts beyond dataset 1 photons: the binning XML, the high-level features in
any geometry (in memory and streamed from HDF5), and GFlash showers in the dataset-2 layout."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest

from hepgenbench import stages
from hepgenbench.data.calo_features import (
    VoxelEnergyHistogram,
    VoxelMoments,
    high_level_feature_names,
    high_level_features,
    stream_high_level_features,
)
from hepgenbench.data.calo_geometry import (
    BUILTIN_GEOMETRIES,
    DS1_PHOTONS,
    DS1_PIONS,
    DS2,
    CaloGeometry,
    EnergyBins,
    resolve_geometry,
)
from hepgenbench.errors import InputError
from hepgenbench.io import EventSet, read_events
from hepgenbench.kinds import get as kind
from hepgenbench.records import IngestParams, SourceParams

CHALLENGE_XML = {"ds1-photons": "binning_dataset_1_photons.xml", "ds1-pions": "binning_dataset_1_pions.xml",
                 "ds2": "binning_dataset_2.xml", "ds3": "binning_dataset_3.xml"}

TWO_PARTICLES = """<Bins>
  <Bin pid="22" name="photon">
    <Layer id="0" r_edges="0,1,3" n_bin_alpha="3"/>
    <Layer id="1" r_edges="0" n_bin_alpha="1"/>
    <Layer id="2" r_edges="0,10,20,40" n_bin_alpha="1"/>
  </Bin>
  <Bin pid="211" name="pion">
    <Layer id="5" r_edges="0,2" n_bin_alpha="4"/>
  </Bin>
</Bins>
"""


# --------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("name", sorted(CHALLENGE_XML))
def test_builtin_layouts_are_the_challenge_xml(calochallenge_files, name):
    geometry = CaloGeometry.from_xml(calochallenge_files / CHALLENGE_XML[name])
    assert geometry == BUILTIN_GEOMETRIES[name]
    assert geometry.n_voxels == {"ds1-photons": 368, "ds1-pions": 533, "ds2": 6480, "ds3": 40500}[name]


def test_challenge_layer_ids(calochallenge_files):
    pions = CaloGeometry.from_xml(calochallenge_files / CHALLENGE_XML["ds1-pions"], particle="pion")
    assert pions.layer_ids == (0, 1, 2, 3, 12, 13, 14)
    assert [l.n_alpha for l in pions.layers] == [1, 10, 10, 1, 10, 10, 1]
    assert CaloGeometry.from_xml(calochallenge_files / CHALLENGE_XML["ds2"]).layer_ids == tuple(range(45))


def test_from_xml_particles_skipped_layers_and_voxel_order(tmp_path):
    path = tmp_path / "binning.xml"
    path.write_text(TWO_PARTICLES)
    with pytest.raises(InputError, match=r"binning.xml holds 2 particles .*photon \(pid 22\).*set 'particle'"):
        CaloGeometry.from_xml(path)
    with pytest.raises(InputError, match=r"no particle 'electron'; it has"):
        CaloGeometry.from_xml(path, "electron")
    assert CaloGeometry.from_xml(path, "211") == CaloGeometry.from_xml(path, "pion")
    photon = CaloGeometry.from_xml(path, "photon")
    # layer 1 has one r-edge: no voxels, not in the flat vector
    assert photon.layer_ids == (0, 2) and photon.n_voxels == 2 * 3 + 3 * 1
    layer, radius, alpha, r_index = photon.voxel_centres()
    # the challenge's order: α outer, r inner; α centres split (−π, π) into 3
    np.testing.assert_allclose(alpha[:6], [-2 * math.pi / 3] * 2 + [0.0] * 2 + [2 * math.pi / 3] * 2, atol=1e-15)
    np.testing.assert_array_equal(radius, [0.5, 2.0] * 3 + [5.0, 15.0, 30.0])
    np.testing.assert_array_equal(r_index, [0, 1] * 3 + [0, 1, 2])
    np.testing.assert_array_equal(layer, [0] * 6 + [2] * 3)


@pytest.mark.parametrize(("text", "message"), [
    ("<Bins><Bin name='e'><Layer id='0' r_edges='0,a' n_bin_alpha='1'/></Bin></Bins>",
     r"bad.xml, layer '0': expected integer 'id', comma-separated 'r_edges'"),
    ("<Bins><Bin name='e'><Layer id='0' r_edges='0,2,1' n_bin_alpha='1'/></Bin></Bins>", "r-edges must rise"),
    ("<Bins><Bin name='e'><Layer id='0' r_edges='0' n_bin_alpha='1'/></Bin></Bins>", "has no layer with voxels"),
    ("<Bins><Bin name='e'>", "is not readable XML"),
])
def test_from_xml_refuses_bad_files(tmp_path, text, message):
    path = tmp_path / "bad.xml"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        CaloGeometry.from_xml(path)


def test_resolve_geometry():
    assert resolve_geometry() == DS1_PHOTONS and resolve_geometry("ds2") == DS2
    with pytest.raises(InputError, match=r"binning: 'ds4' is neither a built-in layout"):
        resolve_geometry("ds4")
    with pytest.raises(InputError, match="missing.xml does not exist"):
        resolve_geometry("missing.xml")


# --------------------------------------------------------------------------- high-level features
def _voxel(geometry: CaloGeometry, layer_id: int, alpha_bin: int, r_bin: int) -> int:
    """The flat index the challenge gives a voxel: its layer's start, α outer, r inner."""
    layer = geometry.layer(layer_id)
    return layer.start + alpha_bin * layer.n_r + r_bin


def _alpha_centre(n_alpha: int, k: int) -> float:
    return -math.pi + (k + 0.5) * 2 * math.pi / n_alpha


def test_high_level_features_by_hand_ds1_pions():
    g = DS1_PIONS
    showers = np.zeros((2, g.n_voxels))
    # shower 0: layer 0 (one α bin): 3 MeV at r-bin 1 (r = 7.5), 1 MeV at r-bin 3 (r = 40)
    showers[0, _voxel(g, 0, 0, 1)], showers[0, _voxel(g, 0, 0, 3)] = 3.0, 1.0
    # layer 13 (10 α bins): 2 MeV at (α 0, r-bin 2: r = 25) and 2 MeV at (α 5, r-bin 2)
    showers[0, _voxel(g, 13, 0, 2)] = showers[0, _voxel(g, 13, 5, 2)] = 2.0
    # shower 1: only layer 14 (one α bin), 5 MeV at r-bin 0 (r = 25); every other layer empty
    showers[1, _voxel(g, 14, 0, 0)] = 5.0
    values, names = high_level_features(showers, np.array([10.0, 50.0]), g)
    col = dict(zip(names, values.T))
    np.testing.assert_allclose(col["E_layer0"], [4.0, 0.0])
    np.testing.assert_allclose(col["Etot_over_Einc"], [8.0 / 10.0, 5.0 / 50.0])
    np.testing.assert_allclose(col["ECx_layer0"], [(3 * 7.5 + 40) / 4, 0.0])
    # two points at a and b with weights p, 1 − p: width |a − b| √(p(1 − p))
    np.testing.assert_allclose(col["width_x_layer0"], [32.5 * math.sqrt(0.75 * 0.25), 0.0])
    a0, a5 = _alpha_centre(10, 0), _alpha_centre(10, 5)
    x, y = 25 * np.array([math.cos(a0), math.cos(a5)]), 25 * np.array([math.sin(a0), math.sin(a5)])
    np.testing.assert_allclose(col["ECx_layer13"], [x.mean(), 0.0], atol=1e-12)
    np.testing.assert_allclose(col["ECy_layer13"], [y.mean(), 0.0], atol=1e-12)
    np.testing.assert_allclose(col["width_x_layer13"], [abs(x[0] - x[1]) / 2, 0.0])
    np.testing.assert_allclose(col["width_y_layer13"], [abs(y[0] - y[1]) / 2, 0.0], atol=1e-12)
    np.testing.assert_allclose(col["ECx_layer14"], [0.0, 25.0])
    assert "ECy_layer14" not in col and "ECy_layer12" in col  # single-α-bin layers have no y
    np.testing.assert_allclose(col["sparsity_layer0"], [2 / 8, 0.0])
    np.testing.assert_allclose(col["sparsity_layer13"], [2 / 160, 0.0])
    assert np.isfinite(values).all()


def test_high_level_features_by_hand_ds2_with_threshold():
    g = DS2
    showers = np.zeros((1, g.n_voxels))
    showers[0, _voxel(g, 7, 4, 0)] = 6.0  # α bin 4 of 16, r = 2.325
    showers[0, _voxel(g, 7, 12, 8)] = 2.0  # α bin 12, r = 39.525
    showers[0, _voxel(g, 30, 3, 3)] = 0.01  # below a 15 keV readout: counts as 0
    values, names = high_level_features(showers, np.array([100.0]), g, threshold_mev=0.015)
    col = dict(zip(names, values[0]))
    assert len(names) == 45 + 1 + 45 * 4 + 45
    r4, r12 = 2.325, 39.525
    x = np.array([r4 * math.cos(_alpha_centre(16, 4)), r12 * math.cos(_alpha_centre(16, 12))])
    y = np.array([r4 * math.sin(_alpha_centre(16, 4)), r12 * math.sin(_alpha_centre(16, 12))])
    w = np.array([0.75, 0.25])
    assert col["E_layer7"] == pytest.approx(8.0) and col["Etot_over_Einc"] == pytest.approx(0.08)
    assert col["ECx_layer7"] == pytest.approx(w @ x) and col["ECy_layer7"] == pytest.approx(w @ y)
    assert col["width_y_layer7"] == pytest.approx(abs(y[0] - y[1]) * math.sqrt(0.75 * 0.25))
    assert col["E_layer30"] == 0 and col["sparsity_layer30"] == 0 and col["ECx_layer30"] == 0
    assert col["sparsity_layer7"] == pytest.approx(2 / 144)


def test_calo_kind_uses_the_events_geometry():
    showers = np.zeros((3, DS2.n_voxels))
    showers[:, _voxel(DS2, 0, 0, 0)] = 1.0
    events = EventSet(showers, DS2.voxel_names(), kind="calo", condition=np.full((3, 1), 10.0),
                      condition_names=["E_inc"], meta={"calo_layers": DS2.to_meta()})
    values, names = kind("calo").observables(events)
    assert names == high_level_feature_names(DS2) and values.shape == (3, len(names))


# --------------------------------------------------------------------------- streaming
def _write(path, showers: np.ndarray, e_inc: np.ndarray) -> None:
    with h5py.File(path, "w") as f:
        f["showers"], f["incident_energies"] = showers.astype(np.float32), e_inc.reshape(-1, 1)


def test_streamed_features_equal_in_memory_and_accumulate(tmp_path):
    rng = np.random.default_rng(3)
    showers = rng.exponential(1.0, (37, DS1_PIONS.n_voxels)) * (rng.random((37, DS1_PIONS.n_voxels)) < 0.3)
    e_inc = rng.choice([100.0, 1000.0], 37)
    path = tmp_path / "pions.h5"
    _write(path, showers, e_inc)
    showers = showers.astype(np.float32)
    bins = EnergyBins((100.0, 1000.0), (100.0, 1000.0))
    moments, histogram = VoxelMoments(DS1_PIONS.n_voxels, bins), VoxelEnergyHistogram()
    # 5 showers a chunk: 8 chunks, the last one short
    out = stream_high_level_features(path, DS1_PIONS, threshold_mev=0.1, chunk_bytes=5 * DS1_PIONS.n_voxels * 4,
                                     accumulators=[moments, histogram])
    thresholded = np.where(showers < 0.1, 0, showers)
    expected, names = high_level_features(thresholded, e_inc, DS1_PIONS)
    assert out.chunk_rows == 5 and out.names == names
    np.testing.assert_allclose(out.features, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.e_inc, e_inc)
    np.testing.assert_allclose(moments.mean(), thresholded.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(moments.mean(1), thresholded[e_inc == 1000.0].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(moments.std(0), thresholded[e_inc == 100.0].std(axis=0), rtol=1e-4, atol=1e-6)
    assert histogram.counts.sum() + histogram.n_underflow + histogram.n_overflow == (thresholded > 0).sum()
    assert histogram.n_zero == (thresholded == 0).sum()


def test_streaming_refuses_or_drops_bad_showers(tmp_path):
    showers = np.ones((6, DS1_PHOTONS.n_voxels))
    showers[4, 9] = np.nan
    path = tmp_path / "nan.h5"
    _write(path, showers, np.full(6, 10.0))
    with pytest.raises(InputError, match=r"nan.h5: shower 4 has a non-finite voxel"):
        stream_high_level_features(path, DS1_PHOTONS, chunk_bytes=1)
    dropped = stream_high_level_features(path, DS1_PHOTONS, nan_policy="drop", chunk_bytes=4 * 368 * 4)
    assert dropped.features.shape == (5, len(dropped.names)) and dropped.n_dropped_nonfinite == 1
    np.testing.assert_allclose(dropped.features[:, dropped.names.index("Etot_over_Einc")], 36.8)
    with pytest.raises(InputError, match=r"nan.h5: showers have 368 voxels but the geometry \(ds2\) has 6480"):
        stream_high_level_features(path, DS2, binning="ds2")


# --------------------------------------------------------------------------- GFlash in any layout
def test_gflash_showers_in_the_ds2_layout_through_the_stages(tmp_path):
    config = {"seed": 11, "datasets": {"siw": {"source": "calo", "n_events": 40, "binning": "ds2"}}}
    source = SourceParams.from_config(config, "siw")
    assert source.options["binning"] == "ds2"
    data, events = str(tmp_path / "siw.hdf5"), str(tmp_path / "events.h5")
    stages.source({}, {"data": data}, source, threads=1)
    stages.ingest({"files": data}, {"events": events}, IngestParams.from_config(config, "siw"), threads=1)
    truth = read_events(events)
    assert truth.n_features == 6480 and kind("calo").geometry(truth) == DS2
    values, names = kind("calo").observables(truth)
    col = dict(zip(names, values.T))
    e_inc = kind("calo").incident_energy(truth)
    assert 1e3 <= e_inc.min() and e_inc.max() <= 1e6  # log-uniform 1 GeV – 1 TeV
    # 18 X0 and 4.5 Molière radii hold most of an electron's shower, not more than all of it
    assert 0.6 < col["Etot_over_Einc"].mean() <= 1.0
    # the shower maximum moves deeper with energy (T ∝ ln E/E_c): mean layer of the energy
    layer_e = np.column_stack([col[f"E_layer{i}"] for i in range(45)])
    depth = layer_e @ np.arange(45) / layer_e.sum(axis=1)
    low, high = e_inc < np.median(e_inc), e_inc >= np.median(e_inc)
    assert depth[high].mean() > depth[low].mean() + 1.0
    # axially symmetric: the centre in x and y sits near the axis compared with the 42 mm layer
    assert abs(col["ECy_layer10"].mean()) < 3.0 and abs(col["ECx_layer10"].mean()) < 3.0



def test_per_layer_figures_draw_at_most_nine_layers_evenly_in_depth():
    from hepgenbench.data.calo_geometry import BUILTIN_GEOMETRIES
    from hepgenbench.plotting.calo import MAX_LAYER_PANELS, panel_layers

    ds1 = BUILTIN_GEOMETRIES["ds1-photons"].layers
    assert panel_layers(ds1) == (list(ds1), "")
    ds2 = BUILTIN_GEOMETRIES["ds2"].layers
    shown, note = panel_layers(ds2)
    assert len(ds2) == 45 and len(shown) == MAX_LAYER_PANELS
    assert shown[0] is ds2[0] and shown[-1] is ds2[-1]
    gaps = np.diff([ds2.index(layer) for layer in shown])
    assert gaps.max() - gaps.min() <= 1  # evenly spread
    assert "of 45 are drawn" in note and str(shown[4].layer_id) in note
