"""Physics-level figures: what a generator's error does to a measurement a physicist makes.

One module per kind, each a plain function of arrays that the kind's ``extra_metrics`` calls
and the report's physics section reads back from the metrics records:

- :mod:`~hepgenbench.physics.lineshape`: the Z line shape in m_μμ, a Voigtian fit, and each
  model's mass and width pulls against truth;
- :mod:`~hepgenbench.physics.calo_response`: the calorimeter response ⟨E_tot/E_inc⟩ and the
  resolution σ/E against incident energy, fitted as a/√E ⊕ b ⊕ c/E;
- :mod:`~hepgenbench.physics.vegas_baseline`: VEGAS (arXiv:2009.05112) trained on a kind's true
  density, the classical importance sampler that neural samplers are quoted against;
- :mod:`~hepgenbench.physics.tables`: the report's physics tables, one per kind.

Nothing here is imported by the kind registry at module level: the Snakefile imports the
registry, and iminuit, vegas and pandas are loaded only when a stage needs them.
"""

from __future__ import annotations

import math
from typing import Any


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±inf) replaced by None, recursively, and
    numpy scalars made Python numbers: what a metrics record stores in its details."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
