"""Run an ``engage`` command that stops at a named function until told to go on: where fault tests kill it.

``python -m tests.faultpoints MODULE:FUNCTION MARKER_DIR ENGAGE_ARGS...`` replaces ``MODULE.FUNCTION`` (before
the command imports anything that binds it) by a wrapper that, on its first call, writes
``MARKER_DIR/reached.<pid>`` and waits until ``MARKER_DIR/go`` exists, then calls the original. A test either
kills the process (SIGKILL) once the marker is there, or lets several processes meet at the same point and
go on together. Nothing of this lives in engage itself: the command that runs is the real one.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import time
from pathlib import Path


def pause_at(target: str, markers: Path) -> None:
    """Wrap ``module:function`` so that its first call announces itself and waits for ``markers/go``."""
    module_name, func_name = target.split(":")
    module = importlib.import_module(module_name)
    original = getattr(module, func_name)
    state = {"paused": False}

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if not state["paused"]:
            state["paused"] = True
            markers.mkdir(parents=True, exist_ok=True)
            (markers / f"reached.{os.getpid()}").write_text(target)
            while not (markers / "go").exists():
                time.sleep(0.02)
        return original(*args, **kwargs)

    setattr(module, func_name, wrapper)


def main(argv: list[str]) -> None:
    target, markers, *args = argv
    pause_at(target, Path(markers))
    from training.cli import main as engage

    sys.argv = ["engage", *args]
    engage()


if __name__ == "__main__":
    main(sys.argv[1:])
