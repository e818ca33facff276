"""Progress at the command line's edge: bars with an ETA on a terminal's stderr, fed by the core's plain callbacks
and the training logs; nothing without a terminal or with --quiet; stdout untouched."""

from __future__ import annotations

import io
import logging

import pytest
from rich.console import Console
from rich.progress import Progress, TextColumn, TimeRemainingColumn

from training import cli_progress
from training.cli_progress import Bars, progress_bars, wants_bars


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def screen(monkeypatch) -> io.StringIO:
    """A terminal for the live display, and stderr counted as one."""
    out = io.StringIO()

    def display():
        console = Console(file=out, force_terminal=True, width=120)
        return Progress(TextColumn("{task.description}"), TextColumn("{task.completed}/{task.total}"),
                        TextColumn("eta"), TimeRemainingColumn(), console=console)

    monkeypatch.setattr(cli_progress, "_live_display", display)
    monkeypatch.setattr(cli_progress, "wants_bars", lambda quiet: not quiet)
    return out


def test_bars_only_on_a_terminal_and_never_quiet() -> None:
    assert wants_bars(False, _Terminal()) and not wants_bars(True, _Terminal())
    assert not wants_bars(False, io.StringIO())


def test_steps_notes_and_training_logs_become_bars(screen, capsys) -> None:
    with progress_bars() as bars:
        assert bars.live
        step = bars.step("simulating", total=10)
        for day in range(1, 11):
            step(day, 10)
        bars.note("writing the folder")
        log = logging.getLogger("engage.test")
        for i in range(1, 4):
            log.debug("cutoff %d", i, extra={"step": ("features at each cutoff", i, 3)})
        log.info("calibrated")
    text = screen.getvalue()
    assert "simulating" in text and "10/10" in text and "eta" in text
    assert "writing the folder" in text and "features at each cutoff" in text and "3/3" in text
    assert "calibrated" in text and "cutoff 1" not in text  # a step's record moves its bar, it is not a phase
    assert capsys.readouterr().out == ""  # stdout stays for the result


def test_quiet_and_no_terminal_draw_nothing_and_restore_the_logger(capsys) -> None:
    engage = logging.getLogger("engage")
    before = engage.level
    with progress_bars(quiet=True) as bars:
        assert not bars.live and engage.level == logging.WARNING
        bars.step("x", 3)(1, 3)
        bars.note("nothing to see")
    assert engage.level == before
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_a_silent_bars_object_accepts_every_call() -> None:
    bars = Bars(None)
    bars.step("anything")(5, 10)
    bars.note("text")
    bars.close()
