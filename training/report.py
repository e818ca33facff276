"""The one writer of JSON reports: atomic (temporary file, then rename) and newline-terminated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def report_text(payload: Any) -> str:
    """A report as indented JSON text; values JSON lacks (timestamps, paths, numpy scalars) become text."""
    return json.dumps(payload, indent=2, default=str) + "\n"


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write a text file through a temporary file and a rename, so a failure never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def write_json(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as a JSON report at ``path`` (atomically)."""
    return write_text_atomic(path, report_text(payload))
