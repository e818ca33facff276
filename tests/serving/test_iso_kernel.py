"""The compiled timestamp parser of score requests equals pandas' reading of the same text, and defers the rest."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from serving.iso_kernel import parse_utc_iso
from serving.schemas import MAX_NS, MIN_NS, parse_ts_column


def _raw(v: str) -> int | None:
    """One timestamp as pandas reads it (naive = UTC) in nanoseconds, ``None`` if unreadable or beyond int64."""
    try:
        ts = pd.Timestamp(v)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return ts.as_unit("ns").value
    except (ValueError, OverflowError):
        return None


def _reference(v: str) -> int | None:
    """:func:`_raw` inside the contract's 1900..2200."""
    ns = _raw(v)
    return ns if ns is not None and MIN_NS <= ns < MAX_NS else None


def _random_ts(rng: random.Random, style: float) -> str:
    d = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
        seconds=rng.uniform(-2.1e9, 7.2e9), microseconds=rng.choice([0, rng.randint(0, 999_999)])
    )
    if style < 0.3:
        return d.isoformat().replace("+00:00", "Z")
    if style < 0.5:
        return d.isoformat(timespec="milliseconds")
    if style < 0.6:  # 1-9 fraction digits
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 9)))
        return d.strftime("%Y-%m-%dT%H:%M:%S.") + digits + "Z"
    return d.isoformat()


def test_fast_shape_equals_pandas_and_anything_else_is_deferred():
    rng = random.Random(0)
    parsed = deferred = 0
    for _ in range(2_000):
        style = rng.random()  # one writer per column, as a client's serializer
        values = [_random_ts(rng, style) for _ in range(rng.randint(1, 30))]
        if rng.random() < 0.4:  # one character replaced: a broken date, another zone, a space, non-ASCII text
            i = rng.randrange(len(values))
            j = rng.randrange(len(values[i]))
            values[i] = values[i][:j] + rng.choice("0123456789:-T.Z+ \né") + values[i][j + 1:]
        got = parse_utc_iso(values)
        if got is None:
            deferred += 1
            continue
        parsed += 1
        # what the kernel accepts, pandas reads the same way to the nanosecond (the 1900..2200 rule is
        # parse_ts_column's, tested below)
        assert got.tolist() == [_raw(v) for v in values]
    assert parsed > 1_000 and deferred > 300  # both branches ran


@pytest.mark.parametrize("values", [
    ["2024-02-29T00:00:00Z"],
    ["2025-12-31T23:59:59.999999999+00:00", "1900-01-01T00:00:00+00:00"],
    ["2025-06-01T10:00:00.5Z", "2025-06-01T10:00:00.25Z"],
])
def test_edges_of_the_fast_shape(values):
    assert parse_utc_iso(values).tolist() == [_reference(v) for v in values]


@pytest.mark.parametrize("values", [
    ["2023-02-29T00:00:00Z"],  # not a date
    ["2025-06-01T10:00:00+02:00"],  # another offset: pandas converts it
    ["2025-06-01 10:00:00Z"],  # space separator
    ["2025-06-01T10:00:00"],  # naive
    ["2025-06-01T10:00:00Z", "2025-06-01T10:00:00+00:00"],  # two suffixes in one column
    ["2025-06-01T10:00:00.1234567890Z"],  # ten fraction digits
    ["2025-06-01T10:00:00Z\n2025-06-01T10:00:00Z"],  # two timestamps in one entry
    ["2025-06-01T10:00:00Zé"],
    [],
])
def test_other_shapes_are_left_to_the_general_parser(values):
    assert parse_utc_iso(values) is None


def test_a_year_beyond_the_range_is_refused_not_wrapped():
    # numpy's datetime64[ns] wraps year 9082 into the valid range silently; the request used to accept it
    with pytest.raises(ValueError, match=r"ts\[1\]: not an ISO 8601 timestamp between 1900-01-01 and 2200-01-01"):
        parse_ts_column(["2025-06-01T10:00:00+00:00", "9082-08-12T20:32:22.135172+00:00"])


def test_offsets_are_converted_through_the_general_parser():
    got = parse_ts_column(["2025-06-01T12:00:00+02:00", "2025-06-01T10:00:00Z"])
    assert np.array_equal(got, np.full(2, pd.Timestamp("2025-06-01T10:00:00Z").value))
