"""Plots: every figure kind is written for zmumu-, calo- and phasespace-like inputs.

Most tests inject the derived observables, so that they exercise only the figures
(:mod:`hepgenbench.plots` and the kinds' own in :mod:`hepgenbench.plotting`); the per-energy
figure and the ``plots`` stage read what the stages before them really write, and a kind
registered here reaches the ``plots`` stage's manifest with its figure and units.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from hepgenbench import kinds, stages
from hepgenbench.data.calo_geometry import DS1_PHOTONS, DS2
from hepgenbench.errors import InputError
from hepgenbench.io import EventSet, read_events
from hepgenbench.kinds import validate_dataset
from hepgenbench.plots import (
    MAX_CORRELATION_LABELS,
    MAX_CORRELATION_PANEL_INCHES,
    Column,
    PlotRecord,
    chi2_ndf,
    correlation_matrix,
    count_histogram,
    histogram_edges,
    make_dataset_plots,
    pareto_front,
    read_plot_manifest,
    read_training_csv,
    safe_name,
    spans_decades,
    tails_matter,
    write_plot_manifest,
)
from hepgenbench.plotting.calo import EnergyBinScores, scored_energy_bins
from hepgenbench.records import (
    EvaluateParams,
    IngestParams,
    NoParams,
    PlotsParams,
    SampleParams,
    SourceParams,
    SplitParams,
    TrainParams,
)

N = 2000


def _training_csv(path: Path, epochs: int = 5) -> str:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "train_loss", "val_loss", "learning_rate", "time_s"])
        for e in range(epochs):
            w.writerow([e, 2.0 / (e + 1), 2.1 / (e + 1), 1e-3, 0.1 * e])
    return str(path)


def _metrics(model: str, auc: float, fpd: float, train_time: float, rate: float) -> dict:
    edges = np.linspace(-3, 3, 13).tolist()
    return {
        "dataset": "d", "model": model, "family": model, "status": "ok", "status_detail": "",
        "metrics": {
            "c2st_auc": {"value": auc, "error": 0.01, "log_w_hist": {"edges": edges, "truth": [1] * 12, "generated": [2] * 12}},
            "fpd": {"value": fpd, "error": 0.1 * fpd},
        },
        "cost": {"n_parameters": 1000, "train_time_s": train_time, "sample_rate": {"100000": rate}},
    }  # fmt: skip


def _zmumu(rng: np.random.Generator, mass_shift: float = 0.0) -> EventSet:
    pt1, pt2 = rng.normal(45 + mass_shift, 5, N), rng.normal(45, 5, N)
    eta1, eta2 = rng.normal(0, 1.2, (2, N))
    n_jets = rng.poisson(1.0, N).astype(float)
    return EventSet(
        np.column_stack([pt1, eta1, pt2, eta2, n_jets]),
        ["mu1_pt", "mu1_eta", "mu2_pt", "mu2_eta", "n_jets"],
        kind="zmumu",
        units=["GeV", "", "GeV", "", ""],
    )


def _zmumu_observables(events: EventSet) -> tuple[np.ndarray, list[str]]:
    pt1, eta1, pt2, eta2 = events.features[:, :4].T
    # Massless muons back to back in φ: m² = 2 pT1 pT2 (cosh Δη + 1).
    m = np.sqrt(2 * pt1 * pt2 * (np.cosh(eta1 - eta2) + 1))
    return np.column_stack([m, pt1 - pt2]), ["m_mumu", "pt_balance"]


def _assert_png_pdf(record: PlotRecord) -> None:
    with Image.open(record.path_png) as im:
        im.verify()
        assert im.format == "PNG"
    assert Path(record.path_pdf).read_bytes()[:4] == b"%PDF"
    assert Path(record.path_pdf).with_suffix(".png") == Path(record.path_png)


def test_zmumu_like_dataset_draws_every_kind(tmp_path):
    rng = np.random.default_rng(1)
    truth = _zmumu(rng)
    samples = {"maf": _zmumu(rng), "gan": _zmumu(rng, mass_shift=5.0)}
    metrics = {"truth": _metrics("truth", 0.5, 0.01, 0, 0), "maf": _metrics("maf", 0.52, 0.1, 100, 1e6),
               "gan": _metrics("gan", 0.7, 1.0, 50, 1e7)}  # fmt: skip
    csvs = {m: _training_csv(tmp_path / f"{m}.csv") for m in samples}
    records = make_dataset_plots("zmumu", truth, samples, metrics, csvs, str(tmp_path / "plots"), _zmumu_observables)

    for r in records:
        _assert_png_pdf(r)
    kinds = [r.kind for r in records]
    # Derived observables come first, the Z peak leading.
    assert kinds[:4] == ["observable", "observable_per_model"] * 2
    assert records[0].path_png == str(tmp_path / "plots" / "observables" / "m_mumu.png")
    assert kinds.count("feature") == truth.n_features
    # Every histogram has its overlay and its one-panel-per-model figure.
    assert kinds.count("feature_per_model") == truth.n_features and kinds.count("observable_per_model") == 2
    titles = {r.title for r in records if r.kind == "feature"}
    assert {"zmumu: mu1_pt [GeV]", "zmumu: mu1_eta", "zmumu: n_jets"} <= titles
    assert kinds.count("correlation") == 2
    assert {"training", "classifier", "cost"} <= set(kinds)
    assert "calo" not in kinds and "dalitz" not in kinds
    # Two samples of the same law: the correlation difference is only statistical noise.
    captions = {Path(r.path_png).stem: r.caption for r in records if r.kind == "correlation"}
    largest = {m: float(captions[m].split("= ")[1].rstrip(").")) for m in samples}
    assert largest["maf"] < 0.1


def test_overlay_shows_the_models_closest_to_truth(tmp_path):
    rng = np.random.default_rng(8)
    truth = _zmumu(rng)
    samples = {"vae": _zmumu(rng), "gan": _zmumu(rng, mass_shift=5.0), "maf": _zmumu(rng), "nsf": _zmumu(rng)}
    records = make_dataset_plots("z", truth, samples, {}, {}, str(tmp_path), _zmumu_observables, groups=["features"])
    pt = next(r for r in records if r.kind == "feature" and r.title == "z: mu1_pt [GeV]")
    shown = pt.caption.split("χ²/ndf (")[1].split(")")[0].split(", ")
    # The GAN's leading muon is 5 GeV (one σ) too hard: it is left out of the overlay of three.
    assert sorted(shown) == ["maf", "nsf", "vae"]
    # Its own panel is still drawn, with every other model's.
    assert any(r.kind == "feature_per_model" and r.title == "z: mu1_pt [GeV], every model" for r in records)


def test_file_names_are_deterministic(tmp_path):
    rng = np.random.default_rng(2)
    truth, samples = _zmumu(rng), {"vae": _zmumu(rng)}
    a = make_dataset_plots("z", truth, samples, {}, {}, str(tmp_path), _zmumu_observables)
    b = make_dataset_plots("z", truth, samples, {}, {}, str(tmp_path), _zmumu_observables)
    assert [r.path_png for r in a] == [r.path_png for r in b]
    # No temporary files are left beside the figures.
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


def test_figure_groups_draw_what_they_name_and_nothing_else(tmp_path):
    rng = np.random.default_rng(2)
    truth, samples = _zmumu(rng), {"vae": _zmumu(rng), "maf": _zmumu(rng)}
    every = make_dataset_plots("z", truth, samples, {}, {}, str(tmp_path / "all"), _zmumu_observables)
    for group, record_kinds in (("features", {"feature", "feature_per_model"}), ("correlations", {"correlation"})):
        only = make_dataset_plots("z", truth, samples, {}, {}, str(tmp_path / group), _zmumu_observables, groups=[group])
        assert {r.kind for r in only} == record_kinds
        assert [Path(r.path_png).name for r in only] == [Path(r.path_png).name for r in every if r.kind in record_kinds]
    with pytest.raises(ValueError, match="unknown figure groups.*'showers'"):
        make_dataset_plots("z", truth, samples, {}, {}, str(tmp_path), _zmumu_observables, groups=["showers"])


def _calo(rng: np.random.Generator, spread: float = 1.0) -> EventSet:
    e_inc = 2.0 ** rng.integers(8, 23, N)  # 256 MeV ... 4 TeV, as in dataset 1
    voxels = []
    for layer in DS1_PHOTONS.layers:
        r = 0.5 * (np.asarray(layer.r_edges[1:]) + np.asarray(layer.r_edges[:-1]))
        profile = np.exp(-r / (20.0 * spread))
        layer = profile[None, None, :] * rng.exponential(1.0, (N, layer.n_alpha, len(r)))
        voxels.append((layer * e_inc[:, None, None] * 1e-2).reshape(N, -1))
    features = np.hstack(voxels)
    return EventSet(features, [f"voxel_{i}" for i in range(368)], kind="calo",
                    condition=e_inc[:, None], condition_names=["E_inc"])  # fmt: skip


def _calo_observables(events: EventSet) -> tuple[np.ndarray, list[str]]:
    layers = DS1_PHOTONS.layers
    e = np.column_stack([layer.energies(events.features).sum(axis=(1, 2)) for layer in layers])
    return np.column_stack([e, e.sum(axis=1)]), [f"E_layer{layer.layer_id}" for layer in layers] + ["E_total"]


def test_calo_like_dataset_plots_showers_not_voxels(tmp_path):
    rng = np.random.default_rng(3)
    truth = _calo(rng)
    samples = {"cfm": _calo(rng), "vae": _calo(rng, spread=2.0)}
    records = make_dataset_plots("calo", truth, samples, {}, {}, str(tmp_path), _calo_observables)

    for r in records:
        _assert_png_pdf(r)
    kinds = [r.kind for r in records]
    assert "feature" not in kinds  # 368 voxel histograms are not drawn
    assert kinds.count("observable") == 6
    assert {r.title for r in records if r.kind == "observable"} >= {"calo: E_layer1 [MeV]"}
    names = sorted(Path(r.path_png).name for r in records if r.kind == "calo")
    # and single showers at 256 MeV, 32.8 GeV and 4.19 TeV, the lowest, middle and highest of 15 energies
    assert names == ["average_shower.png", "layer_energy_vs_einc.png", "radial_profiles.png",
                     "single_showers_0.png", "single_showers_14.png", "single_showers_7.png"]


@pytest.fixture(scope="module")
def scored_showers(tmp_path_factory) -> tuple[EventSet, dict[str, EventSet], dict[str, dict]]:
    """Showers from the calo source and ingest stages, scored by the real metric suite:
    truth against a second truth sample, and against showers with 30 % too much energy."""
    from threadpoolctl import threadpool_limits

    from hepgenbench.evaluate import EvalOptions, evaluate_sample

    base = tmp_path_factory.mktemp("calo")
    config = {"seed": 11, "datasets": {"calo": validate_dataset("calo", {"source": "calo", "n_events": 2400})}}
    showers, events_path = str(base / "showers.hdf5"), str(base / "events.h5")
    stages.source({}, {"data": showers}, SourceParams.from_config(config, "calo"), 1)
    stages.ingest({"files": [showers]}, {"events": events_path}, IngestParams.from_config(config, "calo"), 1)
    events = read_events(events_path)
    truth, twin, train = (events.subset(np.arange(k, len(events), 3)) for k in range(3))
    hot = dataclasses.replace(twin, features=twin.features * 1.3)
    options = EvalOptions(n_bootstrap=2, n_bins=10, emd_subsample=100, emd_repeats=1, swd_projections=10,
                          swd_seeds=2, c2st_folds=2, c2st_max_events=400, fpd_min_samples=200, fpd_max_samples=400,
                          fpd_points=3, fpd_resamples=2, kpd_batch_size=100, kpd_batches=2,
                          memorisation_max_events=200, memorisation_max_train=400, energy_bins=4)  # fmt: skip
    metrics = {}
    with threadpool_limits(1):
        for name, generated in (("truth", twin), ("hot", hot)):
            metrics[name] = {"dataset": "calo", "model": name,
                             "metrics": evaluate_sample(truth, generated, train, options, seed=0)}  # fmt: skip
    return truth, {"hot": hot}, metrics


def test_scores_per_incident_energy_are_read_from_the_real_evaluation(scored_showers, tmp_path):
    truth, samples, metrics = scored_showers
    bins = metrics["hot"]["metrics"]["per_energy_bin"]["bins"]
    scored = [b for b in bins if "c2st_auc" in b]
    assert len(scored) >= 2
    read = EnergyBinScores.from_metrics(metrics["hot"])
    assert read.auc.tolist() == [b["c2st_auc"] for b in scored]
    assert read.w1.tolist() == [b["w1_mean"] for b in scored]
    expected_e = [np.sqrt(b["e_inc_low"] * b["e_inc_high"]) for b in scored]
    np.testing.assert_allclose(read.e_inc, expected_e)
    assert (read.auc > EnergyBinScores.from_metrics(metrics["truth"]).auc).all()  # 30 % too hot at every energy

    records = make_dataset_plots("calo", truth, samples, metrics, {}, str(tmp_path), groups=["kind"])
    per_bin = [r for r in records if Path(r.path_png).name == "per_energy_bin.png"]
    assert len(per_bin) == 1 and per_bin[0].kind == "calo"
    _assert_png_pdf(per_bin[0])


def test_layer_energy_figure_uses_the_bins_of_the_scores(scored_showers, tmp_path):
    """The mean-layer-energy figure bins E_inc as the per-energy scores do: the evaluation's
    bins (``energy_bins=4`` here), not a rule of its own."""
    truth, samples, metrics = scored_showers
    kind = kinds.get("calo")
    bins = scored_energy_bins(metrics)
    assert bins == kind.energy_bins(truth, max_bins=4)
    assert [b["e_inc_low"] for b in metrics["hot"]["metrics"]["per_energy_bin"]["bins"]] == list(bins.low)
    records = make_dataset_plots("calo", truth, samples, metrics, {}, str(tmp_path), groups=["kind"])
    caption = next(r.caption for r in records if Path(r.path_png).name == "layer_energy_vs_einc.png")
    expected = "one point per discrete incident energy" if bins.discrete else f"{len(bins)} equal-population bins"
    assert expected in caption
    # without scores, the kind's rule on truth with the evaluation's default bin count
    unscored = make_dataset_plots("calo", truth, samples, {}, {}, str(tmp_path / "unscored"), groups=["kind"])
    caption = next(r.caption for r in unscored if Path(r.path_png).name == "layer_energy_vs_einc.png")
    default = kind.energy_bins(truth)
    assert ("one point per discrete" if default.discrete else f"{len(default)} equal-population bins") in caption


def test_calo_plots_without_per_energy_scores_skip_only_that_figure(tmp_path):
    rng = np.random.default_rng(4)
    truth = _calo(rng)
    records = make_dataset_plots("calo", truth, {"cfm": _calo(rng)}, {}, {}, str(tmp_path), _calo_observables, groups=["kind"])
    names = sorted(Path(r.path_png).name for r in records if r.kind == "calo")
    # and single showers at 256 MeV, 32.8 GeV and 4.19 TeV, the lowest, middle and highest of 15 energies
    assert names == ["average_shower.png", "layer_energy_vs_einc.png", "radial_profiles.png",
                     "single_showers_0.png", "single_showers_14.png", "single_showers_7.png"]


def test_log_view_only_where_tails_matter():
    rng = np.random.default_rng(9)
    assert not tails_matter(rng.normal(91.0, 2.5, 50_000))
    assert not tails_matter(rng.uniform(0.0, 1.0, 50_000))
    assert tails_matter(rng.exponential(20.0, 50_000))  # a falling pT spectrum
    assert tails_matter(91.0 + 2.5 * rng.standard_cauchy(50_000))  # a Breit-Wigner line


def test_log_x_only_for_positive_columns_over_decades():
    rng = np.random.default_rng(11)
    energies = 10 ** rng.uniform(2, 6, 50_000)  # layer energies from 100 MeV to 1 TeV
    assert spans_decades(energies)
    assert spans_decades(np.where(rng.uniform(size=energies.size) < 0.05, 0.0, energies))  # a few empty layers
    assert not spans_decades(np.where(rng.uniform(size=energies.size) < 0.5, 0.0, energies))
    assert not spans_decades(rng.normal(91.0, 2.5, 50_000)) and not spans_decades(rng.normal(0.0, 1.0, 50_000))


def test_chi2_ndf_of_shapes():
    rng = np.random.default_rng(10)
    edges = np.linspace(-3, 3, 31)
    truth = count_histogram(rng.normal(size=200_000), edges, "x")
    assert chi2_ndf(truth, truth) == 0.0
    # Two samples of one law: χ²/ndf is 1 within its spread sqrt(2/ndf) = 0.26.
    assert chi2_ndf(count_histogram(rng.normal(size=50_000), edges, "x"), truth) == pytest.approx(1.0, abs=0.8)
    # A shifted one is far off; the shape, not the sample size, is compared.
    assert chi2_ndf(count_histogram(rng.normal(0.3, 1.0, 50_000), edges, "x"), truth) > 50


def _columns(kind: str, names: list[str]) -> dict[str, Column]:
    return {n: Column(n, label, unit) for n, (label, unit) in zip(names, kinds.get(kind).observable_axes(names))}


def test_observables_carry_the_kinds_labels_and_units(tmp_path):
    columns = _columns("zmumu", ["m_mumu", "dR_mumu", "mystery"])
    assert columns["m_mumu"].axis_label == r"$m_{\mu\mu}$ [GeV]"
    assert columns["m_mumu"].density_label == "1/N dN/dx [1/GeV]"
    assert columns["dR_mumu"].axis_label == r"$\Delta R_{\mu\mu}$"
    assert columns["mystery"].axis_label == "mystery"
    calo = _columns("calo", ["E_layer2", "ECx_layer1", "width_y_layer2", "sparsity_layer0"])
    assert [c.unit for c in calo.values()] == ["MeV", "mm", "mm", ""]
    assert calo["ECx_layer1"].axis_label == "centre in x, layer 1 [mm]"
    assert _columns("phasespace", ["m2_13"])["m2_13"].axis_label == "$m^2_{13}$ [GeV$^{2}$]"
    # the plots title each histogram with its kind's unit
    rng = np.random.default_rng(12)
    truth = _zmumu(rng)
    records = make_dataset_plots("z", truth, {"maf": _zmumu(rng)}, {}, {}, str(tmp_path), _zmumu_observables)
    assert "z: m_mumu [GeV]" in {r.title for r in records if r.kind == "observable"}


def test_calo_figures_check_the_geometry(tmp_path):
    events = EventSet(np.ones((60, 10)), [f"v{i}" for i in range(10)], kind="calo",
                      condition=np.full((60, 1), 1024.0), condition_names=["E_inc"])  # fmt: skip
    with pytest.raises(InputError, match="10 voxel features.*368"):
        make_dataset_plots("calo", events, {"cfm": events}, {}, {}, str(tmp_path), lambda ev: (np.empty((len(ev), 0)), []))


def test_calo_samples_without_incident_energy_name_the_model(tmp_path):
    rng = np.random.default_rng(13)
    truth, sample = _calo(rng), _calo(rng)
    no_einc = dataclasses.replace(sample, condition=None, condition_names=[])
    with pytest.raises(InputError, match="samples of 'cfm'.*E_inc"):
        make_dataset_plots("calo", truth, {"cfm": no_einc}, {}, {}, str(tmp_path), _calo_observables)


def _phasespace(rng: np.random.Generator) -> EventSet:
    # Uniform in the Dalitz plane of a 3-body decay (M=3, massless daughters): m12² + m23² ≤ M².
    m12, m23 = rng.uniform(0, 9, (2, 4 * N))
    keep = m12 + m23 <= 9
    return EventSet(np.column_stack([m12[keep], m23[keep]]), ["m2_12", "m2_23"], kind="phasespace")


def test_phasespace_like_dataset_has_a_dalitz_plot(tmp_path):
    rng = np.random.default_rng(5)
    truth = _phasespace(rng)
    records = make_dataset_plots(
        "ps", truth, {"nsf": _phasespace(rng)}, {}, {}, str(tmp_path), lambda ev: (np.empty((len(ev), 0)), [])
    )
    dalitz = [r for r in records if r.kind == "dalitz"]
    assert len(dalitz) == 1 and dalitz[0].path_png.endswith("phasespace/dalitz.png")
    _assert_png_pdf(dalitz[0])


def test_samples_with_other_columns_are_rejected(tmp_path):
    rng = np.random.default_rng(6)
    truth = _zmumu(rng)
    bad = EventSet(truth.features[:, :2], ["a", "b"])
    with pytest.raises(InputError, match="'gan'"):
        make_dataset_plots("z", truth, {"gan": bad}, {}, {}, str(tmp_path), _zmumu_observables)


def test_pareto_front_on_a_handcrafted_set():
    cost = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    badness = np.array([0.5, 0.1, 0.2, 0.05, 0.0])
    # (3, 0.2) is beaten by (2, 0.1); the NaN point is never on the front.
    assert pareto_front(cost, badness).tolist() == [True, True, False, True, False]


def test_correlation_matrix_recovers_an_analytic_correlation():
    rng = np.random.default_rng(7)
    rho = 0.8
    x = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], 200_000)
    x = np.column_stack([x, np.ones(len(x))])  # a constant column has no correlation: 0, not NaN
    c = correlation_matrix(x)
    assert c[0, 1] == pytest.approx(rho, abs=0.005)
    assert c[2, 0] == 0.0 and np.isfinite(c).all()


def test_a_correlation_figure_of_many_observables_stays_bounded(tmp_path, monkeypatch):
    """A dataset-2 shower has 271 high-level observables: the figure keeps every cell of the
    271 × 271 matrices but not 0.35 inch per column (a 98-inch panel took 6 GB to draw), and
    labels at most MAX_CORRELATION_LABELS columns per axis."""
    import hepgenbench.plots as plots

    rng = np.random.default_rng(2)
    showers = rng.exponential(1.0, (40, DS2.n_voxels)) * (rng.random((40, DS2.n_voxels)) < 0.3)
    events = EventSet(showers, DS2.voxel_names(), kind="calo", condition=np.full((40, 1), 1e4),
                      condition_names=["E_inc"], meta={"calo_layers": DS2.to_meta()})
    obs, names = kinds.get("calo").observables(events)
    assert len(names) == 271
    drawn = {}

    def measure(fig, png_path):  # the figure as it would be saved, without spending the time to draw it
        drawn["inches"] = tuple(fig.get_size_inches())
        drawn["cells"] = [im.get_array().shape for ax in fig.axes for im in ax.get_images()]
        drawn["labels"] = [len(ax.get_xticklabels()) for ax in fig.axes if ax.get_images()]
        plt.close(fig)
        return str(png_path), str(png_path.with_suffix(".pdf"))

    monkeypatch.setattr(plots, "save_figure", measure)
    record = plots._correlation_plot("ds2", "model", obs, obs[::-1], names, tmp_path)
    width, height = drawn["inches"]
    assert width <= 3 * MAX_CORRELATION_PANEL_INCHES and height <= MAX_CORRELATION_PANEL_INCHES
    assert drawn["cells"] == [(271, 271)] * 3
    assert drawn["labels"] == [len(range(0, 271, 7))] * 3 and max(drawn["labels"]) <= MAX_CORRELATION_LABELS
    assert "One column in 7 of the 271 is labelled" in record.caption


def test_histogram_edges_use_integer_bins_for_counts():
    edges = histogram_edges(np.array([0, 1, 1, 2, 5], dtype=float))
    assert edges.tolist() == [-0.5, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5]
    continuous = histogram_edges(np.random.default_rng(0).normal(size=1000), n_bins=20)
    assert len(continuous) == 21 and continuous[0] < -2.5 and continuous[-1] > 2.5


def test_training_csv_without_val_loss_is_an_input_error(tmp_path):
    path = tmp_path / "training.csv"
    path.write_text("epoch,train_loss\n0,1.0\n")
    with pytest.raises(InputError, match="val_loss"):
        read_training_csv(str(path))
    log = read_training_csv(_training_csv(tmp_path / "ok.csv", epochs=3))
    assert log["val_loss"].tolist() == pytest.approx([2.1, 1.05, 0.7])


def test_manifest_round_trip(tmp_path):
    records = [PlotRecord("a.png", "a.pdf", "feature", "t", "c")]
    write_plot_manifest(str(tmp_path / "m.json"), records, dataset="zmumu")
    assert read_plot_manifest(str(tmp_path / "m.json")) == ("zmumu", records)
    (tmp_path / "bad.json").write_text('{"plots": [{"png": 1}]}')
    with pytest.raises(InputError, match="bad.json"):
        read_plot_manifest(str(tmp_path / "bad.json"))


def test_safe_name():
    assert safe_name("p_T [GeV]") == "p_T_GeV"
    assert safe_name("m²/μμ") == "m"


#: the metric suite's lightest settings, as a config's ``evaluation:`` block
LIGHT_EVALUATION = {"n_bootstrap": 2, "n_bins": 10, "emd_subsample": 100, "emd_repeats": 1, "swd_projections": 10,
                    "swd_seeds": 2, "c2st_folds": 2, "fpd_min_samples": 200, "fpd_max_samples": 400, "fpd_points": 3,
                    "fpd_resamples": 2, "kpd_batch_size": 100, "kpd_batches": 2, "memorisation_max_events": 200,
                    "memorisation_max_train": 400}  # fmt: skip


def _stages_to_evaluate(base: Path, config: dict, dataset: str, files: list[str], models: tuple[str, ...]) -> dict:
    """Ingest ``files`` and run split, preprocess, one RealNVP trained for an epoch (as
    model ``a``), sampled once per name in ``models`` (the sample seed derives from the
    name), and evaluate every sample and truth B: the inputs of the ``plots`` stage."""
    data = {"events": str(base / "events.h5"), "split": str(base / "split.h5"), "transform": str(base / "transform.json")}
    stages.ingest({"files": files}, {"events": data["events"]}, IngestParams.from_config(config, dataset), 1)
    stages.split({"events": data["events"]}, {"split": data["split"]}, SplitParams.from_config(config, dataset), 1)
    stages.preprocess(data, {"transform": data["transform"]}, NoParams(), 1)
    model_dir = base / "models" / "a"
    stages.train(data, {"model": str(model_dir / "model.pt"), "log_csv": str(model_dir / "training.csv")},
                 TrainParams.from_config(config, dataset, "a"), 1)  # fmt: skip
    run = {"config": config, "data": data, "samples": [], "metrics": [], "csvs": []}
    lines = (model_dir / "training.csv").read_text().splitlines(keepends=True)
    for model in models:
        csv_path = base / "models" / model / "training.csv"
        if model != "a":  # another name's log has one epoch fewer than a's, so that the files differ
            csv_path.parent.mkdir(parents=True)
            csv_path.write_text("".join(lines[:1]))
        run["csvs"].append(str(csv_path))
        path = str(base / "samples" / f"{model}.h5")
        stages.sample({**data, "model": str(model_dir / "model.pt")}, {"sample": path},
                      SampleParams.from_config(config, dataset, model), 1)  # fmt: skip
        run["samples"].append(path)
    for model in (*models, "truth"):
        out = str(base / "metrics" / f"{model}.json")
        inputs = data if model == "truth" else {**data, "sample": str(base / "samples" / f"{model}.h5")}
        stages.evaluate(inputs, {"metrics": out}, EvaluateParams.from_config(config, dataset, model), 1)
        run["metrics"].append(out)
    return run


@pytest.fixture(scope="module")
def phasespace_run(tmp_path_factory) -> dict:
    """The stages up to evaluate, on a small phase-space dataset: one RealNVP trained for an
    epoch and sampled twice, with different seeds, as models ``a`` and ``b``."""
    base = tmp_path_factory.mktemp("ps")
    config = {
        "seed": 3, "datasets": {"ps": validate_dataset("ps", {"source": "phasespace", "n_events": 1500})},
        "models": {"a": {"family": "realnvp"}}, "training": {"max_epochs": 1, "batch_size": 256},
        "sampling": {"rate_batch_sizes": [1], "nll_max_events": 100}, "evaluation": LIGHT_EVALUATION,
    }  # fmt: skip
    source = str(base / "ps.h5")
    stages.source({}, {"data": source}, SourceParams.from_config(config, "ps"), 1)
    return _stages_to_evaluate(base, config, "ps", [source], ("a", "b"))


def _plot_stage(run: dict, outdir: Path, order: list[int]) -> dict[str, str]:
    inputs = {**run["data"], "samples": [run["samples"][k] for k in order],
              "metrics": list(reversed(run["metrics"])), "training_csvs": [run["csvs"][k] for k in order]}  # fmt: skip
    stages.plots(inputs, {"plots": str(outdir)}, PlotsParams.from_config(run["config"], "ps", ["a", "b"]), 1)
    _, records = read_plot_manifest(str(outdir / "manifest.json"))
    return {r.title: r.caption for r in records}


def test_plot_stage_pairs_files_with_models_by_name_not_position(phasespace_run, tmp_path):
    in_order = _plot_stage(phasespace_run, tmp_path / "in_order", [0, 1])
    shuffled = _plot_stage(phasespace_run, tmp_path / "shuffled", [1, 0])
    # a's and b's samples differ, so a mix-up would swap their correlation captions.
    assert in_order["ps: correlations, a"] != in_order["ps: correlations, b"]
    assert shuffled == in_order
    for name in ("classifier", "correlations", "training"):
        for png in (tmp_path / "in_order" / name).glob("*.png"):
            assert png.read_bytes() == (tmp_path / "shuffled" / name / png.name).read_bytes(), png


def test_plot_stage_rejects_a_sample_of_another_model(phasespace_run, tmp_path):
    inputs = {**phasespace_run["data"], "samples": [phasespace_run["samples"][0]] * 2,
              "metrics": phasespace_run["metrics"], "training_csvs": phasespace_run["csvs"]}  # fmt: skip
    with pytest.raises(InputError, match=r"a\.h5: a second samples input for model 'a'"):
        stages.plots(inputs, {"plots": str(tmp_path)}, PlotsParams.from_config(phasespace_run["config"], "ps", ["a", "b"]), 1)


def test_a_kind_registered_here_draws_its_figure_and_units_through_the_plot_stage(tmp_path):
    """A kind is one class: its observable's unit and its own figure reach the ``plots``
    stage's manifest with no edit to :mod:`hepgenbench.plots`."""
    import h5py

    from hepgenbench.kinds.base import DatasetKind

    @kinds.register
    class Pairs(DatasetKind):
        name = "pairs_for_plots"
        readers = ("hdf5",)

        def observables(self, events):
            return events.features[:, :1] + events.features[:, 1:2], ["a_plus_b"]

        def observable_axes(self, names):
            return [("$a + b$", "GeV") for _ in names]

        def extra_plots(self, inputs):
            import matplotlib.pyplot as plt

            from hepgenbench.plots import save_figure

            fig, ax = plt.subplots()
            for name, obs in {"truth": inputs.truth_obs, **inputs.sample_obs}.items():
                ax.hist(obs[:, 0], bins=20, histtype="step", label=name)
            png, pdf = save_figure(fig, inputs.out / self.name / "sum.png")
            return [PlotRecord(png, pdf, self.name, f"{inputs.dataset}: a + b of {', '.join(inputs.samples)}",
                               f"{len(inputs.truth)} truth events")]

    try:
        rng = np.random.default_rng(14)
        path = tmp_path / "pairs.h5"
        with h5py.File(path, "w") as f:
            f["a"], f["b"] = rng.normal(40.0, 5.0, 1200), rng.normal(50.0, 5.0, 1200)
        config = {"seed": 4, "models": {"a": {"family": "realnvp"}}, "training": {"max_epochs": 1, "batch_size": 256},
                  "sampling": {"rate_batch_sizes": [1], "nll_max_events": 100}, "evaluation": LIGHT_EVALUATION,
                  "datasets": {"pairs": validate_dataset("pairs", {"source": "hdf5", "files": str(path),
                                                                   "features": ["a", "b"], "kind": "pairs_for_plots"})}}  # fmt: skip
        run = _stages_to_evaluate(tmp_path / "run", config, "pairs", [str(path)], ("a",))
        inputs = {**run["data"], "samples": run["samples"], "metrics": run["metrics"], "training_csvs": run["csvs"]}
        outdir = tmp_path / "plots"
        stages.plots(inputs, {"plots": str(outdir)}, PlotsParams.from_config(config, "pairs", ["a"]), 1)
    finally:
        kinds.KINDS.pop("pairs_for_plots", None)
    _, records = read_plot_manifest(str(outdir / "manifest.json"))
    own = [r for r in records if r.kind == "pairs_for_plots"]
    assert [(r.title, r.path_png) for r in own] == [("pairs: a + b of a", str(outdir / "pairs_for_plots" / "sum.png"))]
    _assert_png_pdf(own[0])
    truth_a = stages.load_split_events(run["data"]["events"], run["data"]["split"])["truth_a"]
    assert own[0].caption == f"{len(truth_a)} truth events"
    assert "pairs: a_plus_b [GeV]" in {r.title for r in records if r.kind == "observable"}


def test_a_kind_with_too_few_axis_labels_is_one_input_error(tmp_path):
    from hepgenbench.kinds.base import DatasetKind

    @kinds.register
    class Unlabelled(DatasetKind):
        name = "unlabelled_for_plots"

        def observable_axes(self, names):
            return []

    try:
        truth = dataclasses.replace(_zmumu(np.random.default_rng(15)), kind="unlabelled_for_plots")
        with pytest.raises(InputError, match="kind 'unlabelled_for_plots' gave 0 axis labels for the 2 observables"):
            make_dataset_plots("u", truth, {"maf": truth}, {}, {}, str(tmp_path), _zmumu_observables)
    finally:
        kinds.KINDS.pop("unlabelled_for_plots", None)
