"""Where the policy trainer gets a data folder's tables, so that it can let go of them while it fits.

The training rows are built from the touchpoints; the effect-model candidates then fit on those rows alone,
and the touchpoints are needed again only for the decisions at the evaluation cutoff. At 100,000 customers ×
730 days the touchpoints are 2.4 GB in memory, held through every fit on top of the 2.8 GB of training rows.
A source that can read the folder again drops them for the fits and reads them once more afterwards (about a
minute at that size, against the hour the fits take); tables handed over in memory are simply held.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

from features.contract.schema import Tables
from features.sources.io import release_freed_memory


class TablesSource:
    """A data folder's tables: ``read`` gives them (again, after :meth:`release`), or ``tables`` are held as given.

    ``reads`` counts the reads made.
    """

    def __init__(self, read: Callable[[], Tables] | None = None, tables: Tables | None = None) -> None:
        if (read is None) == (tables is None):
            raise ValueError("TablesSource: give either read or tables")
        self._read, self._tables = read, tables
        self.reads = 0

    @classmethod
    def of(cls, tables: Tables | TablesSource) -> TablesSource:
        """``tables`` as a source (a source is returned as it is)."""
        return tables if isinstance(tables, TablesSource) else cls(tables=tables)

    @property
    def rereadable(self) -> bool:
        """Whether :meth:`release` frees the tables (they can be read again)."""
        return self._read is not None

    def get(self) -> Tables:
        """The tables, read now if they are not held."""
        if self._tables is None:
            assert self._read is not None  # only a readable source ever drops its tables
            self._tables = self._read()
            self.reads += 1
        return self._tables

    def release(self) -> bool:
        """Drop the tables if they can be read again, and return the memory they held to the system (only once
        nothing else refers to them); whether they were dropped."""
        if self._read is None or self._tables is None:
            return False
        self._tables = None
        gc.collect()  # pandas frames can sit in reference cycles: free them now, not at some later collection
        release_freed_memory()
        return True
