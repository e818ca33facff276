"""The one error type for input that breaks the data contract, and how flagged rows become one.

A :class:`DataError` names the table, column, problem, a few offending values and how many rows are
affected, so a user can fix the file without reading code. :func:`reject_rows` builds it from a boolean
row mask; every converter and value rule raises through it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

MAX_EXAMPLES = 5


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
    """Raise a DataError for the rows in ``mask`` (no-op when no row is flagged)."""
    if mask is None:
        raise DataError(table, column, problem, allowed=allowed)
    mask = np.asarray(mask, dtype=bool)
    count = int(mask.sum())
    if count == 0:
        return
    positions = np.flatnonzero(mask)
    examples: list = []
    if values is not None:
        seen = pd.unique(pd.Series(np.asarray(values, dtype=object)[positions[:10_000]]))
        examples = [v for v in seen if not _is_missing(v)][:MAX_EXAMPLES]
    raise DataError(table, column, problem, examples, count, allowed=allowed, row=int(positions[0]) + 1)


def _is_missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and other containers are values, not missing
        return False

