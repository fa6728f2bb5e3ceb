"""``hepgenbench <stage>``: the one entry point the Snakemake rules call; and
``hepgenbench score``: score samples made anywhere, without Snakemake.

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
from pathlib import Path

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


def _one_line(err: InputError) -> str:
    return " ".join(line.strip() for line in str(err).splitlines())


def score_parser() -> argparse.ArgumentParser:
    from hepgenbench.scoring import FORMATS

    parser = argparse.ArgumentParser(
        prog="hepgenbench score",
        description="Score generated samples against truth with the workflow's metric suite, its truth-vs-truth "
                    "floor at the same sample size, and its report (metrics.json, metrics.csv, report.md, index.html).",
    )
    parser.add_argument("--truth", required=True, help="the truth file")
    parser.add_argument("--generated", required=True, action="append", metavar="GEN",
                        help="a generated file (repeat for several)")
    parser.add_argument("--name", action="append", metavar="NAME",
                        help="the row name of each --generated, in order (default: the file's stem)")
    parser.add_argument("--format", choices=FORMATS, help="how to read the files (default: from --config, else guessed)")
    parser.add_argument("--binning", metavar="XML", help="a CaloChallenge binning XML (the showers' geometry)")
    parser.add_argument("--particle", help="the particle of a binning XML that holds several")
    parser.add_argument("--config", metavar="YAML",
                        help="a workflow config (or one dataset block): the reading spec, seed and evaluation options")
    parser.add_argument("--dataset", help="which dataset of --config (when it has several)")
    parser.add_argument("--truth-b", metavar="TRUTH_B",
                        help="an independent truth file for the floor (default: truth split in halves)")
    parser.add_argument("--seed", type=int, help="fixes halves, subsampling and metrics (default: the config's, else 0)")
    parser.add_argument("--allow-einc-mismatch", action="store_true",
                        help="warn, rather than refuse, when a sample's incident energies differ from truth's")
    parser.add_argument("--threads", type=int,
                        help="threads of the metrics (default: all cores; 1 reproduces a workflow row to the last digit)")
    parser.add_argument("--stream", action="store_true",
                        help="CaloChallenge files: score without loading the voxels (default: when they would not fit "
                             "in --memory-budget)")
    parser.add_argument("--memory-budget", type=float, metavar="GB",
                        help="memory the in-memory path may take before showers are streamed (default: half the RAM)")
    parser.add_argument("--voxel-epochs", type=int, metavar="N",
                        help="streamed: cap the voxel classifier's epochs (default: cc22_epochs, the challenge's 50)")
    parser.add_argument("--out", required=True, metavar="DIR", help="the output directory (written all or nothing)")
    return parser


def score_main(argv: list[str]) -> int:
    """``hepgenbench score``: exit 0 with the report written, or 2 with one line."""
    args = score_parser().parse_args(argv)
    if args.threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    os.environ.setdefault("POT_BACKEND_DISABLE_PYTORCH", "1")
    from hepgenbench import scoring

    try:
        result = scoring.score_files(
            args.truth, args.generated, names=args.name, format=args.format, config=args.config,
            dataset=args.dataset, binning=args.binning, particle=args.particle, truth_b=args.truth_b, seed=args.seed,
            allow_einc_mismatch=args.allow_einc_mismatch, threads=args.threads,
            stream=True if args.stream else None, memory_budget_gb=args.memory_budget, voxel_epochs=args.voxel_epochs,
        )
        out = scoring.write_outputs(result, args.out, config=scoring.config_mapping(args.config))
    except InputError as err:
        print(f"hepgenbench score: error: {_one_line(err)}", file=sys.stderr, flush=True)
        return 2
    for warning in result.warnings:
        print(f"hepgenbench score: warning: {warning}", file=sys.stderr, flush=True)
    print(f"hepgenbench score: report written to {Path(out, 'index.html').resolve()}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["score"]:
        return score_main(argv[1:])
    parser = argparse.ArgumentParser(prog="hepgenbench", description=__doc__.splitlines()[0],
                                     epilog="`hepgenbench score --help`: score samples made anywhere.")
    parser.add_argument("stage", choices=list(STAGES))
    parser.add_argument("--in", dest="inputs", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--out", dest="outputs", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--params", default="{}", help="the stage's parameter record as JSON")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        run(args.stage, _named_paths(args.inputs), _named_paths(args.outputs), _params(args.params), args.threads)
    except InputError as err:
        # One line, so that it is the last line of the rule's log that Snakemake prints.
        print(f"hepgenbench {args.stage}: error: {_one_line(err)}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
