"""The errors engage reports to its users: input that breaks the data contract, and the model and registry
failures that are not the input's fault, each with its own exit status.

A :class:`DataError` names the table, column, problem, a few offending values and how many rows are
affected, so a user can fix the file without reading code. :func:`reject_rows` builds it from a boolean
row mask; every converter and value rule raises through it. The :class:`InfrastructureError` family (no
model, a corrupt model file, a busy or failing registry) carries the exit status the command line ends with
and a message that says what to do; :func:`is_registry_busy` recognises a locked registry in any wrapping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

import numpy as np
import pandas as pd

MAX_EXAMPLES = 5
# Validation goes on after a bad row to report every problem of the input in one run, up to this many.
MAX_PROBLEMS = 50
T = TypeVar("T")


class DataError(ValueError):
    """Input that breaks the data contract; the message names table, column, problem, examples and rows.

    ``count`` is the number of affected rows (``None`` for table- or file-level problems), ``examples``
    a few distinct offending values, ``row`` the 1-based position of the first affected row in the table
    as given, ``allowed`` the accepted values where there is a fixed list.
    """

    def __init__(
        self,
        table: str,
        column: str | None,
        problem: str,
        examples: Sequence = (),
        count: int | None = None,
        *,
        allowed: Sequence[str] = (),
        row: int | None = None,
        source: str = "",
    ) -> None:
        self.table = table
        self.column = column
        self.problem = problem
        self.examples = list(examples)[:MAX_EXAMPLES]
        self.count = count
        self.allowed = list(allowed)
        self.row = row
        self.source = source
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        if self.count is not None:
            text = f"{where}: {self.count:,} {'row' if self.count == 1 else 'rows'} with {self.problem}"
        else:
            text = f"{where}: {self.problem}"
        details = []
        if self.examples:
            details.append(", ".join(_show(v) for v in self.examples))
        if self.row is not None:
            details.append(f"first at row {self.row:,}")
        if details:
            text += f" ({'; '.join(details)})"
        if self.allowed:
            text += f"; allowed: {', '.join(self.allowed)}"
        return f"{self.source}: {text}" if self.source else text

    def __reduce__(self):
        # Rebuild from the fields (the default would call __init__ with the message only).
        return (_rebuild_data_error, (self.table, self.column, self.problem, self.examples, self.count,
                                      self.allowed, self.row, self.source))

    def with_source(self, source: str) -> DataError:
        """The same error, attributed to a file or folder."""
        return DataError(self.table, self.column, self.problem, self.examples, self.count,
                         allowed=self.allowed, row=self.row, source=source)


def _rebuild_data_error(table, column, problem, examples, count, allowed, row, source) -> DataError:
    return DataError(table, column, problem, examples, count, allowed=allowed, row=row, source=source)


def _show(value) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def reject_rows(table: str, column: str | None, problem: str, values: pd.Series | np.ndarray | None,
                mask: np.ndarray | None, *, allowed: Sequence[str] = ()) -> None:
    """A DataError for the rows in ``mask`` (no-op when no row is flagged): raised, or recorded while
    :func:`collecting_problems` is on."""
    if mask is None:
        raise_or_collect(DataError(table, column, problem, allowed=allowed))
        return
    mask = _not_yet_reported(table, column, np.asarray(mask, dtype=bool))
    count = int(mask.sum())
    if count == 0:
        return
    positions = np.flatnonzero(mask)
    examples: list = []
    if values is not None:
        seen = pd.unique(pd.Series(np.asarray(values, dtype=object)[positions[:10_000]]))
        examples = [v for v in seen if not _is_missing(v)][:MAX_EXAMPLES]
    raise_or_collect(DataError(table, column, problem, examples, count, allowed=allowed, row=int(positions[0]) + 1))


def _is_missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and other containers are values, not missing
        return False



# ------------------------------------------------------------------------------- several problems at once

class _Collector:
    """The problems recorded so far, and which rows of each column they cover."""

    def __init__(self) -> None:
        self.found: list[DataError] = []
        self.flagged: dict[tuple[str, str | None], np.ndarray] = {}


_COLLECTED: ContextVar[_Collector | None] = ContextVar("engage_data_problems", default=None)


def _not_yet_reported(table: str, column: str | None, mask: np.ndarray) -> np.ndarray:
    """``mask`` without the rows of ``table.column`` already reported: a bad value fails several checks of
    its column (unparseable, then missing), and only the first says what is wrong with it."""
    state = _COLLECTED.get()
    if state is None:
        return mask
    key = (table, column)
    before = state.flagged.get(key)
    if before is not None and before.shape == mask.shape:
        mask = mask & ~before
        state.flagged[key] = before | mask
    else:
        state.flagged[key] = mask
    return mask


class DataProblemsError(DataError):
    """Several contract violations found in one pass over the input: ``problems`` lists each one, with its
    table, column, row count and first row. The fields of the first problem are also this error's own."""

    def __init__(self, problems: Sequence[DataError], *, truncated: bool = False, source: str = "") -> None:
        self.problems = [p.with_source("") if p.source else p for p in problems]
        self.truncated = truncated
        first = self.problems[0]
        super().__init__(first.table, first.column, first.problem, first.examples, first.count,
                         allowed=first.allowed, row=first.row, source=source)

    def _message(self) -> str:
        n = len(self.problems)
        head = (f"stopped at the first {n} problems in the data (fix these, then validate again)" if self.truncated
                else f"{n} problems in the data")
        text = head + ":\n" + "\n".join(f"  {i}. {p}" for i, p in enumerate(self.problems, 1))
        return f"{self.source}: {text}" if self.source else text

    def __reduce__(self):
        return (_rebuild_data_problems_error, (self.problems, self.truncated, self.source))

    def with_source(self, source: str) -> DataProblemsError:
        return DataProblemsError(self.problems, truncated=self.truncated, source=source)


def _rebuild_data_problems_error(problems, truncated, source) -> DataProblemsError:
    return DataProblemsError(problems, truncated=truncated, source=source)


def raise_or_collect(error: DataError) -> None:
    """Raise ``error``, or record it while :func:`collecting_problems` is on (raising all of them once
    ``MAX_PROBLEMS`` are recorded)."""
    state = _COLLECTED.get()
    if state is None:
        raise error
    found = state.found
    found.append(error)
    if len(found) >= MAX_PROBLEMS:
        raise DataProblemsError(found, truncated=True)


def reported(table: str, column: str | None) -> bool:
    """Whether a problem of ``table.column`` is already recorded (a later check of the same values would
    only repeat it)."""
    state = _COLLECTED.get()
    return state is not None and any(p.table == table and p.column == column for p in state.found)


def _all_of(found: list[DataError]) -> DataError:
    return found[0] if len(found) == 1 else DataProblemsError(found)


@contextmanager
def collecting_problems() -> Iterator[list[DataError]]:
    """Check on after a bad row: every problem inside the block is recorded, and at its end they are raised
    together (one :class:`DataError` as it is; several as :class:`DataProblemsError`).

    A problem that stops the checks (a missing table or column) ends the block at once, with the problems
    recorded before it; an unexpected error after recorded problems is taken as their consequence (checks
    that ran on the bad values), so the recorded problems are raised instead.
    """
    state = _Collector()
    found = state.found
    token = _COLLECTED.set(state)
    try:
        try:
            yield found
        except DataProblemsError:
            raise
        except DataError as exc:
            found.append(exc)
        except Exception:
            if not found:
                raise
        if found:
            raise _all_of(found) from None
    finally:
        _COLLECTED.reset(token)


# ----------------------------------------------------------------------------------- infrastructure errors


class InfrastructureError(Exception):
    """A failure of the model store or registry rather than of the input; ``exit_status`` is the command's."""

    exit_status = 1


class ModelNotFoundError(InfrastructureError, LookupError):
    """No champion (or no model at the given URI or path): nothing to score with yet."""

    exit_status = 3


class ModelIntegrityError(InfrastructureError):
    """A model file that is corrupt, truncated or not the file that was registered (checksum mismatch)."""

    exit_status = 4


class RegistryBusyError(InfrastructureError):
    """The registry stayed locked by another process for longer than the retry budget."""

    exit_status = 5


class RegistryError(InfrastructureError):
    """The registry failed otherwise (unreachable server, unwritable artifact store, ...)."""

    exit_status = 6


# SQLite's and MySQL's words for "another connection holds the lock"
_BUSY_TEXT = ("database is locked", "database table is locked", "database is busy", "lock wait timeout exceeded")


def is_registry_busy(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it wraps) says the registry's database is locked by someone else."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RegistryBusyError) or any(t in str(current).lower() for t in _BUSY_TEXT):
            return True
        current = current.__cause__ or current.__context__
    return False


def retry_while_busy(step: Callable[[], T], *, seconds: float, what: str, where: str = "the MLflow registry") -> T:
    """``step()``, retried with exponential backoff (0.2 s doubling to 5 s) while the registry is locked.

    After ``seconds`` of a locked registry the last attempt's error becomes a :class:`RegistryBusyError`
    naming ``what`` was being done, ``where`` and what to do; any other error is raised at once.
    """
    deadline = time.monotonic() + max(0.0, seconds)
    delay = 0.2
    while True:
        try:
            return step()
        except RegistryBusyError:
            raise  # an inner step already retried
        except Exception as exc:
            if not is_registry_busy(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise RegistryBusyError(
                    f"{what}: {where} is locked by another process (database is locked) and stayed locked for "
                    f"{seconds:g} s of retries; let the other engage or MLflow process finish (or raise "
                    "busy_retry_seconds in mlflow.yaml), then run this command again"
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def is_model_missing(exc: BaseException) -> bool:
    """Whether a registry error says the model, version or alias does not exist (MLflow's error codes)."""
    code = str(getattr(exc, "error_code", "") or "")
    return code == "RESOURCE_DOES_NOT_EXIST" or (code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc))


def error_line(exc: BaseException) -> str:
    """``Type: message`` on one line (some libraries spread their message over several)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
