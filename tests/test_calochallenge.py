"""The CaloChallenge at the field's scale (issue 23): published reference rows beside a
run's, generation cost as the challenge reports it, and the single-shower gallery, on the
real outputs of the stages before them."""

from __future__ import annotations

from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ReportPage

from hepgenbench import stages
from hepgenbench.kinds import validate_dataset
from hepgenbench.records import (
    EvaluateParams,
    IngestParams,
    MetricsRecord,
    NoParams,
    SampleParams,
    SourceParams,
    SplitParams,
    TrainParams,
)
from hepgenbench.reference.calochallenge import DATASETS, GEANT4, published_results
from hepgenbench.report import build_report

#: the metric suite at its lightest, with the challenge's classifier shrunk to seconds
EVALUATION = {"n_bootstrap": 2, "n_bins": 10, "emd_subsample": 100, "emd_repeats": 1, "swd_projections": 10,
              "swd_seeds": 2, "c2st_folds": 2, "c2st_max_events": 300, "fpd_min_samples": 100, "fpd_max_samples": 200,
              "fpd_points": 3, "fpd_resamples": 2, "kpd_batch_size": 100, "kpd_batches": 2,
              "memorisation_max_events": 100, "memorisation_max_train": 200, "energy_bins": 2,
              "c2st_classifier": "cc22", "cc22_width": 16, "cc22_epochs": 2, "cc22_batch_size": 100,
              "prdc_max_events": 100}  # fmt: skip


@pytest.fixture(scope="module")
def calo_run(tmp_path_factory) -> dict:
    """source → ingest → split → preprocess → train (a VAE, one epoch) → sample → evaluate
    (model and truth), on 1,200 embedded showers declared as ds1-photons. (The plots stage
    draws every voxel's histogram: over a minute; the gallery is drawn on its own below.)"""
    base = tmp_path_factory.mktemp("calo")
    block = validate_dataset("calo", {"source": "calo", "n_events": 1200, "calochallenge": "ds1-photons"})
    config = {"seed": 5, "datasets": {"calo": block}, "models": {"a": {"family": "vae"}},
              "training": {"max_epochs": 1, "batch_size": 256},
              "sampling": {"rate_batch_sizes": [1, 100], "nll_max_events": 50}, "evaluation": EVALUATION}  # fmt: skip
    data = {"events": str(base / "events.h5"), "split": str(base / "split.h5"), "transform": str(base / "transform.json")}
    source = str(base / "showers.h5")
    torch_threads = torch.get_num_threads()
    try:
        stages.source({}, {"data": source}, SourceParams.from_config(config, "calo"), 1)
        stages.ingest({"files": [source]}, {"events": data["events"]}, IngestParams.from_config(config, "calo"), 1)
        stages.split({"events": data["events"]}, {"split": data["split"]}, SplitParams.from_config(config, "calo"), 1)
        stages.preprocess(data, {"transform": data["transform"]}, NoParams(), 1)
        model = base / "models" / "a"
        stages.train(data, {"model": str(model / "model.pt"), "log_csv": str(model / "training.csv")},
                     TrainParams.from_config(config, "calo", "a"), 1)  # fmt: skip
        sample = str(base / "samples" / "a.h5")
        stages.sample({**data, "model": str(model / "model.pt")}, {"sample": sample},
                      SampleParams.from_config(config, "calo", "a"), 1)  # fmt: skip
        metrics = {}
        for name, inputs in (("a", {**data, "sample": sample}), ("truth", data)):
            metrics[name] = str(base / "metrics" / f"{name}.json")
            stages.evaluate(inputs, {"metrics": metrics[name]}, EvaluateParams.from_config(config, "calo", name), 1)
    finally:
        torch.set_num_threads(torch_threads)
    return {"base": base, "config": config, "data": data, "sample": sample, "metrics": metrics}


def test_sample_stage_records_the_challenges_cost_figures(calo_run):
    record = MetricsRecord.read(calo_run["metrics"]["a"])
    cost = record.cost
    assert set(cost.time_per_event_ms) >= {"cpu_1", "cpu_100"}
    assert all(t > 0 for t in cost.time_per_event_ms.values())
    # the per-event time is the inverse of the CPU rate it was measured as
    assert cost.time_per_event_ms["cpu_100"] == pytest.approx(1e3 / cost.sample_rate["100"])
    assert cost.warmup_s["cpu"] > 0 and cost.load_time_s > 0
    assert cost.flops_per_event > 0
    assert ("cuda_1" in cost.time_per_event_ms) == torch.cuda.is_available()


def test_flops_per_event_of_a_vae_are_its_decoders_matrix_products():
    import hepgenbench.models  # noqa: F401  (fills the registry)
    from hepgenbench.cost import flops_per_event
    from hepgenbench.models.base import resolve

    model = resolve("vae")(12, 1, hidden=(32, 16))
    # sampling a VAE decodes latent draws: 2·n_in·n_out per event for each Linear of the decoder
    expected = sum(2 * m.in_features * m.out_features for m in model.decoder if isinstance(m, torch.nn.Linear))
    assert flops_per_event(model, torch.ones(4, 1)) == expected


def test_report_shows_the_published_rows_beside_the_runs(calo_run, tmp_path):
    metrics = list(calo_run["metrics"].values())
    build_report(metrics, [], calo_run["config"], str(tmp_path), provenance={"git_commit": "x"})
    page = ReportPage()
    page.feed((tmp_path / "index.html").read_text())
    table = page.frame("published-calo")
    rows = {r[0]["text"]: r[0]["row"]["class"] for r in page.tables["published-calo"][1:]}
    published = published_results("ds1-photons")
    # every published submission is there, marked as published, after this run's two rows
    assert list(rows)[:2] == ["truth", "a"] and rows["a"] == "model" and rows["truth"] == "truth"
    assert {m for m, c in rows.items() if c == "published"} == set(published.index)
    assert table.loc[GEANT4, "source"] == "published, Geant4 vs Geant4"
    assert table.loc["CaloDiffusion", "AUC low-level"] == "0.6346 ± 0.0028"
    assert table.loc["CaloDiffusion", "ms/shower CPU, batch 1"] == f"{published.loc['CaloDiffusion', 'time_cpu_1_ms']:.4g}"
    # this run's numbers are its metrics records', on the published scale (FPD × 10³)
    record = MetricsRecord.read(calo_run["metrics"]["a"]).metrics
    assert table.loc["a", "AUC high-level"].startswith(f"{record['c2st_auc_high_level']['value']:.2f}"[:3])
    assert float(table.loc["a", "coverage"]) == pytest.approx(record["prdc_coverage"]["value"], rel=1e-3)
    assert float(table.loc["truth", "density"]) == pytest.approx(
        MetricsRecord.read(calo_run["metrics"]["truth"]).metrics["prdc_density"]["value"], rel=1e-3)
    html = unescape((tmp_path / "index.html").read_text())
    assert "arXiv:2410.21611" in html and "do not rank them" in html and "'cc22' classifier" in html
    assert "CaloChallenge published rows (ds1-photons" in (tmp_path / "report.md").read_text()


def test_report_without_the_key_has_no_published_rows(calo_run, tmp_path):
    config = {**calo_run["config"], "datasets": {"calo": {k: v for k, v in calo_run["config"]["datasets"]["calo"].items()
                                                          if k != "calochallenge"}}}  # fmt: skip
    build_report(list(calo_run["metrics"].values()), [], config, str(tmp_path), provenance={"git_commit": "x"})
    page = ReportPage()
    page.feed((tmp_path / "index.html").read_text())
    assert "published-calo" not in page.tables and "metrics-calo" in page.tables


def test_gallery_draws_single_showers_at_three_energies(calo_run, tmp_path):
    from hepgenbench import kinds
    from hepgenbench.io import read_events
    from hepgenbench.plotting.calo import gallery_bins, shower_gallery

    kind = kinds.get("calo")
    truth = stages.load_split_events(calo_run["data"]["events"], calo_run["data"]["split"])["truth_a"]
    sets = {"truth": truth, "a": read_events(calo_run["sample"])}
    e_inc = {name: kind.incident_energy(events) for name, events in sets.items()}
    bins = gallery_bins(e_inc["truth"])
    gallery = shower_gallery("calo", kind.geometry(truth), sets, e_inc, bins, tmp_path, n_showers=1)
    # the lowest, middle and highest of truth's 15 energies, one figure each
    assert len(gallery) == 3 and bins.discrete and len(bins) == 15
    assert f"E_inc = {bins.low[0] / 1e3:.3g} GeV" in gallery[0].title
    assert f"E_inc = {bins.high[-1] / 1e3:.3g} GeV" in gallery[-1].title
    for record in gallery:
        assert (tmp_path / "calo" / Path(record.path_png).name).read_bytes().startswith(b"\x89PNG")


def test_gallery_picks_are_seeded_and_from_the_energy_bin():
    from hepgenbench.data.calo_geometry import EnergyBins
    from hepgenbench.plotting.calo import gallery_picks

    e = {"truth": np.repeat([1.0, 2.0, 4.0, 8.0], 60), "m": np.repeat([1.0, 2.0, 4.0, 8.0], 60)[::-1].copy()}
    bins = EnergyBins.from_truth(e["truth"])
    picks = gallery_picks(e, bins, n_showers=3, seed=1)
    assert [i for i, _ in picks] == [0, 2, 3]
    for i, chosen in picks:
        for name, idx in chosen.items():
            assert len(idx) == 3 and np.all(e[name][idx] == bins.low[i])
    assert str(picks) == str(gallery_picks(e, bins, n_showers=3, seed=1))
    assert str(picks) != str(gallery_picks(e, bins, n_showers=3, seed=2))


@pytest.mark.parametrize("dataset", DATASETS)
def test_published_table_matches_the_challenges_results_files(dataset, calochallenge_files):
    stem = dataset.replace("-", "_")
    theirs = pd.read_hdf(calochallenge_files / f"CaloChallenge_results_{stem}.hdf")
    ours = published_results(dataset)
    assert list(ours.index) == list(theirs["submission name"])
    assert list(ours["submission_id"]) == list(theirs.index)
    columns = {"auc_low": "binary cls low", "auc_low_std": "binary cls low std", "auc_high": "binary cls high",
               "auc_high_std": "binary cls high std", "fpd_x1e3": "FPD * 1e3", "fpd_x1e3_std": "FPD * 1e3 std",
               "kpd_x1e3": "KPD * 1e3", "kpd_x1e3_std": "KPD * 1e3 std", "precision": "precision",
               "recall": "recall", "density": "density", "coverage": "coverage",
               "params_training": "Parameters training", "params_generation": "Parameters generation",
               **{f"time_{d.lower()}_{b}_ms{s}": f"time {d} {b}{s.replace('_', ' ')}"
                  for d in ("CPU", "GPU") for b in (1, 100, 10000) for s in ("", "_std")}}  # fmt: skip
    if "binary cls cnn" in theirs.columns:
        columns.update(auc_cnn="binary cls cnn", auc_cnn_std="binary cls cnn std")
    else:
        assert ours["auc_cnn"].isna().all()
    for mine, column in columns.items():
        np.testing.assert_array_equal(ours[mine].to_numpy(float), theirs[column].to_numpy(float), err_msg=mine)


def test_calochallenge_key_is_checked_against_the_known_datasets():
    from hepgenbench.errors import InputError

    with pytest.raises(InputError, match="calochallenge"):
        validate_dataset("calo", {"source": "calo", "n_events": 10, "calochallenge": "ds4"})
    with pytest.raises(InputError, match="ds4"):
        published_results("ds4")
    for name in DATASETS:
        assert validate_dataset("calo", {"source": "calo", "n_events": 10, "calochallenge": name})["calochallenge"] == name
