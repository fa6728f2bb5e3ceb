"""Repeated events: a tree with one entry per reconstruction type of each collision.

Public CMS dimuon files hold each event several times. Split entry by entry, copies of one
event land in training and in both truth halves, and the two-sample test reads below 0.5.
Ingest must report the repeats, and ``event_key`` must keep each event on one side.
"""

from __future__ import annotations

import numpy as np
import pytest
import uproot

from hepgenbench import stages
from hepgenbench.io import read_events
from hepgenbench.metrics.duplicates import duplicate_counts, row_hashes
from hepgenbench.records import IngestParams, SplitParams
from hepgenbench.split import read_split

N_EVENTS, COPIES = 400, 4


def write_repeated_tree(path, seed=3):
    """``N_EVENTS`` collisions, each written ``COPIES`` times (as a muon-type loop does),
    with the copies shuffled through the file."""
    rng = np.random.default_rng(seed)
    run = np.repeat(rng.integers(1, 3, N_EVENTS), COPIES)
    event = np.repeat(np.arange(N_EVENTS) * 7 + 1000, COPIES)
    pt = np.repeat(rng.exponential(20.0, N_EVENTS) + 10.0, COPIES)
    eta = np.repeat(rng.normal(0, 1.5, N_EVENTS), COPIES)
    order = rng.permutation(len(run))
    with uproot.recreate(path) as f:
        f["Events"] = {"Run": run[order], "Event": event[order], "pt": pt[order], "eta": eta[order]}
    return path


def ingest_and_split(tmp_path, event_key=None):
    path = write_repeated_tree(tmp_path / "repeats.root")
    block = {"source": "root", "files": str(path), "tree": "Events", "branches": ["pt", "eta"]}
    if event_key:
        block["event_key"] = event_key
    config = {"seed": 5, "datasets": {"dimu": block}}
    events_path, split_path = str(tmp_path / "events.h5"), str(tmp_path / "split.h5")
    stages.ingest({"files": str(path)}, {"events": events_path}, IngestParams.from_config(config, "dimu"), threads=1)
    stages.split({"events": events_path}, {"split": split_path}, SplitParams.from_config(config, "dimu"), threads=1)
    return read_events(events_path), read_split(split_path)


def shared_across_sets(events, split):
    """Rows of identical content found in more than one of the five sets."""
    hashes = {name: set(row_hashes(events.features[idx]).tolist()) for name, idx in split.items()}
    names = list(hashes)
    return {(a, b): len(hashes[a] & hashes[b]) for i, a in enumerate(names) for b in names[i + 1:]}


def test_ingest_reports_repeated_entries(tmp_path):
    events, _ = ingest_and_split(tmp_path)
    repeats = events.meta["duplicates"]
    assert repeats["n_entries"] == N_EVENTS * COPIES
    assert repeats["n_duplicate_rows"] == N_EVENTS * (COPIES - 1)
    assert "n_repeated_entries" not in repeats  # no key given: unknown

    keyed, _ = ingest_and_split(tmp_path, event_key=["Run", "Event"])
    assert keyed.meta["duplicates"]["n_distinct_events"] == N_EVENTS
    assert keyed.meta["duplicates"]["n_repeated_entries"] == N_EVENTS * (COPIES - 1)
    assert keyed.event_key.shape == (N_EVENTS * COPIES, 2)


def test_split_by_entry_puts_one_event_on_both_sides(tmp_path):
    """The hole the event key closes: without it, truth A and B share events."""
    events, split = ingest_and_split(tmp_path)
    shared = shared_across_sets(events, split)
    assert shared[("truth_a", "truth_b")] > 0 and shared[("train", "truth_a")] > 0


def test_event_key_keeps_every_event_on_one_side(tmp_path):
    events, split = ingest_and_split(tmp_path, event_key=["Run", "Event"])
    assert sum(shared_across_sets(events, split).values()) == 0
    keys = {name: {tuple(k) for k in events.event_key[idx]} for name, idx in split.items()}
    assert sum(len(k) for k in keys.values()) == N_EVENTS  # every event in exactly one set
    # the cuts move to event boundaries: each set holds whole events, near its nominal size
    sizes = {name: len(idx) for name, idx in split.items()}
    assert all(size % COPIES == 0 for size in sizes.values())
    assert abs(sizes["train"] - 0.5 * N_EVENTS * COPIES) <= COPIES
    assert abs(sizes["truth_a"] - sizes["truth_b"]) <= 2 * COPIES


def test_duplicate_counts_within_float_precision():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(200, 5))
    generated = np.concatenate([truth[:30].astype(np.float32), rng.normal(size=(70, 5)), truth[:10]])
    counts = duplicate_counts(row_hashes(generated), row_hashes(truth))
    assert counts.n_copies_of_reference == 40  # float32 copies count too
    assert counts.n_internal == 10
    assert duplicate_counts(row_hashes(truth + 1e-3), row_hashes(truth)).n_copies_of_reference == 0
    # -0.0 and 0.0 are the same value
    assert row_hashes(np.array([[0.0, 1.0]]))[0] == row_hashes(np.array([[-0.0, 1.0]]))[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_event_key_split_is_seeded(tmp_path, seed):
    from hepgenbench.records import SplitFractions
    from hepgenbench.split import split_indices

    key = np.repeat(np.arange(300), 3)[:, None]
    a = split_indices(len(key), SplitFractions(), seed, key)
    b = split_indices(len(key), SplitFractions(), seed, key)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    other = split_indices(len(key), SplitFractions(), seed + 10, key)
    assert not np.array_equal(a["train"], other["train"])
