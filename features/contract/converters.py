"""Text converters: loosely typed columns (CSV text, other tools' parquet) into the contract's types.

Each converter turns one column into its normalised form (customer ids as text or as codes over the
customers table, UTC timestamps, booleans, categories over a fixed vocabulary, floats, free text) and
rejects what it cannot convert with a :class:`~features.contract.errors.DataError`. They are hand-written
vectorised passes, not pandera parsers, because the error must carry the offending values.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from features.contract.errors import MAX_EXAMPLES, DataError, reject_rows
from features.contract.report import ValidationReport
from features.contract.values import TIMESTAMP_HINT

_TRUE = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "0.0"})
_TZ_SUFFIX = re.compile(r"(?:Z|[+-]\d\d(?::?\d\d)?|UTC|GMT)$", re.IGNORECASE)


def is_textlike(s: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype)


def is_blank(s: pd.Series) -> np.ndarray:
    """Missing or empty/whitespace-only text."""
    missing = s.isna().to_numpy()
    if is_textlike(s) and len(s):
        stripped = s.astype("str").str.strip()
        missing = missing | (stripped == "").fillna(True).to_numpy(dtype=bool)
    return missing


def _id_text(s: pd.Series) -> pd.Series:
    """Customer ids as text; integral numbers lose their ``.0``."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("str")
    if pd.api.types.is_float_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        ok = np.isfinite(v) & (v == np.round(v))
        out = s.astype("str")
        out[ok] = pd.Series(v[ok].astype(np.int64)).astype("str").to_numpy()
        return out.where(s.notna())
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.astype("str")
    return s.astype("str")


def normalise_ids(s: pd.Series, table: str, column: str = "customer_id") -> pd.Series:
    """A customer-id column as non-empty text (categoricals become plain text)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(s.cat.categories.dtype).astype("str") if len(s) else s.astype("str")
    out = _id_text(s).astype("str").reset_index(drop=True)
    reject_rows(table, column, "a missing or empty customer id", s, is_blank(out))
    return out


def customer_codes(s: pd.Series, ids: pd.Index, table: str) -> pd.Categorical:
    """Ids as a Categorical over ``ids`` (customers order), rejecting empty and unknown ids."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        old = s.cat.codes.to_numpy()
        cats = s.cat.categories
        if cats.equals(ids):
            codes, blank = old, old < 0
        else:
            cat_text = _id_text(pd.Series(cats)).astype("str")
            remap = np.append(ids.get_indexer(pd.Index(cat_text)), -1)  # index -1 (missing) -> -1
            blank_cat = np.append(is_blank(cat_text), True)
            codes, blank = remap[old], blank_cat[old]
    else:
        codes, blank = _lookup(_id_text(s), ids)
    reject_rows(table, "customer_id", "a missing or empty customer id", s, blank)
    reject_rows(table, "customer_id", "a customer id missing from the customers table", s, codes < 0)
    return pd.Categorical.from_codes(codes.astype(np.int32, copy=False), categories=ids)


def to_timestamps(s: pd.Series, table: str, column: str, report: ValidationReport, *,
                  allow_missing: bool) -> pd.Series:
    """A timestamp column as datetime64[ns, UTC]; naive values are read as UTC (with a warning)."""
    where = f"{table}.{column}"
    unparsed = np.zeros(len(s), dtype=bool)  # rows already reported (not reported again as missing)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        out = s.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(s.dtype):
        out = s.dt.tz_localize("UTC")
        if s.notna().any():
            report.warnings.append(f"{where}: timestamps without a time zone were read as UTC")
    elif pd.api.types.is_numeric_dtype(s.dtype) and s.notna().any():
        raise DataError(table, column, f"numbers where timestamps are expected ({TIMESTAMP_HINT}, "
                        "or a datetime column)",
                        list(pd.unique(s.dropna().head(MAX_EXAMPLES))), int(s.notna().sum()), row=1)
    else:
        strings = is_textlike(s)
        text = s.astype("str") if strings else s
        try:
            out = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601" if strings else None)
        except (TypeError, ValueError) as exc:  # mixed objects pandas cannot even coerce
            raise DataError(table, column, f"values that are not timestamps ({exc})") from None
        # Only values that failed to parse need the (slow) blank test.
        bad = out.isna().to_numpy().copy()
        failed = np.flatnonzero(bad)
        blank = np.zeros(len(s), dtype=bool)
        blank[failed] = is_blank(s.iloc[failed])
        bad &= ~blank
        reject_rows(table, column, "an unparseable timestamp (use ISO 8601, e.g. 2024-05-01T12:00:00Z)", s, bad)
        unparsed = bad
        if strings:
            sample = text[~blank].head(2_000).str.strip()
            naive = ~sample.str.contains(_TZ_SUFFIX, regex=True).fillna(True)
            if naive.any():
                report.warnings.append(
                    f"{where}: timestamps without a time zone were read as UTC "
                    f"(e.g. {sample[naive].iloc[0]!r})"
                )
    try:
        out = out.dt.as_unit("ns")
    except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime):
        years = out.dt.year
        bad = ((years < 1678) | (years > 2261)).fillna(False).to_numpy(dtype=bool)
        reject_rows(table, column, "a timestamp outside the years 1678-2261", s, bad)
        raise
    if not allow_missing:
        reject_rows(table, column, "a missing timestamp", s, out.isna().to_numpy() & ~unparsed)
    return out.reset_index(drop=True)


def to_bools(s: pd.Series, table: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Booleans from bool, 0/1 numbers or true/false/yes/no/1/0 text; returns (values, missing)."""
    missing = s.isna().to_numpy()
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.fillna(False).to_numpy(dtype=bool), missing
    if pd.api.types.is_numeric_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        reject_rows(table, column, "a value that is not boolean (use true/false, yes/no or 1/0)", s,
                    ~missing & (v != 0) & (v != 1))
        return v == 1, missing
    text = s.astype("str").str.strip().str.lower()
    missing = missing | (text == "").fillna(True).to_numpy(dtype=bool)
    is_true = text.isin(_TRUE).to_numpy()
    is_false = text.isin(_FALSE).to_numpy()
    reject_rows(table, column, "a value that is not boolean (use true/false, yes/no or 1/0)", s,
                ~missing & ~is_true & ~is_false)
    return is_true, missing


def to_categories(s: pd.Series, vocab: tuple[str, ...], table: str, column: str, *,
                  allow_missing: bool) -> pd.Categorical:
    """A column as a Categorical over a fixed vocabulary, rejecting values outside it."""
    cats = pd.Index(vocab, dtype="str")
    if isinstance(s.dtype, pd.CategoricalDtype):
        old = s.cat.codes.to_numpy()
        if s.cat.categories.equals(cats):
            codes = old
        else:
            remap = cats.get_indexer(pd.Index(s.cat.categories.astype("str")))
            codes = np.where(old >= 0, remap[np.maximum(old, 0)] if len(remap) else -1, -1)
        missing = old < 0
    else:
        codes, missing = _lookup(s, cats)
    codes = np.asarray(codes)
    reject_rows(table, column, "an unknown value", s, (codes < 0) & ~missing, allowed=vocab)
    if not allow_missing:
        reject_rows(table, column, "a missing value", s, missing, allowed=vocab)
    return pd.Categorical.from_codes(codes.astype(np.int8, copy=False), categories=cats)


def _lookup(s: pd.Series, index: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """Positions of text values in ``index`` (-1 = not found) and which values are missing or blank.

    Factorising first means each distinct value is looked up once, however long the column.
    """
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    uniq = pd.Index(uniques).astype("str")
    blank_u = np.append(is_blank(pd.Series(uniq)), True)  # code -1 (missing) -> blank
    pos_u = np.append(index.get_indexer(uniq), -1)
    return pos_u[codes], blank_u[codes]


def to_floats(s: pd.Series, table: str, column: str) -> np.ndarray:
    """A numeric column as float64 (NaN = missing); text that is not a number is an error."""
    if pd.api.types.is_bool_dtype(s.dtype):
        raise DataError(table, column, "booleans where numbers are expected")
    if pd.api.types.is_numeric_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        failed = np.flatnonzero(np.isnan(v))
        bad = np.zeros(len(s), dtype=bool)
        bad[failed] = ~is_blank(s.iloc[failed])  # blank text is missing, anything else is not a number
        reject_rows(table, column, "a value that is not a number", s, bad)
    reject_rows(table, column, "an infinite value", s, np.isinf(v))
    return v


def to_text(s: pd.Series) -> pd.Series:
    """Free text as pandas text (categoricals are kept: they are text already, and smaller)."""
    if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == "str":
        return s.reset_index(drop=True)
    return s.astype("str").reset_index(drop=True)
