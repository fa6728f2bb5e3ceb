"""The CaloChallenge 2022 binary classifier ("cc22"), so that a user's AUCs sit on the
scale of the challenge's published ones (arXiv:2410.21611, Sec. 4; its ``evaluate.py``).

Written from the challenge's description, not from its code:

* a fully connected network: an input layer and two hidden layers of 2,048 units, each
  followed by a LeakyReLU, and one logit out; binary cross-entropy loss;
* Adam at a learning rate of 2·10⁻⁴, 50 epochs, batches of 1,000;
* one 60/20/20 split of the pooled, class-balanced events into train, test and validation;
* isotonic calibration of the network's output, fitted on the validation split (kept within
  [1/(n_val + 2), 1 − 1/(n_val + 2)], the resolution of that split);
* outputs on the test split: the ROC AUC and the Jensen–Shannon divergence
  JSD = (ln 2 − BCE)/ln 2 in bits, with BCE the cross-entropy of the calibrated output.

Where this differs from the challenge's script, deliberately: the inputs are standardised
with the training split's mean and standard deviation (the challenge scales them by hand
per dataset); the epoch kept is the one with the lowest validation loss, so the test split
never steers training; every draw (weights, split, batches) is seeded, where the
challenge's script is not. The error of the AUC is the Hanley–McNeil standard error
(Radiology 143 (1982) 29) of the test-split AUC; the challenge quotes the spread of ten
retrainings instead.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score
from torch import nn

#: train, test and validation fractions of the pooled events, as the challenge splits them
SPLIT = (0.6, 0.2, 0.2)


@dataclass(frozen=True)
class CC22Settings:
    """The classifier's size and training; the defaults are the challenge's."""

    width: int = 2048
    epochs: int = 50
    batch_size: int = 1000
    learning_rate: float = 2e-4
    #: "auto" takes CUDA when present
    device: str = "auto"


@dataclass(frozen=True)
class CC22Result:
    """Calibrated test-split outputs and the scores read from them."""

    auc: float
    auc_error: float
    jsd_bits: float
    auc_uncalibrated: float
    best_epoch: int
    epochs: int
    #: calibrated p(truth | x) and labels (1 truth, 0 generated) of the test split
    p_test: np.ndarray
    y_test: np.ndarray
    #: indices of the test events in the pooled (truth, generated) input
    test_index: np.ndarray
    device: str


def cc22_network(n_inputs: int, width: int) -> nn.Sequential:
    """Input layer and two hidden layers of ``width`` units, LeakyReLU after each, one logit."""
    return nn.Sequential(
        nn.Linear(n_inputs, width), nn.LeakyReLU(),
        nn.Linear(width, width), nn.LeakyReLU(),
        nn.Linear(width, width), nn.LeakyReLU(),
        nn.Linear(width, 1),
    )  # fmt: skip


def hanley_mcneil_error(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an ROC AUC from n_pos positives and n_neg negatives (Hanley & McNeil 1982)."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)
    return float(np.sqrt(max(var, 0.0)))


def _device(requested: str) -> torch.device:
    from hepgenbench.models.base import select_device

    return select_device(requested)


def split_pooled(n_events: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The challenge's one 60/20/20 split of ``n_events`` pooled events: positions of the
    train, test and validation events, from a permutation seeded by ``seed``."""
    order = np.random.default_rng(seed).permutation(n_events)
    n_train, n_test = int(SPLIT[0] * n_events), int(SPLIT[1] * n_events)
    return order[:n_train], order[n_train:n_train + n_test], order[n_train + n_test:]


#: the parts of the split, by name
PARTS = ("train", "test", "val")


class CC22Data(Protocol):
    """The pooled events of one split, standardised, handed out in minibatches.

    :func:`cc22_train` asks only for these, so the in-memory path (:class:`InMemoryData`)
    and the one that reads showers from disk (:mod:`hepgenbench.metrics.streamed_c2st`)
    train, calibrate and score with the same code.
    """

    def labels(self, part: str) -> np.ndarray:
        """Labels (1 truth, 0 generated) of the part's events, in the part's order."""

    def batches(self, part: str, order: np.ndarray, batch_size: int,
                device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Standardised inputs (float32) and labels of the part's events at positions
        ``order[i:i + batch_size]``, for i = 0, batch_size, …, in that order."""


class InMemoryData:
    """:class:`CC22Data` of an in-memory ``(x, y)``: each part standardised with the training
    part's mean and standard deviation and held as tensors on the device."""

    def __init__(self, x: np.ndarray, y: np.ndarray, parts: dict[str, np.ndarray], device: torch.device):
        mean, std = x[parts["train"]].mean(axis=0), x[parts["train"]].std(axis=0)
        std = np.where(std > 0, std, 1.0)
        self._y = {name: y[idx] for name, idx in parts.items()}
        self._tensors = {
            name: (torch.as_tensor((x[idx] - mean) / std, dtype=torch.float32, device=device),
                   torch.as_tensor(y[idx], dtype=torch.float32, device=device))
            for name, idx in parts.items()
        }

    def labels(self, part: str) -> np.ndarray:
        return self._y[part]

    def batches(self, part, order, batch_size, device):
        x, y = self._tensors[part]
        order = torch.as_tensor(order, device=device)
        for batch in order.split(batch_size):
            yield x[batch], y[batch]


@dataclass(frozen=True)
class CC22Fit:
    """The calibrated classifier's outputs on the test part (before any bookkeeping of indices)."""

    auc: float
    auc_error: float
    jsd_bits: float
    auc_uncalibrated: float
    best_epoch: int
    p_test: np.ndarray
    y_test: np.ndarray
    #: seconds of each epoch (training and the validation loss)
    epoch_seconds: list[float]


#: called after every epoch with (epoch, validation loss, seconds of the epoch)
EpochCallback = Callable[[int, float, float], None]


def adam(net: nn.Module, learning_rate: float, device: torch.device) -> torch.optim.Adam:
    """The challenge's optimiser, Adam, in torch's fused form on CPU and CUDA: one kernel per
    step that updates the weights in place. The default per-tensor form builds its step's
    denominator √v̂ + ε as new tensors the size of each weight, 2 × 332 MB for the first layer of
    the network on dataset 3's 40,501 inputs."""
    return torch.optim.Adam(net.parameters(), lr=learning_rate, fused=device.type in ("cpu", "cuda") or None)


class BestWeights:
    """The network's weights at its best epoch so far, kept in a temporary file, not in memory.

    On dataset 3 the network has 91·10⁶ weights (365 MB as float32): a copy in memory would
    sit beside the weights, their gradients and Adam's two moments for the whole training.
    ``torch.save`` and ``torch.load`` give the weights back bit for bit."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="hepgenbench-cc22-")
        self.path = Path(self._dir.name) / "best.pt"
        self.epoch = -1

    def keep(self, net: nn.Module, epoch: int) -> None:
        torch.save(net.state_dict(), self.path)
        self.epoch = epoch

    def restore(self, net: nn.Module) -> None:
        net.load_state_dict(torch.load(self.path, map_location="cpu", weights_only=True))

    def close(self) -> None:
        self._dir.cleanup()

    def __enter__(self) -> BestWeights:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def cc22_train(data: CC22Data, n_inputs: int, settings: CC22Settings, seed: int, device: torch.device,
               on_epoch: EpochCallback | None = None) -> CC22Fit:
    """Train the challenge's network on ``data``'s train part, keep the epoch of lowest
    validation loss, calibrate on the validation part and score the test part.

    Minibatches are consecutive slices of a seeded permutation of the train part per epoch,
    so any :class:`CC22Data` holding the same events trains the same network. The memory is
    the weights, their gradients, Adam's two moments (4 × 365 MB on dataset 3) and one
    minibatch: the best epoch's weights wait on disk (:class:`BestWeights`).
    """
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        net = cc22_network(n_inputs, settings.width).to(device)
    optimiser = adam(net, settings.learning_rate, device)
    loss_fn = nn.BCEWithLogitsLoss()
    shuffle = torch.Generator().manual_seed(seed)
    sizes = {part: len(data.labels(part)) for part in PARTS}
    y_val = torch.as_tensor(data.labels("val"), dtype=torch.float32, device=device)

    def logits(part: str) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([net(x) for x, _ in data.batches(part, np.arange(sizes[part]), settings.batch_size,
                                                                device)])[:, 0]

    best_loss, seconds = np.inf, []
    with BestWeights() as best:
        for epoch in range(settings.epochs):
            start = time.perf_counter()
            net.train()
            order = torch.randperm(sizes["train"], generator=shuffle).numpy()
            for x, y in data.batches("train", order, settings.batch_size, device):
                optimiser.zero_grad()
                loss_fn(net(x)[:, 0], y).backward()
                optimiser.step()
            net.eval()
            val_loss = float(loss_fn(logits("val"), y_val))
            if val_loss < best_loss:
                best_loss = val_loss
                best.keep(net, epoch)
            seconds.append(time.perf_counter() - start)
            if on_epoch is not None:
                on_epoch(epoch, val_loss, seconds[-1])
        # the gradients and Adam's moments go before the best weights are read back in
        optimiser.zero_grad(set_to_none=True)
        del optimiser
        best.restore(net)
        best_epoch = best.epoch
    net.eval()
    p_val = torch.sigmoid(logits("val")).cpu().numpy()
    p_test_raw = torch.sigmoid(logits("test")).cpu().numpy()
    return calibrated_scores(p_val, data.labels("val"), p_test_raw, data.labels("test"), best_epoch, seconds)


def calibrated_scores(p_val: np.ndarray, y_val: np.ndarray, p_test_raw: np.ndarray, y_test: np.ndarray,
                      best_epoch: int, epoch_seconds: list[float]) -> CC22Fit:
    """Isotonic calibration fitted on the validation part, then the test part's AUC and JSD."""
    calibration = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p_val, y_val)
    # An isotonic fit is 0 or 1 beyond the validation events of one class; kept within the
    # validation split's resolution, one such test event costs log(n_val) in the BCE, not ∞.
    floor = 1.0 / (len(y_val) + 2)
    p_test = np.clip(calibration.predict(p_test_raw), floor, 1 - floor)
    auc = float(roc_auc_score(y_test, p_test))
    bce = float(-np.mean(y_test * np.log(p_test) + (1 - y_test) * np.log1p(-p_test)))
    n_pos = int(y_test.sum())
    return CC22Fit(auc=auc, auc_error=hanley_mcneil_error(auc, n_pos, len(y_test) - n_pos),
                   jsd_bits=(np.log(2.0) - bce) / np.log(2.0), auc_uncalibrated=float(roc_auc_score(y_test, p_test_raw)),
                   best_epoch=best_epoch, p_test=p_test, y_test=y_test, epoch_seconds=epoch_seconds)


def cc22_fit_predict(x: np.ndarray, y: np.ndarray, settings: CC22Settings, seed: int) -> CC22Result:
    """Train the challenge's classifier on 60% of ``(x, y)`` and score the test 20%.

    ``x``: pooled inputs ``(N, D)``; ``y``: 1 for truth, 0 for generated. Threads are
    torch's (the evaluate stage sets them from the rule's ``threads``).
    """
    train, test, val = split_pooled(len(y), seed)
    device = _device(settings.device)
    fit = cc22_train(InMemoryData(x, y, {"train": train, "test": test, "val": val}, device), x.shape[1], settings,
                     seed, device)
    return CC22Result(
        auc=fit.auc, auc_error=fit.auc_error, jsd_bits=fit.jsd_bits, auc_uncalibrated=fit.auc_uncalibrated,
        best_epoch=fit.best_epoch, epochs=settings.epochs, p_test=fit.p_test, y_test=fit.y_test, test_index=test,
        device=str(device),
    )
