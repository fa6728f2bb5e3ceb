"""The kind and source registries, and the per-source validation of a dataset block."""

from __future__ import annotations

import copy
from typing import Any

from hepgenbench.errors import InputError
from hepgenbench.kinds.base import DatasetKind, Source

#: registered kinds by name, and every source by its ``source:`` value
KINDS: dict[str, DatasetKind] = {}
SOURCES: dict[str, Source] = {}


def register_source(cls: type[Source]) -> type[Source]:
    """Register a source (a kind's own sources are registered with the kind)."""
    if cls.name in SOURCES and type(SOURCES[cls.name]) is not cls:
        raise ValueError(f"source '{cls.name}' is registered twice ({type(SOURCES[cls.name]).__name__}, {cls.__name__})")
    SOURCES[cls.name] = cls()
    return cls


def register(cls: type[DatasetKind]) -> type[DatasetKind]:
    """Class decorator: register a kind and its own sources."""
    if cls.name in KINDS and type(KINDS[cls.name]) is not cls:
        raise ValueError(f"kind '{cls.name}' is registered twice ({type(KINDS[cls.name]).__name__}, {cls.__name__})")
    KINDS[cls.name] = cls()
    for src in cls.sources:
        if src.kind != cls.name:
            raise ValueError(f"source '{src.name}' of kind '{cls.name}' says it yields kind '{src.kind}'")
        register_source(src)
    return cls


def get(name: str) -> DatasetKind:
    """The registered kind ``name``; an unknown name is an :class:`InputError`."""
    try:
        return KINDS[name]
    except KeyError:
        raise InputError(f"unknown dataset kind '{name}'; known kinds: {', '.join(sorted(KINDS))}") from None


def source(name: str) -> Source:
    """The registered source ``name``; an unknown name is an :class:`InputError`."""
    try:
        return SOURCES[name]
    except KeyError:
        raise InputError(f"unknown source '{name}'; known sources: {', '.join(sorted(SOURCES))}") from None


def kinds_read_by(source_name: str) -> list[str]:
    """The kinds a shared reader may yield (those listing it in ``readers``)."""
    return sorted(name for name, kind in KINDS.items() if source_name in kind.readers)


def kind_of(block: dict[str, Any]) -> DatasetKind:
    """The kind of a dataset config block: its source's, or its ``kind:`` for a shared reader."""
    src = source(block["source"])
    return get(src.kind or block.get("kind", "generic"))


def embedded_sources() -> dict[str, str]:
    """Generated sources and the kind each yields."""
    return {name: s.kind for name, s in SOURCES.items() if s.embedded}


def source_schema(name: str) -> dict[str, Any]:
    """The config-schema fragment of source ``name``."""
    return source(name).schema(kinds_read_by(name))


def dataset_schema() -> dict[str, Any]:
    """The schema of one dataset block: ``oneOf`` the sources' fragments (for tools and
    docs; :func:`validate_dataset` checks a block against its own source's fragment, which
    names the offending key where a failed ``oneOf`` only says that no branch matched)."""
    return {"type": "object", "required": ["source"],
            "properties": {"source": {"enum": sorted(SOURCES)}},
            "oneOf": [source_schema(name) for name in sorted(SOURCES)]}


def validate_dataset(name: str, block: Any) -> dict[str, Any]:
    """Check dataset ``name``'s config block against its source's fragment and return a
    copy with the fragment's defaults filled in; a bad block is one :class:`InputError`
    line naming ``datasets.<name>.<key>``."""
    import jsonschema

    where = f"datasets.{name}"
    if not isinstance(block, dict):
        raise InputError(f"config key {where}: expected a mapping with a 'source', got {type(block).__name__}")
    if "source" not in block:
        raise InputError(f"config key {where}: no 'source'; known sources: {', '.join(sorted(SOURCES))}")
    if block["source"] not in SOURCES:
        raise InputError(f"config key {where}.source: unknown source '{block['source']}'; "
                         f"known sources: {', '.join(sorted(SOURCES))}")
    schema = source_schema(block["source"])
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(block), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        raise InputError(_readable(errors[0], where, block["source"]))
    if "transforms" in block:
        from hepgenbench.preprocess.base import check_specs

        check_specs(block["transforms"], f"{where}.transforms")
    out = copy.deepcopy(block)
    for key, prop in schema["properties"].items():
        if "default" in prop:
            out.setdefault(key, copy.deepcopy(prop["default"]))
    if "kind" in out and block["source"] and SOURCES[block["source"]].kind is None:
        get(out["kind"])
    return out


def _readable(error, where: str, source_name: str) -> str:
    """One line for a schema error, naming the full config key."""
    path = "".join(f".{p}" for p in error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return (f"config key {where}{path}.{unknown[0]}: not an option of source '{source_name}' here; "
                f"the options: {', '.join(allowed)}")
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return f"config key {where}{path}.{missing[0]}: required (source '{source_name}')"
    if error.validator in ("oneOf", "anyOf"):
        expected = " or ".join(str(sub.get("type", sub)) for sub in error.validator_value)
        return f"config key {where}{path}: {error.instance!r} is not valid; expected {expected}"
    return f"config key {where}{path}: {error.message}"
