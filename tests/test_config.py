"""A bad config fails before any job runs, with a message that names the key."""

import copy

import pytest

from conftest import run_snakemake, write_config


def _with(config: dict, path: str, value) -> dict:
    """``config`` with the dotted ``path`` set to ``value`` (None deletes it)."""
    out = copy.deepcopy(config)
    node = out
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return out


BAD_CONFIGS = [
    # (case, dotted key, value, words the error must contain)
    ("unknown model family", "models.transformer", {}, ["models.transformer", "unknown model family 'transformer'"]),
    ("negative epochs", "training.max_epochs", -3, ["max_epochs", "-3", "minimum"]),
    ("missing input file", "datasets.mine", {"source": "root", "files": "nowhere/*.root", "tree": "Events"},
     ["datasets.mine.files", "nowhere/*.root", "matches no file"]),
    ("unknown top-level key", "epochs", 5, ["epochs", "Additional properties"]),
    ("unknown source", "datasets.zmumu.source", "herwig", ["herwig"]),
    ("density model on a dataset without density", "models.iaf", {"datasets": ["zmumu"]},
     ["models.iaf.datasets", "zmumu", "known density"]),
    ("pythia level", "datasets.zmumu.level", "detector", ["detector", "level"]),
    ("root source without tree", "datasets.mine", {"source": "root", "files": "Snakefile"}, ["tree"]),
]


@pytest.mark.parametrize("case, key, value, words", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_fails_before_any_job(workflow_dir, quick_config, case, key, value, words):
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
