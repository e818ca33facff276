"""Progress bars with an ETA for the long steps of ``engage`` commands, drawn on stderr only.

The core (simulator, feature pipeline, training) reports progress through plain callbacks: ``(done, total)``
for a step whose size is known, a line of text for a step that only has a name. This module turns those
callbacks into rich progress bars at the command line's edge, so the core never imports rich. Bars are drawn
only when stderr is a terminal and ``--quiet`` is not given: scripts, CI logs and pipes get no escape codes,
and stdout carries nothing but the command's result (JSON).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

StepCallback = Callable[[int, int], None]


def _ignore(done: int, total: int) -> None:
    """The callback of a step nobody watches."""


class Bars:
    """Named steps as progress bars (``step``) and named phases as spinners with their elapsed time (``note``).

    Without a live display (not a terminal, or quiet) ``step`` callbacks do nothing and ``note`` logs the line
    at INFO under ``engage.progress`` (shown on stderr by the commands that log their progress, see
    :func:`progress_bars`).
    """

    def __init__(self, progress: Any | None) -> None:
        self._progress = progress
        self._note_task: Any | None = None

    @property
    def live(self) -> bool:
        """Whether bars are drawn."""
        return self._progress is not None

    def step(self, description: str, total: int | None = None) -> StepCallback:
        """A new bar; the returned callback moves it to ``done`` of ``total`` (the ETA follows from its pace)."""
        if self._progress is None:
            return _ignore
        self._finish_note()
        progress = self._progress
        task = progress.add_task(description, total=total)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return update

    def note(self, text: str) -> None:
        """A phase without a known size: a spinner with its elapsed time (the previous phase is completed)."""
        if self._progress is None:
            logging.getLogger("engage.progress").info("%s", text)
            return
        self._finish_note()
        self._note_task = self._progress.add_task(" ".join(str(text).split()), total=None)

    def _finish_note(self) -> None:
        if self._note_task is not None:
            self._progress.update(self._note_task, total=1, completed=1)
            self._note_task = None

    def close(self) -> None:
        """Complete the open phase (called when the command ends)."""
        if self._progress is not None:
            self._finish_note()


class _NoteHandler(logging.Handler):
    """Training logs (``engage.*`` at INFO) shown as the current phase of the live display.

    A record logged with ``extra={"step": (name, done, total)}`` (at any level, DEBUG when the loop also reports
    in words elsewhere) moves the bar of that step instead, so a training loop of known length gets a bar with an
    ETA without knowing anything about the display.
    """

    def __init__(self, bars: Bars) -> None:
        super().__init__(level=logging.DEBUG)
        self.bars = bars
        self.steps: dict[str, StepCallback] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            step = getattr(record, "step", None)
            if step is None:
                if record.levelno >= logging.INFO:
                    self.bars.note(record.getMessage())
                return
            name, done, total = step
            if name not in self.steps:
                self.steps[name] = self.bars.step(str(name), int(total))
            self.steps[name](int(done), int(total))
        except Exception:  # a display problem must never stop the command
            self.handleError(record)


def _live_display() -> Any:
    """A rich progress display on stderr: spinner, step, bar, share, elapsed and remaining time."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )


def enable_progress() -> None:
    """Progress as log lines on stderr (training logs through ``logging`` under ``engage.*``)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("mlflow", "alembic", "urllib3", "bentoml", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def wants_bars(quiet: bool, stream: Any = None) -> bool:
    """Bars only on a terminal, and never with ``--quiet``."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return not quiet and callable(isatty) and bool(isatty())


@contextmanager
def progress_bars(quiet: bool = False, *, logs: bool = False) -> Iterator[Bars]:
    """Bars for the duration of a command; the training logs (``engage.*``) become its phases.

    Without a terminal, a command with ``logs`` (the long training commands) prints its progress as time-stamped
    log lines on stderr instead, as CI logs want; the others print nothing. ``quiet`` silences both (warnings
    and errors still show).
    """
    engage_log = logging.getLogger("engage")
    propagate, level = engage_log.propagate, engage_log.level
    try:
        if not wants_bars(quiet):
            if quiet:
                engage_log.setLevel(logging.WARNING)
            elif logs:
                enable_progress()
            yield Bars(None)
            return
        enable_progress()  # other libraries' warnings still show (above the bars)
        with _live_display() as display:
            bars = Bars(display)
            handler = _NoteHandler(bars)
            engage_log.addHandler(handler)
            engage_log.propagate = False  # shown as the live phase, not printed under the bars again
            engage_log.setLevel(logging.DEBUG)  # the handler shows INFO records and the DEBUG ones moving a bar
            try:
                yield bars
                bars.close()
            finally:
                engage_log.removeHandler(handler)
    finally:
        engage_log.propagate, engage_log.level = propagate, level
