"""One feature table filled campaign by campaign, allocated once at its final size.

The policy's training rows are the features of the logged customers at every campaign cutoff. Concatenating a
list of per-campaign frames holds every row twice at the end (the list and the result); this table is
allocated once, when the number of rows is known (the outcomes, computed first, say which rows are kept), and
each campaign's rows are copied in as its features are built. The frame it gives holds the same columns,
dtypes and values, in the same order, as ``pd.concat(frames, ignore_index=True)`` of the same rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Column dtypes the table holds in its one float block (an int64 feature is a count or a flag: exact in float64).
_BLOCK_DTYPES = (np.dtype(np.float64), np.dtype(np.int64))


class RowTable:
    """``n_rows`` rows of feature frames that share their columns, appended in order (see the module docstring).

    ``order`` (optional): a permutation of the ``n_rows`` appended rows; the table then holds appended row
    ``order[i]`` at row ``i`` (each row is written straight to its place: no reordering copy).

    Frames with a column of another dtype (none of engage's feature pipelines makes one) are kept as they are
    and concatenated at the end.
    """

    def __init__(self, n_rows: int, order: np.ndarray | None = None) -> None:
        self.n_rows = int(n_rows)
        self.dest: np.ndarray | None = None
        if order is not None:
            order = np.asarray(order, dtype=np.intp)
            if len(order) != self.n_rows or not np.array_equal(np.sort(order), np.arange(self.n_rows)):
                raise ValueError(f"training rows: the row order is not a permutation of the {self.n_rows:,} rows")
            self.dest = np.empty(self.n_rows, np.intp)
            self.dest[order] = np.arange(self.n_rows)
        self.filled = 0
        self.columns: pd.Index | None = None
        self.dtypes: pd.Series | None = None
        self.block: np.ndarray | None = None
        self.parts: list[pd.DataFrame] = []

    def append(self, F: pd.DataFrame, pos: np.ndarray) -> None:
        """Append the rows ``pos`` (positions) of ``F``, in that order."""
        pos = np.asarray(pos, dtype=np.intp)
        if self.columns is None:
            self.columns, self.dtypes = F.columns, F.dtypes
            if all(dt in _BLOCK_DTYPES for dt in F.dtypes):
                self.block = np.empty((self.n_rows, len(F.columns)), order="F")  # columns contiguous
        elif not F.columns.equals(self.columns) or not F.dtypes.equals(self.dtypes):
            raise ValueError("training rows: the feature table's columns or dtypes changed between campaign cutoffs")
        if self.filled + len(pos) > self.n_rows:
            raise ValueError(f"training rows: more rows than the {self.n_rows:,} counted")
        if self.block is None:
            self.parts.append(F.iloc[pos].reset_index(drop=True))
        else:
            rows = slice(self.filled, self.filled + len(pos))
            if self.dest is not None:
                rows = self.dest[rows]
            for j in range(len(self.columns)):  # column by column: no copy of the whole frame
                self.block[rows, j] = F.iloc[:, j].to_numpy()[pos]
        self.filled += len(pos)

    def frame(self, *, as_float: bool = False) -> pd.DataFrame:
        """The rows appended so far, index ``0..n-1``; the table's block is wrapped, not copied.

        ``as_float``: integer columns stay float64 (exact: they are counts and flags), so the frame is one float
        block: LightGBM and numpy then read it without a copy (a frame of several blocks is copied whole by
        every conversion to a matrix)."""
        if self.columns is None:
            return pd.DataFrame()
        if self.filled != self.n_rows and self.dest is not None:
            raise ValueError(f"training rows: {self.filled:,} rows appended, {self.n_rows:,} ordered")
        if self.block is None:
            frame = pd.concat(self.parts, ignore_index=True)
            return frame if self.dest is None else frame.iloc[np.argsort(self.dest)].reset_index(drop=True)
        block = self.block[: self.filled]
        frame = pd.DataFrame(block, columns=self.columns, copy=False)
        for j, dt in enumerate(self.dtypes):
            if dt != np.float64 and not as_float:
                frame.isetitem(j, block[:, j].astype(dt))
        return frame
