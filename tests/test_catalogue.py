"""The torch-free catalogue of model families that the workflow reads: it lists what the
registry holds, the schema's family enum comes from it, it checks hyperparameters when
the Snakefile is parsed, and families join it from a new module, an installed package
(entry point) or a ``"package.module:Class"`` in the config, without an edit elsewhere."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from conftest import ROOT, copy_workflow, run_snakemake, write_config

from hepgenbench import catalogue
from hepgenbench.errors import InputError
from hepgenbench.models import base, families

PLUGIN = ROOT / "tests" / "plugins" / "hepgenbench_toyfamily"


def readme_recipe() -> str:
    """The first Python block of the README's "Adding a model" section."""
    section = (ROOT / "README.md").read_text().split("## Adding a model", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def small_config() -> dict:
    return {"seed": 1, "datasets": {"phasespace": {"source": "phasespace", "n_events": 2000}},
            "models": {"realnvp": {}}, "training": {"max_epochs": 2}}


def python(code: str, cwd: Path, pythonpath: list[Path | str] = ()) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_catalogue_lists_the_registry_without_importing_torch(tmp_path):
    """A miss builds the cache in a subprocess, a hit reads it: neither imports torch here."""
    code = ("import json, sys; from hepgenbench.catalogue import load_catalogue; "
            f"c = load_catalogue(cache_dir={str(tmp_path)!r}); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(json.dumps(c.names()))")
    first = python(code, tmp_path)
    assert first.returncode == 0, first.stderr
    (cache,) = tmp_path.glob("families-*.json")
    written = cache.stat().st_mtime_ns
    second = python(code, tmp_path)
    assert second.returncode == 0, second.stderr
    assert cache.stat().st_mtime_ns == written, "a hit rebuilt the cache"
    assert json.loads(first.stdout) == json.loads(second.stdout) == sorted(families())


def test_registry_schema_enum_and_catalogue_list_the_same_families(tmp_path):
    """The schema the workflow validates against (written by the Snakefile at parse time)
    has the registry's families as its enum, as the catalogue has them, and ``external``
    (samples made outside hepgenbench)."""
    wf = copy_workflow(tmp_path / "wf")
    cfg = write_config(wf, small_config())
    run_snakemake(wf, "-n", "--cores", "1", "--configfile", str(cfg), check=True, timeout=300)
    (schema_file,) = (wf / ".snakemake" / "hepgenbench").glob("config.schema-*.json")
    enum = json.loads(schema_file.read_text())["$defs"]["model"]["properties"]["family"]["enum"]
    listed = catalogue.load_catalogue(cache_dir=wf / ".snakemake" / "hepgenbench").names()
    assert sorted(set(enum) - {"external"}) == listed == sorted(families())
    assert "external" in enum and "external" not in listed
    assert {"nsf", "iaf", "hurdlevae"} <= set(enum)


@pytest.mark.parametrize("model, words", [
    ({"nsf": {"hidden_featurs": [64]}}, ["config key models.nsf.hidden_featurs: unknown hyperparameter", "known: base, bins, hidden, transforms"]),
    ({"flow": {"family": "nsf", "hidden": 64}}, ["config key models.flow.hidden: expected a list", "got 64"]),
    ({"maf": {"base": "student"}}, ["config key models.maf.base: unknown base 'student'", "'logistic'"]),
])
def test_bad_hyperparameters_fail_when_the_snakefile_is_parsed(tmp_path, model, words):
    wf = copy_workflow(tmp_path / "wf")
    cfg = write_config(wf, {**small_config(), "models": model})
    proc = run_snakemake(wf, "--cores", "1", "--configfile", str(cfg), timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for word in words:
        assert word in output, output[-3000:]
    assert not (wf / "results").exists(), "a job ran before the hyperparameters were checked"


def test_kind_bound_families_come_from_the_classes():
    cards = catalogue.Catalogue(cls.card(name) for name, cls in families().items())
    bound = {name: card.kinds for name, card in cards.items() if card.kinds}
    assert bound == {"iaf": ("phasespace",), "hurdlevae": ("calo",)}
    assert cards["iaf"].needs() == "trains on a known density" and cards["hurdlevae"].needs() == "models calorimeter cells"


def test_hyperparameters_are_coerced_as_the_defaults_say():
    card = families()["vae"].card("vae")
    assert card.check_hparams({"hidden": [32, 16.0], "beta": 2, "sample_noise": True}, "models.v") == {
        "hidden": (32, 16), "beta": 2.0, "sample_noise": True}
    for bad, expected in (({"hidden": [32, "a"]}, "a list, each element an integer"), ({"beta": "1"}, "a number"),
                          ({"sample_noise": 1}, "true or false"), ({"iw_samples": 2.5}, "an integer")):
        with pytest.raises(InputError, match=rf"config key models\.v\.{next(iter(bad))}: expected {expected}"):
            card.check_hparams(bad, "models.v")


def test_the_readme_recipe_is_the_toy_plugin():
    """The README's module is the one the plug-in test installs and runs through the DAG."""
    assert readme_recipe() == (PLUGIN / "hepgenbench_toyfamily" / "__init__.py").read_text()


def test_the_readme_recipe_as_a_module_in_the_tree_joins_the_workflow(tmp_path):
    """Following the README: its module dropped into src/hepgenbench/models/ (of a copy), and
    the config lists it. Nothing else is edited; the catalogue sees the new source and
    rebuilds, the workflow plans its jobs, and the family trains and samples."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "hepgenbench", src / "hepgenbench", ignore=shutil.ignore_patterns("__pycache__"))
    before = python("from hepgenbench.catalogue import fingerprint; print(fingerprint())", tmp_path, [src]).stdout
    (src / "hepgenbench" / "models" / "toygauss.py").write_text(readme_recipe())
    after = python("from hepgenbench.catalogue import fingerprint; print(fingerprint())", tmp_path, [src]).stdout
    assert before and after and before != after

    wf = copy_workflow(tmp_path / "wf")
    cfg = write_config(wf, {**small_config(), "models": {"toygauss": {"init_scale": 0.5}}})
    env_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env_path]))
    try:
        proc = run_snakemake(wf, "-n", "--cores", "1", "--configfile", str(cfg), timeout=300)
    finally:
        os.environ.pop("PYTHONPATH") if env_path is None else os.environ.__setitem__("PYTHONPATH", env_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert re.search(r"train\s+1", proc.stdout), proc.stdout[-2000:]

    code = ("import numpy as np, torch; from hepgenbench.models import build; from hepgenbench.train import fit, TrainSettings\n"
            "m = build('toygauss', 2, init_scale=0.5)\n"
            "x = np.random.default_rng(0).normal([1.0, -2.0], [0.5, 2.0], (4000, 2))\n"
            "fit(m, x[:3000], x[3000:], settings=TrainSettings(max_epochs=40, learning_rate=3e-2), log=lambda s: None)\n"
            "s = m.sample(20000, generator=torch.Generator().manual_seed(0)).detach().numpy()\n"
            "print(s.mean(0).round(1).tolist(), s.std(0).round(1).tolist())")
    proc = python(code, tmp_path, [src])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["[1.0,", "-2.0]", "[0.5,", "2.0]"]


def test_a_family_named_by_its_class_in_the_config(tmp_path, monkeypatch):
    """``family: "module:Class"`` with a class that no one registered: it builds, saves and
    reloads by that name, and the workflow accepts it in the config."""
    module = tmp_path / "unregistered_toy.py"
    module.write_text(readme_recipe().replace('@register("toygauss")\n', ""))
    monkeypatch.syspath_prepend(str(tmp_path))
    model = base.build("unregistered_toy:ToyGaussian", 3)
    assert model.family == "unregistered_toy:ToyGaussian" and "toygauss" not in base.REGISTRY
    assert type(base.from_export(model.export())) is type(model)
    with pytest.raises(InputError, match="unregistered_toy:Nothing.*cannot be imported"):
        base.build("unregistered_toy:Nothing", 3)
    with pytest.raises(InputError, match="not a subclass of hepgenbench.models.base.Generator"):
        base.build("json:dumps", 3)

    wf = copy_workflow(tmp_path / "wf")
    cfg = write_config(wf, {**small_config(), "models": {"mine": {"family": "unregistered_toy:ToyGaussian", "init_scale": 2.0}}})
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    proc = run_snakemake(wf, "-n", "--cores", "1", "--configfile", str(cfg), timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    cfg = write_config(wf, {**small_config(), "models": {"mine": {"family": "unregistered_toy:ToyGaussian", "scale": 2.0}}})
    proc = run_snakemake(wf, "-n", "--cores", "1", "--configfile", str(cfg), timeout=300)
    assert proc.returncode != 0 and "config key models.mine.scale: unknown hyperparameter" in proc.stdout + proc.stderr


def test_entry_point_plugins_register_on_first_use(tmp_path, monkeypatch):
    """An installed package's entry point (faked here; tests/test_plugin_family.py installs a
    real one) registers its family; a broken one is named in one InputError."""
    (tmp_path / "ep_toy.py").write_text(readme_recipe().replace('@register("toygauss")\n', ""))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(base, "REGISTRY", dict(base.REGISTRY))
    monkeypatch.setattr(base, "_plugins_loaded", False)
    monkeypatch.setattr(catalogue, "plugin_entry_points",
                        lambda: [EntryPoint("epgauss", "ep_toy:ToyGaussian", catalogue.ENTRY_POINT_GROUP)])
    assert families()["epgauss"].family == "epgauss"
    assert base.build("epgauss", 2).family == "epgauss"

    monkeypatch.setattr(base, "_plugins_loaded", False)
    monkeypatch.setattr(catalogue, "plugin_entry_points",
                        lambda: [EntryPoint("broken", "ep_toy:Missing", catalogue.ENTRY_POINT_GROUP)])
    with pytest.raises(InputError, match="entry point hepgenbench.models:broken = ep_toy:Missing .* failed to load"):
        families()
