"""``hepgenbench score``: samples made anywhere, scored with the workflow's suite and floor.

Good samples sit within truth's floor and distorted ones do not; every bad input is one
line naming the file, exit status 2 and nothing written; the same seed gives the same
``metrics.json`` byte for byte; copies of truth and repeated events are caught.
"""

from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pytest
import yaml
from conftest import ReportPage

from hepgenbench import cli
from hepgenbench.data.calo import DS1_DETECTOR, simulate_showers
from hepgenbench.errors import InputError
from hepgenbench.io import write_events
from hepgenbench.report import within_noise_floor
from hepgenbench.scoring import auc_null_sigma, score_files
from hepgenbench.testing import zmumu_peak

#: Light resampling: these tests check what is compared with what, not the last digit.
LIGHT = {"n_bootstrap": 3, "emd_subsample": 200, "emd_repeats": 2, "fpd_points": 3, "fpd_resamples": 3,
         "kpd_batches": 3, "kpd_batch_size": 300, "c2st_folds": 3, "prdc_max_events": 300, "prdc_repeats": 2}


def write_showers(path, n, seed, scale=1.0, wider=1.0):
    """GFlash showers in the CaloChallenge layout; ``scale`` multiplies every voxel (an energy
    scale error) and ``wider`` the Molière radius (showers that much wider)."""
    medium = dataclasses.replace(DS1_DETECTOR.medium, moliere_radius_mm=DS1_DETECTOR.medium.moliere_radius_mm * wider)
    simulate_showers(path, n, seed, log=lambda *_: None, medium=medium)
    if scale != 1.0:
        with h5py.File(path, "r+") as f:
            f["showers"][...] = f["showers"][()] * scale
    return str(path)


@pytest.fixture(scope="module")
def calo_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("calo")
    config = d / "calo.yaml"
    config.write_text(yaml.safe_dump({"seed": 3, "datasets": {"showers": {"source": "calochallenge"}}, "evaluation": LIGHT}))
    return {"truth": write_showers(d / "truth.h5", 1000, 1), "same": write_showers(d / "same.h5", 500, 2),
            "distorted": write_showers(d / "distorted.h5", 500, 3, scale=1.04, wider=1.2), "config": str(config), "dir": d}


def within_floor(record, truth, key):
    m, t = record.metrics[key], truth.metrics[key]
    return within_noise_floor(m["value"], m["error"], t["value"], t["error"], "half")


def test_calo_same_law_sits_within_the_floor_and_a_distorted_file_does_not(calo_files):
    result = score_files(calo_files["truth"], [calo_files["same"], calo_files["distorted"]], kind="calo",
                         config=calo_files["config"])
    truth, same, distorted = (result.records[k] for k in ("truth", "same", "distorted"))
    assert truth.n_generated == same.n_generated == distorted.n_generated == 500  # one N for every row
    assert within_floor(same, truth, "c2st_auc_high_level")
    assert distorted.metrics["c2st_auc_high_level"]["value"] > 0.8
    assert not within_floor(distorted, truth, "c2st_auc_high_level")
    # the notebook's table is the report's: truth first, value and error per metric
    table = result.frame()
    assert list(table.index) == ["truth", "same", "distorted"]
    assert table.loc["distorted", ("c2st_auc_high_level", "value")] == distorted.metrics["c2st_auc_high_level"]["value"]


def write_dimuons(path, n, seed, mass_shift=0.0):
    """A flat HDF5 file of the Z→μμ features, one dataset per feature, as a user's ntuple."""
    events = zmumu_peak(n, seed, mass_shift)
    with h5py.File(path, "w") as f:
        for i, name in enumerate(events.feature_names):
            f.create_dataset(name, data=events.features[:, i])
    return str(path), events.feature_names


@pytest.fixture(scope="module")
def dimuon_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("dimuons")
    truth, names = write_dimuons(d / "truth.h5", 3000, 1)
    config = d / "mine.yaml"  # a workflow config, as a user's config/mine.yaml
    config.write_text(yaml.safe_dump({
        "seed": 11, "datasets": {"dimu": {"source": "hdf5", "kind": "zmumu", "files": "unused.h5", "features": names}},
        "models": {"nsf": {}}, "evaluation": LIGHT}))
    return {"truth": truth, "same": write_dimuons(d / "same.h5", 1500, 2)[0],
            "shifted": write_dimuons(d / "shifted.h5", 1500, 3, mass_shift=3.0)[0], "config": str(config), "dir": d}


def test_events_shifted_peak_is_caught_and_same_law_is_not(dimuon_files):
    result = score_files(dimuon_files["truth"], [dimuon_files["same"], dimuon_files["shifted"]],
                         config=dimuon_files["config"])
    truth, same, shifted = (result.records[k] for k in ("truth", "same", "shifted"))
    assert within_floor(same, truth, "c2st_auc")
    assert not within_floor(shifted, truth, "c2st_auc")
    # the physics figure says it in an analysis' terms: the fitted Z mass moves by the shift
    assert abs(shifted.metrics["z_lineshape"]["pull_mass"]) > 5 > abs(same.metrics["z_lineshape"]["pull_mass"])
    assert "pull_mass" in shifted.metrics["z_lineshape"]["flagged"]


def test_rows_scored_side_by_side_equal_rows_scored_one_at_a_time(dimuon_files):
    # three rows on three threads, each with a BLAS pool of one, against one row at a time
    files = [dimuon_files["same"], dimuon_files["shifted"]]
    one = score_files(dimuon_files["truth"], files, config=dimuon_files["config"], threads=1)
    three = score_files(dimuon_files["truth"], files, config=dimuon_files["config"], threads=3)
    assert list(one.records) == list(three.records) == ["truth", "same", "shifted"]
    for name in one.records:
        assert json.dumps(one.records[name].to_dict(), sort_keys=True) == json.dumps(three.records[name].to_dict(), sort_keys=True)


def test_cli_writes_the_report_and_the_same_seed_gives_identical_metrics(dimuon_files, tmp_path, capsys):
    args = ["score", "--truth", dimuon_files["truth"], "--generated", dimuon_files["same"], "--generated",
            dimuon_files["shifted"], "--name", "mine", "--name", "shifted_by_3GeV", "--config", dimuon_files["config"]]
    assert cli.main([*args, "--out", str(tmp_path / "a")]) == 0
    assert cli.main([*args, "--out", str(tmp_path / "b")]) == 0
    first, second = (tmp_path / "a" / "metrics.json").read_bytes(), (tmp_path / "b" / "metrics.json").read_bytes()
    assert first == second
    metrics = json.loads(first)
    assert list(metrics) == ["truth", "mine", "shifted_by_3GeV"]
    assert all({"c2st_auc", "fpd"} <= set(m["metrics"]) for m in metrics.values())
    assert {"value", "error"} <= set(metrics["mine"]["metrics"]["fpd"])
    for name in ("index.html", "report.md", "metrics.csv", "plots/manifest.json"):
        assert (tmp_path / "a" / name).is_file(), name
    page = ReportPage()
    page.feed((tmp_path / "a" / "index.html").read_text())
    summary = page.frame("metrics-dimu")
    assert list(summary.index)[1:] == ["mine", "shifted_by_3GeV"] and "truth" in list(summary.index)[0]
    assert summary.loc["mine", "status"] == "external"
    # a second seed moves the halves and the resampling
    reseeded = score_files(dimuon_files["truth"], [dimuon_files["same"]], config=dimuon_files["config"], seed=12)
    assert reseeded.records["same"].metrics["c2st_auc"] != metrics["mine"]["metrics"]["c2st_auc"]


def _bad_showers(path, *, voxels=368, nan=False, negative=False, empty=False, gev=False, high_energies=False,
                 drop=None, n=400):
    # high_energies: real showers, but only of the three highest incident energies
    detector = dataclasses.replace(DS1_DETECTOR, energies_mev=DS1_DETECTOR.energies_mev[-3:]) if high_energies else DS1_DETECTOR
    simulate_showers(path, n, 5, log=lambda *_: None, detector=detector)
    with h5py.File(path, "r") as f:
        showers, e_inc = f["showers"][()], f["incident_energies"][()]
    if nan:
        showers[3, 7] = np.nan
    if negative:
        showers[5, 2] = -40.0
    if gev:
        showers = showers / 1000.0
    if empty:
        showers, e_inc = showers[:0], e_inc[:0]
    data = {"showers": showers[:, :voxels], "incident_energies": e_inc}
    with h5py.File(path, "w") as f:
        for key, value in data.items():
            if key != drop:
                f.create_dataset(key, data=value)
    return str(path)


BAD_SHOWERS = {
    "missing_file": (None, "generated file does not exist"),
    "missing_key": ({"drop": "incident_energies"}, "incident_energies"),
    "voxel_count": ({"voxels": 300}, "300"),
    "nan": ({"nan": True}, "NaN"),
    "negative": ({"negative": True}, "negative"),
    "empty": ({"empty": True}, "no events"),
    "units": ({"gev": True}, "GeV"),
    "einc": ({"high_energies": True}, "incident energies"),
}


@pytest.mark.parametrize("case", list(BAD_SHOWERS))
def test_cli_bad_input_is_one_line_exit_2_and_nothing_written(case, calo_files, tmp_path, capsys):
    options, expected = BAD_SHOWERS[case]
    path = str(tmp_path / f"{case}.h5") if options is None else _bad_showers(tmp_path / f"{case}.h5", **options)
    out = tmp_path / "out"
    status = cli.main(["score", "--truth", calo_files["truth"], "--generated", path, "--out", str(out),
                       "--config", calo_files["config"]])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    errors = [line for line in err if "error:" in line]
    assert len(errors) == 1, err
    assert path in errors[0] and expected in errors[0], errors[0]
    assert not out.exists() or not any(out.iterdir())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no staging left behind


def test_einc_mismatch_becomes_a_warning_when_allowed(calo_files, tmp_path):
    from hepgenbench import kinds
    from hepgenbench.scoring import reading_spec

    spec = reading_spec(config=calo_files["config"])
    truth = spec.read(calo_files["truth"], "truth")
    high = spec.read(_bad_showers(tmp_path / "high.h5", high_energies=True), "generated")
    warnings = kinds.get("calo").check_sample(high, truth, "high.h5", allow_condition_mismatch=True)
    assert len(warnings) == 1 and "KS" in warnings[0]
    assert kinds.get("calo").check_sample(spec.read(calo_files["same"], "g"), truth, "same.h5") == []


def test_feature_sets_that_differ_are_refused(tmp_path, capsys):
    truth, generated = zmumu_peak(300, 1), zmumu_peak(300, 2)
    write_events(tmp_path / "truth.h5", truth)
    generated.feature_names = [n.replace("Jet1", "Jet2") for n in generated.feature_names]
    write_events(tmp_path / "gen.h5", generated)
    status = cli.main(["score", "--truth", str(tmp_path / "truth.h5"), "--generated", str(tmp_path / "gen.h5"),
                       "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2 and "gen.h5" in err and "Jet1_pt" in err and "do not match" in err
    assert not (tmp_path / "out").exists()


def test_copies_of_truth_are_counted_and_flagged(tmp_path):
    """A user who scores truth's own events is told, not shown a perfect row."""
    truth = zmumu_peak(2000, 1)
    copied = truth.subset(np.arange(1000))
    result = score_files(truth, {"copy": copied, "fresh": zmumu_peak(1000, 2)}, evaluation=LIGHT, seed=4)
    copy, fresh = result.records["copy"], result.records["fresh"]
    assert copy.metrics["duplicates"]["n_copies_of_truth"] >= 900  # its events are truth A's or B's
    assert copy.status == "flagged" and "copies of truth" in copy.status_detail
    assert fresh.metrics["duplicates"]["n_copies_of_truth"] == 0 and fresh.status == "ok"


def test_repeated_entries_split_in_halves_read_below_chance_unless_keyed(tmp_path):
    """The public CMS dimuon file: each event once per muon-reconstruction type. Halves of
    its entries share events, and the truth floor's AUC falls below 0.5; the event key
    keeps each event in one half."""
    from test_repeated_events import write_repeated_tree

    path = write_repeated_tree(tmp_path / "repeats.root")
    block = {"source": "root", "tree": "Events", "branches": ["pt", "eta"]}
    result = score_files(str(path), {"same": str(path)}, config=block, evaluation=LIGHT, seed=2)
    truth, same = result.records["truth"], result.records["same"]
    # the floor's halves share events: counted and flagged, whatever the AUC says
    assert truth.metrics["duplicates"]["n_copies_of_truth"] > 0.5 * truth.n_generated
    assert truth.status == "flagged" and "copies of truth A" in truth.status_detail
    # the file scored against itself: every event is truth's, and the AUC falls below chance
    auc = same.metrics["c2st_auc"]
    assert auc["value"] < 0.5 - 3 * auc_null_sigma(auc["n_per_class"])
    assert same.status == "flagged" and "below 0.5" in same.status_detail

    keyed = score_files(str(path), {"same": str(path)}, config={**block, "event_key": ["Run", "Event"]},
                        evaluation=LIGHT, seed=2)
    assert keyed.records["truth"].status == "ok"
    assert keyed.records["truth"].metrics["duplicates"]["n_copies_of_truth"] == 0


def test_auc_null_sigma_matches_the_spread_of_independent_samples():
    """The flag's yardstick: the AUC spread between samples of one law, against simulation."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    n = 300
    aucs = [roc_auc_score(np.r_[np.ones(n), np.zeros(n)], rng.normal(size=2 * n)) for _ in range(2000)]
    assert np.std(aucs) == pytest.approx(auc_null_sigma(n), rel=0.06)


def write_truth_same_distorted(xml: str, directory, n: int = 600) -> tuple[str, list[str]]:
    """GFlash showers in the layout of a challenge binning XML: a truth file of 2n, n of the same
    law, and n with a 20 % wider Molière radius and 4 % more energy. FPD on a layout's few
    hundred high-level features needs a few hundred showers per row."""
    from hepgenbench.data.calo import detector_for
    from hepgenbench.data.calo_geometry import CaloGeometry

    detector = detector_for(CaloGeometry.from_xml(xml))
    wider = dataclasses.replace(detector, medium=dataclasses.replace(
        detector.medium, moliere_radius_mm=detector.medium.moliere_radius_mm * 1.2))
    quiet = {"log": lambda *_: None, "dtype": "float32"}
    simulate_showers(directory / "truth.h5", 2 * n, 1, detector=detector, **quiet)
    simulate_showers(directory / "same.h5", n, 2, detector=detector, **quiet)
    simulate_showers(directory / "distorted.h5", n, 3, detector=wider, **quiet)
    with h5py.File(directory / "distorted.h5", "r+") as f:
        f["showers"][...] = f["showers"][()] * 1.04
    return str(directory / "truth.h5"), [str(directory / "same.h5"), str(directory / "distorted.h5")]


def test_dataset_2_scores_from_its_binning_xml(calochallenge_files, tmp_path):
    """`hepgenbench score --binning binning_dataset_2.xml` on challenge-format files: a file
    from truth's law sits within the floor, a distorted one does not. (FPD on its 271
    high-level features needs a few hundred showers per row.)"""
    xml = str(calochallenge_files / "binning_dataset_2.xml")
    # 6,480 voxels: the voxel-level metrics on few events and coarse histograms
    light = {**LIGHT, "c2st_max_events": 300, "emd_subsample": 100, "n_bins": 20, "n_bootstrap": 2,
             "prdc_max_events": 200, "kpd_batch_size": 200, "fpd_points": 2, "fpd_resamples": 2}
    truth, files = write_truth_same_distorted(xml, tmp_path)
    result = score_files(truth, files, kind="calo", binning=xml, evaluation=light, seed=5)
    floor, same, distorted = (result.records[k] for k in ("truth", "same", "distorted"))
    assert within_floor(same, floor, "c2st_auc_high_level")
    assert not within_floor(distorted, floor, "c2st_auc_high_level")


def test_dataset_3_files_are_read_in_its_binning_and_refused_in_another(calochallenge_files, tmp_path):
    from hepgenbench.data.calo import detector_for
    from hepgenbench.data.calo_geometry import CaloGeometry
    from hepgenbench.scoring import reading_spec

    xml = str(calochallenge_files / "binning_dataset_3.xml")
    geometry = CaloGeometry.from_xml(xml)
    simulate_showers(tmp_path / "ds3.h5", 20, 1, detector=detector_for(geometry), log=lambda *_: None, dtype="float32")
    events = reading_spec("calochallenge", binning=xml).read(tmp_path / "ds3.h5", "truth")
    assert events.n_features == geometry.n_voxels == 40_500
    with pytest.raises(InputError, match="40500 voxels") as err:
        reading_spec("calochallenge").read(tmp_path / "ds3.h5", "generated")
    assert str(tmp_path / "ds3.h5") in str(err.value) and "368" in str(err.value)


def test_dataset_3_scores_streamed_from_its_binning_xml(calochallenge_files, tmp_path):
    """`hepgenbench score --binning binning_dataset_3.xml`, as a dataset-3 user runs it
    (streamed: its files do not fit in memory at the challenge's size): a file from truth's
    law sits within the floor, a distorted one does not, and the voxel classifier trained
    from disk reads the distorted one too. (FPD on its high-level features needs a few
    hundred showers per row.)"""
    xml = str(calochallenge_files / "binning_dataset_3.xml")
    light = {**LIGHT, "prdc_max_events": 200, "kpd_batch_size": 200, "fpd_points": 2, "fpd_resamples": 2,
             "cc22_width": 32, "cc22_epochs": 3, "cc22_batch_size": 100}
    truth, files = write_truth_same_distorted(xml, tmp_path)
    result = score_files(truth, files, kind="calo", binning=xml, evaluation=light, seed=5, stream=True)
    floor, same, distorted = (result.records[k] for k in ("truth", "same", "distorted"))
    assert same.metrics["c2st_auc"]["streamed"]["block_rows"] > 0  # the voxel classifier read from disk
    assert within_floor(same, floor, "c2st_auc_high_level")
    assert not within_floor(distorted, floor, "c2st_auc_high_level")
    assert distorted.metrics["c2st_auc"]["value"] > same.metrics["c2st_auc"]["value"]
