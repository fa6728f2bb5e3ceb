"""The Slurm and HTCondor profiles (workflow/profiles/{slurm,htcondor}).

Two levels of evidence:

* always: a dry run through each profile gives every job's resources as Snakemake
  evaluates them (rules + profile); each job is then handed to the executor plugin's own
  submission code (Slurm: ``get_submit_command`` + ``set_gres_string``; HTCondor: the
  plugin's ``run_job`` up to the schedd, with the real ``htcondor2.Submit``), and the
  resulting ``sbatch`` line / submit description must carry the rule's resources;
* marked ``slurm``: the quick benchmark runs on the single-node cluster of
  ``.ci/setup-slurm.sh`` through ``--executor slurm``, with a recording ``sbatch`` on
  PATH (tests/cluster/sbatch), one training job is killed with ``scancel`` mid-run, and the
  report must equal a local run's;
* marked ``htcondor``: the same on the single-node pool of ``.ci/setup-htcondor.sh`` (a
  Debian 13 chroot on 127.0.0.1) through the HTCondor profile, submitted by an unprivileged
  user; the schedd's own history gives each job's resources, and ``condor_rm`` kills the
  training job. Both cluster runs are compared with one local run.
"""

from __future__ import annotations

import base64
import csv
import functools
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import ROOT, copy_workflow, run_snakemake

PROFILES = ROOT / "workflow" / "profiles"
SBATCH_RECORDER = ROOT / "tests" / "cluster" / "sbatch"
QUICK = "config/quick.yaml"

# A job's end is noticed within 2 s, not Snakemake's default 10: on a one-node cluster the
# checks cost nothing, and each layer of the DAG would otherwise wait up to 10 s more.
STATUS_CHECK_FLAGS = ("--seconds-between-status-checks", "2")
# Settings for the test cluster only (no accounting database, no accounts), and a short
# first status check so that the seven layers of the DAG do not each wait 40 s.
TEST_CLUSTER_FLAGS = (
    "--slurm-no-account",
    "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "5",
    "--slurm-keep-successful-logs",
    *STATUS_CHECK_FLAGS,
)  # fmt: skip

# Cost entries of the report that measure the machine, not the model (training time,
# sampling rate, peak memory): they differ between any two runs, local or not.
MACHINE_METRIC = re.compile(r"time|rate|_s$|_s_|memory", re.IGNORECASE)  # _s_: warmup_s_cpu, seconds per device


# ---------------------------------------------------------------------------------------
# What Snakemake plans: every job of a dry run with its evaluated resources.


@dataclass(frozen=True)
class PlannedJob:
    """One job of a dry run as Snakemake printed it."""

    rule: str
    wildcards: tuple[tuple[str, str], ...]
    threads: int
    resources: dict = field(hash=False)

    @property
    def slurm_comment(self) -> str:
        """The ``--comment`` the Slurm plugin gives this job's sbatch call."""
        values = "_".join(v for _, v in self.wildcards).replace("/", "_")
        return f"rule_{self.rule}_wildcards_{values}" if values else f"rule_{self.rule}"


def _parse_value(text: str):
    try:
        return int(text)
    except ValueError:
        return {"True": True, "False": False}.get(text, text)


def parse_dry_run(text: str) -> list[PlannedJob]:
    """The jobs of ``snakemake -n`` output (rule, wildcards, threads, resources)."""
    jobs, current = [], None
    for line in text.splitlines():
        header = re.fullmatch(r"(?:local)?rule (\w+):", line)
        if header:
            if current:
                jobs.append(current)
            current = {"rule": header[1], "wildcards": (), "threads": 1, "resources": {}}
            continue
        if current is None or not line.startswith("    "):
            continue
        key, _, value = line.strip().partition(": ")
        if key == "wildcards":
            current["wildcards"] = tuple(tuple(kv.split("=", 1)) for kv in value.split(", "))
        elif key == "threads":
            current["threads"] = int(value)
        elif key == "resources":
            current["resources"] = {k: _parse_value(v) for k, v in (kv.split("=", 1) for kv in value.split(", "))}
    if current:
        jobs.append(current)
    return [PlannedJob(**job) for job in jobs]


@functools.cache  # dry runs are deterministic; several tests read the same one
def planned_jobs(workdir: Path, *args: str) -> list[PlannedJob]:
    proc = run_snakemake(workdir, "-n", *args, *(() if "--configfile" in args else ("--configfile", QUICK)), timeout=120, check=True)
    return parse_dry_run(proc.stdout + proc.stderr)


def snakefile_localrules(workdir: Path) -> frozenset[str]:
    """The rules the Snakefile runs on the submitting host (its ``localrules``).

    A dry run cannot tell (it executes locally, so every job prints as local); the
    parsed workflow can.
    """
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, Quietness, ResourceSettings

    cwd = Path.cwd()
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            workflow = api.workflow(
                resource_settings=ResourceSettings(),
                config_settings=ConfigSettings(configfiles=[workdir / QUICK]),
                snakefile=workdir / "Snakefile",
                workdir=workdir,
            )
            return frozenset(workflow._workflow._localrules)
    finally:
        os.chdir(cwd)


def remote_jobs(jobs: list[PlannedJob], local_rules: frozenset[str]) -> list[PlannedJob]:
    return [j for j in jobs if j.rule not in local_rules]


def with_profile_text(workdir: Path, name: str, replace: dict[str, str]) -> Path:
    """A copy of profile ``name`` in ``workdir`` with exact text replaced (each must occur)."""
    text = (PROFILES / name / "config.yaml").read_text()
    for old, new in replace.items():
        assert old in text, f"profile {name} no longer contains {old!r}; update the test with the profile"
        text = text.replace(old, new)
    dest = workdir / "profiles" / f"{name}-variant"
    dest.mkdir(parents=True)
    (dest / "config.yaml").write_text(text)
    return dest


# ---------------------------------------------------------------------------------------
# The plugins' own submission code, fed with the planned jobs.


class _Resources(dict):
    """Snakemake's resource list as the plugins read it: ``.get`` and attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class FakeJob:
    """The part of Snakemake's JobExecutorInterface that the submit builders read."""

    name: str
    threads: int
    resources: _Resources
    wildcards: list[str]
    jobid: int = 1

    @classmethod
    def of(cls, planned: PlannedJob) -> FakeJob:
        return cls(planned.rule, planned.threads, _Resources(planned.resources), [v for _, v in planned.wildcards])

    def is_group(self) -> bool:
        return False


def slurm_sbatch_line(planned: PlannedJob, default_partition: str = "default", logfile: str = "slurm.log", workdir: str = "/work") -> str:
    """The sbatch call snakemake-executor-plugin-slurm builds for ``planned`` (without ``--wrap``)."""
    import snakemake_executor_plugin_slurm as plugin
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    job = FakeJob.of(planned)
    # Partition choice lives on the executor; this one knows no partition file and has
    # the cluster's default partition already looked up.
    executor = SimpleNamespace(_partitions=None, _fallback_partition=default_partition, logger=None)
    params = {
        "run_uuid": "test-run",
        "slurm_logfile": logfile,
        "comment_str": planned.slurm_comment,
        "account": "",
        "partition": plugin.Executor.get_partition_arg(executor, job),
        "workdir": workdir,
    }
    settings = SimpleNamespace(requeue=False, no_requeue=False, qos=None, reservation=None)
    return get_submit_command(job, params, settings=settings) + set_gres_string(job)


def htcondor_submit_description(planned: PlannedJob, jobdir: Path, monkeypatch) -> dict[str, str]:
    """The submit description snakemake-executor-plugin-htcondor sends to the schedd."""
    import htcondor2
    import snakemake_executor_plugin_htcondor as plugin

    submitted = []

    class Schedd:  # the only part faked: there is no pool to submit to
        def submit(self, description):
            submitted.append(description)
            return SimpleNamespace(cluster=lambda: 1)

    monkeypatch.setattr(plugin.htcondor, "Schedd", Schedd)
    executor = object.__new__(plugin.Executor)
    executor.jobDir = str(jobdir)
    executor._unified_log_file = str(jobdir / "snakemake-rules.log")
    executor.workflow = SimpleNamespace(storage_settings=SimpleNamespace(shared_fs_usage=["all"]))
    executor.logger = SimpleNamespace(info=lambda *a: None, warning=lambda *a: None, debug=lambda *a: None)
    executor.envvars = dict
    executor.report_job_submission = lambda info: None
    executor._get_exec_args_and_transfer_files = lambda job, transfer: ("python", "-m snakemake", [], [], [])
    executor.run_job(FakeJob.of(planned))
    (description,) = submitted
    assert isinstance(description, htcondor2.Submit)
    return dict(line.split(" = ", 1) for line in str(description).splitlines() if " = " in line)


def condor_mb(mem_mb: int) -> str:
    return f"{mem_mb // 1024}GB" if mem_mb % 1024 == 0 else f"{mem_mb}MB"


# ---------------------------------------------------------------------------------------
# Always: the profiles parse, and the resources reach the submissions.


@pytest.fixture(scope="module")
def dry_workdir(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("cluster-dry") / "wf")


@pytest.fixture(scope="module")
def local_rules(dry_workdir) -> frozenset[str]:
    return snakefile_localrules(dry_workdir)


@pytest.mark.parametrize("profile", ["slurm", "htcondor"])
def test_profile_dry_run_plans_every_job(dry_workdir, local_rules, profile):
    local = planned_jobs(dry_workdir)
    jobs = planned_jobs(dry_workdir, "--profile", str(PROFILES / profile))
    assert sorted((j.rule, j.wildcards) for j in jobs) == sorted((j.rule, j.wildcards) for j in local)
    assert {"all", "report"} <= local_rules and "train" not in local_rules
    # Retries are what survive a killed job; check the profile asks for them.
    assert yaml.safe_load((PROFILES / profile / "config.yaml").read_text())["retries"] >= 1


def test_slurm_sbatch_carries_every_rules_resources(dry_workdir, local_rules):
    declared = {(j.rule, j.wildcards): j for j in planned_jobs(dry_workdir)}  # no profile
    jobs = remote_jobs(planned_jobs(dry_workdir, "--profile", str(PROFILES / "slurm")), local_rules)
    assert len(jobs) > 20
    for job in jobs:
        args = shlex.split(slurm_sbatch_line(job))
        assert args[0] == "sbatch"
        # What the rule declares, untouched by the profile's fallbacks...
        rule = declared[(job.rule, job.wildcards)]
        assert (job.threads, job.resources["mem_mb"], job.resources["runtime"]) == (
            rule.threads, rule.resources["mem_mb"], rule.resources["runtime"]
        ), job.rule
        # ...is what sbatch is asked for.
        assert f"--cpus-per-task={job.threads}" in args, (job, args)
        assert args[args.index("--mem") + 1] == str(job.resources["mem_mb"])
        assert args[args.index("-t") + 1] == str(job.resources["runtime"])
        assert not any(a.startswith("--gpus") for a in args), "no rule asks for a GPU in quick.yaml"


def gpu_config(workdir: Path) -> str:
    """quick.yaml with training on GPUs (the config switch the Slurm profile documents)."""
    config = yaml.safe_load((ROOT / QUICK).read_text())
    config["resources"] = {"train": {"gpu": 1}}
    (workdir / "config" / "gpu.yaml").write_text(yaml.safe_dump(config))
    return "config/gpu.yaml"


def test_slurm_gpu_training_goes_to_gpu_partition(dry_workdir, local_rules, tmp_path):
    """The profile's documented GPU switch: config gpu=1 plus the commented partition block."""
    profile = with_profile_text(
        tmp_path,
        "slurm",
        {
            '# set-resources:\n#   train:\n#     slurm_partition: "gpu"\n#   sample:\n#     slurm_partition: "gpu"': (
                'set-resources:\n  train:\n    slurm_partition: "gpu"\n  sample:\n    slurm_partition: "gpu"'
            )
        },
    )
    proc = run_snakemake(dry_workdir, "-n", "--configfile", gpu_config(dry_workdir), "--profile", str(profile), check=True)
    jobs = remote_jobs(parse_dry_run(proc.stdout + proc.stderr), local_rules)
    for job in jobs:
        args = shlex.split(slurm_sbatch_line(job))
        on_gpu = job.rule in {"train", "sample"}
        assert ("--gpus=1" in args) == on_gpu, (job.rule, args)
        assert args[args.index("-p") + 1] == ("gpu" if on_gpu else "default"), (job.rule, args)


def test_htcondor_submit_description_carries_cpus_memory_environment(dry_workdir, local_rules, tmp_path, monkeypatch):
    jobs = remote_jobs(planned_jobs(dry_workdir, "--profile", str(PROFILES / "htcondor")), local_rules)
    assert len(jobs) > 20
    for job in jobs:
        submit = htcondor_submit_description(job, tmp_path, monkeypatch)
        assert submit["request_cpus"] == str(job.threads)
        # The memory the rule declares, not a profile default: catches a rule whose
        # mem_mb changed without the profile's htcondor_request_mem_mb.
        assert submit["request_memory"] == condor_mb(job.resources["mem_mb"]), (
            f"rule {job.rule}: mem_mb={job.resources['mem_mb']} but request_memory={submit['request_memory']}; "
            "update set-resources in workflow/profiles/htcondor/config.yaml"
        )
        assert submit["getenv"] == "True"  # the venv's PATH reaches the execute point
        assert "request_gpus" not in submit


def test_htcondor_gpu_switch_requests_gpus_for_training_only(dry_workdir, local_rules, tmp_path, monkeypatch):
    profile = with_profile_text(
        tmp_path, "htcondor", {"    # request_gpus: 1\n": "    request_gpus: 1\n"}
    )
    jobs = remote_jobs(planned_jobs(dry_workdir, "--profile", str(profile)), local_rules)
    for job in jobs:
        submit = htcondor_submit_description(job, tmp_path, monkeypatch)
        assert submit.get("request_gpus") == ("1" if job.rule in {"train", "sample"} else None), job.rule
        assert submit["request_memory"] == condor_mb(job.resources["mem_mb"])


def test_dry_run_parser_reads_threads_and_resources():
    text = (
        "rule train:\n    wildcards: dataset=calo, model=vae_r1\n    threads: 2\n"
        "    resources: tmpdir=/tmp, mem_mb=4000, getenv=True, runtime=15\n"
        "localrule report:\n    input: a\n"
    )
    train, report = parse_dry_run(text)
    assert (train.rule, train.threads) == ("train", 2)
    assert train.resources == {"tmpdir": "/tmp", "mem_mb": 4000, "getenv": True, "runtime": 15}
    assert train.slurm_comment == "rule_train_wildcards_calo_vae_r1"
    assert (report.rule, report.slurm_comment) == ("report", "rule_report")


# ---------------------------------------------------------------------------------------
# On the real cluster.


def cluster_absent(problem: str, setup: str) -> None:
    """Fail in CI (where .ci/run sets the clusters up), skip with the reason elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{problem}; CI must run {setup} as root before the tests")
    pytest.skip(f"{problem}: run {setup} as root to get a single-node cluster")


def slurm_problem() -> str | None:
    """Why the Slurm cluster of .ci/setup-slurm.sh cannot run jobs here, or None."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "Slurm's sinfo/sbatch are not on PATH"
    proc = subprocess.run(["sinfo", "-h", "-o", "%a %t"], capture_output=True, text=True)
    if proc.returncode != 0 or "up" not in proc.stdout:
        return f"no Slurm partition is up (sinfo: {proc.stdout.strip() or proc.stderr.strip()})"
    return None


def require_slurm() -> None:
    """The Slurm cluster of .ci/setup-slurm.sh is up (else see cluster_absent)."""
    problem = slurm_problem()
    if problem is not None:
        cluster_absent(problem, ".ci/setup-slurm.sh")


@dataclass(frozen=True)
class SbatchCall:
    args: list[str]

    def option(self, name: str) -> str | None:
        for i, arg in enumerate(self.args):
            if arg == name:
                return self.args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
        return None


@dataclass
class Cancellation:
    """The training job the watcher killed, and what existed at that moment."""

    comment: str | None = None
    slurm_id: str | None = None
    at: float = math.nan
    finished_before: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass
class ClusterRun:
    workdir: Path
    proc: subprocess.CompletedProcess
    wall_s: float
    planned: list[PlannedJob]
    local_rules: frozenset[str]
    calls: list[SbatchCall]
    cancellation: Cancellation


def finished_outputs(workdir: Path) -> dict[str, tuple[float, float]]:
    """Outputs Snakemake has recorded as finished, with the (start, end) time of their job.

    Snakemake's own record (.snakemake/metadata, one JSON per output, named by its path in
    base64) is the evidence, not file mtimes: Snakemake touches each output once more when
    it takes in a remote job's result, which is not a re-run.
    """
    out = {}
    metadata = workdir / ".snakemake" / "metadata"
    for record in metadata.rglob("*") if metadata.exists() else ():
        if record.is_file():
            path = base64.urlsafe_b64decode("".join(record.relative_to(metadata).parts)).decode()
            meta = json.loads(record.read_text())
            if not meta.get("incomplete"):
                out[path] = (meta["starttime"], meta["endtime"])
    return out


def cancel_one_training_job(workdir: Path, sbatch_log: Path, planned: list[PlannedJob], done: threading.Event) -> Cancellation:
    """Wait for a train job of this run to be running its command, then scancel it."""
    by_comment = {j.slurm_comment: j for j in planned}
    result = Cancellation()
    while not done.is_set():
        names = {SbatchCall(shlex.split(line)).option("--job-name") for line in sbatch_log.read_text().splitlines()} if sbatch_log.exists() else set()
        queue = subprocess.run(["squeue", "-h", "-o", "%i|%j|%k|%T"], capture_output=True, text=True).stdout
        for line in queue.splitlines():
            slurm_id, name, comment, state = line.split("|")
            if name not in names or state != "RUNNING" or not comment.startswith("rule_train_"):
                continue
            wildcards = dict(by_comment[comment].wildcards)
            log = workdir / "results" / "logs" / wildcards["dataset"] / "train" / f"{wildcards['model']}.log"
            if log.exists():  # the training command itself has started
                time.sleep(1.0)
                result.finished_before = finished_outputs(workdir)
                result.at = time.time()
                subprocess.run(["scancel", slurm_id], check=True)
                result.comment, result.slurm_id = comment, slurm_id
                return result
        time.sleep(0.3)
    return result


def reproducible_config(workdir: Path) -> str:
    """quick.yaml with training stopped by epochs, never by its wall-clock budget.

    quick.yaml's ``time_budget_s`` stops training after a number of batches that depends
    on the machine's speed (checked after every batch), so two runs of it agree only if
    they happen to be equally fast. With the budget out of reach, the same seed must give
    the same numbers on a cluster and locally.

    Two families (every rule still runs on every dataset, and the retried training job is
    zmumu's vae) and a small truth null: three runs of this config (local, Slurm,
    HTCondor) are a fifth of CI's time.
    """
    config = yaml.safe_load((ROOT / QUICK).read_text())
    config["training"].update(max_epochs=3, time_budget_s=900)
    config["models"] = {name: spec for name, spec in config["models"].items() if name in ("vae", "realnvp")}
    config["confidence"] = {**config.get("confidence", {}), "null_replicas": 4, "neq_replicas": 1}
    (workdir / "config" / "cluster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return "config/cluster.yaml"


def run_locally(workdir: Path) -> Path:
    """The reference: the same benchmark run locally with the same seed."""
    run_snakemake(workdir, "--cores", "2", "--configfile", reproducible_config(workdir), timeout=1200, check=True)
    return workdir


def run_on_slurm(workdir: Path) -> ClusterRun:
    """The benchmark through the Slurm profile, a recording sbatch on PATH and one training job scancelled."""
    profile = ["--profile", str(PROFILES / "slurm")]
    config = ["--configfile", reproducible_config(workdir)]
    planned = planned_jobs(workdir, *profile, *config)
    sbatch_log = workdir / "sbatch-calls.txt"
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").symlink_to(SBATCH_RECORDER)
    env = {
        "HEPGENBENCH_SBATCH_LOG": str(sbatch_log),
        "HEPGENBENCH_REAL_SBATCH": shutil.which("sbatch"),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    done = threading.Event()
    cancellation = Cancellation()

    def watch():
        nonlocal cancellation
        cancellation = cancel_one_training_job(workdir, sbatch_log, planned, done)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        watcher.start()
        start = time.monotonic()
        proc = run_snakemake(workdir, *profile, *config, *TEST_CLUSTER_FLAGS, timeout=1800, env=env)
        wall = time.monotonic() - start
    finally:
        done.set()
        watcher.join()
    assert proc.returncode == 0, f"Slurm run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    print(f"\nquick benchmark on Slurm: {wall:.0f} s wall, {len(sbatch_log.read_text().splitlines())} sbatch calls")
    calls = [SbatchCall(shlex.split(line)) for line in sbatch_log.read_text().splitlines()]
    return ClusterRun(workdir, proc, wall, planned, snakefile_localrules(workdir), calls, cancellation)


def same_row(a: tuple[str, ...], b: tuple[str, ...], rel: float) -> bool:
    """(value, error, status, replica) equal; value and error to ``rel`` when it is not 0."""
    if a == b or rel == 0 or a[2:] != b[2:]:
        return a == b
    try:
        return all(math.isclose(float(x), float(y), rel_tol=rel) for x, y in zip(a[:2], b[:2]))
    except ValueError:
        return False


def assert_same_report(cluster: Path, local: Path, rel: float = 0.0) -> None:
    """Every metric of the cluster run's report equals the local run's, but the machine's.

    ``rel = 0`` asks for identical strings, i.e. bit-identical numbers.
    """
    on_cluster, here = report_values(cluster), report_values(local)
    assert on_cluster.keys() == here.keys()
    machine = {key for key in here if key[2].startswith("cost.") and MACHINE_METRIC.search(key[2])}
    compared = here.keys() - machine
    assert len(compared) > len(here) / 2, f"too few comparable metrics: {sorted(machine)}"
    differ = {key: (on_cluster[key], here[key]) for key in compared if not same_row(on_cluster[key], here[key], rel)}
    assert not differ, f"{len(differ)} of {len(compared)} metrics differ (cluster, local): {differ}"


def report_values(workdir: Path) -> dict[tuple[str, str, str], tuple[str, ...]]:
    """metrics.csv (long format) as {(dataset, model, metric): (value, error, status, replica)}."""
    with open(workdir / "results" / "report" / "metrics.csv", newline="") as f:
        return {(r["dataset"], r["model"], r["metric"]): (r["value"], r["error"], r["status"], r["replica"]) for r in csv.DictReader(f)}


@pytest.mark.slurm
def test_slurm_gives_gpu_training_job_a_gpu(dry_workdir, tmp_path):
    """The plugin's sbatch line for a GPU training job, run for real (fake gres on the node)."""
    require_slurm()
    proc = run_snakemake(dry_workdir, "-n", "--configfile", gpu_config(dry_workdir), "--profile", str(PROFILES / "slurm"), check=True)
    train = next(j for j in parse_dry_run(proc.stdout + proc.stderr) if j.rule == "train")
    out = tmp_path / "gpu-job.out"
    line = slurm_sbatch_line(train, default_partition="", logfile=str(out), workdir=str(tmp_path))
    assert "--gpus=1" in shlex.split(line)
    probe = 'echo "gpus=$SLURM_GPUS cuda=$CUDA_VISIBLE_DEVICES"'
    slurm_id = subprocess.run(f"{line} --wrap={shlex.quote(probe)}", shell=True, capture_output=True, text=True, check=True).stdout.strip()
    for _ in range(60):
        if out.exists() and out.read_text().strip():
            break
        time.sleep(0.5)
    assert out.read_text().split() == ["gpus=1", "cuda=0"], f"job {slurm_id}: {out.read_text() if out.exists() else 'no output'}"


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_runs_every_remote_job_through_sbatch_with_its_resources(slurm_run):
    expected = {j.slurm_comment: j for j in remote_jobs(slurm_run.planned, slurm_run.local_rules)}
    submitted = [c.option("--comment") for c in slurm_run.calls]
    # Each remote job once, plus the resubmission of the one that was cancelled.
    assert sorted(submitted) == sorted([*expected, slurm_run.cancellation.comment])
    assert not set(submitted) & {f"rule_{r}" for r in slurm_run.local_rules}
    for call in slurm_run.calls:
        job = expected[call.option("--comment")]
        assert call.option("--cpus-per-task") == str(job.threads)
        assert call.option("--mem") == str(job.resources["mem_mb"])
        assert call.option("-t") == str(job.resources["runtime"])
        assert call.option("--export") == "ALL"  # the venv on PATH reaches the job
    # The plugin's per-job logs: one per submission, written by Slurm on the node.
    logs = list((slurm_run.workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert len(logs) == len(slurm_run.calls)


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_report_equals_local_run(slurm_run, local_run):
    """Same seed, same numbers: where a job runs must not change what it computes.

    A difference with identical truth rows and data files points at training: e.g. a
    model whose weights are initialised before the training seed is set.
    """
    assert_same_report(slurm_run.workdir, local_run)


@pytest.mark.slurm
@pytest.mark.slow
def test_scancelled_training_job_is_retried_and_nothing_finished_is_redone(slurm_run):
    cancelled = slurm_run.cancellation
    assert cancelled.comment is not None, "the watcher never saw a running train job to cancel"
    calls = [c.option("--comment") for c in slurm_run.calls]
    assert calls.count(cancelled.comment) == 2
    assert all(calls.count(c) == 1 for c in calls if c != cancelled.comment)
    # What had finished when the job was killed is untouched.
    wildcards = dict(next(j for j in slurm_run.planned if j.slurm_comment == cancelled.comment).wildcards)
    model_dir = f"results/{wildcards['dataset']}/models/{wildcards['model']}/"
    after = finished_outputs(slurm_run.workdir)
    finished = cancelled.finished_before
    assert finished, "nothing had finished before the cancel"
    assert not any(p.startswith(model_dir) for p in finished), "the cancelled job had already finished"
    for path, job_times in finished.items():
        assert after[path] == job_times, f"{path} was made again after the cancel"
    # The killed job's outputs exist now, made by the retry, which started after the kill.
    assert after[model_dir + "model.pt"][0] > cancelled.at
    assert "CANCELLED" in slurm_run.proc.stderr or "Trying to restart" in slurm_run.proc.stderr


# ---------------------------------------------------------------------------------------
# On the real HTCondor pool (.ci/setup-htcondor.sh): a Debian 13 chroot whose daemons listen
# on 127.0.0.1. The workflow is submitted from inside it by the unprivileged HTCONDOR_USER,
# in a work directory under that user's home; the venv and this clone are bind-mounted at
# their own paths, so jobs run the same `hepgenbench` as the tests.

HTCONDOR_CHROOT = Path(os.environ.get("HEPGENBENCH_HTCONDOR_CHROOT", "/var/cache/hepgenbench/htcondor-trixie"))
HTCONDOR_USER = "hgbench"
# JobStatus in the schedd's ads.
CONDOR_REMOVED, CONDOR_COMPLETED = 3, 4


def in_pool(*command: str, user: str = HTCONDOR_USER, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
    """``command`` inside the pool's chroot, run as ``user``, with a clean environment."""
    env = ["env", "-i", f"HOME=/home/{user}", "PATH=/usr/bin:/bin", "CONDOR_CONFIG=/etc/condor/condor_config"]
    return subprocess.run(["chroot", str(HTCONDOR_CHROOT), "runuser", "-u", user, "--", *env, *command],
                          capture_output=True, text=True, timeout=timeout, check=check)  # fmt: skip


def htcondor_problem() -> str | None:
    """Why the pool of .ci/setup-htcondor.sh cannot run this venv's jobs here, or None."""
    if os.geteuid() != 0:
        return "the HTCondor pool runs in a chroot, and only root can enter it"
    if not (HTCONDOR_CHROOT / "usr" / "sbin" / "condor_master").exists():
        return f"there is no HTCondor chroot at {HTCONDOR_CHROOT}"
    proc = in_pool("condor_status", "-af", "Name")
    if proc.returncode != 0 or not proc.stdout.strip():
        return f"no HTCondor slot is up in {HTCONDOR_CHROOT} (condor_status: {proc.stdout.strip() or proc.stderr.strip()})"
    needed = [sys.prefix, sys.base_prefix, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    hidden = [p for p in needed if not (HTCONDOR_CHROOT / Path(p).resolve().relative_to("/")).exists()]
    if hidden:
        return f"the pool's chroot does not see {', '.join(hidden)} (.ci/setup-htcondor.sh {' '.join(hidden)} shares them)"
    return None


def require_htcondor() -> None:
    """The pool of .ci/setup-htcondor.sh is up and sees this venv (else see cluster_absent)."""
    problem = htcondor_problem()
    if problem is not None:
        cluster_absent(problem, ".ci/setup-htcondor.sh")


def target_of(args: str) -> tuple[str, frozenset[tuple[str, str]]]:
    """(rule, wildcards) of a job from its Snakemake command line (``--target-jobs rule:k=v,...``)."""
    match = re.search(r"--target-jobs\s+'?(\w+):([^'\s]*)", args)
    assert match, f"no --target-jobs in the job's arguments: {args[:300]}"
    rule, wildcards = match.groups()
    return rule, frozenset(tuple(kv.split("=", 1)) for kv in wildcards.split(",") if kv)


def key_of(job: PlannedJob) -> tuple[str, frozenset[tuple[str, str]]]:
    return job.rule, frozenset(job.wildcards)


@dataclass
class Removal:
    """The training job the watcher removed with condor_rm, and what existed at that moment."""

    target: tuple[str, frozenset[tuple[str, str]]] | None = None
    cluster_id: int | None = None
    at: float = math.nan
    finished_before: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass
class CondorRun:
    workdir: Path
    proc: subprocess.CompletedProcess
    wall_s: float
    planned: list[PlannedJob]
    local_rules: frozenset[str]
    history: list[dict]  # the schedd's ad of every job of the run, done or removed
    removal: Removal


def condor_history(iwd: str) -> list[dict]:
    """The schedd's history ads of the jobs submitted from ``iwd``."""
    attrs = "ClusterId,Owner,JobStatus,ExitCode,RequestCpus,RequestMemory,Args,Iwd"
    proc = in_pool("condor_history", "-json", "-attributes", attrs, "-constraint", f'Iwd == "{iwd}"', check=True)
    return json.loads(proc.stdout) if proc.stdout.strip() else []


def remove_one_training_job(workdir: Path, iwd: str, done: threading.Event) -> Removal:
    """Wait for a train job of this run to be running its command, then condor_rm it."""
    while not done.is_set():
        queue = in_pool("condor_q", "-json", "-attributes", "ClusterId,JobStatus,Args", "-constraint", f'Iwd == "{iwd}" && JobStatus == 2')
        for ad in json.loads(queue.stdout) if queue.returncode == 0 and queue.stdout.strip() else ():
            rule, wildcards = target = target_of(ad["Args"])
            wildcards = dict(wildcards)
            log = workdir / "results" / "logs" / wildcards.get("dataset", "") / "train" / f"{wildcards.get('model')}.log"
            if rule == "train" and log.exists():  # the training command itself has started
                time.sleep(1.0)
                removal = Removal(target, ad["ClusterId"], time.time(), finished_outputs(workdir))
                in_pool("condor_rm", str(ad["ClusterId"]), check=True)
                return removal
        time.sleep(0.5)
    return Removal()


def run_on_htcondor() -> CondorRun:
    """The benchmark submitted to the pool from inside its chroot, one training job condor_rm'd."""
    home = HTCONDOR_CHROOT / "home" / HTCONDOR_USER
    for earlier in home.glob("pytest-*"):  # the last run's directory is kept until the next
        shutil.rmtree(earlier)
    workdir = copy_workflow(Path(tempfile.mkdtemp(prefix="pytest-", dir=home)) / "wf")
    iwd = "/" + str(workdir.relative_to(HTCONDOR_CHROOT))  # the same directory, seen from inside
    config = reproducible_config(workdir)
    planned = planned_jobs(workdir, "--profile", str(PROFILES / "htcondor"), "--configfile", config)
    local_rules = snakefile_localrules(workdir)
    subprocess.run(["chroot", str(HTCONDOR_CHROOT), "chown", "-R", f"{HTCONDOR_USER}:", str(Path(iwd).parent)], check=True)
    # The venv's CLI on PATH and this clone's sources (PYTHONPATH) reach every job: the
    # profile's getenv copies the submitter's environment.
    env = [f"PATH={Path(sys.executable).parent}:/usr/bin:/bin"]
    if os.environ.get("PYTHONPATH"):
        env.append(f"PYTHONPATH={os.environ['PYTHONPATH']}")
    snakemake = [sys.executable, "-m", "snakemake", "--profile", "workflow/profiles/htcondor", "--configfile", config, *STATUS_CHECK_FLAGS]
    command = f"cd {shlex.quote(iwd)} && exec {shlex.join(snakemake)}"
    done = threading.Event()
    removal = Removal()

    def watch():
        nonlocal removal
        removal = remove_one_training_job(workdir, iwd, done)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.monotonic()
    try:
        proc = in_pool("env", *env, "sh", "-c", command, timeout=1800)
        wall = time.monotonic() - start
    finally:
        done.set()
        watcher.join()
    assert proc.returncode == 0, f"HTCondor run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    submitted = set(map(int, re.findall(r"submitted to HTCondor Cluster ID (\d+)", proc.stderr)))
    # A job's ad moves to the history file when it leaves the queue, a moment after its
    # terminate event (which is what the plugin waits for).
    for _ in range(60):
        history = condor_history(iwd)
        if {ad["ClusterId"] for ad in history} >= submitted:
            break
        time.sleep(1)
    print(f"\nquick benchmark on HTCondor: {wall:.0f} s wall, {len(submitted)} jobs submitted")
    return CondorRun(workdir, proc, wall, planned, local_rules, history, removal)


# The three runs of the reproducible config are started together, each in a thread, when
# the first test needs one: each leaves the CPUs idle much of the time (job start-up, status
# checks every 2 s, the DAG's narrow layers), so side by side they take far less than in turn.
# Only the runs whose cluster is up are started; a test of a missing cluster skips (or, in
# CI, fails) in its own fixture, as before.


@pytest.fixture(scope="module")
def started_runs(tmp_path_factory) -> Iterator[dict[str, Future]]:
    local = copy_workflow(tmp_path_factory.mktemp("cluster-local") / "wf")
    slurm = copy_workflow(tmp_path_factory.mktemp("cluster-slurm") / "wf") if slurm_problem() is None else None
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="cluster-run") as pool:
        runs = {"local": pool.submit(run_locally, local)}
        if slurm is not None:
            runs["slurm"] = pool.submit(run_on_slurm, slurm)
        if htcondor_problem() is None:
            runs["htcondor"] = pool.submit(run_on_htcondor)
        yield runs


def started(request: pytest.FixtureRequest, name: str):
    """The result of the run ``name`` of :func:`started_runs`, waiting for it."""
    runs = request.getfixturevalue("started_runs")
    if name not in runs:
        pytest.fail(f"the {name} run was not started: its cluster was not up when the runs began")
    return runs[name].result()


@pytest.fixture(scope="module")
def local_run(request) -> Path:
    return started(request, "local")


@pytest.fixture(scope="module")
def slurm_run(request) -> ClusterRun:
    require_slurm()
    return started(request, "slurm")


@pytest.fixture(scope="module")
def htcondor_run(request) -> CondorRun:
    require_htcondor()
    return started(request, "htcondor")


@pytest.mark.htcondor
def test_htcondor_pool_listens_on_loopback_only_with_claimtobe():
    """CLAIMTOBE trusts any client's word: acceptable only if no other host can reach the pool."""
    import psutil

    require_htcondor()
    root = HTCONDOR_CHROOT.resolve()
    daemons = [p for p in psutil.process_iter(["name"]) if p.info["name"].startswith("condor_") and Path(f"/proc/{p.pid}/root").resolve() == root]
    assert {"condor_master", "condor_collector", "condor_schedd", "condor_startd"} <= {p.info["name"] for p in daemons}
    sockets = [(p.info["name"], c) for p in daemons for c in p.net_connections("inet")]
    listening = [(name, c.laddr) for name, c in sockets if c.status == psutil.CONN_LISTEN]
    assert ("condor_shared_port", ("127.0.0.1", 9618)) in [(n, tuple(a)) for n, a in listening], listening
    exposed = [(name, c.laddr) for name, c in sockets if c.laddr.ip != "127.0.0.1"]
    assert not exposed, f"pool sockets bound beyond 127.0.0.1: {exposed}"
    # What the daemons advertise, and how they authenticate.
    ads = in_pool("condor_status", "-any", "-constraint", "MyAddress =!= undefined", "-af", "MyType", "MyAddress", check=True)
    advertised = dict(line.split() for line in ads.stdout.splitlines())
    assert {"Collector", "Scheduler", "StartD", "DaemonMaster"} <= advertised.keys()
    assert all(a.startswith("<127.0.0.1:") for a in advertised.values()), advertised
    methods = in_pool("condor_config_val", "SEC_DEFAULT_AUTHENTICATION_METHODS", "SEC_CLIENT_AUTHENTICATION_METHODS", check=True)
    assert methods.stdout.split() == ["CLAIMTOBE", "CLAIMTOBE"]


@pytest.mark.htcondor
@pytest.mark.slow
def test_htcondor_runs_every_remote_job_in_the_pool_with_its_resources(htcondor_run):
    expected = {key_of(j): j for j in remote_jobs(htcondor_run.planned, htcondor_run.local_rules)}
    seen = [target_of(ad["Args"]) for ad in htcondor_run.history]
    # Each remote job once, plus the resubmission of the one that was removed.
    assert sorted(seen, key=str) == sorted([*expected, htcondor_run.removal.target], key=str)
    for ad in htcondor_run.history:
        job = expected[target_of(ad["Args"])]
        assert ad["Owner"] == HTCONDOR_USER
        assert (ad["RequestCpus"], ad["RequestMemory"]) == (job.threads, job.resources["mem_mb"]), job
        if ad["ClusterId"] != htcondor_run.removal.cluster_id:
            assert (ad["JobStatus"], ad["ExitCode"]) == (CONDOR_COMPLETED, 0), ad


@pytest.mark.htcondor
@pytest.mark.slow
def test_htcondor_report_equals_local_run(htcondor_run, local_run):
    """Same seed, same numbers, to float32 rounding.

    The pool's jobs run the same venv but on the chroot's Debian 13 system libraries, where
    the local run has Debian 12's; a log-density computed there (IAF's NLL on the phase
    space: 0.98840448140 against 0.98840448171) differs in the last bits, and the same job
    rerun on the host from the pool's model.pt gives the local value bit for bit. A seed
    or data bug moves the numbers by far more than 1e-6.
    """
    assert_same_report(htcondor_run.workdir, local_run, rel=1e-6)


@pytest.mark.htcondor
@pytest.mark.slow
def test_condor_removed_training_job_is_retried_and_nothing_finished_is_redone(htcondor_run):
    removal = htcondor_run.removal
    assert removal.target is not None, "the watcher never saw a running train job to remove"
    by_cluster = {ad["ClusterId"]: ad for ad in htcondor_run.history}
    assert by_cluster[removal.cluster_id]["JobStatus"] == CONDOR_REMOVED
    runs = [ad for ad in htcondor_run.history if target_of(ad["Args"]) == removal.target]
    assert sorted(ad["JobStatus"] for ad in runs) == [CONDOR_REMOVED, CONDOR_COMPLETED]
    # What had finished when the job was removed is untouched.
    wildcards = dict(removal.target[1])
    model_dir = f"results/{wildcards['dataset']}/models/{wildcards['model']}/"
    after = finished_outputs(htcondor_run.workdir)
    assert removal.finished_before, "nothing had finished before the removal"
    assert not any(p.startswith(model_dir) for p in removal.finished_before), "the removed job had already finished"
    for path, job_times in removal.finished_before.items():
        assert after[path] == job_times, f"{path} was made again after the removal"
    # The removed job's outputs exist now, made by the retry, which started after the removal.
    assert after[model_dir + "model.pt"][0] > removal.at
    assert "was removed/aborted" in htcondor_run.proc.stderr
