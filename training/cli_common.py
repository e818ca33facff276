"""What every ``engage`` command shares: errors as one line and a documented exit status, cutoff parsing, JSON
output, progress logging and the options several commands take."""

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


# The exit statuses of every command (shown by --help and listed in the README).
EXIT_STATUSES: dict[int, str] = {
    0: "success",
    1: "unexpected error (a bug; the traceback is printed)",
    2: "bad input or options; nothing was written",
    3: "no model: no champion, or nothing at the model URI or path",
    4: "model file corrupt, or not matching its recorded SHA-256",
    5: "registry busy: still locked after the retries",
    6: "registry failed otherwise; a trained model is kept for engage register",
}
EXIT_HELP = "\b\nExit statuses:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_STATUSES.items())


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a user-facing error on one line to stderr and return the exit (status 2 = bad input)."""
    typer.secho(f"error: {' '.join(message.split())}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


def _infrastructure_failure(exc: Exception) -> tuple[int, str] | None:
    """Exit status and message of a model or registry failure raised without engage's own error types."""
    import pickle

    from features.contract.errors import error_line, is_model_missing, is_registry_busy

    if isinstance(exc, pickle.UnpicklingError):
        return 4, f"a model file is corrupt ({error_line(exc)}); restore it from a trusted copy or train again"
    if is_registry_busy(exc):
        return 5, ("the MLflow registry is locked by another process (database is locked); let that process "
                   "finish, then run this command again")
    if is_model_missing(exc):
        return 3, f"{error_line(exc)}; train and register a model first (engage train churn)"
    return None


def user_errors(func):
    """Turn bad input and infrastructure failures into one clear line and their exit status, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        import logging

        from features.contract.errors import DataError, InfrastructureError

        # MLflow logs every database error with its traceback before raising it; engage retries a locked
        # registry and reports what is left in one line, so those logs would only bury that line
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
        try:
            return func(*args, **kwargs)
        except InfrastructureError as exc:
            raise fail(str(exc), exc.exit_status) from None
        except DataError as exc:
            raise fail(str(exc)) from None
        except (FileNotFoundError, FileExistsError, NotADirectoryError, KeyError, ValueError) as exc:
            raise fail(f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:
            known = _infrastructure_failure(exc)
            if known is None:
                raise
            raise fail(known[1], known[0]) from None

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
