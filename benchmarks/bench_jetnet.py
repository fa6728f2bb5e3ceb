"""FPD and KPD: hepgenbench against JetNet's own implementation, same arrays, one run.

JetNet 0.2.5 installs beside torch 2.13.0, but its package imports EnergyFlow's compiled
``wasserstein`` extension, built against NumPy 1, while pandas/pyarrow need NumPy 2. Its
``fpd`` and ``kpd`` use only NumPy, SciPy and numba, so this script loads
``jetnet/evaluation/gen_metrics.py`` unchanged from the installed package, with the unrelated
imports (EnergyFlow's EMD, JetNet's dataset loaders) stubbed out. Run it in a venv that has
jetnet and hepgenbench's dependencies:

    python3 -m venv /tmp/jnvenv
    /tmp/jnvenv/bin/pip install torch==2.13.0
    /tmp/jnvenv/bin/pip install -c <(echo torch==2.13.0) jetnet==0.2.5 scipy scikit-learn pot h5py
    /tmp/jnvenv/bin/python benchmarks/bench_jetnet.py

It writes ``benchmarks/results/jetnet.md`` (median of repeats and the ratio of medians).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def load_jetnet_gen_metrics():
    spec = importlib.util.find_spec("jetnet")
    if spec is None:
        raise SystemExit("jetnet is not installed in this interpreter; see the module docstring")
    path = Path(spec.submodule_search_locations[0]) / "evaluation" / "gen_metrics.py"
    for name in ("energyflow", "energyflow.emd", "jetnet", "jetnet.utils", "jetnet.datasets"):
        stub = types.ModuleType(name)
        stub.__path__ = []  # a package, so that "from jetnet import utils" resolves
        sys.modules[name] = stub
    sys.modules["energyflow.emd"].emds = None
    sys.modules["jetnet.datasets"].JetNet = None
    sys.modules["jetnet"].utils = sys.modules["jetnet.utils"]
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("jetnet_gen_metrics", path))
    sys.modules["jetnet_gen_metrics"] = module  # the module looks itself up there
    module.__spec__.loader.exec_module(module)
    from importlib.metadata import version

    import jetnet  # noqa: F401  (the stub; the version comes from the installed metadata)

    return module, version("jetnet")


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="events per sample")
    parser.add_argument("--features", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "jetnet.md"))
    args = parser.parse_args()

    jn, jn_version = load_jetnet_gen_metrics()
    from hepgenbench.metrics.physics_distance import fpd, kpd

    rng = np.random.default_rng(0)
    truth = rng.normal(size=(args.n, args.features))
    shifted = rng.normal(size=(args.n, args.features)) + np.r_[0.05, np.zeros(args.features - 1)]
    rows = []
    for name, ours, theirs in (
        ("FPD", lambda g: fpd(truth, g, rng=1), lambda g: jn.fpd(truth, g, seed=1)),
        ("KPD", lambda g: kpd(truth, g, rng=1), lambda g: jn.kpd(truth, g, seed=1, num_threads=1)),
    ):
        theirs(shifted[:6000])  # numba compiles on the first call: not part of the timing
        t_ours, r_ours = timed(lambda: ours(shifted), args.repeats)
        t_theirs, r_theirs = timed(lambda: theirs(shifted), args.repeats)
        rows.append((name, t_ours, t_theirs, r_ours, r_theirs))

    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    lines = [
        "# FPD and KPD: hepgenbench vs JetNet",
        "",
        f"JetNet {jn_version}, `jetnet/evaluation/gen_metrics.py` as installed. {args.n} vs {args.n} events, "
        f"{args.features} Gaussian features, the generated sample shifted by 0.05 in one feature. Median of "
        f"{args.repeats} runs each, in one process; load average at the end {load}. "
        "Command: `python benchmarks/bench_jetnet.py` (in a venv with jetnet, see its docstring).",
        "",
        "| metric | hepgenbench [s] | JetNet [s] | speed ratio JetNet/ours (target ≥ 1) | hepgenbench value | JetNet value |",
        "|---|---|---|---|---|---|",
    ]
    for name, t_ours, t_theirs, r_ours, r_theirs in rows:
        lines.append(
            f"| {name} | {t_ours:.2f} | {t_theirs:.2f} | {t_theirs / t_ours:.2f} | "
            f"{r_ours.value:.3g} ± {r_ours.error:.2g} | {r_theirs[0]:.3g} ± {r_theirs[1]:.2g} |"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
