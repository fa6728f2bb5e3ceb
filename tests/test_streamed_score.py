"""The streamed CaloChallenge evaluation: the voxel classifier trained from disk in bounded
blocks, and ``hepgenbench score --stream``, whose high-level metrics are the in-memory path's."""

from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest
from test_score import write_showers

from hepgenbench.metrics.cc22 import CC22Settings, cc22_fit_predict
from hepgenbench.metrics.streamed_c2st import ShowerRows, StreamedC2STSettings, fit_streamed, streamed_c2st

N = 600
#: a small network, a few epochs, blocks of 300 rows: what is compared, not the challenge's cost
TINY = CC22Settings(width=32, epochs=5, batch_size=100)
BLOCK_ROWS = 300


@pytest.fixture(scope="module")
def shower_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("stream")
    return {"truth": write_showers(d / "truth.h5", N, 1), "same": write_showers(d / "same.h5", N, 2),
            "distorted": write_showers(d / "distorted.h5", N, 3, scale=1.04, wider=1.2)}


def settings(block_rows: int = BLOCK_ROWS, epochs: int = TINY.epochs) -> StreamedC2STSettings:
    # one block holds block_rows rows of 369 float64 inputs (368 voxels and log10 E_inc)
    return StreamedC2STSettings(dataclasses.replace(TINY, epochs=epochs), block_bytes=block_rows * 369 * 8)


def rows(path: str) -> ShowerRows:
    return ShowerRows(path, np.arange(N))


def test_streamed_voxel_classifier_tells_a_distorted_file_and_not_one_of_the_same_law(shower_files):
    same, _ = streamed_c2st(rows(shower_files["truth"]), rows(shower_files["same"]), settings(), seed=3)
    distorted, _ = streamed_c2st(rows(shower_files["truth"]), rows(shower_files["distorted"]), settings(), seed=3)
    sigma = np.sqrt((2 * 120 + 1) / (12 * 120**2))  # the AUC's null spread at ~120 test showers per class
    assert abs(same.value - 0.5) < 3 * sigma
    assert distorted.value > 0.8
    assert same.details["n_test"] == 240 and same.details["inputs"].startswith("log1p(1e3 E_voxel/E_inc)")


@pytest.mark.parametrize("block_rows", [100, 300])
def test_no_read_holds_more_rows_than_a_block(shower_files, block_rows):
    """The memory bound: every read of the training, validation and test passes and of the
    standardisation holds at most one block of rows, and every epoch reads each row it needs."""
    fit = fit_streamed(rows(shower_files["truth"]), rows(shower_files["same"]), settings(block_rows, epochs=2), seed=1)
    assert fit.block_rows == block_rows
    assert 0 < fit.stats.max_rows_per_read <= fit.read_rows <= block_rows
    n_pool = 2 * N
    train, val, test = int(0.6 * n_pool), n_pool - int(0.6 * n_pool) - int(0.2 * n_pool), int(0.2 * n_pool)
    # standardisation (train) + each epoch (train, val) + the kept network on val and test
    assert fit.stats.rows_read == train + 2 * (train + val) + val + test


@pytest.mark.parametrize("block_rows", [BLOCK_ROWS, 30])
def test_streamed_classifier_is_the_in_memory_one_on_the_same_events(shower_files, block_rows):
    """The same split, minibatches and calibration as cc22_fit_predict on the pooled inputs in
    memory: every calibrated test probability agrees, also when block_bytes holds fewer rows
    than a minibatch (30 of 100: each block of minibatches is read in pieces, as for dataset 3)."""
    def inputs(path):
        with h5py.File(path) as f:
            x, e = f["showers"][()].astype(np.float64), f["incident_energies"][()].reshape(-1)
        return np.column_stack([np.log1p(np.clip(x, 0, None) / e[:, None] * 1e3), np.log10(e)])

    truth, gen = shower_files["truth"], shower_files["distorted"]
    x = np.vstack([inputs(truth), inputs(gen)])
    y = np.r_[np.ones(N, dtype=int), np.zeros(N, dtype=int)]
    in_memory = cc22_fit_predict(x, y, TINY, 11)
    fit = fit_streamed(rows(truth), rows(gen), settings(block_rows), 11)
    assert fit.read_rows == block_rows and fit.stats.max_rows_per_read <= block_rows
    streamed = fit.fit
    assert streamed.best_epoch == in_memory.best_epoch
    np.testing.assert_allclose(streamed.p_test, in_memory.p_test, atol=1e-6)
    assert streamed.auc == pytest.approx(in_memory.auc, abs=1e-6)


#: the in-memory suite at its cheapest: these tests compare the two paths' entries, not the digits
LIGHT_SUITE = {"n_bootstrap": 2, "n_bins": 10, "emd_subsample": 50, "emd_repeats": 2, "swd_projections": 5,
               "swd_seeds": 2, "fpd_points": 2, "fpd_resamples": 2, "kpd_batches": 2, "kpd_batch_size": 100,
               "c2st_folds": 2, "c2st_max_events": 150, "prdc_max_events": 100, "prdc_repeats": 2,
               "cc22_width": 16, "cc22_epochs": 1, "cc22_batch_size": 100}
HIGH_LEVEL = ("c2st_auc_high_level", "separation_power_high_level", "prdc_precision", "prdc_recall", "prdc_density",
              "prdc_coverage", "per_energy_bin", "calo_response", "w1_observables_mean", "fpd", "kpd",
              "unphysical_fraction", "duplicates")


@pytest.mark.slow  # the report's figures and the in-memory suite: ~1 min on 2 idle cores
def test_score_streams_through_the_cli_and_its_high_level_metrics_are_the_in_memory_ones(tmp_path):
    """A memory budget below the files' voxels streams them (no --stream needed); the
    metrics.json it writes holds every high-level entry exactly as the in-memory path computes
    it for the same files and seed, the voxel classifier from disk, and each voxel-level
    metric absent with its reason."""
    import json

    import yaml

    from hepgenbench import cli
    from hepgenbench.scoring import score_files
    from hepgenbench.streamed_scoring import ABSENT, should_stream

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"seed": 3, "datasets": {"showers": {"source": "calochallenge"}},
                                      "evaluation": LIGHT_SUITE}))
    truth = write_showers(tmp_path / "truth.h5", 300, 1)
    gen = write_showers(tmp_path / "distorted.h5", 150, 3, scale=1.04, wider=1.2)
    assert not should_stream([truth, gen], memory_budget_gb=1.0)  # 450 × 368 × 8 B × 4 ≈ 5 MB
    assert should_stream([truth, gen], memory_budget_gb=0.004)
    out = tmp_path / "out"
    assert cli.main(["score", "--truth", truth, "--generated", gen, "--config", str(config), "--memory-budget", "0.004",
                     "--out", str(out)]) == 0
    streamed = json.loads((out / "metrics.json").read_text())
    assert (out / "index.html").exists() and (out / "metrics.csv").exists()
    in_memory = score_files(truth, [gen], config=str(config), stream=False)
    for row in ("truth", "distorted"):
        memory = in_memory.records[row].to_dict()["metrics"]
        for key in HIGH_LEVEL:
            assert streamed[row]["metrics"][key] == json.loads(json.dumps(memory[key])), (row, key)
        for key in ABSENT:
            assert streamed[row]["metrics"][key]["value"] is None and streamed[row]["metrics"][key]["skipped"]
        voxel = streamed[row]["metrics"]["c2st_auc"]
        assert voxel["classifier"] == "cc22" and voxel["streamed"]["max_rows_per_read"] <= voxel["streamed"]["block_rows"]
    assert streamed["distorted"]["metrics"]["c2st_auc_high_level"]["value"] > 0.8
