"""Coding a string column block by block: taking rows from a many-chunk arrow column (as a concatenated or
Parquet-read log has) gives what arrow's own ``take`` gives, over the rows' span only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from features.builders.column_coding import CodedColumn, _take


def chunked(values: list, chunks: int) -> pa.ChunkedArray:
    parts = np.array_split(np.arange(len(values)), chunks)
    return pa.chunked_array([pa.array([values[i] for i in p], type=pa.string()) for p in parts if len(p)])


@pytest.mark.parametrize("chunks", [1, 7, 40])
def test_take_over_the_span_equals_arrows_take(chunks):
    rng = np.random.default_rng(3)
    values = [None if rng.random() < 0.1 else f"p{rng.integers(50)}" for _ in range(2_000)]
    arrow = chunked(values, chunks)
    for rows in (
        np.sort(rng.choice(2_000, 300, replace=False)),  # a block's product views: sorted, inside one range
        rng.choice(2_000, 300, replace=False),  # any order
        np.array([1_999]), np.array([0, 1_999]), np.array([5, 5, 5]),
        np.zeros(0, dtype=np.int64),
    ):
        got = _take(arrow, rows)
        assert got.type == arrow.type
        assert got.to_pylist() == arrow.take(pa.array(rows, type=pa.int64())).to_pylist()


def test_a_string_column_codes_the_same_rows_whatever_its_chunks():
    rng = np.random.default_rng(4)
    values = [None if rng.random() < 0.1 else f"offer_{rng.integers(6)}" for _ in range(1_000)]
    vocab = tuple(f"offer_{i}" for i in range(4))
    which = rng.random(1_000) < 0.3
    results = []
    for chunks in (1, 13):
        s = pd.Series(pd.arrays.ArrowExtensionArray(chunked(values, chunks)))
        col = CodedColumn(s)
        assert col.arrow is not None and col.arrow.num_chunks == chunks
        results.append(col.encode_some(slice(200, 800), which[200:800], None, np.int8, -1, vocab))
    expected = np.array([vocab.index(v) if v in vocab else -1 for v in values[200:800]], dtype=np.int8)
    expected[~which[200:800]] = -1
    np.testing.assert_array_equal(results[0], expected)
    np.testing.assert_array_equal(results[1], expected)
