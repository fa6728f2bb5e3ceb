"""The result type every metric returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class MetricResult:
    """A metric value with its uncertainty and whatever detail explains it.

    ``value`` and ``error`` are what the report tables show as ``value ± error``.
    ``details`` carries per-feature breakdowns, fit parameters or sample sizes; it must be
    JSON-serialisable.
    """

    value: float
    error: float = float("nan")
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"value": _finite_or_none(self.value), "error": _finite_or_none(self.error), **self.details}


def _finite_or_none(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None
