"""A frame column prepared once, then coded to small integers block by block.

Categoricals keep their codes, strings their arrow array (sliced zero-copy per block), so coding a
block of rows costs a lookup rather than hashing every string again.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


class CodedColumn:
    """A touchpoint column prepared once for cheap per-block encoding.

    Categoricals are kept as their integer codes with a lookup to the target vocabulary; strings as
    the arrow array behind the pandas column (sliced zero-copy per block and dictionary-encoded there);
    anything else falls back to pandas' factorize per block.
    """

    def __init__(self, s: pd.Series):
        self.series = s
        self.codes: np.ndarray | None = None
        self.cats = None
        self.arrow = None
        if isinstance(s.dtype, pd.CategoricalDtype):
            # Through the Categorical itself: the .cat accessor builds Series (slow for one customer).
            self.codes = s.array.codes
            self.cats = list(s.array.categories)
        elif hasattr(s.array, "__arrow_array__"):
            arr = s.array.__arrow_array__()
            self.arrow = arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr])

    def encode(
        self,
        rows: slice | np.ndarray,
        mapper: Callable[[list], np.ndarray],
        dtype,
        vocab: tuple[str, ...] | None = None,
    ) -> np.ndarray:
        """Codes of the rows ``rows`` mapped through ``mapper(categories) -> lookup (+1 slot for missing)``.

        A categorical whose categories are exactly ``vocab`` (what validation produces) needs no lookup.
        """
        if self.codes is not None:
            if (
                vocab is not None
                and len(self.cats) == len(vocab)
                and all(str(a) == b for a, b in zip(self.cats, vocab, strict=True))
            ):
                return self.codes[rows]
            return mapper(self.cats).take(self.codes[rows])
        if self.arrow is not None:
            if isinstance(rows, slice):
                part = self.arrow.slice(rows.start, rows.stop - rows.start)
            else:
                part = _take(self.arrow, np.asarray(rows))
            if vocab is not None and (pa.types.is_string(part.type) or pa.types.is_large_string(part.type)):
                return _index_in(part, vocab, dtype)
            enc = pc.dictionary_encode(part).combine_chunks()
            codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False)
            uniq = enc.dictionary.to_pylist()
        else:
            codes, uniq = pd.factorize(self.series.iloc[rows], use_na_sentinel=True)
        return mapper(list(uniq)).take(codes).astype(dtype, copy=False)

    def valid(self, rows: slice) -> np.ndarray | None:
        """Non-missing rows of a string column over a row range (from arrow's validity bitmap), or ``None``
        when that is unknown or nothing is missing."""
        if self.arrow is None or self.arrow.num_chunks != 1:
            return None
        part = self.arrow.chunk(0).slice(rows.start, rows.stop - rows.start)
        if not part.null_count:
            return None
        n, off = len(part), part.offset
        bits = np.frombuffer(part.buffers()[0], dtype=np.uint8, count=(off + n + 7) // 8)
        return np.unpackbits(bits, count=off + n, bitorder="little")[off:].view(bool)

    def encode_some(
        self, rows: slice | np.ndarray, which: np.ndarray, mapper, dtype, fill, vocab: tuple[str, ...] | None = None
    ) -> np.ndarray:
        """Like :meth:`encode`, but only rows where ``which`` is set are looked at (others get ``fill``).

        String columns that matter for a few kinds only (product ids on product views, offer ids on
        redemptions) are encoded on those rows alone: hashing every string is the costliest step.
        """
        idx = np.flatnonzero(which)
        out = np.full(which.size, fill, dtype=dtype)
        if idx.size == 0:
            return out
        if self.codes is not None or self.arrow is None:
            out[idx] = self.encode(rows, mapper, dtype)[idx]
            return out
        start = rows.start if isinstance(rows, slice) else 0
        src_rows = idx + start if isinstance(rows, slice) else rows[idx]
        out[idx] = self.encode(src_rows, mapper, dtype, vocab)
        return out


def _take(arrow: pa.ChunkedArray, rows: np.ndarray) -> pa.ChunkedArray:
    """``arrow.take(rows)`` over the rows' own span only.

    Taking from a chunked array joins all its chunks first: on a 10 M-row log cut into many chunks that is a
    copy of the whole column for every block (11 ms each, 43 % of a one-thread transform). The rows of a block
    lie in the block's range, so slicing to it first (zero copy) makes the cost the block's, not the log's.
    """
    if rows.size == 0:
        return arrow.slice(0, 0)
    lo, hi = int(rows.min()), int(rows.max()) + 1
    return arrow.slice(lo, hi - lo).take(pa.array(rows - lo))


def _index_in(part: pa.ChunkedArray, vocab: tuple[str, ...], dtype) -> np.ndarray:
    """Position of every string of ``part`` in ``vocab`` (-1 when missing or not in it).

    One hash lookup per row against the small vocabulary, read straight from arrow's buffers: cheaper
    than dictionary-encoding the rows and mapping the dictionary.
    """
    if len(part) == 0:
        return np.zeros(0, dtype=dtype)
    res = pc.index_in(part, value_set=pa.array(vocab, type=part.type))
    res = res.combine_chunks() if isinstance(res, pa.ChunkedArray) else res
    n, off = len(res), res.offset
    bufs = res.buffers()
    codes = np.frombuffer(bufs[1], dtype=np.int32, count=off + n)[off:].astype(dtype)
    if res.null_count:
        valid = np.unpackbits(np.frombuffer(bufs[0], dtype=np.uint8), count=off + n, bitorder="little")[off:]
        codes[np.flatnonzero(valid == 0)] = -1
    return codes
