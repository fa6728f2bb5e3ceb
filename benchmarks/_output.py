"""How every benchmark script hands over its figures: a Markdown table for people, JSON for run_all.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_outputs(markdown_path: str, lines: list[str], json_path: str | None, figures: Any) -> None:
    """Write ``lines`` as Markdown, ``figures`` as JSON (when a path is given), and echo the table."""
    Path(markdown_path).parent.mkdir(parents=True, exist_ok=True)
    Path(markdown_path).write_text("\n".join(lines))
    if json_path:
        Path(json_path).write_text(json.dumps(figures, indent=1))
    print("\n".join(lines))
