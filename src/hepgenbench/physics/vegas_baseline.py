"""VEGAS as the classical baseline of a trained phase-space sampler.

VEGAS (Lepage 1978; the ``vegas`` package, arXiv:2009.05112) adapts a separable map
y ∈ [0, 1]^d → x, one piecewise-linear grid per axis, so that the Jacobian follows the
integrand. Every neural importance-sampling paper quotes its sampler against it (ZüNIS,
arXiv:2110.15940: 0.36 against VEGAS's 0.076 on eμ → eμ).

Here VEGAS adapts on a kind's :class:`~hepgenbench.kinds.base.TrueDensity` inside the
density's bounding box (:meth:`~hepgenbench.kinds.base.TrueDensity.box`) with a stated
budget of density evaluations, over :data:`ITERATIONS` iterations. The adapted map is then
the proposal: y uniform, x = map(y), q(x) = 1 / |∂x/∂y|. Stratification, which VEGAS uses to
integrate, is left out: unweighting needs i.i.d. events from one density q, which a
stratified sample is not. The weights p/q of a fresh sample then go through the same
:func:`~hepgenbench.metrics.unweighting.unweighting_efficiency` as a model's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hepgenbench.errors import InputError
from hepgenbench.metrics.base import MetricResult, RandomLike
from hepgenbench.physics import json_safe

if TYPE_CHECKING:
    from hepgenbench.kinds.base import TrueDensity

#: adaptation iterations over which the evaluation budget is spread
ITERATIONS = 10
#: fewest evaluations per iteration: below it a 5-D grid cannot adapt at all
MIN_EVALUATIONS_PER_ITERATION = 200


def vegas_weights(density: TrueDensity, n_train: int, n_events: int, seed: RandomLike,
                  iterations: int = ITERATIONS) -> dict:
    """Train VEGAS on ``density`` with about ``n_train`` evaluations, draw ``n_events`` from
    its map, and score them as :func:`~hepgenbench.metrics.unweighting.unweighting_efficiency`
    does (plus ``n_train_evaluations``, what VEGAS actually used, and ``iterations``). A
    budget below ``iterations`` × :data:`MIN_EVALUATIONS_PER_ITERATION` runs fewer iterations.

    Raises:
        InputError: the density has no bounding box, or the budget is below one iteration.
    """
    import vegas

    from hepgenbench.metrics.unweighting import unweighting_efficiency

    box = density.box()
    if box is None:
        raise InputError(f"{type(density).__name__} has no bounding box: VEGAS needs one to lay its grid")
    iterations = min(iterations, n_train // MIN_EVALUATIONS_PER_ITERATION)
    if iterations < 1:
        raise InputError(f"a VEGAS budget of {n_train} density evaluations is below one iteration of "
                         f"{MIN_EVALUATIONS_PER_ITERATION}")
    per_iteration = n_train // iterations
    rng = np.random.default_rng(seed)
    used = 0

    @vegas.batchintegrand
    def integrand(x: np.ndarray) -> np.ndarray:
        nonlocal used
        used += len(x)
        return np.exp(density.log_prob(np.asarray(x, dtype=np.float64)))

    integrator = vegas.Integrator([list(edge) for edge in box], ran_array_generator=rng.random)
    integrator(integrand, nitn=iterations, neval=per_iteration)
    y = rng.random((n_events, len(box)))
    x, jacobian = np.empty_like(y), np.empty(n_events)
    integrator.map.map(y, x, jacobian)
    log_q = -np.log(jacobian)  # y is uniform on the unit cube: q(x) = 1 / |∂x/∂y|
    return {**unweighting_efficiency(density.log_prob(x), log_q, rng), "n_train_evaluations": used,
            "iterations": iterations}


def unweighting_vs_vegas(density: TrueDensity, weights: dict, proposal: str, seed: RandomLike) -> MetricResult:
    """A sampler's unweighting figures beside VEGAS's at the same budget: the
    ``unweighting_vs_vegas`` metric.

    ``weights``: the sampler's :func:`~hepgenbench.metrics.unweighting.unweighting_efficiency`
    on its ``n`` events; VEGAS adapts with n density evaluations and is scored on n fresh
    events. The value is the sampler's efficiency against the reduced maximum
    (``efficiency_reduced_max``; the raw ⟨w⟩/max w for weights written before it existed);
    ``ratio_to_vegas`` is that value over VEGAS's.
    """
    n = int(weights["n"])
    key = "efficiency_reduced_max" if "efficiency_reduced_max" in weights else "efficiency"
    details: dict = {"proposal": proposal, "sampler": dict(weights), "efficiency_is": key,
                     "vegas_budget": "as many density evaluations as the sampler's weighted events"}
    try:
        vegas = vegas_weights(density, n_train=n, n_events=n, seed=seed)
    except InputError as err:
        details["vegas"] = {"skipped": str(err)}
        return MetricResult(weights.get(key, float("nan")), float("nan"), json_safe(details))
    details["vegas"] = vegas
    ratio = weights.get(key, float("nan")) / vegas[key] if vegas.get(key) else float("nan")
    details["ratio_to_vegas"] = ratio
    details["ratio_to_vegas_raw"] = weights["efficiency"] / vegas["efficiency"] if vegas["efficiency"] else float("nan")
    return MetricResult(weights.get(key, float("nan")), float("nan"), json_safe(details))
