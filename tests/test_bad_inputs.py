"""Everything hepgenbench rejects, and how: one table per layer, read top to bottom.

1. CONFIG: a bad config fails before any job runs, with a message naming the key.
2. INPUTS: a bad file, tree, branch, key or value stops its stage with exit status 2 and
   one line naming it: no traceback, and no output file (finished or half-written).
3. ACCEPTED WITH A WARNING: inputs that are odd but usable.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import run_snakemake, write_config
from test_readers import write_tree

from hepgenbench import cli
from hepgenbench.io import EventSet, write_events
from hepgenbench.models.base import select_device
from hepgenbench.preprocess import Preprocessor
from hepgenbench.records import IngestParams
from hepgenbench.split import SplitFractions, split_indices, write_split

# --------------------------------------------------------------------------- 1. config
CONFIG_CASES = [
    # (case, dotted key, value, words the error must contain)
    ("unknown model family", "models.transformer", {}, ["models.transformer", "unknown model family 'transformer'"]),
    ("negative epochs", "training.max_epochs", -3, ["max_epochs", "-3", "minimum"]),
    ("missing input file", "datasets.mine", {"source": "root", "files": "nowhere/*.root", "tree": "Events"},
     ["datasets.mine.files", "nowhere/*.root", "matches no file"]),
    ("unknown top-level key", "epochs", 5, ["epochs", "Additional properties"]),
    ("unknown source", "datasets.zmumu.source", "herwig", ["herwig"]),
    ("density model on a dataset without density", "models.iaf", {"datasets": ["zmumu"]},
     ["models.iaf.datasets", "zmumu", "known density"]),
    ("cell model on a dataset without cells", "models.hurdlevae", {"datasets": ["zmumu"]},
     ["models.hurdlevae.datasets", "zmumu", "calorimeter cells", "kind calo"]),
    ("unknown pythia level", "datasets.zmumu.level", "detector", ["detector", "level"]),
    ("root source without tree", "datasets.mine", {"source": "root", "files": "Snakefile"}, ["tree"]),
    ("model named truth", "models.truth", {}, ["truth"]),
    ("bad device", "training.device", "tpu", ["tpu", "device"]),
    # Past the schema: the stage records (hepgenbench.records) are built while the DAG is.
    ("split fractions that do not sum to one", "datasets.phasespace.split", {"train": 0.8},
     ["config key datasets.phasespace.split", "sum to 1"]),
]


def _with(config: dict, path: str, value) -> dict:
    out = copy.deepcopy(config)
    node = out
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return out


@pytest.mark.parametrize("case, key, value, words", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_config_rejected_before_any_job(workflow_dir, quick_config, case, key, value, words):
    cfg_path = write_config(workflow_dir, _with(quick_config, key, value))
    proc = run_snakemake(workflow_dir, "--cores", "1", "--configfile", str(cfg_path), timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"{case}: snakemake accepted the config"
    for word in words:
        assert word in output, f"{case}: error does not mention {word!r}:\n{output[-3000:]}"
    assert not (workflow_dir / "results").exists(), f"{case}: a job ran before the config was rejected"


def test_good_config_dry_runs(workflow_dir, quick_config):
    cfg_path = write_config(workflow_dir, quick_config)
    proc = run_snakemake(workflow_dir, "-n", "--cores", "1", "--configfile", str(cfg_path), timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for rule in ("generate_pythia_chunk", "ingest", "split", "preprocess", "train", "sample", "evaluate",
                 "evaluate_truth", "plots", "report"):
        assert rule in proc.stdout, f"rule {rule} missing from the DAG"


# --------------------------------------------------------------------------- 2. inputs
DIMUON = {"source": "root", "name": "mine", "tree": "Events", "branches": ["MET_pt"],
          "collections": {"Muon": {"n": 2, "sort_by": "pt", "fields": ["pt", "eta", "phi"]}}}


def good_root(tmp: Path) -> str:
    return write_tree(tmp / "events.root")


def text_file(tmp: Path, name: str) -> str:
    (tmp / name).write_text("this is not a physics file\n" * 20)
    return str(tmp / name)


def flat_h5(tmp: Path) -> str:
    with h5py.File(tmp / "flat.h5", "w") as f:
        f["x"] = np.arange(50.0)
        f["y"] = np.arange(50.0) ** 2
    return str(tmp / "flat.h5")


def showers(tmp: Path, n_voxels: int = 368, nan: bool = False) -> str:
    cells = np.ones((20, n_voxels))
    if nan:
        cells[3, 7] = np.nan
    with h5py.File(tmp / "showers.hdf5", "w") as f:
        f["showers"], f["incident_energies"] = cells, np.full((20, 1), 1024.0)
    return str(tmp / "showers.hdf5")


def event_file(tmp: Path, n: int, features: np.ndarray | None = None) -> str:
    x = np.random.default_rng(0).normal(size=(n, 2)) if features is None else features
    write_events(tmp / "events.h5", EventSet(x, ["a", "b"][: x.shape[1]]))
    return str(tmp / "events.h5")


# (case, stage, make inputs -> (inputs, params), words in the one-line error)
INPUT_CASES = [
    ("missing file", "ingest", lambda t: ({"files": str(t / "missing.root")}, DIMUON), ["missing.root", "does not exist"]),
    ("glob that matches no file", "ingest", lambda t: ({"files": str(t / "nothing*.root")}, DIMUON),
     ["nothing*.root", "matches no file"]),
    ("file that is not ROOT", "ingest", lambda t: ({"files": text_file(t, "notes.root")}, DIMUON),
     ["notes.root", "not a readable ROOT file"]),
    ("file that is not HDF5", "ingest",
     lambda t: ({"files": text_file(t, "table.h5")}, {"source": "hdf5", "name": "t", "features": ["x"]}),
     ["table.h5", "not a readable HDF5 file"]),
    ("missing tree", "ingest", lambda t: ({"files": good_root(t)}, {**DIMUON, "tree": "Evts"}),
     ["no tree 'Evts'", "Events"]),
    ("missing branch", "ingest", lambda t: ({"files": good_root(t)}, {**DIMUON, "branches": ["HT"]}),
     ["no branch(es) ['HT']"]),
    ("missing HDF5 key", "ingest",
     lambda t: ({"files": flat_h5(t)}, {"source": "hdf5", "name": "t", "features": ["x", "pt"]}),
     ["flat.h5", "no dataset 'pt'", "x, y"]),
    ("NaN values refused", "ingest",
     lambda t: ({"files": write_tree(t / "nan.root", met=[1.0, np.nan, 3.0, np.inf, 5.0])}, DIMUON),
     ["nan.root", "MET_pt", "non-finite", "2"]),
    ("NaN voxel refused", "ingest",
     lambda t: ({"files": showers(t, nan=True)}, {"source": "calochallenge", "name": "c"}),
     ["showers.hdf5", "non-finite", "v007"]),
    ("shower file with the wrong voxel count", "ingest",
     lambda t: ({"files": showers(t, n_voxels=533)}, {"source": "calochallenge", "name": "c"}),
     ["showers.hdf5", "533", "has 368", "ds1-pions"]),
    ("selection that keeps zero events", "ingest",
     lambda t: ({"files": good_root(t)}, {**DIMUON, "selection": "MET_pt > 100"}), ["keeps 0 of 5 events"]),
    ("malformed selection", "ingest",
     lambda t: ({"files": good_root(t)}, {**DIMUON, "selection": "MET_pt >"}), ["'MET_pt >'", "not a valid expression"]),
    ("selection on a missing branch", "ingest",
     lambda t: ({"files": good_root(t)}, {**DIMUON, "selection": "HT > 3"}), ["'HT > 3'", "no branch(es) ['HT']"]),
    ("selection that is not one boolean per event", "ingest",
     lambda t: ({"files": good_root(t)}, {**DIMUON, "selection": "Muon_pt > 20"}), ["one boolean per event"]),
    ("duplicated feature names", "ingest",
     lambda t: ({"files": flat_h5(t)}, {"source": "hdf5", "name": "t", "features": ["x", "x"]}),
     ["duplicated feature names", "x"]),
    ("dataset with a single event", "split", lambda t: ({"events": event_file(t, 1)}, {"seed": 0}),
     ["1 event(s) are too few"]),
    ("too few events for the split", "split", lambda t: ({"events": event_file(t, 40)}, {"seed": 0}),
     ["40 event(s) are too few", "truth_a"]),
]

OUTPUT_NAME = {"ingest": "events", "split": "split"}


@pytest.mark.parametrize("case, stage, make, words", INPUT_CASES, ids=[c[0] for c in INPUT_CASES])
def test_bad_input_stops_the_stage_cleanly(tmp_path, capsys, case, stage, make, words):
    inputs, params = make(tmp_path)
    if stage == "ingest":  # the rule's record of a dataset block: its name, source, kind and options
        block = {k: v for k, v in params.items() if k != "name"}
        config = {"datasets": {params["name"]: {**block, "files": inputs["files"]}}}
        params = IngestParams.from_config(config, params["name"]).to_dict()
    out = tmp_path / "out" / f"{OUTPUT_NAME[stage]}.h5"
    argv = [stage, *sum((["--in", f"{k}={v}"] for k, v in inputs.items()), []),
            "--out", f"{OUTPUT_NAME[stage]}={out}", "--params", json.dumps(params)]
    assert cli.main(argv) == 2, f"{case}: the stage did not refuse its input"
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"hepgenbench {stage}: error:"), f"{case}: {err}"
    assert "Traceback" not in err
    for word in words:
        assert word in err, f"{case}: {err!r} does not mention {word!r}"
    leftovers = list(out.parent.glob("*")) if out.parent.exists() else []
    assert not leftovers, f"{case}: left {leftovers} behind"


def test_bad_transform_in_preprocess_names_the_feature(tmp_path, capsys):
    events = EventSet(np.random.default_rng(0).random((200, 1)) + 1, ["mass"], transforms=[{"type": "sqrt"}])
    write_events(tmp_path / "events.h5", events)
    write_split(str(tmp_path / "split.h5"), split_indices(200, SplitFractions(), 0), 0)
    argv = ["preprocess", "--in", f"events={tmp_path / 'events.h5'}", "--in", f"split={tmp_path / 'split.h5'}",
            "--out", f"transform={tmp_path / 'transform.json'}"]
    assert cli.main(argv) == 2
    assert "feature 'mass': unknown transform type 'sqrt'" in capsys.readouterr().err
    assert not (tmp_path / "transform.json").exists()


# --------------------------------------------------------------------------- 3. accepted with a warning
def test_constant_feature_is_kept_with_a_warning():
    events = EventSet(np.c_[np.full(100, 3.0), np.arange(100.0)], ["const", "x"])
    with pytest.warns(UserWarning, match="feature 'const' is constant"):
        pre = Preprocessor.fit(events)
    np.testing.assert_allclose(pre.inverse(pre.forward(events.features)), events.features)


def test_gpu_requested_without_one_falls_back_to_cpu():
    import torch

    if torch.cuda.is_available():
        assert select_device("cuda").type == "cuda"
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        device = select_device("cuda")
    assert device.type == "cpu"
    assert any("no CUDA device is present; using the CPU" in str(w.message) for w in caught)
