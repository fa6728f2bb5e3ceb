"""Drell–Yan Z/γ*→μμ events with initial-state jets, generated with Pythia 8.

Pythia 8.3 (Bierlich et al., arXiv:2203.11601) generates pp → Z/γ* → μ⁺μ⁻ at 13 TeV; the
events are written as a NanoAOD-like ROOT tree (jagged ``Muon_*`` and ``Jet_*`` branches
with ``nMuon``/``nJet`` counters) so that the embedded dataset goes through exactly the
same reader as a user's file.

Jets are anti-kT R = 0.4 (Cacciari, Salam, Soyez, arXiv:0802.1189) built with Pythia's
``SlowJet`` (which uses fjcore internally).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from hepgenbench.errors import InputError
from hepgenbench.io import atomic_path

TREE = "Events"
LEVELS = ("hard", "parton", "hadron")

MUON_PT_MIN = 3.0  # GeV
MUON_ABS_ETA_MAX = 2.4
JET_R = 0.4
JET_PT_MIN = 20.0  # GeV
JET_ABS_ETA_MAX = 4.7
# Pythia's seed must lie in [0, 900 000 000].
_MAX_SEED = 900_000_000

_LEVEL_SETTINGS: dict[str, list[str]] = {
    "hard": [
        "PartonLevel:ISR = off",
        "PartonLevel:FSR = off",
        "PartonLevel:MPI = off",
        "HadronLevel:all = off",
    ],
    "parton": ["PartonLevel:MPI = off", "HadronLevel:all = off"],
    "hadron": [],
}


def pythia_settings(seed: int, level: str) -> list[str]:
    """The ``readString`` lines for Z/γ*→μμ at 13 TeV at a given simulation ``level``."""
    if level not in _LEVEL_SETTINGS:
        raise InputError(f"pythia level {level!r}: expected one of {list(LEVELS)}")
    return [
        "Beams:eCM = 13000.",
        "WeakSingleBoson:ffbar2gmZ = on",
        # Only the μμ channel of the Z/γ* is open, so every event is a signal event.
        "23:onMode = off",
        "23:onIfAny = 13",
        "PhaseSpace:mHatMin = 50.",
        "Random:setSeed = on",
        f"Random:seed = {int(seed) % _MAX_SEED}",
        "Print:quiet = on",
        *_LEVEL_SETTINGS[level],
    ]


def _muons_and_jets(event, slow_jet, pythia8mc) -> tuple[list[tuple], list[tuple]]:
    """Selected muons ``(pt, eta, phi, charge)`` and jets ``(pt, eta, phi, mass)`` of one event."""
    muons, prompt = [], []
    for i in range(event.size()):
        particle = event[i]
        if particle.isFinal() and particle.idAbs() == 13:
            prompt.append(i)
            if particle.pT() > MUON_PT_MIN and abs(particle.eta()) < MUON_ABS_ETA_MAX:
                muons.append((particle.pT(), particle.eta(), particle.phi(), particle.charge()))
    muons.sort(key=lambda m: -m[0])
    # SlowJet's ``select`` can only choose all/visible/charged final-state particles, so the
    # muons are removed by clustering a copy of the event in which every final-state muon is
    # flagged as non-final (negative status): SlowJet only reads final-state particles. The
    # original record stays untouched. Removing all final muons (not only the selected ones)
    # keeps the jets independent of the muon acceptance cuts.
    copy = pythia8mc.Event(event)
    for i in prompt:
        copy[i].statusNeg()
    slow_jet.analyze(copy)
    jets = []
    for j in range(slow_jet.sizeJet()):  # SlowJet orders jets by decreasing pT
        p = slow_jet.p(j)
        jets.append((p.pT(), p.eta(), p.phi(), slow_jet.m(j)))
    return muons, jets


def _jagged(rows: list[list[tuple]], fields: tuple[str, ...]) -> ak.Array:
    counts = np.array([len(r) for r in rows], dtype=np.int64)
    flat = np.array([obj for r in rows for obj in r], dtype=np.float64).reshape(-1, len(fields))
    return ak.unflatten(ak.zip({f: flat[:, k] for k, f in enumerate(fields)}), counts)


def generate_zmumu(
    path: str | os.PathLike,
    n_events: int,
    seed: int,
    level: str = "parton",
    log: Callable[[str], None] = print,
) -> dict:
    """Generate ``n_events`` pp → Z/γ* → μμ events at 13 TeV and write them to a ROOT file.

    Args:
        path: output ROOT file; tree ``Events`` with ``Muon_{pt,eta,phi,charge}``,
            ``Jet_{pt,eta,phi,mass}``, ``nMuon`` and ``nJet``.
        n_events: number of successfully generated events to write.
        seed: Pythia random seed (taken modulo 9e8).
        level: ``"hard"`` (no ISR/FSR/MPI/hadronisation), ``"parton"`` (ISR+FSR only) or
            ``"hadron"`` (full simulation).
        log: progress sink (every ~10 % and a final rate).

    Returns:
        ``{"n_events", "seconds", "events_per_second", "level", "seed", "n_failed",
        "sigma_gen_mb"}``.
    """
    import pythia8mc  # imported late: it prints a banner and is only needed here

    if n_events <= 0:
        raise InputError(f"n_events must be positive, got {n_events}")
    pythia = pythia8mc.Pythia("", False)
    for line in pythia_settings(seed, level):
        if not pythia.readString(line):
            raise RuntimeError(f"Pythia rejected the setting {line!r}")
    if not pythia.init():
        raise RuntimeError("Pythia failed to initialise")
    # power -1 = anti-kT, select 2 = visible final state (no neutrinos), massSet 2 = keep each
    # particle's own mass, so that jet masses are those of the summed four-momenta.
    slow_jet = pythia8mc.SlowJet(-1, JET_R, JET_PT_MIN, JET_ABS_ETA_MAX, 2, 2)

    muons: list[list[tuple]] = []
    jets: list[list[tuple]] = []
    n_failed = 0
    max_failures = max(100, n_events // 10)
    every = max(1, n_events // 10)
    start = time.perf_counter()
    while len(muons) < n_events:
        if not pythia.next():
            n_failed += 1
            if n_failed > max_failures:
                raise RuntimeError(f"Pythia failed {n_failed} times for {len(muons)} good events; giving up")
            continue
        mu, jet = _muons_and_jets(pythia.event, slow_jet, pythia8mc)
        muons.append(mu)
        jets.append(jet)
        if len(muons) % every == 0:
            rate = len(muons) / (time.perf_counter() - start)
            log(f"pythia[{level}]: {len(muons)}/{n_events} events ({rate:.0f} events/s)")
    seconds = time.perf_counter() - start
    sigma_mb = pythia.infoPython().sigmaGen()

    tree = {
        "Muon": _jagged(muons, ("pt", "eta", "phi", "charge")),
        "Jet": _jagged(jets, ("pt", "eta", "phi", "mass")),
    }
    # Charge is an integer in NanoAOD.
    tree["Muon"] = ak.with_field(tree["Muon"], ak.values_astype(tree["Muon"].charge, np.int32), "charge")
    _write_tree(path, TREE, [tree])
    summary = {
        "n_events": n_events,
        "seconds": seconds,
        "events_per_second": n_events / seconds,
        "level": level,
        "seed": seed,
        "n_failed": n_failed,
        "sigma_gen_mb": sigma_mb,
    }
    log(f"pythia[{level}]: {n_events} events in {seconds:.1f} s ({summary['events_per_second']:.0f} events/s), "
        f"{n_failed} failures")
    return summary


def _write_tree(path: str | os.PathLike, tree: str, chunks) -> int:
    """Write record arrays as a TTree, atomically; returns the number of entries.

    ``mktree`` is explicit because uproot ≥ 5.7 writes an RNTuple for ``file[name] = dict``,
    and NanoAOD (and ROOT 6 users) expect a TTree. Record fields become ``{name}_{field}``
    branches sharing an ``n{name}`` counter, the NanoAOD convention.
    """
    n = 0
    with atomic_path(path, suffix=".root") as tmp:
        with uproot.recreate(tmp) as f:
            out = None
            for chunk in chunks:
                if out is None:
                    out = f.mktree(tree, {name: ak.Array(arr).type for name, arr in chunk.items()})
                out.extend(chunk)
                n += len(next(iter(chunk.values())))
    return n


def merge_root(inputs: list[str], output: str | os.PathLike, tree: str = TREE) -> int:
    """Concatenate ``tree`` of several ROOT files (same jagged branches) into ``output``.

    Reads and writes chunk by chunk, so the merged file may exceed memory. Returns the
    number of entries written.
    """
    if not inputs:
        raise InputError("merge_root: no input files given")
    for name in inputs:
        if not Path(name).exists():
            raise InputError(f"{name}: file does not exist")

    def chunks():
        for name in inputs:
            with uproot.open(name) as f:
                if tree not in f:
                    raise InputError(f"{name}: no tree {tree!r}; found {list(f.keys())[:10]}")
                for arrays in f[tree].iterate(how="zip", step_size="100 MB"):
                    # The ``n{name}`` counters are re-created by mktree from the jagged records.
                    counters = {f"n{field}" for field in arrays.fields}
                    yield {k: arrays[k] for k in arrays.fields if k not in counters}

    return _write_tree(output, tree, chunks())
