"""What every ``engage`` command shares: bad-input errors as exit status 2, cutoff parsing, JSON output, progress
logging and the options several commands take."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from training.report import report_text, write_text_atomic

ConfigOption = Annotated[Path | None, typer.Option("--config", help="MLflow settings (default: ./mlflow.yaml).")]
ReportOption = Annotated[Path | None, typer.Option("--report", help="Write the figures to this JSON file.")]
JsonOption = Annotated[Path | None, typer.Option("--json", help="Also write the figures to this JSON file.")]
ModelPathOption = Annotated[
    Path | None, typer.Option(help="Serve/score a saved decision system file instead of the registry champion.")
]
WorkersOption = Annotated[int | None, typer.Option(min=1, help="Worker processes (default: one per CPU core).")]


def fail(message: str) -> typer.Exit:
    """Print a user-facing error to stderr and return the exit (status 2 = bad input)."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


def user_errors(func):
    """Turn bad-input exceptions into a clear message and exit status 2 instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from features.contract.errors import DataError

        try:
            return func(*args, **kwargs)
        except DataError as exc:
            raise fail(str(exc)) from None
        except (FileNotFoundError, FileExistsError, NotADirectoryError, KeyError, ValueError) as exc:
            raise fail(f"{type(exc).__name__}: {exc}") from None

    return wrapper


def parse_cutoff(text: str | None) -> datetime | None:
    """Parse a cutoff date/time given on the command line as a UTC timestamp."""
    if text is None:
        return None
    import pandas as pd

    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"--cutoff {text!r} is not a date or timestamp (use e.g. 2024-06-30)") from exc
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert("UTC")


def echo_json(payload: dict, path: Path | None) -> None:
    """Print a JSON payload and, when asked, write it atomically to a file."""
    text = report_text(payload)
    typer.echo(text.rstrip("\n"))
    if path is not None:
        write_text_atomic(path, text)


def run_and_echo(command: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
    """Run a long command with progress logging on, then print the JSON result it returns."""
    enable_progress()
    echo_json(command(*args, **kwargs), None)


def enable_progress() -> None:
    """Show progress of long steps (training logs through ``logging`` under ``engage.*``)."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("mlflow", "alembic", "urllib3", "bentoml", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
