"""Progress lines for the rules' logs: timestamped, flushed at once so `tail -f` shows them."""

from __future__ import annotations

import sys
import time

_T0 = time.monotonic()


def log(*parts: object) -> None:
    """Print one progress line with the elapsed time since the process started."""
    print(f"[{time.monotonic() - _T0:8.1f}s]", *parts, flush=True, file=sys.stdout)
