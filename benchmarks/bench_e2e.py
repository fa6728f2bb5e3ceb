"""End to end: ``snakemake --cores 2`` on a config in a fresh directory, and Snakemake's overhead.

Copies the project's tracked files into a temporary directory, puts a tiny ``hepgenbench``
shim first on ``PATH`` (every rule calls that CLI) that records each stage command's start
and end (``date +%s.%N``) and its ``--in``/``--out`` files, and runs Snakemake there.

Definitions (all from one run):

* wall W: the ``snakemake`` command, start to exit.
* busy B: the measure of the union of the stage commands' [start, end] intervals: the time
  during which at least one job's own command was running.
* **overhead = W − B**: time in which no job ran (start-up, DAG building, job selection,
  output checks, the shell and wrapper around each job, the end). Time a wrapper spends
  while another job runs on the other core is hidden by the union; the per-job figure
  (log interval − own time) shows it separately.
* makespan lower bound L = max(critical path, Σ own / cores) from the jobs' own times and
  their file dependencies: no scheduler could finish faster with these jobs.

A previous run's Snakemake log (``--log DIR/.snakemake/log/*.log``) can be read instead,
with 1 s timestamps (the full default config is not re-run unless asked).

    python benchmarks/bench_e2e.py --config config/quick.yaml --out benchmarks/results/e2e.md
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from _output import write_outputs  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

REPO = Path(__file__).resolve().parents[1]

SHIM = """#!/bin/bash
# Records the stage command's own interval; everything else passes through.
start=$(date +%s.%N)
"{real}" "$@"
rc=$?
end=$(date +%s.%N)
printf '%s\\t%s\\t%s\\t%s\\n' "$start" "$end" "$rc" "$*" >> "{record}"
exit $rc
"""


@dataclass
class Job:
    """One stage command: its own interval and the files it read and wrote."""

    stage: str
    start: float
    end: float
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.end - self.start


def union_length(intervals: list[tuple[float, float]]) -> float:
    """Measure of a union of intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def critical_path(jobs: list[Job]) -> float:
    """Longest chain of own times along file dependencies (a job needs the writers of its inputs)."""
    writer = {out: i for i, job in enumerate(jobs) for out in job.outputs}
    longest: dict[int, float] = {}

    def finish(i: int) -> float:
        if i not in longest:
            before = [finish(writer[p]) for p in jobs[i].inputs if p in writer and writer[p] != i]
            longest[i] = jobs[i].seconds + max(before, default=0.0)
        return longest[i]

    return max((finish(i) for i in range(len(jobs))), default=0.0)


def parse_shim_record(path: Path) -> list[Job]:
    jobs = []
    for line in path.read_text().splitlines():
        start, end, _rc, args = line.split("\t", 3)
        tokens = args.split()
        named = lambda flag: [t.split("=", 1)[1] for f, t in zip(tokens, tokens[1:]) if f == flag]  # noqa: E731
        jobs.append(Job(tokens[0], float(start), float(end), named("--in"), named("--out")))
    return jobs


_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def parse_snakemake_log(path: Path) -> tuple[list[tuple[str, float, float]], float, float]:
    """Job intervals ``(rule, start, end)`` and the first/last timestamps of a Snakemake log.

    A job starts at the stamp above its ``rule X:``/``localrule X:`` line and ends at the
    stamp above ``Finished jobid: N``; stamps have a resolution of 1 s.
    """
    stamp, starts, intervals, first, last = None, {}, [], None, None
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        m = _STAMP.match(line.strip())
        if m:
            stamp = dt.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y").timestamp()
            first = stamp if first is None else first
            last = stamp
            continue
        rule = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if rule and stamp is not None:
            jobid = next((ln.split(":")[1].strip() for ln in lines[i + 1:i + 12] if ln.strip().startswith("jobid:")), None)
            starts[jobid] = (rule.group(1), stamp)
        done = re.match(r"^Finished jobid: (\d+)", line.strip())
        if done and done.group(1) in starts and stamp is not None:
            name, begun = starts.pop(done.group(1))
            intervals.append((name, begun, stamp))
    header = re.search(r"Date: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", path.read_text())
    if header:
        first = dt.datetime.strptime(header.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
    return intervals, first or 0.0, last or 0.0


def benchmark_seconds(results: Path, column: str = "s") -> dict[str, float]:
    """A column of every job's ``benchmark:`` file (``s``: own wall time; ``cpu_time``), by file path."""
    out = {}
    for tsv in sorted(results.glob("benchmarks/**/*.tsv")):
        with tsv.open() as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if rows and rows[-1].get(column) not in (None, "", "NA", "-"):
            out[str(tsv.relative_to(results))] = float(rows[-1][column])
    return out


def fresh_copy(dest: Path) -> None:
    """The project's tracked files (working-tree contents), without results or caches."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file() and not name.startswith(("results/", "benchmarks/")):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


@dataclass
class E2EResult:
    config: str
    cores: int
    returncode: int
    wall_s: float
    busy_s: float
    overhead_s: float
    overhead_fraction: float
    startup_s: float
    tail_s: float
    n_jobs: int
    sum_own_s: float
    critical_path_s: float
    makespan_lower_bound_s: float
    benchmarked_sum_s: float
    benchmarked_cpu_s: float
    unbenchmarked_own_s: float
    per_stage: dict[str, dict[str, float]]
    log_busy_s: float | None
    log_wrapper_mean_s: float | None
    load_before: float
    load_after: float
    scontrol_s: float | None = None


def scontrol_seconds() -> float | None:
    """How long ``scontrol show config`` takes here (None without Slurm's client).

    snakemake-executor-plugin-slurm runs it when Snakemake loads its plugins, at every
    start, even of a local run, with a 10 s timeout: with the client installed but no
    controller answering, each start waits that long (2026-12-02, plugin 2.x).
    """
    if shutil.which("scontrol") is None:
        return None
    t0 = time.perf_counter()
    try:
        subprocess.run(["scontrol", "show", "config"], capture_output=True, timeout=15)
    except subprocess.TimeoutExpired:
        pass
    return time.perf_counter() - t0


def run_e2e(config: str, cores: int, workdir: Path) -> E2EResult:
    fresh_copy(workdir)
    shim_dir, record = workdir / ".shim", workdir / ".shim" / "jobs.tsv"
    shim_dir.mkdir()
    real = shutil.which("hepgenbench", path=str(Path(sys.executable).parent)) or shutil.which("hepgenbench")
    (shim_dir / "hepgenbench").write_text(SHIM.format(real=real, record=record))
    (shim_dir / "hepgenbench").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}", "CONDOR_CONFIG": "/dev/null"}
    scontrol_s = scontrol_seconds()
    load_before = os.getloadavg()[0]
    t0_epoch, t0 = time.time(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), "--configfile", config],
                          cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    t1_epoch = t0_epoch + wall
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
    jobs = parse_shim_record(record) if record.exists() else []
    busy = union_length([(j.start, j.end) for j in jobs])
    own = sum(j.seconds for j in jobs)
    cp = critical_path(jobs)
    tsv = benchmark_seconds(workdir / "results")
    benchmarked_stages = {"source", "ingest", "train", "sample", "evaluate", "plots"}
    per_stage: dict[str, dict[str, float]] = {}
    for j in jobs:
        s = per_stage.setdefault(j.stage, {"jobs": 0, "own_s": 0.0})
        s["jobs"] += 1
        s["own_s"] += j.seconds
    log_busy = log_wrapper = None
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    if logs:
        intervals, _, _ = parse_snakemake_log(logs[-1])
        log_busy = union_length([(a, b) for _, a, b in intervals])
        spans = sorted(b - a for _, a, b in intervals if _ != "all")
        log_wrapper = (sum(spans) - own) / max(1, len(jobs))
    return E2EResult(
        config=config, cores=cores, returncode=proc.returncode, wall_s=wall, busy_s=busy, scontrol_s=scontrol_s,
        overhead_s=wall - busy, overhead_fraction=(wall - busy) / wall,
        startup_s=(min(j.start for j in jobs) - t0_epoch) if jobs else wall,
        tail_s=(t1_epoch - max(j.end for j in jobs)) if jobs else 0.0,
        n_jobs=len(jobs), sum_own_s=own, critical_path_s=cp, makespan_lower_bound_s=max(cp, own / cores),
        benchmarked_sum_s=sum(tsv.values()),
        benchmarked_cpu_s=sum(benchmark_seconds(workdir / "results", "cpu_time").values()),
        unbenchmarked_own_s=sum(j.seconds for j in jobs if j.stage not in benchmarked_stages),
        per_stage=per_stage, log_busy_s=log_busy, log_wrapper_mean_s=log_wrapper,
        load_before=load_before, load_after=os.getloadavg()[0],
    )


def parse_time_file(path: Path) -> float | None:
    """Wall seconds from a ``time`` output: GNU ``-v`` / ``-p``, bash ``real 1m2.3s``, or a number."""
    if not path.exists() or not path.read_text().strip():
        return None
    text = path.read_text()
    m = re.search(r"Elapsed \(wall clock\) time.*?: (?:(\d+):)?(\d+):(\d+(?:\.\d+)?)", text)
    if m:
        return int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    m = re.search(r"real\s+(?:(\d+)m)?([\d.]+)s?", text)
    if m:
        return int(m.group(1) or 0) * 60 + float(m.group(2))
    m = re.search(r"([\d.]+)\s*(?:s|elapsed|$)", text.strip())
    return float(m.group(1)) if m else None


def previous_run(run_dir: Path, time_file: Path | None, cores: int) -> dict:
    """Wall time and log-based overhead of a finished run (1 s resolution)."""
    logs = sorted((run_dir / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        return {"run_dir": str(run_dir), "error": "no Snakemake log"}
    intervals, first, last = parse_snakemake_log(logs[-1])
    jobs = [(a, b) for name, a, b in intervals if name != "all"]
    snakemake_wall = last - first
    busy = union_length(jobs)
    tsv = benchmark_seconds(run_dir / "results")
    provided = re.search(r"Provided cores: (\d+)", logs[-1].read_text())
    cores = int(provided.group(1)) if provided else cores
    return {
        "run_dir": str(run_dir), "log": str(logs[-1]), "time_file_wall_s": parse_time_file(time_file) if time_file else None,
        "snakemake_wall_s": snakemake_wall, "busy_s": busy, "overhead_s": snakemake_wall - busy,
        "overhead_fraction": (snakemake_wall - busy) / snakemake_wall if snakemake_wall else None,
        "n_jobs": len(jobs), "benchmarked_sum_s": sum(tsv.values()), "cores": cores,
        "benchmarked_cpu_s": sum(benchmark_seconds(run_dir / "results", "cpu_time").values()),
        "finished": "steps (100%) done" in logs[-1].read_text(),
    }


def to_markdown(r: E2EResult, previous: dict | None, target_s: float) -> list[str]:
    ok = lambda good: "PASS" if good else "MISS"  # noqa: E731
    lines = [
        f"`snakemake --cores {r.cores} --configfile {r.config}` in a fresh copy of the project (exit {r.returncode}, "
        f"{r.n_jobs} stage commands; load average {r.load_before:.1f} before, {r.load_after:.1f} after).",
        "",
        "| figure | measured | target | |",
        "|---|---|---|---|",
        f"| wall time W | {r.wall_s:.0f} s | ≤ {target_s:.0f} s | {ok(r.returncode == 0 and r.wall_s <= target_s)} |",
        f"| busy B (union of the stage commands' own intervals) | {r.busy_s:.1f} s | | |",
        f"| **overhead (W − B) / W** | {r.overhead_s:.1f} s = {100 * r.overhead_fraction:.1f} % | ≤ 5 % | "
        f"{ok(r.overhead_fraction <= 0.05)} |",
        f"| … of which before the first job / after the last | {r.startup_s:.1f} s / {r.tail_s:.1f} s | | |",
        "| … of that, `scontrol show config`, which the Slurm executor plugin runs at each Snakemake start | "
        + ("no Slurm client here" if r.scontrol_s is None else f"{r.scontrol_s:.1f} s") + " | | |",
        f"| Σ own times (all jobs) / benchmark TSVs only | {r.sum_own_s:.1f} s / {r.benchmarked_sum_s:.1f} s | | |",
        f"| own time of jobs without a `benchmark:` (merge, split, preprocess, report) | {r.unbenchmarked_own_s:.1f} s | | |",
        f"| makespan lower bound L = max(critical path {r.critical_path_s:.1f} s, Σ own / {r.cores}) | "
        f"{r.makespan_lower_bound_s:.1f} s | | W / L = {r.wall_s / r.makespan_lower_bound_s:.2f} |",
    ]
    lines.append(f"| Σ CPU time of the benchmarked jobs / {r.cores} cores: the makespan on an otherwise idle machine "
                 f"cannot be shorter (load average during the run is what lengthened W beyond it) | "
                 f"{r.benchmarked_cpu_s / r.cores:.0f} s | | |")
    if r.log_wrapper_mean_s is not None:
        lines.append(f"| per job: Snakemake log interval − own time (1 s stamps), mean | {r.log_wrapper_mean_s:.2f} s | | |")
    lines += ["", "Own time per stage: " + ", ".join(f"{k} {v['own_s']:.1f} s ({v['jobs']})" for k, v in r.per_stage.items()), ""]
    if previous:
        if previous.get("error"):
            lines += [f"Full default run in `{previous['run_dir']}`: {previous['error']}.", ""]
        else:
            wall = previous["time_file_wall_s"]
            lines += [
                f"Full default config, read from the finished run in `{previous['run_dir']}` (log `{Path(previous['log']).name}`, "
                f"1 s timestamps; {'finished' if previous['finished'] else 'NOT finished'}):",
                "",
                "| figure | measured | target | |",
                "|---|---|---|---|",
                f"| Snakemake wall time (log header to last stamp) | {previous['snakemake_wall_s'] / 60:.1f} min | ≤ 30 min | "
                f"{ok(previous['finished'] and previous['snakemake_wall_s'] <= 1800)} |",
                f"| time file (whole command, may include the install) | {'—' if wall is None else f'{wall / 60:.1f} min'} | | |",
                f"| overhead (W − union of job intervals) / W | {previous['overhead_s']:.0f} s = "
                f"{100 * previous['overhead_fraction']:.1f} % | ≤ 5 % | {ok(previous['overhead_fraction'] <= 0.05)} |",
                f"| jobs / Σ benchmark TSV times | {previous['n_jobs']} / {previous['benchmarked_sum_s']:.0f} s | | |",
                f"| Σ CPU time of the benchmarked jobs / {previous['cores']} cores | "
                f"{previous['benchmarked_cpu_s'] / previous['cores'] / 60:.1f} min | | |",
                "",
            ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/quick.yaml")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--target", type=float, default=180.0, help="wall-time target in seconds")
    parser.add_argument("--previous", default=None, help="directory of a finished default run to read, not re-run")
    parser.add_argument("--previous-time", default=None, help="its `time` output file")
    parser.add_argument("--keep", action="store_true", help="keep the run directory")
    parser.add_argument("--out", default="benchmarks/results/e2e.md")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="hgb-e2e-"))
    try:
        result = run_e2e(args.config, args.cores, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    previous = None
    if args.previous:
        previous = previous_run(Path(args.previous), Path(args.previous_time) if args.previous_time else None, args.cores)
    lines = ["# End to end", "", *to_markdown(result, previous, args.target)]
    write_outputs(args.out, lines, args.json, {"run": asdict(result), "previous": previous})


if __name__ == "__main__":
    main()
