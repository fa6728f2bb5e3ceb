"""The model families as the workflow sees them, without importing torch.

The :class:`~hepgenbench.models.base.Generator` classes are the one source of truth: their
names, capabilities (likelihood, condition, density training, cells, the dataset kinds
they need) and hyperparameter defaults. Importing them costs torch's import, about 2 s,
which the Snakefile must not pay on every parse (and a cluster re-parses it in every
job). So the catalogue keeps a *card* per family in a JSON cache, written by a
subprocess (``python -m hepgenbench.catalogue``) that does import the classes, and keyed
by a fingerprint of everything the cards are made from:

* the source files of ``hepgenbench.models`` (a new module there is a new family);
* the installed ``hepgenbench.models`` entry points, their distributions' versions and
  the source of the modules they name;
* the ``"package.module:Class"`` families that the config names, and their source.

A hit reads one small JSON file. The same cards validate a config's hyperparameters at
parse time, with :func:`coerce_hparams`, the function the classes themselves use, so that
a misspelt key fails before any job runs, with the same message as in the train job.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import yaml

from hepgenbench.errors import InputError

#: Entry-point group through which an installed package declares its families.
ENTRY_POINT_GROUP = "hepgenbench.models"
#: A family named by its class in a config: ``family: "package.module:Class"``.
TARGET_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_.]*$"
#: Where the Snakefile keeps the cache, relative to the working directory.
DEFAULT_CACHE_DIR = Path(".snakemake") / "hepgenbench"
#: Bumped when a card gains or changes a field: old caches are then misses.
CARD_FORMAT = 1


def is_target(family: str) -> bool:
    """``family`` names a class (``"package.module:Class"``) rather than a registered family."""
    return isinstance(family, str) and re.match(TARGET_PATTERN, family) is not None


# ----------------------------------------------------------------------------------------
# Hyperparameters: checked and coerced here, by the classes and at parse time alike.


def as_json_value(value: Any) -> Any:
    """A default as the card stores it: tuples become lists, everything else as it is."""
    if isinstance(value, (tuple, list)):
        return [as_json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): as_json_value(v) for k, v in value.items()}
    return value


def _coerce_like(default: Any, value: Any, key: str) -> Any:
    """``value`` as the type of ``default``; a ``None`` default accepts anything."""
    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise TypeError("true or false")
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeError("an integer")
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError("a number")
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise TypeError("a string")
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise TypeError("a list")
        if not default:
            return tuple(value)
        try:
            return tuple(_coerce_like(default[0], v, key) for v in value)
        except TypeError as err:
            raise TypeError(f"a list, each element {err}") from None
    if isinstance(default, Mapping):
        if isinstance(value, Mapping):
            return dict(value)
        raise TypeError("a mapping")
    return value


def coerce_hparams(
    family: str, defaults: Mapping[str, Any], choices: Mapping[str, Iterable[Any]], given: Mapping[str, Any], where: str
) -> dict[str, Any]:
    """The hyperparameters ``given`` to ``family``, checked against its defaults and coerced.

    An unknown key, a value of the wrong type (the default's: a list default takes a list,
    its elements the type of the default's first) or a value outside ``choices`` raises
    :class:`InputError` naming ``<where>.<key>``. Lists come back as tuples.
    """
    out: dict[str, Any] = {}
    for key, value in given.items():
        if key not in defaults:
            raise InputError(
                f"config key {where}.{key}: unknown hyperparameter of model family '{family}'; "
                f"known: {', '.join(sorted(defaults)) or '(none)'}"
            )
        allowed = list(choices.get(key, ()))
        if allowed and value not in allowed:
            raise InputError(f"config key {where}.{key}: unknown {key} {value!r} of model family '{family}'; expected one of {allowed}")
        try:
            out[key] = _coerce_like(defaults[key], value, key)
        except TypeError as err:
            raise InputError(
                f"config key {where}.{key}: expected {err} (like the default {defaults[key]!r}), got {value!r}"
            ) from None
    return out


# ----------------------------------------------------------------------------------------
# Cards


@dataclass(frozen=True)
class FamilyCard:
    """What the workflow needs to know of a family, without its class."""

    name: str
    #: ``"module:Class"``: where the class lives.
    target: str
    has_likelihood: bool = False
    likelihood_is_bound: bool = False
    supports_condition: bool = True
    trains_on_density: bool = False
    models_cells: bool = False
    #: Dataset kinds the family can train on; empty: any.
    kinds: tuple[str, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)
    choices: dict[str, list[Any]] = field(default_factory=dict)
    summary: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FamilyCard:
        return cls(**{**d, "kinds": tuple(d.get("kinds", ()))})

    def needs(self) -> str:
        """Why the family is bound to :attr:`kinds`, in words for an error message."""
        if self.trains_on_density:
            return "trains on a known density"
        if self.models_cells:
            return "models calorimeter cells"
        return f"needs a dataset of kind {', '.join(self.kinds)}"

    def check_hparams(self, given: Mapping[str, Any], where: str) -> dict[str, Any]:
        """``given`` checked and coerced as the class will (:func:`coerce_hparams`)."""
        return coerce_hparams(self.name, self.defaults, self.choices, given, where)


class Catalogue(Mapping[str, FamilyCard]):
    """The family cards by name (a config's ``"module:Class"`` families by that string)."""

    def __init__(self, cards: Iterable[FamilyCard]) -> None:
        self._cards = {c.name: c for c in cards}

    def __getitem__(self, name: str) -> FamilyCard:
        if name not in self._cards:
            raise InputError(f"unknown model family '{name}'; known families: {', '.join(self.names())}")
        return self._cards[name]

    def __contains__(self, name: object) -> bool:
        return name in self._cards

    def __iter__(self):
        return iter(self._cards)

    def __len__(self) -> int:
        return len(self._cards)

    def names(self) -> list[str]:
        return sorted(self._cards)

    def family_schema(self) -> dict[str, Any]:
        """The JSON-schema fragment of ``models.*.family``: one of the known families."""
        from hepgenbench.records import EXTERNAL

        return {"enum": [*self.names(), EXTERNAL],
                "description": "a registered model family, \"package.module:Class\", or external (samples: a file)"}

    def config_schema(self, path: str | Path, cache_dir: str | Path = DEFAULT_CACHE_DIR) -> str:
        """The config schema at ``path`` with the family enum filled in from the cards,
        written beside the cache; returns its absolute path (what ``validate`` reads)."""
        schema = yaml.safe_load(Path(path).read_text())
        schema["$defs"]["model"]["properties"]["family"] = self.family_schema()
        text = json.dumps(schema, indent=1, sort_keys=True)
        out = Path(cache_dir).resolve() / f"config.schema-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
        if not out.is_file():
            _atomic_write(out, text)
        return str(out)


# ----------------------------------------------------------------------------------------
# Fingerprint and cache (torch-free)


def _module_file(module: str) -> Path | None:
    """The source file of ``module``, found without executing it or its parents."""
    if module in sys.modules and getattr(sys.modules[module], "__file__", None):
        return Path(sys.modules[module].__file__)
    parts = module.split(".")
    spec = None
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        try:
            spec = find(parts[0], None) if find else None
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            break
    for i in range(1, len(parts)):
        if spec is None or not spec.submodule_search_locations:
            return None
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), list(spec.submodule_search_locations))
    if spec is None or not spec.has_location or not spec.origin:
        return None
    return Path(spec.origin)


def _hash_module(h: hashlib._Hash, module: str) -> None:
    """The module's source, and its siblings' when it belongs to a package."""
    path = _module_file(module)
    if path is None or not path.is_file():
        h.update(f"{module}:unlocated".encode())
        return
    files = sorted(path.parent.glob("*.py")) if ("." in module or path.name == "__init__.py") else [path]
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())


def plugin_entry_points() -> list[Any]:
    """The installed ``hepgenbench.models`` entry points, sorted by name."""
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name, ep.value))


def fingerprint(targets: Iterable[str] = ()) -> str:
    """A hash of everything the cards are built from (see the module doc)."""
    h = hashlib.sha256(f"card format {CARD_FORMAT}\n{sys.executable}\n".encode())
    spec = importlib.util.find_spec("hepgenbench.models")  # imports hepgenbench only, not the models
    models_dir = Path(list(spec.submodule_search_locations)[0])
    for f in sorted(models_dir.glob("*.py")) + [Path(__file__)]:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    for ep in plugin_entry_points():
        dist = getattr(ep, "dist", None)
        h.update(f"entry point {ep.name}={ep.value} {getattr(dist, 'name', '?')} {getattr(dist, 'version', '?')}\n".encode())
        _hash_module(h, ep.value.partition(":")[0])
    for target in sorted(set(targets)):
        h.update(f"target {target}\n".encode())
        _hash_module(h, target.partition(":")[0])
    return h.hexdigest()


def config_targets(config: Mapping[str, Any]) -> list[str]:
    """The ``"module:Class"`` families a config names (read before the schema has checked it)."""
    models = config.get("models") if isinstance(config, Mapping) else None
    if not isinstance(models, Mapping):
        return []
    return sorted({spec["family"] for spec in models.values()
                   if isinstance(spec, Mapping) and is_target(spec.get("family", ""))})


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_catalogue(config: Mapping[str, Any] | None = None, targets: Iterable[str] = (),
                   cache_dir: str | Path = DEFAULT_CACHE_DIR) -> Catalogue:
    """The cards of every registered family and of the config's ``"module:Class"`` families.

    Read from the cache when its fingerprint matches; otherwise built in a subprocess that
    imports the classes (this process never imports torch).
    """
    targets = sorted(set(targets) | set(config_targets(config or {})))
    path = Path(cache_dir) / f"families-{fingerprint(targets)[:24]}.json"
    if not path.is_file():
        cmd = [sys.executable, "-m", "hepgenbench.catalogue", "--out", str(path)]
        for t in targets:
            cmd += ["--target", t]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
            raise InputError(f"the model families could not be loaded: {lines[-1] if lines else 'exit ' + str(proc.returncode)}")
    return Catalogue(FamilyCard.from_dict(d) for d in json.loads(path.read_text())["families"])


def build_cards(targets: Iterable[str] = ()) -> list[FamilyCard]:
    """Cards from the classes themselves (imports torch and every family)."""
    from hepgenbench.models.base import families, resolve

    classes = dict(families())
    for t in targets:
        classes[t] = resolve(t)
    return [cls.card(name) for name, cls in sorted(classes.items())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write the model-family cards (used by the workflow's catalogue)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--target", action="append", default=[], help='a "package.module:Class" family to include')
    args = parser.parse_args(argv)
    try:
        cards = build_cards(args.target)
    except InputError as err:
        print(f"InputError: {err}", file=sys.stderr)
        return 1
    _atomic_write(Path(args.out), json.dumps({"format": CARD_FORMAT, "families": [asdict(c) for c in cards]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
