"""What generating costs, as the CaloChallenge reports it (arXiv:2410.21611, Sec. 5).

* generation time per event (per shower) in milliseconds at batch sizes 1, 100 and
  10,000, on the CPU and, when one is present, on the GPU; the first call on a device
  (allocations, kernel selection) is timed apart, as ``warmup_s``, and so is loading the
  model (``load_time_s``, measured by the caller);
* trainable parameters (:meth:`~hepgenbench.models.base.Generator.n_parameters`);
* floating-point operations per event of one sampling call, counted by
  :class:`torch.utils.flop_counter.FlopCounterMode` (matrix products and convolutions:
  the operations that dominate a network; element-wise ones are not counted).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from hepgenbench.models.base import Generator
from hepgenbench.train import sampling_rates

#: events in the call whose operations are counted (the count per event does not depend on it)
FLOP_BATCH = 16


def _conditions(pool: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor | None:
    return None if pool is None else pool[torch.arange(n) % len(pool)].reshape(n, -1).to(device)


@torch.no_grad()
def flops_per_event(model: Generator, cond_pool: torch.Tensor | None, seed: int = 0) -> float:
    """FLOPs of ``model.sample`` per event, from :class:`FlopCounterMode` on one call."""
    counter = FlopCounterMode(display=False)
    generator = torch.Generator().manual_seed(seed)
    with counter:
        model.sample(FLOP_BATCH, _conditions(cond_pool, FLOP_BATCH, model.device), generator=generator)
    return counter.get_total_flops() / FLOP_BATCH


@torch.no_grad()
def warmup_seconds(model: Generator, cond_pool: torch.Tensor | None, seed: int = 0) -> float:
    """Wall time of the first ``model.sample(1)`` on the model's device."""
    generator = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    model.sample(1, _conditions(cond_pool, 1, model.device), generator=generator)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def generation_cost(model: Generator, batch_sizes: tuple[int, ...], cond_pool: torch.Tensor | None = None,
                    seed: int = 0, max_seconds: float | None = 30.0) -> dict[str, Any]:
    """Per-event generation time, warm-up and FLOPs of ``model`` on the CPU and on CUDA when present.

    Returns ``{"time_per_event_ms": {"cpu_1": ..., "cuda_10000": ...}, "warmup_s": {"cpu": ...},
    "flops_per_event": ..., "sample_rate": {"1": ...}}``: times in milliseconds per event
    (None where the batch would take longer than ``max_seconds``, see
    :func:`~hepgenbench.train.sampling_rates`), the CPU's events per second as
    ``sample_rate``. The model is returned to its device.
    """
    home = model.device
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    out: dict[str, Any] = {"time_per_event_ms": {}, "warmup_s": {}, "sample_rate": {}}
    try:
        for device in devices:
            model.to(device).eval()
            out["warmup_s"][device.type] = warmup_seconds(model, cond_pool, seed)
            rates = sampling_rates(model, batch_sizes, cond_pool=cond_pool, seed=seed, max_seconds=max_seconds)
            for batch, rate in rates.items():
                out["time_per_event_ms"][f"{device.type}_{batch}"] = None if not rate else 1e3 / rate
                if device.type == "cpu":
                    out["sample_rate"][str(batch)] = rate
        model.to(torch.device("cpu"))
        out["flops_per_event"] = flops_per_event(model, cond_pool, seed)
    finally:
        model.to(home)
    return out
