"""The policy's training rows are filled into one preallocated table: the same frame as concatenating the
campaigns' rows, without holding every row twice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.policy.row_table import RowTable


def _features(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """A feature table as the pipeline makes one: float columns with missing values, and int64 counts."""
    F = pd.DataFrame(rng.normal(size=(n, 4)), columns=["a", "b", "c", "d"])
    F.loc[rng.random(n) < 0.2, "b"] = np.nan
    F.insert(1, "count", rng.integers(0, 50, n).astype(np.int64))
    F.index = pd.Index([f"c{i}" for i in range(n)], name="customer_id")
    return F


def test_row_table_equals_the_concatenated_campaign_rows() -> None:
    rng = np.random.default_rng(3)
    frames = [_features(rng, 40) for _ in range(3)]
    picks = [rng.permutation(40)[:k] for k in (7, 0, 25)]
    table = RowTable(sum(len(p) for p in picks))
    for F, pos in zip(frames, picks, strict=True):
        table.append(F, pos)
    got = table.frame()
    want = pd.concat([F.iloc[p].reset_index(drop=True) for F, p in zip(frames, picks, strict=True)], ignore_index=True)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    # The float columns are the table's own block, not a copy of it.
    assert np.shares_memory(got["a"].to_numpy(), table.block)


def test_row_table_refuses_changed_columns_and_extra_rows() -> None:
    rng = np.random.default_rng(4)
    F = _features(rng, 10)
    table = RowTable(12)
    table.append(F, np.arange(10))
    with pytest.raises(ValueError, match="columns or dtypes changed"):
        table.append(F.drop(columns="d"), np.arange(2))
    with pytest.raises(ValueError, match="more rows than"):
        table.append(F, np.arange(3))


def test_row_table_keeps_other_dtypes_by_concatenation() -> None:
    F = pd.DataFrame({"x": [1.0, 2.0, 3.0], "flag": pd.array([True, False, None], dtype="boolean")})
    table = RowTable(2)
    table.append(F, np.array([2, 0]))
    pd.testing.assert_frame_equal(table.frame(), F.iloc[[2, 0]].reset_index(drop=True))


def test_row_table_writes_rows_in_the_given_order() -> None:
    rng = np.random.default_rng(5)
    frames = [_features(rng, 30) for _ in range(2)]
    picks = [rng.permutation(30)[:12], rng.permutation(30)[:9]]
    order = rng.permutation(21)
    table = RowTable(21, order)
    for F, pos in zip(frames, picks, strict=True):
        table.append(F, pos)
    plain = pd.concat([F.iloc[p].reset_index(drop=True) for F, p in zip(frames, picks, strict=True)], ignore_index=True)
    pd.testing.assert_frame_equal(table.frame(), plain.iloc[order].reset_index(drop=True), check_exact=True)
    with pytest.raises(ValueError, match="not a permutation"):
        RowTable(3, np.array([0, 0, 1]))


def test_row_table_as_float_is_one_block_with_the_same_values() -> None:
    F = pd.DataFrame({"a": [1.5, 2.5, np.nan], "n": np.array([3, 0, 7], dtype=np.int64)})
    table = RowTable(3)
    table.append(F, np.array([2, 0, 1]))
    plain, flat = table.frame(), table.frame(as_float=True)
    assert plain["n"].dtype == np.int64 and flat["n"].dtype == np.float64
    assert len(flat._mgr.blocks) == 1
    np.testing.assert_array_equal(flat.to_numpy(), plain.to_numpy(dtype=float, na_value=np.nan))
