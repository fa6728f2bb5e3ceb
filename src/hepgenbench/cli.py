"""``hepgenbench <stage>``: the one entry point the Snakemake rules call.

Every stage takes named files (``--in NAME=PATH``, ``--out NAME=PATH``, repeatable; a
name given twice becomes a list), its parameter record as JSON (``--params``, built by the
rule from the config: :mod:`hepgenbench.records`) and the rule's ``--threads``. Errors in user input are printed as one clear line, without a
traceback, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict

from hepgenbench.errors import InputError
from hepgenbench.records import STAGE_PARAMS

#: Every stage is ``hepgenbench.stages.<name>(inputs, outputs, params, threads)``; the table
#: gives the record its ``--params`` are validated into.
STAGES = STAGE_PARAMS


def _named_paths(pairs: list[str]) -> dict[str, str | list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep:
            raise SystemExit(f"expected NAME=PATH, got '{pair}'")
        grouped[name].append(path)
    return {k: v[0] if len(v) == 1 else v for k, v in grouped.items()}


def run(stage: str, inputs: dict, outputs: dict, params: dict, threads: int) -> None:
    """Run ``stage`` on the named files with its parameters validated into its record."""
    # torch and numpy read these at import: set them before either is imported.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    # The stages hand POT numpy arrays only. Its torch backend would import torch into
    # every evaluate job, about 2 s of each one's start, for nothing.
    os.environ.setdefault("POT_BACKEND_DISABLE_PYTORCH", "1")
    from hepgenbench import stages

    record = STAGES[stage].from_dict(params, where=f"--params of {stage}")
    getattr(stages, stage)(inputs, outputs, record, threads)


def _params(text: str) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"--params is not valid JSON ({err})") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hepgenbench", description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--in", dest="inputs", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--out", dest="outputs", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--params", default="{}", help="the stage's parameter record as JSON")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        run(args.stage, _named_paths(args.inputs), _named_paths(args.outputs), _params(args.params), args.threads)
    except InputError as err:
        # One line, so that it is the last line of the rule's log that Snakemake prints.
        message = " ".join(line.strip() for line in str(err).splitlines())
        print(f"hepgenbench {args.stage}: error: {message}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
