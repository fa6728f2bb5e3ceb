"""Splits: disjoint, complete, seeded; too few events are refused with a clear message."""

import numpy as np
import pytest

from hepgenbench.errors import InputError
from hepgenbench.seeding import derive_seed
from hepgenbench.split import SPLITS, SplitFractions, read_split, split_indices, write_split


def test_disjoint_and_complete():
    idx = split_indices(1001, SplitFractions(), seed=3)
    together = np.concatenate([idx[k] for k in SPLITS])
    assert len(np.unique(together)) == len(together), "splits overlap"
    assert len(together) >= 1000 and together.max() < 1001
    assert len(idx["truth_a"]) == len(idx["truth_b"]), "the noise floor needs equal halves"
    assert len(idx["train"]) == 500 and len(idx["val"]) == 100


def test_seeded():
    a = split_indices(500, SplitFractions(), seed=1)
    b = split_indices(500, SplitFractions(), seed=1)
    c = split_indices(500, SplitFractions(), seed=2)
    assert all(np.array_equal(a[k], b[k]) for k in SPLITS)
    assert not np.array_equal(a["train"], c["train"])


def test_round_trip(tmp_path):
    idx = split_indices(300, SplitFractions(), seed=0)
    write_split(str(tmp_path / "s.h5"), idx, seed=0)
    back = read_split(str(tmp_path / "s.h5"))
    assert all(np.array_equal(idx[k], back[k]) for k in SPLITS)


@pytest.mark.parametrize("n", [1, 40])
def test_too_few_events(n):
    with pytest.raises(InputError, match=f"{n} event\\(s\\) are too few"):
        split_indices(n, SplitFractions(), seed=0)


def test_fractions_must_sum_to_one():
    with pytest.raises(InputError, match="sum to 1"):
        SplitFractions(train=0.9, val=0.1, test=0.1, truth=0.1)


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(1, "zmumu", "vae") == derive_seed(1, "zmumu", "vae")
    seeds = {derive_seed(1, "zmumu", m) for m in ("vae", "gan", "maf")} | {derive_seed(2, "zmumu", "vae")}
    assert len(seeds) == 4
    assert 0 <= derive_seed(123, "x") < 2**31
