"""Object ordering: generated objects are stored as the reader stored the truth, and the
density of the ordered event is the sum over the orders a generator could have drawn."""

import numpy as np
import pytest
from scipy import stats

from hepgenbench.errors import InputError
from hepgenbench.ordering import ObjectOrder, object_orders, ordered_log_prob, put_in_order

NAMES = ["Muon1_pt", "Muon1_eta", "Muon2_pt", "Muon2_eta", "Jet1_pt"]
MUONS = ObjectOrder.of_collection("Muon", 2, "pt", ["pt", "eta"])


def test_sort_moves_whole_objects_and_leaves_ordered_events_alone():
    x = np.array([[10.0, 0.1, 30.0, 0.3, 50.0],   # swapped
                  [40.0, 0.4, 20.0, 0.2, 60.0]])  # already in order
    out = put_in_order(x, NAMES, [MUONS])
    np.testing.assert_array_equal(out, [[30.0, 0.3, 10.0, 0.1, 50.0], [40.0, 0.4, 20.0, 0.2, 60.0]])
    np.testing.assert_array_equal(x[0], [10.0, 0.1, 30.0, 0.3, 50.0])  # the input is not modified


def test_three_objects_sort_by_their_key():
    names = [f"Jet{i}_{f}" for i in (1, 2, 3) for f in ("pt", "eta")]
    jets = ObjectOrder.of_collection("Jet", 3, "pt", ["pt", "eta"])
    x = np.random.default_rng(0).uniform(1, 100, (1000, 6))
    out = jets.sort(x, names)
    assert (np.diff(out[:, [0, 2, 4]], axis=1) <= 0).all()
    # each (pt, eta) pair is carried along: the set of objects per event is unchanged
    for before, after in zip(x, out):
        assert {tuple(o) for o in before.reshape(3, 2)} == {tuple(o) for o in after.reshape(3, 2)}
    assert len(list(jets.permutations(x[:2], names))) == 6


def test_ordered_density_is_the_sum_over_orders_and_normalised():
    """Muon1_pt ~ Exp(mean 1), Muon2_pt ~ Exp(mean 3), independent: not exchangeable, so the
    ordered density is q₁(a)q₂(b) + q₁(b)q₂(a) on a > b, and it integrates to 1 there."""
    names = ["Muon1_pt", "Muon2_pt"]
    order = ObjectOrder.of_collection("Muon", 2, "pt", ["pt"])

    def log_q(x):
        return stats.expon.logpdf(x[:, 0], scale=1.0) + stats.expon.logpdf(x[:, 1], scale=3.0)

    h = 40 / 1600
    a, b = np.meshgrid(*[(np.arange(1600) + 0.5) * h] * 2, indexing="ij")  # cell midpoints
    x = np.column_stack([a.ravel(), b.ravel()])
    got = ordered_log_prob(log_q, x, names, [order])
    expected = np.log(stats.expon.pdf(x[:, 0]) * stats.expon.pdf(x[:, 1], scale=3)
                      + stats.expon.pdf(x[:, 1]) * stats.expon.pdf(x[:, 0], scale=3))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # over a > b; a cell on the diagonal is half inside
    inside = (x[:, 0] > x[:, 1]) + 0.5 * (x[:, 0] == x[:, 1])
    assert (np.exp(got) * inside).sum() * h**2 == pytest.approx(1.0, abs=1e-3)
    # and the sorted samples of q are distributed by it: a KS test on the leading pT
    rng = np.random.default_rng(1)
    draws = order.sort(np.column_stack([rng.exponential(1.0, 20000), rng.exponential(3.0, 20000)]), names)
    cdf = lambda t: (1 - np.exp(-t)) * (1 - np.exp(-t / 3))  # P(max < t)  # noqa: E731
    assert stats.kstest(draws[:, 0], cdf).pvalue > 0.01


def test_no_order_leaves_the_density_alone():
    x = np.random.default_rng(0).normal(size=(10, 5))
    log_q = lambda x: -0.5 * (x**2).sum(1)  # noqa: E731
    np.testing.assert_array_equal(ordered_log_prob(log_q, x, NAMES, []), log_q(x))
    assert object_orders({}) == []


def test_round_trip_through_meta_and_bad_orders():
    assert object_orders({"object_order": [MUONS.to_dict()]}) == [MUONS]
    with pytest.raises(InputError, match="two or more objects"):
        ObjectOrder("pt", (("Muon1_pt",),))
    with pytest.raises(InputError, match="do not include it"):
        ObjectOrder.of_collection("Muon", 2, "pt", ["eta", "phi"])
    with pytest.raises(InputError, match=r"features \['Muon2_eta'\] are not among"):
        MUONS.sort(np.zeros((1, 3)), ["Muon1_pt", "Muon1_eta", "Muon2_pt"])
