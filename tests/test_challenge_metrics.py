"""The CaloChallenge's metrics (arXiv:2410.21611): its classifier (cc22) and PRDC (arXiv:2002.09797)."""

from __future__ import annotations

import numpy as np
import pytest

from hepgenbench.errors import InputError
from hepgenbench.metrics.cc22 import hanley_mcneil_error
from hepgenbench.metrics.classifier import classifier_two_sample_test
from hepgenbench.metrics.prdc import prdc, prdc_metrics
from hepgenbench.records import EvalOptions

#: the challenge's network, shrunk so that a test trains it in a fraction of a second
TINY_CC22 = {"width": 32, "epochs": 8, "batch_size": 100}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The evaluate stage gives torch the rule's threads; one here, as the rule's default."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def gaussians(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d))
    x[:, 0] += shift
    return x


def test_cc22_separates_a_shifted_sample_and_not_the_same_law():
    truth = gaussians(600, 3, 1)
    shifted = classifier_two_sample_test(truth, gaussians(600, 3, 2, shift=2.0), "cc22", rng=0, cc22=TINY_CC22)
    # two unit Gaussians 2σ apart: the Bayes-optimal AUC is Φ(2/√2) = 0.92
    assert shifted.value > 0.8
    assert shifted.details["jsd_bits"] > 0.1
    same = [classifier_two_sample_test(truth, gaussians(600, 3, 3), "cc22", rng=3, cc22=TINY_CC22)]
    for result in same:
        assert abs(result.value - 0.5) < 4 * result.error  # error ≈ 0.037 on 240 test events
        assert result.details["classifier"] == "cc22" and result.details["n_test"] == 240
        assert result.details["jsd_bits"] < 0.1  # a finite-sample estimate: it may dip below 0


def test_cc22_is_seeded():
    truth, gen = gaussians(300, 2, 1), gaussians(300, 2, 2, shift=0.5)
    runs = [classifier_two_sample_test(truth, gen, "cc22", rng=7, cc22=TINY_CC22) for _ in range(2)]
    assert runs[0].value == runs[1].value and runs[0].details["log_w_hist"] == runs[1].details["log_w_hist"]


def test_cc22_steps_adam_in_place_and_keeps_the_best_weights_on_disk(monkeypatch):
    """The streamed classifier's memory on dataset 3 is the weights, gradients and Adam's
    moments: the optimiser is fused (no per-step temporaries the size of a weight) and the
    best epoch's weights are a file, read back bit for bit at the end."""
    import torch

    from hepgenbench.metrics import cc22

    made, kept, losses = [], [], []
    real_adam = cc22.adam
    monkeypatch.setattr(cc22, "adam", lambda *a: made.append(real_adam(*a)) or made[-1])

    class Spy(cc22.BestWeights):
        def keep(self, net, epoch):
            super().keep(net, epoch)
            assert not any(isinstance(v, (torch.Tensor, dict)) for v in vars(self).values())  # nothing held
            kept.append((epoch, {k: v.clone() for k, v in net.state_dict().items()}))

        def restore(self, net):
            for v in net.parameters():
                v.data.zero_()  # what the best weights must overwrite
            super().restore(net)
            assert self.epoch == kept[-1][0]
            for k, v in net.state_dict().items():
                assert torch.equal(v, kept[-1][1][k]), k

    monkeypatch.setattr(cc22, "BestWeights", Spy)
    x = np.vstack([gaussians(300, 3, 1), gaussians(300, 3, 2, shift=0.5)])
    y = np.r_[np.ones(300), np.zeros(300)]
    train, test, val = cc22.split_pooled(len(y), 5)
    device = torch.device("cpu")
    fit = cc22.cc22_train(cc22.InMemoryData(x, y, {"train": train, "test": test, "val": val}, device), 3,
                          cc22.CC22Settings(**TINY_CC22), 5, device, lambda epoch, loss, s: losses.append(loss))
    assert made[0].defaults["fused"] is True
    assert fit.best_epoch == int(np.argmin(losses)) == kept[-1][0]
    assert [e for e, _ in kept] == [e for e in range(len(losses)) if losses[e] < min(losses[:e], default=np.inf)]


def test_cc22_is_an_evaluation_option_with_the_challenge_defaults():
    options = EvalOptions.from_config({"c2st_classifier": "cc22", "cc22_epochs": 3})
    assert options.cc22 == {"width": 2048, "epochs": 3, "batch_size": 1000, "learning_rate": 2e-4}
    with pytest.raises(InputError, match="cc22_width"):
        EvalOptions.from_config({"cc22_width": 0})
    with pytest.raises(InputError, match="cc22 classifier options"):
        classifier_two_sample_test(gaussians(100, 1, 0), gaussians(100, 1, 1), "cc22", cc22={"depth": 3})


def test_hanley_mcneil_error_of_a_chance_auc():
    # at AUC = 1/2: Q1 = 1/3, Q2 = 1/3, var = (1/4 + 2(n−1)/12) / n²
    n = 100
    assert hanley_mcneil_error(0.5, n, n) == pytest.approx(np.sqrt((0.25 + (n - 1) / 6) / n**2))


def test_prdc_by_hand_in_one_dimension():
    truth = np.array([[0.0], [1.0], [2.0], [3.0]])  # k = 1: every truth radius is 1
    gen = np.array([[0.5], [10.0]])  # k = 1: both generated radii are 9.5
    # 0.5 lies in the balls of 0 and 1, 10 in none; every truth event lies within 9.5 of 0.5;
    # the nearest generated event is within 1 of truth 0 and 1 only
    assert prdc(truth, gen, k=1) == {"precision": 0.5, "recall": 1.0, "density": 1.0, "coverage": 0.5}


def test_prdc_of_the_same_law_and_of_disjoint_samples():
    same = prdc_metrics(gaussians(3000, 2, 1), gaussians(3000, 2, 2), k=5, max_events=1000, rng=0)
    assert same["prdc_precision"].value > 0.95 and same["prdc_recall"].value > 0.95
    assert same["prdc_density"].value == pytest.approx(1.0, abs=0.05)  # E = 1 for the same law
    assert same["prdc_coverage"].value == pytest.approx(1 - 2.0**-5, abs=0.02)  # E = 1 − 2^−k
    assert same["prdc_coverage"].details["n_per_sample"] == 1000
    disjoint = prdc_metrics(gaussians(600, 2, 1), gaussians(600, 2, 2, shift=50.0), k=5, rng=0)
    assert all(r.value == 0.0 for r in disjoint.values())
    x = gaussians(200, 2, 1)
    identical = prdc(x, x, k=3)
    assert identical["precision"] == identical["recall"] == identical["coverage"] == 1.0


def test_prdc_rejects_too_few_events():
    with pytest.raises(InputError, match="k=5"):
        prdc(gaussians(5, 2, 0), gaussians(50, 2, 1), k=5)


def test_calo_kind_adds_the_challenge_metrics_with_their_truth_floor():
    from threadpoolctl import threadpool_limits

    from hepgenbench import kinds
    from hepgenbench.data.calo import simulate
    from hepgenbench.io import EventSet

    def showers(n: int, seed: int, scale: float = 1.0) -> EventSet:
        e_inc = np.random.default_rng(seed).choice([1024.0, 65536.0], size=n)
        voxels = simulate(e_inc, seed) * scale
        return EventSet(voxels, [f"voxel_{i}" for i in range(voxels.shape[1])], kind="calo",
                        condition=e_inc[:, None], condition_names=["E_inc"])

    kind = kinds.get("calo")
    options = EvalOptions.from_config({"c2st_classifier": "cc22", "cc22_width": 32, "cc22_epochs": 8,
                                       "cc22_batch_size": 100, "prdc_max_events": 300, "n_bootstrap": 2,
                                       "c2st_folds": 2, "energy_bins": 1})
    truth = showers(600, 1)
    scores = {}
    for name, other in (("truth", showers(600, 2)), ("hot", showers(600, 3, scale=1.3))):
        obs_t, names = kind.observables(truth)
        obs_o, _ = kind.observables(other)
        with threadpool_limits(1):  # as the evaluate stage runs it: an unlimited OpenMP pool stalls beside other jobs
            scores[name] = kind.extra_metrics(truth, other, obs_t, obs_o, names, options, seed=0)
    floor, hot = scores["truth"], scores["hot"]
    assert floor["c2st_auc_high_level"].details["classifier"] == "cc22"
    assert hot["c2st_auc_high_level"].value > 0.8 > floor["c2st_auc_high_level"].value
    hot_sep, floor_sep = hot["separation_power_high_level"], floor["separation_power_high_level"]
    assert hot_sep.value > floor_sep.value + 5 * np.hypot(hot_sep.error, floor_sep.error)
    assert floor["prdc_density"].value == pytest.approx(1.0, abs=0.25)
    # 30% too much energy moves the showers off truth's manifold in E_layer and E_tot/E_inc
    assert hot["prdc_precision"].value < floor["prdc_precision"].value - 0.2
    assert hot["prdc_coverage"].value < floor["prdc_coverage"].value - 0.2
    # the bins are the challenge network's own held-out predictions, scored per energy
    assert floor["per_energy_bin"].details["classifier"].startswith("cc22")
