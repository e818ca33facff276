"""What every ``engage`` command shares: errors as one line and a documented exit status, cutoff parsing, JSON
output, progress logging and the options several commands take."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from training.report import report_text, write_text_atomic

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", help="MLflow settings YAML (tracking URI, registered model names, aliases; default: ./mlflow.yaml). "
                     "Not the decision settings: those are --policy-config.")]
ReportOption = Annotated[Path | None, typer.Option("--report", help="Also write the result (JSON) to this file.")]
ModelUriOption = Annotated[str | None, typer.Option(
    "--model-uri", help="The decision system to use: a registry URI (models:/NAME@ALIAS, models:/NAME/VERSION, "
                        "runs:/RUN/PATH) or a local model folder or pickle file (default: the champion named in "
                        "--config).")]
DataOption = Annotated[Path, typer.Option("--data", help="Data folder (customers, touchpoints, ... files).")]
QuietOption = Annotated[bool, typer.Option(
    "--quiet", "-q", help="No progress on stderr (bars are drawn only when stderr is a terminal).")]
WorkersOption = Annotated[int | None, typer.Option(min=1, help="Worker processes (default: one per CPU core).")]

# Old option names that still work (with a warning on stderr) so that scripts keep running; hidden from --help
# and listed in the command reference. An old name is rewritten only for a command that has the new one.
DEPRECATED_OPTIONS: dict[str, str] = {"--json": "--report", "--model-path": "--model-uri", "--system": "--model-uri"}
# Commands whose data folder used to be a positional argument: a bare argument is read as this option.
FORMER_POSITIONALS: dict[str, str] = {"validate": "--data"}


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
    """Print a user-facing error to stderr and return the exit (status 2 = bad input).

    One line per problem: a message listing several problems keeps its lines, each tidied to one line.
    """
    lines = [" ".join(line.split()) for line in str(message).splitlines()]
    text = "\n".join(("  " + line if i and line[:1].isdigit() else line) for i, line in enumerate(lines) if line)
    typer.secho(f"error: {text}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


def _takes_value(command: Any, option: str) -> bool:
    for param in command.params:
        if option in getattr(param, "opts", ()) or option in getattr(param, "secondary_opts", ()):
            return not getattr(param, "is_flag", False) and not getattr(param, "count", False)
    return False


def upgrade_arguments(command: Any, args: list[str]) -> list[str]:
    """``args`` with deprecated option names (and a former positional data folder) in their current form,
    each change announced once on stderr."""
    names = {o for p in command.params for o in (*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ()))}
    former = FORMER_POSITIONALS.get(command.name or "")
    out: list[str] = []
    expects_value = False
    for i, arg in enumerate(args):
        if arg == "--":
            out += args[i:]
            break
        if expects_value:
            out.append(arg)
            expects_value = False
            continue
        name, eq, value = arg.partition("=")
        new = DEPRECATED_OPTIONS.get(name)
        if new and name not in names and new in names:
            typer.echo(f"warning: {name} is deprecated; use {new} (the old name still works for now)", err=True)
            arg, name = new + eq + value, new
        if former and not arg.startswith("-") and former not in out:
            typer.echo(f"warning: the data folder as a bare argument is deprecated; use {former} {arg}", err=True)
            out.append(former)
        elif arg.startswith("-") and not eq:
            expects_value = _takes_value(command, name)
        out.append(arg)
    return out


class EngageGroup(TyperGroup):
    """A command group that accepts the deprecated option names of its commands (see ``DEPRECATED_OPTIONS``)."""

    def resolve_command(self, ctx: typer.Context, args: list[str]):
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and not hasattr(command, "list_commands"):  # a command, not a group
            rest = upgrade_arguments(command, rest)
        return name, command, rest


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
        except ConnectionError as exc:  # e.g. an unreachable --scheduler: the option is wrong, nothing was written
            raise fail(str(exc)) from None
        except Exception as exc:
            known = _infrastructure_failure(exc)
            if known is None:
                raise
            raise fail(known[1], known[0]) from None

    return wrapper


REGISTRY_SCHEMES = ("models:/", "runs:/")


def is_registry_uri(uri: str) -> bool:
    """Whether ``--model-uri`` names a registered model or run artifact (otherwise it is a local path)."""
    return uri.startswith(REGISTRY_SCHEMES)


def load_registered(uri: str, config_path: Path | None) -> tuple[Any, str]:
    """The decision system at a registry URI, with the tracking URI of ``--config`` (default ./mlflow.yaml), and
    its version (``name/number``: an alias is resolved once, so the version named is the one loaded)."""
    import mlflow

    from features.contract.errors import retry_while_busy
    from training.registry import load_config, load_decision_system, pinned_model_uri

    config = load_config(config_path or Path("mlflow.yaml"))
    mlflow.set_tracking_uri(config.tracking_uri)

    def load() -> tuple[Any, str]:
        pinned = pinned_model_uri(uri)
        return load_decision_system(pinned), pinned

    system, pinned = retry_while_busy(load, seconds=config.busy_retry_seconds, what=f"loading {uri}",
                                      where=config.tracking_uri)
    return system, pinned.removeprefix("models:/")


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


def run_and_echo(command: Callable[..., Any], /, *args: Any, quiet: bool = False, notes: str | None = None,
                 **kwargs: Any) -> None:
    """Run a long command with its progress on stderr, then print the JSON result it returns on stdout.

    ``notes`` names the command's keyword for a progress-line callback (e.g. ``progress``), if it takes one.
    """
    from training.cli_progress import progress_bars

    with progress_bars(quiet, logs=True) as bars:
        if notes is not None:
            kwargs[notes] = bars.note
        result = command(*args, **kwargs)
    echo_json(result, None)
